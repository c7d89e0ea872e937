"""Declared aggregations, hand-computed: every operation, window edges, nulls, joins, on the fold and the SQL.

The same expectations run against both implementations (`feature_fold.fold` and `feature_sql.batch_tables`),
so each is checked against arithmetic done by hand, not only against the other.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pyarrow as pa
import pytest

from testbed.core import feature_fold, feature_sql
from testbed.core.feature_spec import FeatureSet
from tests.unit.feature_sets import C, Row, event_table

HOUR, DAY, US = timedelta(hours=1), timedelta(days=1), timedelta(microseconds=1)
Compute = Callable[[pa.Table, pa.Table, pa.Table, FeatureSet, datetime], dict[str, pa.Table]]
IMPLEMENTATIONS = pytest.mark.parametrize("compute", [feature_fold.fold, feature_sql.batch_tables],
                                          ids=["fold", "sql"])

ROWS: list[Row] = [
    ("e09", "u1", "i1", "view", C - HOUR, 12.0, None),  # same time as e01, larger id: the latest
    ("e02", "u1", "i1", "purchase", C - 2 * DAY, 9.99, 3),  # 29.97 → 2997 cents
    ("e01", "u1", "i1", "view", C - HOUR, 10.0, 1),
    ("e03", "u1", "i2", "view", C - 7 * DAY, 20.0, None),  # exactly at the 7-day edge: inside
    ("e04", "u1", "i2", "purchase", C - 7 * DAY - US, 20.0, None),  # 1 µs outside 7d; quantity null → 1
    ("e05", "u1", "i9", "add_to_cart", C - 40 * DAY, None, 2),  # i9 is not in the catalogue
    ("e06", "u2", "i1", "view", C - 100 * DAY, 10.0, 1),  # outside every window
    ("e07", "u1", "i1", "purchase", C, 999.0, 9),  # at the cutoff: never counts
    ("e08", "u2", "i2", "view", C - HOUR, 5.0, 1),
    ("e10", "u3", "i1", "purchase", C + DAY, 5.0, 1),  # a user seen only after the cutoff
]
ITEMS = pa.table({"item_id": ["i1", "i2"], "category": ["shoes", "home"], "price": [10.0, 20.0],
                  "brand": ["acme", None]})
USERS = pa.table({"user_id": ["u1", "u3"], "region": ["eu", "us"], "age": pa.array([30, None], pa.int64())})


def events(rows: list[Row] = ROWS) -> pa.Table:
    return event_table(rows)


def spec(*aggregations: dict[str, Any]) -> FeatureSet:
    return FeatureSet.model_validate({"name": "hand", "aggregations": list(aggregations)})


def user(name: str, operation: str, window: str = "90d", **extra: Any) -> dict[str, Any]:
    return {"name": name, "keys": ["user_id"], "operation": operation, "window": window, **extra}


def by_key(table: pa.Table, feature: str) -> dict[tuple[str, ...], Any]:
    keys = [c for c in table.column_names if c.endswith("_id") or c in ("category", "region", "brand")]
    return {tuple(r[k] for k in keys): r[feature] for r in table.to_pylist()}


@IMPLEMENTATIONS
@pytest.mark.parametrize(("feature", "expected"), [
    (user("n_7d", "count", "7d"), {"u1": 4, "u2": 1}),  # e01 e02 e03 e09; e04 is 1 µs too old
    (user("n_1h", "count", "1h"), {"u1": 2, "u2": 1}),  # C - 1h is the window's first instant
    (user("purchases_30d", "count", "30d", events=["purchase"]), {"u1": 2, "u2": 0}),
    (user("revenue_30d", "sum", "30d", input="revenue", events=["purchase"]), {"u1": 49.97, "u2": 0.0}),
    (user("mean_revenue_30d", "mean", "30d", input="revenue"), {"u1": 9197 / 100 / 5, "u2": 5.0}),
    (user("min_price", "min", input="price"), {"u1": 9.99, "u2": 5.0}),
    (user("max_price", "max", input="price"), {"u1": 20.0, "u2": 5.0}),
    (user("max_revenue", "max", input="revenue"), {"u1": 29.97, "u2": 5.0}),
    (user("quantity_sum", "sum", input="quantity"), {"u1": 6.0, "u2": 1.0}),  # nulls skipped
    (user("quantity_mean", "mean", input="quantity"), {"u1": 2.0, "u2": 1.0}),  # 6 / 3 non-null
    (user("last_price", "last", input="price"), {"u1": 12.0, "u2": 5.0}),  # e09 beats e01 on event_id
    (user("last_quantity", "last", input="quantity"), {"u1": 1.0, "u2": 1.0}),  # e09's null is skipped
    (user("last_revenue", "last", input="revenue"), {"u1": 12.0, "u2": 5.0}),
    (user("items", "count_distinct", input="item_id"), {"u1": 3, "u2": 1}),
    (user("categories", "count_distinct", input="item.category"), {"u1": 2, "u2": 1}),  # i9's null skipped
    (user("first_days", "days_since_first"), {"u1": 40.0, "u2": 1 / 24}),
    (user("last_purchase_days", "days_since_last", events=["purchase"]), {"u1": 2.0, "u2": None}),
    (user("pricey", "count", where=[{"column": "price", "op": "gt", "value": 10}]), {"u1": 3, "u2": 0}),
    (user("pricey_f", "count", where=[{"column": "price", "op": "gte", "value": 10.0}]), {"u1": 4, "u2": 0}),
    (user("cheap", "count", where=[{"column": "price", "op": "lt", "value": 10}]), {"u1": 1, "u2": 1}),
    (user("at_most", "count", where=[{"column": "price", "op": "lte", "value": 9.99}]), {"u1": 1, "u2": 1}),
    (user("no_price", "count", where=[{"column": "price", "op": "is_null"}]), {"u1": 1, "u2": 0}),
    (user("priced", "count", where=[{"column": "price", "op": "not_null"}]), {"u1": 5, "u2": 1}),
    (user("shoes", "count", where=[{"column": "item.category", "op": "eq", "value": "shoes"}]), {"u1": 3, "u2": 0}),
    # a null category (i9 is not in the catalogue) fails ne and not_in, as in SQL
    (user("not_shoes", "count", where=[{"column": "item.category", "op": "ne", "value": "shoes"}]),
     {"u1": 2, "u2": 1}),
    (user("not_in", "count", where=[{"column": "item.category", "op": "not_in", "value": ["shoes"]}]),
     {"u1": 2, "u2": 1}),
    (user("in", "count", where=[{"column": "item.brand", "op": "in", "value": ["acme", "x"]}]), {"u1": 3, "u2": 0}),
    (user("between", "count", where=[{"column": "price", "op": "between", "value": [9.99, 12]}]),
     {"u1": 3, "u2": 0}),
    (user("both", "count", events=["view"], where=[{"column": "quantity", "op": "eq", "value": 1}]),
     {"u1": 1, "u2": 1}),
    (user("old", "count", where=[{"column": "user.age", "op": "gte", "value": 18}]), {"u1": 6, "u2": 0}),
])
def test_each_operation_by_hand(compute: Compute, feature: dict[str, Any], expected: dict[str, Any]) -> None:
    table = compute(events(), ITEMS, USERS, spec(feature), C)["user"]
    got = {k[0]: v for k, v in by_key(table, feature["name"]).items()}
    assert got.keys() == expected.keys()  # u3's only event is after the cutoff; u2 is kept by e08
    for key, value in expected.items():
        assert got[key] == (pytest.approx(value, rel=1e-15) if isinstance(value, float) else value), key


@IMPLEMENTATIONS
def test_rows_are_the_keys_with_an_event_in_the_tables_longest_window(compute: Compute) -> None:
    tables = compute(events(), ITEMS, USERS, spec(
        {"name": "item_n_7d", "keys": ["item_id"], "operation": "count", "window": "7d", "events": ["purchase"]},
        {"name": "n_1h", "keys": ["user_id"], "operation": "count", "window": "1h"},
        {"name": "g", "operation": "count", "window": "30d"},
        {"name": "g_none", "operation": "min", "input": "price", "window": "1h", "events": ["refund"]}), C)
    assert by_key(tables["item"], "item_n_7d") == {("i1",): 1, ("i2",): 0}  # i9 (40 days old) has no row
    assert by_key(tables["user"], "n_1h") == {("u1",): 2, ("u2",): 1}
    assert tables["global"].to_pylist() == [{"g": 6, "g_none": None}]


@IMPLEMENTATIONS
def test_attribute_keys_are_strings_with_missing_as_empty_and_byte_order(compute: Compute) -> None:
    tables = compute(events(), ITEMS, USERS, spec(
        {"name": "uc", "keys": ["item.category", "user_id"], "operation": "count", "window": "90d"},
        {"name": "r", "keys": ["user.region"], "operation": "sum", "input": "revenue", "window": "90d"}), C)
    assert tables["user_category"].column_names == ["user_id", "category", "uc"]
    assert tables["user_category"].to_pylist() == [
        {"user_id": "u1", "category": "", "uc": 1}, {"user_id": "u1", "category": "home", "uc": 2},
        {"user_id": "u1", "category": "shoes", "uc": 3}, {"user_id": "u2", "category": "home", "uc": 1}]
    assert tables["region"].to_pylist() == [{"region": "", "r": 5.0}, {"region": "eu", "r": 9197 / 100}]


@IMPLEMENTATIONS
def test_output_types(compute: Compute) -> None:
    table = compute(events(), ITEMS, USERS, spec(
        user("a", "count"), user("b", "count_distinct", input="event_type"), user("c", "sum", input="quantity"),
        user("d", "last", input="price"), user("e", "days_since_last")), C)["user"]
    assert table.schema.types == [pa.string(), pa.int64(), pa.int64(), pa.float64(), pa.float64(), pa.float64()]


@IMPLEMENTATIONS
def test_no_events_gives_empty_keyed_tables_and_one_global_row(compute: Compute) -> None:
    tables = compute(events([ROWS[6], ROWS[7]]), ITEMS, USERS, spec(
        user("n", "count", "7d"), {"name": "g", "operation": "sum", "input": "price", "window": "7d"}), C)
    assert tables["user"].num_rows == 0
    assert tables["user"].schema.types == [pa.string(), pa.int64()]
    assert tables["global"].to_pylist() == [{"g": 0.0}]


def test_fold_ignores_arrival_order_and_events_after_the_cutoff() -> None:
    features = spec(user("n", "count", "7d"), user("last", "last", input="price"),
                    {"name": "uc", "keys": ["user_id", "item.category"], "operation": "max", "input": "revenue",
                     "window": "30d"})
    base = feature_fold.fold(events(), ITEMS, USERS, features, C)
    later = [(f"z{i}", "u1", "i1", "purchase", C + i * US, 1e6, 1) for i in range(3)]
    shuffled = events(list(reversed(ROWS)) + later)
    assert feature_fold.fold(shuffled, ITEMS, USERS, features, C) == base
    # i9's add_to_cart (40 days old) is outside the 30-day table: no ("u1", "") row
    assert by_key(base["user_category"], "uc") == {("u1", "home"): 20.0, ("u1", "shoes"): 29.97, ("u2", "home"): 5.0}
