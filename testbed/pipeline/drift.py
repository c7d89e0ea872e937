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

Features compared: every column of the user, item and user×category tables, plus event-level fields of the
pre-cutoff feature window (table `event`): paid `price`, `price_index` (paid over catalogue price),
purchase `quantity` and `revenue`, `event_type` and `category`. Rows of a user weigh 1/inclusion probability
on both sides. Item rows are aggregates over the sampled users' events, so their counts and recency depend
on how many users were sampled: against the population the item table is left out (`skipped`); against a
reference run it is compared as is, which is meaningful when both runs sampled similar numbers of users.

Daily series: for the top features with an underlying event field (revenue features → purchase `revenue`,
count features → `event_type`, event fields → themselves), the PSI of each day's slice events over
[time.start, time.end) against the baseline's values of that field in the feature window.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import ValidationError

from testbed.adapters import storage
from testbed.adapters.engines import make_engine
from testbed.core import drift, drift_stats, features
from testbed.core.drift import CATEGORICAL, EVENT_FIELDS, NUMERIC, DriftConfig, Sample
from testbed.core.duck import fetch
from testbed.core.features import ENTITY_KEYS, epoch_us
from testbed.core.slice_sql import partition_range, render
from testbed.errors import ManifestError
from testbed.manifest import Features, Manifest, TimeWindow
from testbed.pipeline import slice_data
from testbed.pipeline.context import RunContext
from testbed.pipeline.slice import normalise_events, stratum_labels

COUNT_FEATURE = re.compile(r"_(views|carts|purchases)_\d+d$")
REVENUE_FEATURE = re.compile(r"_revenue_\d+d$")
TOP_CATEGORIES = 5
ITEM_VS_POPULATION = ("item aggregates over the sampled users' events scale with the sample size; item shifts "
                      "show in the event fields (price, price_index, category) or against a reference run")


@dataclass(frozen=True)
class Side:
    """Everything drift reads from one side (the slice or its baseline)."""

    kind: str
    source: str
    features: dict[str, pa.Table]  # user, item, user_category
    users: pa.Table  # user_id, weight, stratum
    events: pa.Table | None  # event-level rows (user_id, day, pre_cutoff and the EVENT_FIELDS)


def event_field_of(feature: str) -> str | None:
    """The event field a feature is built from, for the daily series (None: no per-event analogue)."""
    if feature in EVENT_FIELDS:
        return feature
    if REVENUE_FEATURE.search(feature):
        return "revenue"
    if COUNT_FEATURE.search(feature):
        return "event_type"
    return None


def event_rows(con: duckdb.DuckDBPyConnection, start: datetime, cutoff: datetime, windows: list[int]) -> pa.Table:
    """One row per event from the feature window's start on, with the event-level fields.

    `pre_cutoff` marks the feature window [max(start, cutoff - longest window), cutoff).
    """
    since = max(start, cutoff - timedelta(days=max(windows)))
    return fetch(con, f"""
SELECT e.user_id, strftime(e.event_time, '%Y-%m-%d') AS day,
  epoch_us(e.event_time) < {epoch_us(cutoff)} AS pre_cutoff,
  CAST(e.price AS DOUBLE) AS price,
  CAST(e.price AS DOUBLE) / nullif(CAST(i.price AS DOUBLE), 0) AS price_index,
  CAST(coalesce(e.quantity, 1) AS DOUBLE) AS quantity,
  CAST(coalesce(e.price, 0) * coalesce(e.quantity, 1) AS DOUBLE) AS revenue,
  e.event_type, coalesce(i.category, '<none>') AS category
FROM events e LEFT JOIN items i ON i.item_id = e.item_id
WHERE epoch_us(e.event_time) >= {epoch_us(since)}
ORDER BY e.user_id, e.event_time, e.event_id""")


def _window(manifest: Manifest) -> tuple[datetime, datetime, list[int]]:
    return manifest.time.start, manifest.time.cutoff, manifest.features.windows_days


def _users(users: pa.Table, strata: pa.Array | None) -> pa.Table:
    probability = users.column("inclusion_probability").cast(pa.float64())
    return pa.table({"user_id": users.column("user_id").cast(pa.string()),
                     "weight": pc.divide(pa.scalar(1.0), probability),
                     "stratum": strata if strata is not None else pa.nulls(users.num_rows, pa.string())})


def slice_side(ctx: RunContext, manifest: Manifest) -> Side:
    con = slice_data.connect(ctx, ("events", "items"))
    try:
        events = event_rows(con, *_window(manifest))
    finally:
        con.close()
    users = storage.read_parquet(ctx.uri("slice", "users.parquet"))
    tables = {e: storage.read_parquet(ctx.uri("features", f"batch_{e}.parquet")) for e in ENTITY_KEYS}
    return Side("slice", ctx.run_uri, tables, _users(users, users.column("stratum")), events)


def baseline_rate(eligible: int, cap: int) -> float:
    return 1.0 if eligible <= cap else cap / eligible


def population_side(ctx: RunContext, manifest: Manifest) -> Side:
    """The segment's eligible users in the run's window, unsampled (or uniformly capped), via the engine."""
    eligible = int(storage.read_json(ctx.uri("slice", "stats.json")).get("eligible_users", 0))
    rate = baseline_rate(eligible, manifest.drift.max_baseline_users)
    sampling = manifest.sampling.model_copy(update={"strategy": "uniform", "rate": rate,
                                                    "seed": (manifest.sampling.seed + 1) % 2**63})
    queries = render(manifest.model_copy(update={"sampling": sampling}))
    engine = make_engine(ctx.invocation, ctx.lake, partition_range(manifest.time.start, manifest.time.end),
                         ctx.scratch("drift"))
    try:
        users = engine.query(queries.users, queries.params)
        events = engine.query(queries.events, queries.params)
        items = engine.query(queries.items, queries.params)
    finally:
        engine.close()
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.register("events", normalise_events(events))
        con.register("items", items)
        tables = features.compute_all(con, manifest.time.cutoff, manifest.features.windows_days)
        rows = event_rows(con, *_window(manifest))
    finally:
        con.close()
    strata = stratum_labels(users, manifest.sampling.strata) if users.num_rows else None
    source = (f"{ctx.lake}: segment {manifest.segment.name!r}, all {users.num_rows} eligible users"
              if rate == 1.0 else f"{ctx.lake}: segment {manifest.segment.name!r}, uniform {rate:.4f} of "
              f"{eligible} eligible users")
    return Side("population", source, tables, _users(users, strata), rows)


def reference_window(manifest_uri: str) -> tuple[datetime, datetime, list[int]]:
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


def reference_side(uri: str) -> Side:
    """An earlier run's feature tables; its slice (bulky, may have expired) adds weights, strata and events."""
    uri = uri.rstrip("/")
    tables = {}
    for entity in ENTITY_KEYS:
        path = storage.join(uri, "features", f"batch_{entity}.parquet")
        if not storage.exists(path):
            raise ManifestError(f"manifest: drift.baseline: {uri} is not a run with features "
                                f"(no features/batch_{entity}.parquet)")
        tables[entity] = storage.read_parquet(path)
    users_uri = storage.join(uri, "slice", "users.parquet")
    if storage.exists(users_uri):
        raw = storage.read_parquet(users_uri)
        users = _users(raw, raw.column("stratum") if "stratum" in raw.column_names else None)
    else:
        users = pa.table({"user_id": pa.array([], pa.string()), "weight": pa.array([], pa.float64()),
                          "stratum": pa.array([], pa.string())})
    events = None
    slice_uris = [storage.join(uri, "slice", f"{name}.parquet") for name in ("events", "items")]
    if all(storage.exists(u) for u in slice_uris):
        window = reference_window(storage.join(uri, "manifest.json"))
        con = duckdb.connect()
        try:
            con.execute("SET TimeZone = 'UTC'")
            con.register("events", storage.read_parquet(slice_uris[0]))
            con.register("items", storage.read_parquet(slice_uris[1]))
            events = event_rows(con, *window)
        finally:
            con.close()
    return Side("reference_run", uri, tables, users, events)


def _user_lookup(side: Side, user_ids: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Weight and stratum of each row's user (weight 1 and no stratum for users the side does not list)."""
    if side.users.num_rows == 0:
        return None, None
    index = pc.index_in(user_ids, value_set=side.users.column("user_id").combine_chunks())
    found = pc.is_valid(index).to_numpy(zero_copy_only=False)
    positions = index.fill_null(0).to_numpy(zero_copy_only=False)
    weights = np.where(found, side.users.column("weight").to_numpy()[positions], 1.0)
    strata_column = side.users.column("stratum")
    strata = None
    if strata_column.null_count < len(strata_column):
        labels = np.asarray(strata_column.to_pylist(), dtype=object)[positions]
        strata = np.where(found, labels, "<none>").astype(str)
    return weights, strata


def table_features(entity: str, base: Side, cur: Side, config: DriftConfig) -> tuple[list[dict[str, Any]],
                                                                                       list[dict[str, str]]]:
    """Reports for one feature table's columns present on both sides, and the columns left out (why)."""
    keys = ENTITY_KEYS[entity]
    b_table, c_table = base.features[entity], cur.features[entity]
    columns = [c for c in c_table.column_names if c not in keys]
    reports: list[dict[str, Any]] = []
    if entity == "item" and base.kind == "population":
        return reports, [{"feature": c, "table": entity, "reason": ITEM_VS_POPULATION} for c in columns]
    skipped = []
    b_weights = b_strata = c_weights = c_strata = b_users = c_users = None
    if "user_id" in keys:
        b_weights, b_strata = _user_lookup(base, b_table.column("user_id"))
        c_weights, c_strata = _user_lookup(cur, c_table.column("user_id"))
    if entity == "user_category":  # several rows per user
        b_users = pc.dictionary_encode(b_table.column("user_id")).combine_chunks().indices.to_numpy()
        c_users = pc.dictionary_encode(c_table.column("user_id")).combine_chunks().indices.to_numpy()
    for column in columns:
        if column not in b_table.column_names:
            skipped.append({"feature": column, "table": entity, "reason": "not in the baseline's features"})
            continue
        b_values = b_table.column(column).to_numpy(zero_copy_only=False).astype(np.float64)
        c_values = c_table.column(column).to_numpy(zero_copy_only=False).astype(np.float64)
        report = drift.feature_report(column, entity, NUMERIC, baseline=Sample(b_values, b_weights, b_strata, b_users),
                                      current=Sample(c_values, c_weights, c_strata, c_users), config=config)
        reports.append(report)
    return reports, skipped


@dataclass(frozen=True)
class EventRows:
    """A side's event rows as numpy arrays, converted once (every field and group reads them)."""

    values: dict[str, np.ndarray]  # field -> float64 (NaN = missing) or str values
    event_type: np.ndarray
    category: np.ndarray
    day: np.ndarray
    pre_cutoff: np.ndarray
    users: np.ndarray  # integer code of each row's user
    weights: np.ndarray | None
    strata: np.ndarray | None

    @classmethod
    def of(cls, side: Side) -> EventRows | None:
        if side.events is None:
            return None
        table = side.events
        weights, strata = _user_lookup(side, table.column("user_id"))

        def text(name: str) -> np.ndarray:
            return drift_stats.labels_of(np.asarray(table.column(name).to_pylist(), dtype=object))

        values = {field: text(field) if kind == CATEGORICAL
                  else table.column(field).to_numpy(zero_copy_only=False).astype(np.float64)
                  for field, (kind, _) in EVENT_FIELDS.items()}
        return cls(values, values["event_type"], values["category"], text("day"),
                   table.column("pre_cutoff").to_numpy(zero_copy_only=False).astype(bool),
                   pc.dictionary_encode(table.column("user_id")).combine_chunks().indices.to_numpy(),
                   weights, strata)

    def sample(self, field: str, pre_cutoff_only: bool, by_category: bool = False) -> tuple[Sample, np.ndarray]:
        """A field's rows (of its event type; the feature window, or every slice day), grouped by stratum or
        item category, and each row's day."""
        mask = self.pre_cutoff.copy() if pre_cutoff_only else np.ones(len(self.day), dtype=bool)
        event_type = EVENT_FIELDS[field][1]
        if event_type is not None:
            mask &= self.event_type == event_type
        groups = self.category if by_category else self.strata
        sample = Sample(self.values[field][mask], None if self.weights is None else self.weights[mask],
                        None if groups is None else groups[mask], self.users[mask])
        return sample, self.day[mask]


def event_features(base: EventRows, cur: EventRows, config: DriftConfig) -> list[dict[str, Any]]:
    """Event-field reports; numeric fields also per item category (the categories with the largest PSI)."""
    reports = []
    for field, (kind, _) in EVENT_FIELDS.items():
        report = drift.feature_report(field, "event", kind, baseline=base.sample(field, True)[0],
                                      current=cur.sample(field, True)[0], config=config)
        if kind == NUMERIC:
            by_category = drift.group_verdicts(field, kind, base.sample(field, True, by_category=True)[0],
                                               cur.sample(field, True, by_category=True)[0], config,
                                               label="category")
            ordered = sorted(by_category, key=lambda g: (-(g["psi"] or 0.0), g["category"]))
            report["categories"] = ordered[:TOP_CATEGORIES]
        reports.append(report)
    return reports


def daily_series(ranked: list[dict[str, Any]], base: EventRows, cur: EventRows, manifest: Manifest,
                 config: DriftConfig) -> dict[str, Any]:
    settings = manifest.drift
    out: dict[str, Any] = {}
    seen: set[str] = set()
    for row in ranked:
        field = event_field_of(row["feature"])
        if field is None or field in seen or row["psi"] is None:
            continue
        if len(seen) >= settings.daily_features:
            break
        seen.add(field)
        kind = EVENT_FIELDS[field][0]
        b_sample, _ = base.sample(field, True)
        c_sample, days = cur.sample(field, False)
        dates, values = drift.daily_psi(kind, b_sample, c_sample, days, config=config,
                                        min_rows=settings.daily_min_rows)
        threshold = config.psi_threshold(row["feature"])
        out[row["feature"]] = {"field": field, "dates": dates, "psi": values, "threshold": threshold,
                               "retrain_after": drift.retrain_after(dates, values, threshold,
                                                                    settings.retrain_min_days)}
    return out


def config_of(manifest: Manifest) -> DriftConfig:
    d = manifest.drift
    return DriftConfig(ks_p_value=d.ks_p_value, wasserstein=d.wasserstein, jensen_shannon=d.jensen_shannon,
                       psi=d.psi, psi_warning=d.psi_warning, small_sample_rows=d.small_sample_rows, bins=d.bins,
                       min_stratum_rows=d.min_stratum_rows,
                       overrides={name: (f.threshold, f.psi_threshold) for name, f in d.features.items()})


def drift_document(base: Side, cur: Side, manifest: Manifest) -> dict[str, Any]:
    """The whole drift.json: ranked features, what was skipped, the most shifted groups, daily series."""
    config = config_of(manifest)
    reports, skipped = [], []
    for entity in ENTITY_KEYS:
        table_reports, table_skipped = table_features(entity, base, cur, config)
        reports += table_reports
        skipped += table_skipped
    base_events, cur_events = EventRows.of(base), EventRows.of(cur)
    if base_events is not None and cur_events is not None:
        reports += event_features(base_events, cur_events, config)
    else:
        skipped += [{"feature": f, "table": "event", "reason": "the baseline has no slice events (expired?)"}
                    for f in EVENT_FIELDS]
    ranked = drift.rank_features(reports)
    return {
        "baseline": {"kind": base.kind, "source": base.source, "rows": base.features["user"].num_rows,
                     "tables": {e: t.num_rows for e, t in base.features.items()}},
        "slice_rows": {e: t.num_rows for e, t in cur.features.items()},
        "features": ranked,
        "skipped": skipped,
        "top_strata": drift.top_groups(ranked),
        "top_categories": drift.top_groups(ranked, "categories", "category")[:TOP_CATEGORIES],
        "daily": daily_series(ranked, base_events, cur_events, manifest, config)
        if base_events is not None and cur_events is not None else {},
        "drifted": sum(1 for r in ranked if r["drifted"]),
        "defaults": {"ks_p_value": config.ks_p_value, "wasserstein": config.wasserstein,
                     "jensen_shannon": config.jensen_shannon, "psi": config.psi, "psi_warning": config.psi_warning,
                     "small_sample_rows": config.small_sample_rows, "bins": config.bins},
    }


def run_drift(ctx: RunContext, manifest: Manifest) -> dict[str, Any]:
    """Compare the slice with its baseline and write `drift.json`; returns a short summary."""
    current = slice_side(ctx, manifest)
    baseline = (reference_side(manifest.drift.baseline) if manifest.drift.baseline
                else population_side(ctx, manifest))
    document = drift_document(baseline, current, manifest)
    storage.write_json(ctx.uri("drift.json"), document)
    top = document["features"][0]["feature"] if document["features"] else None
    return {"drifted_features": document["drifted"], "top_feature": top, "baseline": baseline.kind}
