"""drift.json's assembly from two sides: field mapping, weights, baseline rate, skipped item table, daily series."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from testbed.core import drift_stats, feature_sql
from testbed.core.drift import EVENT_FIELDS, DriftConfig
from testbed.core.drift_report import (
    DailyConfig,
    Side,
    baseline_rate,
    column_labels,
    drift_document,
    event_field_of,
    weighted_users,
)
from testbed.core.ranking_session import RankingSession
from testbed.core.retail_default import retail_default

CUTOFF = datetime(2026, 10, 1, tzinfo=UTC)
ITEMS = pa.table({"item_id": ["i1", "i2"], "category": ["shoes", "home"], "price": [10.0, 20.0]})


def test_features_map_to_their_event_fields() -> None:
    assert event_field_of("u_revenue_30d") == "revenue" and event_field_of("uc_purchases_7d") == "event_type"
    assert event_field_of("price_index") == "price_index" and event_field_of("u_days_since_last_event") is None


def test_baseline_rate_caps_the_population() -> None:
    assert baseline_rate(500, 1000) == 1.0 and baseline_rate(4000, 1000) == 0.25


def test_users_weigh_their_inverse_inclusion_probability() -> None:
    users = weighted_users(pa.table({"user_id": ["a", "b"], "inclusion_probability": [0.5, 0.25]}), None)
    assert users.column("weight").to_pylist() == [2.0, 4.0] and users.column("stratum").null_count == 2


def side(kind: str, seed: int) -> Side:
    rng = np.random.default_rng(seed)
    n = 400
    events = pa.table({
        "event_id": [f"e{i}" for i in range(n)], "user_id": [f"u{i % 40}" for i in range(n)],
        "item_id": rng.choice(["i1", "i2"], n).tolist(), "event_type": rng.choice(["view", "purchase"], n).tolist(),
        "event_time": pa.array([CUTOFF - timedelta(hours=int(h)) for h in rng.integers(1, 24 * 60, n)],
                               pa.timestamp("us", tz="UTC")),
        "price": rng.uniform(5, 25, n), "quantity": pa.array([1] * n, pa.int32()),
    })
    users = weighted_users(pa.table({"user_id": [f"u{i}" for i in range(40)], "inclusion_probability": [1.0] * 40}),
                           None)
    with RankingSession(events, ITEMS) as session:
        rows = session.event_rows(CUTOFF - timedelta(days=60), CUTOFF, [7, 30])
    tables = feature_sql.batch_tables(events, ITEMS, users.select(["user_id"]), retail_default([7, 30]), CUTOFF)
    return Side(kind, kind, tables, users, rows)


def test_the_document_against_a_population_skips_aggregates_not_keyed_by_user() -> None:
    document = drift_document(side("population", 1), side("slice", 2), DriftConfig(), DailyConfig(2, 5, 3))
    skipped = {s["table"] for s in document["skipped"]}
    assert document["baseline"]["kind"] == "population" and skipped == {"item", "global"}
    assert {f["table"] for f in document["features"]} == {"user", "user_category", "user_item", "event"}
    assert {f["feature"] for f in document["features"] if f["table"] == "event"} == set(EVENT_FIELDS)
    assert len(document["daily"]) <= 2
    assert document["defaults"]["psi"] == pytest.approx(0.2)


@settings(max_examples=100, derandomize=True, deadline=None)
@given(st.lists(st.lists(st.one_of(st.none(), st.text(max_size=6)), max_size=8), min_size=1, max_size=3))
def test_column_labels_are_the_labels_of_each_row(chunks: list[list[str | None]]) -> None:
    """The dictionary-encoded labels equal labels_of on the rows as Python objects, nulls and chunks included."""
    column = pa.chunked_array([pa.array(chunk, pa.string()) for chunk in chunks], pa.string())
    expected = drift_stats.labels_of(np.asarray(column.to_pylist(), dtype=object))
    got = column_labels(column)
    assert got.dtype.kind == "U" and got.tolist() == expected.tolist()


def test_column_labels_of_a_date_column_read_as_iso_days() -> None:
    days = pa.chunked_array([pa.array([datetime(2026, 10, 1).date(), None, datetime(2026, 10, 2).date()])])
    assert column_labels(days).tolist() == ["2026-10-01", "<null>", "2026-10-02"]
