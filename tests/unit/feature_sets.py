"""Feature sets and event tables shared by the feature tests and benchmarks/features.py."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from testbed.core.feature_spec import FeatureSet

C = datetime(2026, 10, 1, tzinfo=UTC)  # the hand-computed tests' cutoff
Row = tuple[str, str, str, str, datetime, float | None, int | None]  # event_id, user, item, type, time, price, qty

EVENT_LABELS = {"view": "views", "add_to_cart": "carts", "purchase": "purchases"}  # the old built-in names
ENTITIES = {"u": ["user_id"], "i": ["item_id"], "uc": ["user_id", "item.category"]}


def retail_like_spec(windows: tuple[int, ...] = (7, 30, 90)) -> FeatureSet:
    """The old built-in feature tables (frozen in fixtures/built_in_features.json), same names and column order,
    plus a user × item table and a global one: counts per event type and purchase revenue per window, and
    recency."""
    longest = f"{max(windows)}d"
    aggs: list[dict[str, Any]] = []
    for prefix, keys in ENTITIES.items():
        for w in windows:
            for event_type, label in EVENT_LABELS.items():
                aggs.append({"name": f"{prefix}_{label}_{w}d", "keys": keys, "operation": "count",
                             "window": f"{w}d", "events": [event_type]})
            aggs.append({"name": f"{prefix}_revenue_{w}d", "keys": keys, "operation": "sum", "input": "revenue",
                         "window": f"{w}d", "events": ["purchase"]})
        aggs.append({"name": f"{prefix}_days_since_last_event", "keys": keys, "operation": "days_since_last",
                     "window": longest})
        aggs.append({"name": f"{prefix}_days_since_last_purchase", "keys": keys, "operation": "days_since_last",
                     "window": longest, "events": ["purchase"]})
    aggs += [
        {"name": "ui_events", "keys": ["user_id", "item_id"], "operation": "count", "window": longest},
        {"name": "ui_purchases", "keys": ["user_id", "item_id"], "operation": "count", "window": longest,
         "events": ["purchase"]},
        {"name": "ui_days_since_last", "keys": ["user_id", "item_id"], "operation": "days_since_last",
         "window": longest},
    ]
    aggs += [{"name": f"g_{label}_{w}d", "operation": "count", "window": f"{w}d", "events": [event_type]}
             for w in windows for event_type, label in EVENT_LABELS.items()]
    return FeatureSet.model_validate({"name": "retail-like", "aggregations": aggs})


def wide_spec(features: int = 100) -> FeatureSet:
    """`features` aggregations cycling through every operation, key set, window and filter kind."""
    key_sets = [["user_id"], ["item_id"], ["user_id", "item.category"], ["item.brand"], ["user.region"], []]
    operations = [("count", None), ("sum", "revenue"), ("mean", "price"), ("min", "price"), ("max", "revenue"),
                  ("count_distinct", "item_id"), ("last", "price"), ("days_since_first", None),
                  ("days_since_last", None), ("sum", "quantity")]
    windows = ["1d", "7d", "30d", "90d", "12h"]
    filters: list[dict[str, Any]] = [{}, {"events": ["purchase"]}, {"events": ["view", "add_to_cart"]},
                                     {"where": [{"column": "price", "op": "gt", "value": 20.0}]},
                                     {"where": [{"column": "item.category", "op": "in", "value": ["home", "toys"]}]}]
    aggs = []
    for i in range(features):
        operation, column = operations[i % len(operations)]
        agg: dict[str, Any] = {"name": f"f{i:03d}", "keys": key_sets[i % len(key_sets)], "operation": operation,
                               "window": windows[i % len(windows)], **filters[i % len(filters)]}
        if column:
            agg["input"] = column
        aggs.append(agg)
    return FeatureSet.model_validate({"name": "wide", "aggregations": aggs})


def event_table(rows: list[Row]) -> pa.Table:
    """An events table (the slice's columns the features read) from plain rows."""
    strings = {name: pa.array([r[i] for r in rows], pa.string())
               for i, name in enumerate(["event_id", "user_id", "item_id", "event_type"])}
    return pa.table({**strings, "event_time": pa.array([r[4] for r in rows], pa.timestamp("us", tz="UTC")),
                     "price": pa.array([r[5] for r in rows], pa.float64()),
                     "quantity": pa.array([r[6] for r in rows], pa.int32())})
