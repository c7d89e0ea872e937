"""`testbed train`: a LambdaRank model from a lake, with the run's own feature and candidate code."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from botocore.exceptions import ClientError

from testbed.adapters.duckdb_engine import DuckDBEngine
from testbed.adapters.storage import Storage, UriStorage
from testbed.core import feature_sql, training
from testbed.core.event_types import DEFAULT_VOCABULARY, EventVocabulary
from testbed.core.feature_check import load_feature_set
from testbed.core.feature_matrix import MatrixInputs
from testbed.core.feature_spec import FeatureSet
from testbed.core.model_inputs import FeatureInputs
from testbed.core.ranking_session import RankingSession
from testbed.core.retail_default import retail_default
from testbed.core.sampling import uniform_draw_sql
from testbed.core.slice_sql import quote, ts_literal
from testbed.errors import FeatureSetError, InputError
from testbed.pipeline import feature_sets

EVENT_COLUMNS = ("event_id", "user_id", "item_id", "event_type", "event_time", "price", "quantity")


def default_cutoff(engine: DuckDBEngine, label_days: int) -> datetime:
    """Four label windows before the lake's last event, so later windows stay unseen for evaluation."""
    last = engine.query("SELECT MAX(event_time) FROM events").column(0)[0].as_py()
    if last is None:
        raise InputError("lake events/: no events to train on")
    day = last.replace(hour=0, minute=0, second=0, microsecond=0, tzinfo=UTC)
    return day - timedelta(days=4 * label_days)


@dataclass(frozen=True)
class TrainingData:
    """Candidate rows of the users with a relevant candidate: inputs, relevance, list sizes, feature names."""

    x: np.ndarray
    y: np.ndarray
    groups: np.ndarray
    names: list[str]
    pairs: pa.Table  # user_id, item_id of each row
    cfg: training.TrainingConfig
    features_from: datetime  # the first event time the features read: cutoff minus the longest window


def training_data(storage: Storage, lake: str, spec: FeatureSet, *, cutoff: datetime | None, label_days: int,
                  feature_set: str, seed: int, users_rate: float, num_trees: int,
                  progress: training.TrainingProgress | None = None,
                  vocabulary: EventVocabulary = DEFAULT_VOCABULARY) -> TrainingData:
    """The lake's candidates as of the cutoff with `spec`'s training inputs, built as a run builds them;
    `progress` hears two phases: reading the lake, then building the training matrix."""
    progress = progress or training.NoTrainingProgress()
    progress.begin("reading lake")
    engine = DuckDBEngine(lake, storage=storage)
    try:
        cut = cutoff or default_cutoff(engine, label_days)
        cfg = training.TrainingConfig(cutoff=cut, label_end=cut + timedelta(days=label_days), feature_set=feature_set,
                                      seed=seed, num_trees=num_trees, vocabulary=vocabulary)
        longest = max(timedelta(days=max(cfg.windows)), timedelta(microseconds=spec.longest_window_us()))
        since = cut - longest
        users = engine.query(
            f"SELECT user_id FROM (SELECT DISTINCT user_id FROM events WHERE event_time >= {ts_literal(since)} "
            f"AND event_time < {ts_literal(cut)}) WHERE {uniform_draw_sql(seed, 'user_id')} < {users_rate!r}")
        columns = ", ".join(quote(c) for c in sorted({*EVENT_COLUMNS, *spec.event_columns()}))
        events = engine.query(  # what the features and the labels read: [cutoff - longest window, label_end)
            f"SELECT {columns} FROM events "
            f"WHERE event_time >= {ts_literal(since)} AND event_time < {ts_literal(cfg.label_end)}")
        items = engine.query("SELECT * FROM items")
        attributes = engine.query("SELECT * FROM users")
    finally:
        engine.close()
    progress.end("reading lake", {"events": events.num_rows, "users": users.num_rows})
    progress.begin("building training matrix")
    inputs = FeatureInputs(spec, MatrixInputs(
        items=items, users=attributes, aggregations=feature_sql.batch_tables(events, items, attributes, spec, cut),
        external=feature_sets.external_tables(storage, spec), cutoff=cut))
    with RankingSession(events, items) as session:
        x, y, groups, names, pairs = training.training_matrix(session, users, cfg, inputs)
    progress.end("building training matrix", {"rows": len(y), "users": len(groups)})
    return TrainingData(x, y, groups, names, pairs, cfg, since)


def export_table(lake: str, features: str | None, out: Path, *, cutoff: datetime | None = None,
                 label_days: int = 14, seed: int = 1, users_rate: float = 1.0,
                 storage: Storage | None = None) -> dict[str, Any]:
    """`testbed features export`: the training table (user_id, item_id, relevance, every training input) as
    Parquet, for a model trained outside the testbed; rows are grouped by user (one ranking list each)."""
    storage = storage or UriStorage()
    spec, provenance = _feature_set(storage, features)
    data = training_data(storage, lake, spec, cutoff=cutoff, label_days=label_days, feature_set="full", seed=seed,
                         users_rate=users_rate, num_trees=0)
    columns = {"user_id": data.pairs.column("user_id"), "item_id": data.pairs.column("item_id"),
               "relevance": pa.array(data.y)}
    columns.update({name: pa.array(data.x[:, i]) for i, name in enumerate(data.names)})
    out.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(columns), out)
    return {"rows": int(len(data.y)), "users": int(len(data.groups)), "features": data.names,
            "cutoff": data.cfg.cutoff.isoformat(), "label_end": data.cfg.label_end.isoformat(),
            "feature_set": provenance}


def train_model(lake: str, out: Path, *, cutoff: datetime | None = None, label_days: int = 14,
                feature_set: str = "full", features: str | None = None, seed: int = 1, users_rate: float = 1.0,
                num_trees: int = 150, storage: Storage | None = None,
                progress: training.TrainingProgress | None = None,
                vocabulary: EventVocabulary = DEFAULT_VOCABULARY) -> dict[str, Any]:
    """`features` is a feature set file (default: retail-default); `feature_set` picks all its training inputs
    (full) or its item features only (control); `vocabulary` the lake's event types, whose grades are the labels.
    `storage` reads an s3:// lake; by default only a local one.
    `progress` hears each phase (reading, matrix, boosting tree by tree, writing); it never changes the model."""
    storage = storage or UriStorage()
    progress = progress or training.NoTrainingProgress()
    spec, provenance = _feature_set(storage, features)
    data = training_data(storage, lake, spec, cutoff=cutoff, label_days=label_days, feature_set=feature_set,
                         seed=seed, users_rate=users_rate, num_trees=num_trees, progress=progress,
                         vocabulary=vocabulary)
    selected = training.select_features(data.names, feature_set)
    if not selected:
        raise InputError(f"feature set {spec.name}: no item feature (i_*) to train a control model on")
    columns_used = [data.names.index(n) for n in selected]
    progress.begin("boosting")
    try:
        booster = training.train(data.x[:, columns_used], data.y, data.groups, selected, data.cfg,
                                 categorical=spec.categorical(), on_tree=progress.trees)
    except ValueError as exc:
        raise InputError(f"lake {lake}: {exc}") from None
    progress.end("boosting", {"trees": booster.num_trees()})
    progress.begin("writing model")
    text = booster.model_to_string().encode()
    meta = training.model_metadata(text, booster, data.cfg, data.groups, storage.fingerprint(lake),
                                   features=provenance, features_from=data.features_from)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(text)
    Path(str(out) + ".json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    progress.end("writing model", {"bytes": len(text)})
    return meta


def _feature_set(storage: Storage, uri: str | None) -> tuple[FeatureSet, dict[str, str | None]]:
    if uri is None:
        spec = retail_default(list(training.TrainingConfig.windows))
        return spec, {"name": spec.name, "digest": spec.digest(), "uri": None}
    try:
        data = storage.read_bytes(uri)
    except (OSError, ClientError):
        raise FeatureSetError(f"--features: feature set file not found: {uri}") from None
    spec = load_feature_set(data, f"feature set {uri}")
    return spec, {"name": spec.name, "digest": spec.digest(), "uri": uri,
                  "sha256": hashlib.sha256(data).hexdigest()}
