"""The slice's tables: stratum labels, one event_time type, touched items, masking, stratum counts; latency.json."""

from __future__ import annotations

from datetime import datetime

import pyarrow as pa
import pytest

from testbed.core.latency import latency_summary
from testbed.core.slice_tables import mask, normalise_events, stratum_labels, stratum_stats, touched_items


def test_stratum_labels_join_the_named_columns() -> None:
    users = pa.table({"tier": ["gold", None], "region": ["eu", "us"]})
    assert stratum_labels(users, []).to_pylist() == ["all", "all"]
    assert stratum_labels(users, ["tier", "region"]).to_pylist() == ["tier=gold|region=eu", "tier=null|region=us"]


def test_event_time_becomes_utc_microseconds() -> None:
    events = pa.table({"event_time": pa.array([datetime(2026, 1, 1)], pa.timestamp("ms"))})
    assert normalise_events(events).schema.field("event_time").type == pa.timestamp("us", tz="UTC")


def test_touched_items_keep_the_catalogue_order_and_match_no_null() -> None:
    catalogue = pa.table({"item_id": ["a", "b", None, "c", "d"], "price": [1.0, 2.0, 3.0, 4.0, 5.0]})
    events, extract = pa.chunked_array([["d", None, "a"], ["d"]]), pa.chunked_array([["c", "x"]])
    kept = touched_items(catalogue, events, extract)
    assert kept.column("item_id").to_pylist() == ["a", "c", "d"]  # no duplicate, no null, unknown x ignored
    assert kept.column("price").to_pylist() == [1.0, 4.0, 5.0]
    assert touched_items(catalogue, pa.chunked_array([], pa.string())).num_rows == 0


def test_mask_touches_only_the_named_columns_present() -> None:
    tables = mask({"users": pa.table({"email": ["a@x"], "user_id": ["u1"]}), "items": pa.table({"item_id": ["i"]})},
                  ["email"], b"secret-0123456789")
    assert tables["users"].column("email").to_pylist() != ["a@x"]
    assert tables["users"].column("user_id").to_pylist() == ["u1"]
    assert tables["items"].equals(pa.table({"item_id": ["i"]}))


def test_stratum_stats_count_users_events_and_the_population() -> None:
    users = pa.table({"user_id": ["u1", "u2"], "stratum": ["all", "all"]})
    events = pa.table({"event_id": ["e1", "e2", "e3"], "user_id": ["u1", "u1", "u2"]})
    population = pa.table({"_tb_eligible_users": [10], "_tb_expected_users": [2.0]})
    assert stratum_stats(users, events, population, []) == {
        "all": {"users": 2, "events": 3, "eligible_users": 10, "expected_users": 2.0}}


def test_latency_summary_merges_shards() -> None:
    shard = {"users": 2, "control": {"ms": [1.0, 3.0], "errors": 1}, "candidate": {"ms": [2.0], "errors": 0}}
    out = latency_summary([shard, shard])
    assert out["control"]["requests_timed"] == 4 and out["control"]["error_rate"] == pytest.approx(0.5)
    assert out["candidate"]["users"] == 4 and out["candidate"]["ms"] == [2.0, 2.0]
