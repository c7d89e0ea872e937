"""The rendered slice: sampling rates, strata, seeds, integrity and bound parameters, run in DuckDB."""

from __future__ import annotations

import copy
import math
from datetime import timedelta
from pathlib import Path
from typing import Any

import pyarrow.compute as pc
import pytest
import sqlglot

from testbed.adapters.duckdb_engine import DuckDBEngine
from testbed.core.feature_spec import FeatureSet
from testbed.core.ranking_data import POPULARITY_DAYS
from testbed.core.sampling import uniform_draw
from testbed.core.slice_sql import partition_range, plain_statements, population_extract, render, sampled_table
from testbed.core.slice_tables import touched_items
from testbed.manifest import parse_manifest

MODELS = {"control": {"uri": "c", "sha256": "0" * 64}, "candidate": {"uri": "d", "sha256": "0" * 64}}
BASE: dict[str, Any] = {
    "name": "slice-test",
    "segment": {"name": "all", "filters": []},
    "time": {"start": "2026-08-02T00:00:00Z", "cutoff": "2026-10-17T00:00:00Z", "end": "2026-10-31T00:00:00Z"},
    "sampling": {"strategy": "uniform", "rate": 0.3, "seed": 1},
    "models": MODELS,
    "gates": [{"name": "g", "kind": "latency", "bound": 10}],
}


def _manifest(**sampling: Any) -> Any:
    data = copy.deepcopy(BASE)
    data["sampling"].update(sampling)
    return data


@pytest.fixture(scope="module")
def engine(small_lake: Path) -> DuckDBEngine:
    return DuckDBEngine(str(small_lake))


def _slice(engine: DuckDBEngine, data: dict[str, Any]) -> dict[str, Any]:
    """The slice over the materialised sampling, checked against the plain statements that recompute it."""
    manifest = parse_manifest(data)
    q = render(manifest, sampled="tb_sampled_test")
    engine.materialise("tb_sampled_test", q.sampling, q.params)
    out = {name: engine.query(getattr(q, name)) for name in ("users", "events", "population", "population_events")}
    out["items"] = touched_items(engine.query(q.catalogue), out["events"].column("item_id"),
                                 out["population_events"].column("item_id"))
    plain, params = plain_statements(manifest)
    for name, table in out.items():
        if name == "population_events":
            continue
        expected, got = engine.query(plain[name], params), table
        if name == "population":  # a float SUM: its order, so its last bits, follow the plan (stats round it)
            sums = [t.column("_tb_expected_users").to_pylist() for t in (got, expected)]
            assert [v is None for v in sums[0]] == [v is None for v in sums[1]]  # None: nobody eligible
            assert [v for v in sums[0] if v is not None] == pytest.approx([v for v in sums[1] if v is not None])
            got, expected = got.drop_columns("_tb_expected_users"), expected.drop_columns("_tb_expected_users")
        assert expected.equals(got), name
    return out


def test_uniform_rate_within_three_standard_errors(engine: DuckDBEngine) -> None:
    out = _slice(engine, _manifest(rate=0.3))
    eligible = pc.sum(out["population"].column("_tb_eligible_users")).as_py()
    sampled = out["users"].num_rows
    se = math.sqrt(eligible * 0.3 * 0.7)
    assert eligible > 1000
    assert abs(sampled - 0.3 * eligible) <= 3 * se
    assert set(out["users"].column("inclusion_probability").to_pylist()) == {0.3}


def test_sample_is_the_python_draw(engine: DuckDBEngine) -> None:
    out = _slice(engine, _manifest(rate=0.3, seed=9))
    users = out["users"].column("user_id").to_pylist()
    assert all(uniform_draw(9, u) < 0.3 for u in users)


def test_changed_seed_selects_a_different_sample(engine: DuckDBEngine) -> None:
    a = set(_slice(engine, _manifest(seed=1))["users"].column("user_id").to_pylist())
    b = set(_slice(engine, _manifest(seed=2))["users"].column("user_id").to_pylist())
    again = set(_slice(engine, _manifest(seed=1))["users"].column("user_id").to_pylist())
    assert a == again
    assert a != b
    assert len(a & b) < 0.5 * len(a)  # independent 30% samples overlap by about 30%


def test_stratified_hits_every_stratum(engine: DuckDBEngine) -> None:
    out = _slice(engine, _manifest(strategy="stratified", rate=0.01, strata=["loyalty_tier"]))
    population = out["population"].to_pylist()
    sampled = out["users"].group_by("loyalty_tier").aggregate([("user_id", "count")]).to_pylist()
    counts = {row["loyalty_tier"]: row["user_id_count"] for row in sampled}
    assert {row["loyalty_tier"] for row in population} == set(counts)
    for row in population:
        expected = max(1, math.ceil(0.01 * row["_tb_eligible_users"]))
        assert counts[row["loyalty_tier"]] == expected
        assert row["_tb_sampled_users"] == expected


def test_revenue_weighted_probabilities(engine: DuckDBEngine) -> None:
    out = _slice(engine, _manifest(strategy="revenue_weighted", rate=0.3))
    probs = out["users"].column("inclusion_probability").to_numpy()
    assert probs.min() >= 0.03 - 1e-12 and probs.max() <= 1.0
    assert len(set(probs.round(6))) > 10  # proportional to revenue, not constant
    expected = pc.sum(out["population"].column("_tb_expected_users")).as_py()
    sampled = out["users"].num_rows
    assert abs(sampled - expected) <= 3 * math.sqrt(expected)


def test_head_tail_keeps_heavy_users_at_the_higher_rate(engine: DuckDBEngine) -> None:
    out = _slice(engine, _manifest(strategy="head_tail", rate=0.1, head_share=0.2, head_rate=0.9))
    probs = out["users"].column("inclusion_probability").to_pylist()
    assert set(probs) == {0.1, 0.9}
    heavy = sum(p == 0.9 for p in probs)
    eligible = pc.sum(out["population"].column("_tb_eligible_users")).as_py()
    assert abs(heavy - 0.9 * math.ceil(0.2 * eligible)) <= 3 * math.sqrt(0.2 * eligible * 0.09)


def test_min_events_per_user_is_applied_to_pre_cutoff_events(engine: DuckDBEngine) -> None:
    out = _slice(engine, _manifest(rate=1.0, min_events_per_user=20))
    events = out["events"]
    cutoff = parse_manifest(BASE).time.cutoff
    pre = events.filter(pc.less(events.column("event_time"), cutoff))
    counts = pre.group_by("user_id").aggregate([("event_id", "count")]).column("event_id_count").to_pylist()
    assert out["users"].num_rows == len(counts)
    assert min(counts) >= 20


def test_slice_keeps_all_window_events_and_touched_items(engine: DuckDBEngine) -> None:
    out = _slice(engine, _manifest(rate=0.2))
    manifest = parse_manifest(BASE)
    users = out["users"].column("user_id").to_pylist()
    engine.con.register("chosen", out["users"].select(["user_id"]))
    first, last = partition_range(manifest.time.start, manifest.time.end)
    expected = engine.con.execute(
        "SELECT COUNT(*) FROM events e JOIN chosen c USING (user_id) WHERE event_time >= ? AND event_time < ?",
        [manifest.time.start, manifest.time.end]).fetchall()[0]
    assert expected is not None and out["events"].num_rows == expected[0]
    assert set(out["events"].column("user_id").to_pylist()) <= set(users)
    touched = {*out["events"].column("item_id").to_pylist(), *out["population_events"].column("item_id").to_pylist()}
    assert set(out["items"].column("item_id").to_pylist()) == touched
    dates = {d.isoformat() for d in out["events"].column("event_date").to_pylist()}
    assert min(dates) >= first.isoformat() and max(dates) <= last.isoformat()


def test_the_population_extract_is_every_lake_users_events_before_the_cutoff(engine: DuckDBEngine) -> None:
    """Whatever the segment and the rate: the lake's events in [max(start, cutoff - the longest lake window),
    cutoff), only the columns the lake-population features read, no user_id."""
    spec = FeatureSet.model_validate({"name": "lake", "aggregations": [
        {"name": "i_revenue_60d", "keys": ["item_id"], "operation": "sum", "input": "revenue", "window": "60d"},
        {"name": "u_views_90d", "keys": ["user_id"], "operation": "count", "window": "90d"}]})
    data = copy.deepcopy(BASE)
    data["segment"]["filters"] = [{"column": "loyalty_tier", "op": "eq", "value": "gold"}]
    manifest = parse_manifest(data)
    extract = population_extract(manifest, spec)
    assert extract.start == manifest.time.cutoff - timedelta(days=60)
    assert extract.columns == ("item_id", "event_time", "event_type", "price", "quantity")
    got = engine.query(render(manifest, extract).population_events)
    expected = engine.query("SELECT item_id, event_time, event_type, price, quantity FROM events "
                            f"WHERE event_time >= TIMESTAMP '{extract.start:%Y-%m-%d %H:%M:%S}' "
                            f"AND event_time < TIMESTAMP '{manifest.time.cutoff:%Y-%m-%d %H:%M:%S}' "
                            "ORDER BY 1, 2, 3, 4, 5")
    assert got.column_names == list(extract.columns) and got.num_rows > 0
    assert got.equals(expected)
    assert population_extract(manifest).start == manifest.time.cutoff - timedelta(days=POPULARITY_DAYS)


def test_filter_values_are_bound_never_rendered() -> None:
    data = copy.deepcopy(BASE)
    evil = "x'; DROP TABLE users; --"
    data["segment"]["filters"] = [{"column": "loyalty_tier", "op": "in", "value": ["gold", evil]},
                                  {"column": "prior_orders", "op": "between", "value": [0, 3]}]
    q = render(parse_manifest(data))
    plain, params = plain_statements(parse_manifest(data))
    for sql in (q.sampling, q.users, q.events, q.population, q.catalogue, *plain.values()):
        assert evil not in sql and "gold" not in sql
        sqlglot.parse_one(sql, read="trino")  # valid Trino
    for sql in (q.users, q.events, q.population, q.catalogue):
        assert "?" not in sql  # only the sampling takes the values
    assert q.params == tuple(params) == ("gold", evil, 0, 3)


def test_the_sampled_table_is_named_from_the_run_id_only() -> None:
    name = sampled_table("x'; DROP TABLE users; --")
    assert name.startswith("tb_sampled_") and len(name) == len("tb_sampled_") + 24
    assert set(name[len("tb_sampled_"):]) <= set("0123456789abcdef")
    assert sampled_table("run-1") == sampled_table("run-1") != sampled_table("run-2")


def test_injection_value_is_just_data(engine: DuckDBEngine) -> None:
    data = copy.deepcopy(BASE)
    data["segment"]["filters"] = [{"column": "loyalty_tier", "op": "eq", "value": "x'; DROP TABLE users; --"}]
    assert _slice(engine, data)["users"].num_rows == 0
    assert engine.query("SELECT COUNT(*) AS n FROM users").column(0)[0].as_py() == 1500
