"""The built-in feature names over the retail-like feature set, batch SQL and stream fold alike: hand-computed
values, window edges, and point-in-time correctness."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest

from testbed.core import feature_fold, feature_sql
from testbed.core.feature_spec import FeatureSet
from tests.unit.feature_sets import retail_like_spec

CUTOFF = datetime(2026, 10, 1, tzinfo=UTC)
SPEC = retail_like_spec()
Implementation = Callable[[pa.Table, pa.Table, pa.Table, FeatureSet, datetime], dict[str, pa.Table]]
Compute = Callable[[pa.Table], dict[str, pa.Table]]  # events → feature tables


def _events(rows: list[tuple[str, str, str, datetime, float | None, int | None]]) -> pa.Table:
    return pa.table({
        "event_id": [f"e{i}" for i in range(len(rows))],
        "user_id": [r[0] for r in rows], "item_id": [r[1] for r in rows], "event_type": [r[2] for r in rows],
        "event_time": pa.array([r[3] for r in rows], pa.timestamp("us", tz="UTC")),
        "price": pa.array([r[4] for r in rows], pa.float64()), "quantity": pa.array([r[5] for r in rows], pa.int32()),
    })


ITEMS = pa.table({"item_id": ["i1", "i2"], "category": ["shoes", "home"], "price": [10.0, 20.0]})
USERS = pa.table({"user_id": ["u1", "u2", "u3"]})


@pytest.fixture(params=[feature_sql.batch_tables, feature_fold.fold], ids=["batch", "stream"])
def compute(request: pytest.FixtureRequest) -> Compute:
    implementation: Implementation = request.param
    return lambda events: implementation(events, ITEMS, USERS, SPEC, CUTOFF)


def _row(table: pa.Table, **keys: str) -> dict[str, object]:
    for row in table.to_pylist():
        if all(row[k] == v for k, v in keys.items()):
            return row
    raise KeyError(keys)


BASE_ROWS = [
    ("u1", "i1", "view", CUTOFF - timedelta(days=1), 10.0, 1),
    ("u1", "i1", "purchase", CUTOFF - timedelta(days=2), 9.99, 3),  # 29.97 → 2997 cents
    ("u1", "i2", "view", CUTOFF - timedelta(days=7), 20.0, 1),  # exactly at the 7-day edge: inside
    ("u1", "i2", "purchase", CUTOFF - timedelta(days=7, microseconds=1), 20.0, None),  # just outside 7d
    ("u1", "i2", "add_to_cart", CUTOFF - timedelta(days=40), 20.0, 1),
    ("u2", "i1", "view", CUTOFF - timedelta(days=100), 10.0, 1),  # outside every window
]


def test_hand_computed_user_features(compute: Compute) -> None:
    u1 = _row(compute(_events(BASE_ROWS))["user"], user_id="u1")
    assert (u1["u_views_7d"], u1["u_purchases_7d"], u1["u_revenue_7d"]) == (2, 1, 29.97)
    assert (u1["u_purchases_30d"], u1["u_revenue_30d"]) == (2, 49.97)  # quantity NULL counts as 1
    assert (u1["u_carts_30d"], u1["u_carts_90d"]) == (0, 1)
    assert u1["u_days_since_last_event"] == pytest.approx(1.0)
    assert u1["u_days_since_last_purchase"] == pytest.approx(2.0)


def test_item_and_user_category_features(compute: Compute) -> None:
    tables = compute(_events(BASE_ROWS))
    i2 = _row(tables["item"], item_id="i2")
    assert (i2["i_views_7d"], i2["i_purchases_30d"], i2["i_carts_90d"]) == (1, 1, 1)
    home = _row(tables["user_category"], user_id="u1", category="home")
    assert (home["uc_views_7d"], home["uc_revenue_30d"]) == (1, 20.0)
    assert home["uc_days_since_last_event"] == pytest.approx(7.0)


def test_events_outside_the_longest_window_are_ignored(compute: Compute) -> None:
    tables = compute(_events(BASE_ROWS))
    assert "u2" not in tables["user"].column("user_id").to_pylist()


def test_no_event_at_or_after_the_cutoff_changes_any_feature(compute: Compute) -> None:
    before = compute(_events(BASE_ROWS))
    future = [
        ("u1", "i1", "purchase", CUTOFF, 999.0, 50),  # exactly at the cutoff
        ("u1", "i2", "view", CUTOFF + timedelta(microseconds=1), 1.0, 1),
        ("u3", "i1", "purchase", CUTOFF + timedelta(days=3), 5.0, 1),  # a user seen only after the cutoff
        ("u2", "i2", "add_to_cart", CUTOFF + timedelta(days=30), 5.0, 1),
    ]
    after = compute(_events(BASE_ROWS + future))
    for entity in before:
        assert after[entity].equals(before[entity]), entity


def test_feature_columns_match_the_tables(compute: Compute) -> None:
    tables = compute(_events(BASE_ROWS))
    for entity, table in tables.items():
        keys = SPEC.table_keys()[entity]
        assert table.column_names == [*keys, *(a.name for a in SPEC.groups()[entity])]
