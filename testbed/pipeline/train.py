"""`testbed train`: a LambdaRank model from a lake, with the run's own feature and candidate code."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from testbed.adapters.duckdb_engine import DuckDBEngine
from testbed.adapters.storage import Storage, UriStorage
from testbed.core import training
from testbed.core.ranking_session import RankingSession
from testbed.core.sampling import uniform_draw_sql
from testbed.core.slice_sql import ts_literal
from testbed.errors import InputError


def default_cutoff(engine: DuckDBEngine, label_days: int) -> datetime:
    """Four label windows before the lake's last event, so later windows stay unseen for evaluation."""
    last = engine.query("SELECT MAX(event_time) FROM events").column(0)[0].as_py()
    if last is None:
        raise InputError("lake events/: no events to train on")
    day = last.replace(hour=0, minute=0, second=0, microsecond=0, tzinfo=UTC)
    return day - timedelta(days=4 * label_days)


def train_model(lake: str, out: Path, *, cutoff: datetime | None = None, label_days: int = 14,
                feature_set: str = "full", seed: int = 1, users_rate: float = 1.0,
                num_trees: int = 150, storage: Storage | None = None) -> dict[str, Any]:
    """`storage` reads an s3:// lake; by default only a local one can be read."""
    storage = storage or UriStorage()
    engine = DuckDBEngine(lake, storage=storage)
    try:
        cut = cutoff or default_cutoff(engine, label_days)
        cfg = training.TrainingConfig(cutoff=cut, label_end=cut + timedelta(days=label_days), feature_set=feature_set,
                                      seed=seed, num_trees=num_trees)
        since = cut - timedelta(days=max(cfg.windows))
        users = engine.query(
            f"SELECT user_id FROM (SELECT DISTINCT user_id FROM events WHERE event_time >= {ts_literal(since)} "
            f"AND event_time < {ts_literal(cut)}) WHERE {uniform_draw_sql(seed, 'user_id')} < {users_rate!r}")
        events = engine.query(  # what the features and the labels read: [cutoff - longest window, label_end)
            "SELECT user_id, item_id, event_type, event_time, price, quantity FROM events "
            f"WHERE event_time >= {ts_literal(since)} AND event_time < {ts_literal(cfg.label_end)}")
        items = engine.query("SELECT * FROM items")
    finally:
        engine.close()
    with RankingSession(events, items) as session:
        x, y, groups, names = training.training_matrix(session, users, cfg)
    selected = training.select_features(names, feature_set)
    columns = [names.index(n) for n in selected]
    try:
        booster = training.train(x[:, columns], y, groups, selected, cfg)
    except ValueError as exc:
        raise InputError(f"lake {lake}: {exc}") from None
    text = booster.model_to_string().encode()
    meta = training.model_metadata(text, booster, cfg, groups, storage.fingerprint(lake))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(text)
    Path(str(out) + ".json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return meta
