"""The drift step, after scoring (beside evaluate and what-if): feature drift of the slice against a baseline,
written to `drift.json`. It is the only step after the slice that reads the lake (the population baseline).

Baseline (manifest `drift.baseline`):
- unset (default) — the population: the same segment, window and eligibility rule as the slice, without
  sampling. It reuses the slice's own SQL with `uniform` sampling at rate 1 (rate `max_baseline_users /
  eligible` with seed + 1 when the segment is larger, so a huge segment stays a bounded, still unbiased,
  query), run through the same engine (DuckDB locally, Athena in the cloud), and computes the features with
  the same core code. It answers "does the slice, reweighted by 1/inclusion probability, look like the
  population it stands for?".
- an artifacts URI of an earlier run (`…/runs/<run_id>`) — that run's batch feature tables (and, while its
  bulky slice has not expired, its slice events for the event-level fields). It answers "has the data moved
  since the reference run?"; a price change injected after the reference shows up here.

Features compared: every declared aggregation of the run's feature set (one table per key set), plus
event-level fields of the pre-cutoff feature window (table `event`): paid `price`, `price_index` (paid over
catalogue price), purchase `quantity` and `revenue`, `event_type` and `category`. Rows of a user weigh
1/inclusion probability on both sides. This module reads the two sides; testbed.core.drift_report builds
the document.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pyarrow as pa
from pydantic import ValidationError

from testbed.adapters.engines import make_engine
from testbed.adapters.storage import Storage
from testbed.core import feature_sql
from testbed.core.drift import DriftConfig
from testbed.core.drift_report import DailyConfig, Side, baseline_rate, drift_document, weighted_users
from testbed.core.event_types import EventVocabulary
from testbed.core.feature_spec import FeatureSet, describe
from testbed.core.ranking_session import RankingSession
from testbed.core.slice_sql import (
    CATALOGUE_SQL,
    partition_range,
    plain_statements,
    population_events_sql,
    population_extract,
)
from testbed.core.slice_tables import normalise_events, stratum_labels, touched_items
from testbed.errors import ManifestError
from testbed.manifest import Features, Manifest, TimeWindow
from testbed.pipeline import feature_sets, slice_data
from testbed.pipeline.context import RunContext
from testbed.record import io
from testbed.record.drift import DriftDocument
from testbed.record.layout import RunLayout
from testbed.record.steps import DriftResult


def _window(manifest: Manifest) -> tuple[datetime, datetime, list[int]]:
    return manifest.time.start, manifest.time.cutoff, manifest.features.windows_days


def slice_side(ctx: RunContext, manifest: Manifest, spec: FeatureSet) -> Side:
    with slice_data.session(ctx) as session:
        events = session.event_rows(*_window(manifest), manifest.evaluation.vocabulary())
    users = slice_data.read(ctx, "users")
    return Side("slice", ctx.run_uri, slice_data.batch_features(ctx, spec),
                weighted_users(users, users.column("stratum")), events)


def population_side(ctx: RunContext, manifest: Manifest, spec: FeatureSet) -> Side:
    """The segment's eligible users in the run's window, unsampled (or uniformly capped), via the engine."""
    eligible = io.read(ctx.storage, ctx.layout.slice_stats).eligible_users
    rate = baseline_rate(eligible, manifest.drift.max_baseline_users)
    sampling = manifest.sampling.model_copy(update={"strategy": "uniform", "rate": rate,
                                                    "seed": (manifest.sampling.seed + 1) % 2**63})
    baseline = manifest.model_copy(update={"sampling": sampling})
    extract = population_extract(manifest, spec)
    statements, params = plain_statements(baseline, extract)  # one pass each: no table to create or drop
    engine = make_engine(ctx.invocation, ctx.lake, partition_range(manifest.time.start, manifest.time.end),
                         ctx.scratch("drift"))
    try:
        users = engine.query(statements["users"], params)
        events = engine.query(statements["events"], params)
        catalogue = engine.query(CATALOGUE_SQL)
        population = engine.query(population_events_sql(baseline, extract))  # the lake-population tables
    finally:
        engine.close()
    items = touched_items(catalogue, events.column("item_id"), population.column("item_id"))  # as the slice's
    events = normalise_events(events)
    tables = feature_sql.batch_tables(events, items, users, spec, manifest.time.cutoff,
                                      population=normalise_events(population))
    with RankingSession(events, items) as session:
        rows = session.event_rows(*_window(manifest), manifest.evaluation.vocabulary())
    strata = stratum_labels(users, manifest.sampling.strata) if users.num_rows else None
    source = (f"{ctx.lake}: segment {manifest.segment.name!r}, all {users.num_rows} eligible users"
              if rate == 1.0 else f"{ctx.lake}: segment {manifest.segment.name!r}, uniform {rate:.4f} of "
              f"{eligible} eligible users")
    return Side("population", source, tables, weighted_users(users, strata), rows)

def reference_window(storage: Storage, manifest_uri: str) -> tuple[datetime, datetime, list[int]]:
    """The reference run's start, cutoff and feature windows, read leniently: a run recorded by another code
    version may hold manifest keys this one does not know."""
    raw = storage.read_json(manifest_uri)
    try:
        time = TimeWindow.model_validate(raw["time"])
        windows = Features.model_validate(raw.get("features", {})).windows_days
    except (KeyError, TypeError, ValidationError) as exc:
        raise ManifestError(f"manifest: drift.baseline: {manifest_uri} has no usable time window "
                            f"({str(exc).splitlines()[0][:80]})") from None
    return time.start, time.cutoff, windows


def reference_side(storage: Storage, uri: str, spec: FeatureSet, vocabulary: EventVocabulary) -> Side:
    """An earlier run's feature tables (those of this run's key sets that it has); its slice (bulky, may have
    expired) adds weights, strata and events, whose conversions are this run's `vocabulary`'s."""
    uri = uri.rstrip("/")
    reference = RunLayout.at(uri)
    tables = {group: storage.read_parquet(reference.batch_features(group)) for group in spec.groups()
              if storage.exists(reference.batch_features(group))}
    if spec.groups() and not tables:
        raise ManifestError(f"manifest: drift.baseline: {uri} is not a run with features "
                            f"(none of features/batch_{{{','.join(spec.groups())}}}.parquet)")
    users_uri = reference.slice_table("users")
    if storage.exists(users_uri):
        raw = storage.read_parquet(users_uri)
        users = weighted_users(raw, raw.column("stratum") if "stratum" in raw.column_names else None)
    else:
        users = pa.table({"user_id": pa.array([], pa.string()), "weight": pa.array([], pa.float64()),
                          "stratum": pa.array([], pa.string())})
    events = None
    slice_uris = [reference.slice_table(name) for name in ("events", "items")]
    if all(storage.exists(u) for u in slice_uris):
        window = reference_window(storage, reference.manifest.uri)
        with RankingSession(storage.read_parquet(slice_uris[0]), storage.read_parquet(slice_uris[1])) as session:
            events = session.event_rows(*window, vocabulary)
    return Side("reference_run", uri, tables, users, events)


def config_of(manifest: Manifest) -> DriftConfig:
    """The manifest's drift block as the statistics' plain config."""
    d = manifest.drift
    return DriftConfig(ks_p_value=d.ks_p_value, wasserstein=d.wasserstein, jensen_shannon=d.jensen_shannon,
                       psi=d.psi, psi_warning=d.psi_warning, small_sample_rows=d.small_sample_rows, bins=d.bins,
                       min_stratum_rows=d.min_stratum_rows,
                       overrides={name: (f.threshold, f.psi_threshold) for name, f in d.features.items()})


def daily_config(manifest: Manifest) -> DailyConfig:
    d = manifest.drift
    return DailyConfig(features=d.daily_features, min_rows=d.daily_min_rows, retrain_min_days=d.retrain_min_days)


def run_drift(ctx: RunContext, manifest: Manifest) -> dict[str, Any]:
    """Compare the slice with its baseline and write `drift.json`; returns a short summary."""
    spec = feature_sets.run_set(ctx.storage, manifest)
    current = slice_side(ctx, manifest, spec)
    vocabulary = manifest.evaluation.vocabulary()
    baseline = (reference_side(ctx.storage, manifest.drift.baseline, spec, vocabulary) if manifest.drift.baseline
                else population_side(ctx, manifest, spec))
    raw = drift_document(baseline, current, config_of(manifest), daily_config(manifest))
    definitions = {agg.name: describe(agg) for agg in spec.aggregations}
    for feature in raw["features"]:
        if feature["feature"] in definitions:
            feature["definition"] = definitions[feature["feature"]]
    document = DriftDocument.model_validate(raw)
    io.write(ctx.storage, ctx.layout.drift, document)
    top = document.features[0].feature if document.features else None
    return DriftResult(drifted_features=document.drifted, top_feature=top,
                       baseline=baseline.kind).model_dump(mode="json")
