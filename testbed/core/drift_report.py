"""drift.json from two sides (the slice and its baseline): which tables and event fields to compare, how rows
are weighted, and the document itself. The statistics are testbed.core.drift's; reading the sides is the
drift step's (testbed.pipeline.drift).

Item rows are aggregates over the sampled users' events, so their counts and recency depend on how many users
were sampled: against the population the item table is left out (`skipped`); against a reference run it is
compared as is, which is meaningful when both runs sampled similar numbers of users.

Daily series: for the top features with an underlying event field (revenue features → purchase `revenue`,
count features → `event_type`, event fields → themselves), the PSI of each day's (or, on sparse fields, each
week's) slice events over [time.start, time.end) against the baseline's values of that field in the feature
window, each judged against PSI's null at that period's size (testbed.core.drift.daily_drift).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from testbed.core import drift
from testbed.core.drift import CATEGORICAL, EVENT_FIELDS, NUMERIC, DriftConfig, Sample

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
    features: dict[str, pa.Table]  # feature table (one per key set, e.g. user, item, user_category) -> rows
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


def weighted_users(users: pa.Table, strata: pa.Array | None) -> pa.Table:
    """user_id, weight (1 / inclusion probability) and stratum (null without one) of a side's users."""
    probability = users.column("inclusion_probability").cast(pa.float64())
    return pa.table({"user_id": users.column("user_id").cast(pa.string()),
                     "weight": pc.divide(pa.scalar(1.0), probability),
                     "stratum": strata if strata is not None else pa.nulls(users.num_rows, pa.string())})


def baseline_rate(eligible: int, cap: int) -> float:
    """The uniform rate that caps a population baseline at `cap` users."""
    return 1.0 if eligible <= cap else cap / eligible


@dataclass(frozen=True)
class DailyConfig:
    """How the daily series are drawn: how many features, the fewest rows a day needs, how long a crossing
    must hold before it suggests retraining."""

    features: int
    min_rows: int
    retrain_min_days: int


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


def key_columns(table: pa.Table) -> list[str]:
    """A feature table's keys: its string columns (every aggregate is numeric)."""
    return [f.name for f in table.schema if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)]


def table_features(entity: str, base: Side, cur: Side, config: DriftConfig) -> tuple[list[dict[str, Any]],
                                                                                       list[dict[str, str]]]:
    """Reports for one feature table's columns present on both sides, and the columns left out (why)."""
    c_table = cur.features[entity]
    keys = key_columns(c_table)
    columns = [c for c in c_table.column_names if c not in keys]
    reports: list[dict[str, Any]] = []
    if entity not in base.features:
        return reports, [{"feature": c, "table": entity, "reason": "not in the baseline's features"}
                         for c in columns]
    b_table = base.features[entity]
    if "user_id" not in keys and base.kind == "population":
        return reports, [{"feature": c, "table": entity, "reason": ITEM_VS_POPULATION} for c in columns]
    skipped = []
    b_weights = b_strata = c_weights = c_strata = b_users = c_users = None
    if "user_id" in keys:
        b_weights, b_strata = _user_lookup(base, b_table.column("user_id"))
        c_weights, c_strata = _user_lookup(cur, c_table.column("user_id"))
    if "user_id" in keys and len(keys) > 1:  # several rows per user
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


def column_labels(column: pa.ChunkedArray) -> np.ndarray:
    """A string column's values as drift_stats.labels_of gives them (None → '<null>'), but each distinct value
    becomes a Python string once, not once per row (the drift step ~15 % faster at `large`)."""
    text = column if pa.types.is_string(column.type) else pc.cast(column, pa.string())
    encoded = pc.dictionary_encode(pc.fill_null(text, "<null>")).combine_chunks()
    labels = np.asarray(encoded.dictionary.to_pylist(), dtype=str)
    return labels[encoded.indices.to_numpy()] if len(labels) else np.empty(0, dtype=str)


@dataclass(frozen=True)
class EventRows:
    """A side's event rows as numpy arrays, converted once (every field and group reads them)."""

    values: dict[str, np.ndarray]  # field -> float64 (NaN = missing) or str values
    conversion: np.ndarray  # the rows of a conversion type (what quantity and revenue read)
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

        values = {field: column_labels(table.column(field)) if kind == CATEGORICAL
                  else table.column(field).to_numpy(zero_copy_only=False).astype(np.float64)
                  for field, (kind, _) in EVENT_FIELDS.items()}
        conversion = table.column("conversion").to_numpy(zero_copy_only=False).astype(bool)
        return cls(values, conversion, values["category"], column_labels(table.column("day")),
                   table.column("pre_cutoff").to_numpy(zero_copy_only=False).astype(bool),
                   pc.dictionary_encode(table.column("user_id")).combine_chunks().indices.to_numpy(),
                   weights, strata)

    def sample(self, field: str, pre_cutoff_only: bool, by_category: bool = False) -> tuple[Sample, np.ndarray]:
        """A field's rows (of its event type; the feature window, or every slice day), grouped by stratum or
        item category, and each row's day."""
        mask = self.pre_cutoff.copy() if pre_cutoff_only else np.ones(len(self.day), dtype=bool)
        if EVENT_FIELDS[field][1]:
            mask &= self.conversion
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


def daily_series(ranked: list[dict[str, Any]], base: EventRows, cur: EventRows, config: DriftConfig,
                 daily: DailyConfig) -> dict[str, Any]:
    """Per top feature with an event field: its size-aware daily (or weekly) series and the suggested
    retraining date."""
    out: dict[str, Any] = {}
    seen: set[str] = set()
    for row in ranked:
        field = event_field_of(row["feature"])
        if field is None or field in seen or row["psi"] is None:
            continue
        if len(seen) >= daily.features:
            break
        seen.add(field)
        kind = EVENT_FIELDS[field][0]
        b_sample, _ = base.sample(field, True)
        c_sample, days = cur.sample(field, False)
        threshold = config.psi_threshold(row["feature"])
        series = drift.daily_drift(kind, b_sample, c_sample, days, config=config, min_rows=daily.min_rows,
                                   threshold=threshold)
        out[row["feature"]] = {"field": field, **series.as_dict(), "threshold": threshold,
                               "null_quantile": drift.NULL_QUANTILE,
                               "retrain_after": drift.retrain_after(series, daily.retrain_min_days)}
    return out


def drift_document(base: Side, cur: Side, config: DriftConfig, daily: DailyConfig) -> dict[str, Any]:
    """The whole drift.json: ranked features, what was skipped, the most shifted groups, daily series."""
    reports, skipped = [], []
    for entity in sorted(cur.features):
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
    base_rows = base.features["user"].num_rows if "user" in base.features else base.users.num_rows
    return {
        "baseline": {"kind": base.kind, "source": base.source, "rows": base_rows,
                     "tables": {e: t.num_rows for e, t in base.features.items()}},
        "slice_rows": {e: t.num_rows for e, t in cur.features.items()},
        "features": ranked,
        "skipped": skipped,
        "top_strata": drift.top_groups(ranked),
        "top_categories": drift.top_groups(ranked, "categories", "category")[:TOP_CATEGORIES],
        "daily": daily_series(ranked, base_events, cur_events, config, daily)
        if base_events is not None and cur_events is not None else {},
        "drifted": sum(1 for r in ranked if r["drifted"]),
        "defaults": {"ks_p_value": config.ks_p_value, "wasserstein": config.wasserstein,
                     "jensen_shannon": config.jensen_shannon, "psi": config.psi, "psi_warning": config.psi_warning,
                     "small_sample_rows": config.small_sample_rows, "bins": config.bins},
    }
