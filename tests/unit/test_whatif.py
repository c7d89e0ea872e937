"""Catalogue what-ifs: perturbations, exposure, the graceful-degradation verdict, and the manifest blocks."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from testbed.core import feature_sql, model_inputs, whatif
from testbed.core.feature_matrix import MatrixInputs
from testbed.core.ranking_data import SOURCE_STRIDE
from testbed.core.ranking_session import RankingSession
from testbed.core.retail_default import retail_default
from testbed.errors import ManifestError
from testbed.manifest import parse_manifest
from tests.conftest import BASE_MANIFEST

CATALOGUE = pa.table({
    "item_id": ["a1", "a2", "a3", "b1"],
    "category": ["apparel", "apparel", "apparel", "books"],
    "price": [10.0, 20.0, 30.0, 7.5],
    "brand": ["x", "y", "z", "w"],
})


def manifest(**changes: Any) -> dict[str, Any]:
    data = copy.deepcopy(BASE_MANIFEST)
    data["models"] = {r: {"uri": f"/m/{r}.txt", "sha256": "0" * 64} for r in ("control", "candidate")}
    data.update(changes)
    return data


def test_cold_start_items_draw_category_and_price_from_the_catalogue() -> None:
    out = whatif.cold_start_items(CATALOGUE, 200, np.random.default_rng(4))
    assert out.num_rows == 204 and out.column_names == CATALOGUE.column_names
    new = out.slice(4).to_pylist()
    assert [r["item_id"] for r in new[:2]] == ["whatif-cold-00001", "whatif-cold-00002"]
    assert all(r["brand"] is None for r in new)
    apparel = [r for r in new if r["category"] == "apparel"]
    books = [r for r in new if r["category"] == "books"]
    assert {r["price"] for r in apparel} <= {10.0, 20.0, 30.0} and {r["price"] for r in books} == {7.5}
    assert 0.6 < len(apparel) / 200 < 0.9  # categories in proportion to their items (3 of 4)
    again = whatif.cold_start_items(CATALOGUE, 200, np.random.default_rng(4))
    assert again.equals(out)


def test_shift_prices_touches_one_category() -> None:
    out = whatif.shift_prices(CATALOGUE, "apparel", 0.2)
    assert out.column("price").to_pylist() == [12.0, 24.0, 36.0, 7.5]
    assert whatif.shift_prices(CATALOGUE, "books", -0.5).column("price").to_pylist() == [10.0, 20.0, 30.0, 3.75]
    with pytest.raises(ValueError, match="no item in category"):
        whatif.shift_prices(CATALOGUE, "garden", 0.1)


def test_cold_candidates_join_each_users_top_categories() -> None:
    cutoff = datetime(2026, 10, 1, tzinfo=UTC)
    history = [("u1", "a1"), ("u1", "a2"), ("u1", "b1"), ("u2", "b1")]  # u1: apparel twice, books once
    events = pa.table({
        "event_id": [f"e{i}" for i in range(len(history))], "user_id": [u for u, _ in history],
        "item_id": [i for _, i in history], "event_type": ["view"] * len(history),
        "event_time": pa.array([cutoff - timedelta(days=1)] * len(history), pa.timestamp("us", tz="UTC")),
        "price": pa.array([None] * len(history), pa.float64()), "quantity": pa.array([None] * len(history), pa.int32()),
    })
    users = pa.table({"user_id": ["u1", "u2"]})
    spec = retail_default([7])
    tables = feature_sql.batch_tables(events, CATALOGUE, users, spec, cutoff)
    inputs = model_inputs.FeatureInputs(spec, MatrixInputs(CATALOGUE, users, tables, {}, cutoff))
    with RankingSession(events, CATALOGUE) as session:
        session.prepare(cutoff, [7])
        session.candidates(users, 1)
        before, _ = model_inputs.for_candidates(session, inputs, ["candidate_source"])
        items = whatif.cold_start_items(CATALOGUE, 6, np.random.default_rng(1))
        session.use_items(items)
        cold = items.slice(4).to_pylist()
        added = whatif.add_cold_candidates(session, [r["item_id"] for r in cold])
        keys, values = model_inputs.for_candidates(session, inputs.with_items(items), ["candidate_source"])
        sources = values[:, 0]
    rows = [(u, i, s) for u, i, s in zip(keys.column("user_id").to_pylist(), keys.column("item_id").to_pylist(),
                                         sources, strict=True) if i.startswith(whatif.COLD_PREFIX)]
    expected_u2 = sorted(r["item_id"] for r in cold if r["category"] == "books")
    assert added == len(cold) + len(expected_u2)  # u1 shops both categories, u2 only books
    assert keys.num_rows == before.num_rows + added
    assert [i for u, i, _ in rows if u == "u2"] == expected_u2
    assert len(rows) == added and all(s == whatif.COLD_PRIORITY // SOURCE_STRIDE == 1 for _, _, s in rows)


def test_exposure_share_counts_top_k_slots() -> None:
    rankings = pa.table({"user_id": ["u1"] * 3 + ["u2"] * 3, "model": ["control"] * 3 + ["candidate"] * 3,
                         "rank": [1, 2, 3, 1, 2, 3], "item_id": ["n1", "a", "b", "n1", "n2", "c"]})
    assert whatif.exposure_share(rankings, 2, {"n1", "n2"}) == {"candidate": 1.0, "control": 0.5}
    assert whatif.exposure_share(rankings, 3, set()) == {"candidate": 0.0, "control": 0.0}


def test_deltas_and_the_graceful_verdict() -> None:
    assert whatif.deltas({"ndcg@10": 0.25, "users": 10, "x": float("nan")},
                         {"ndcg@10": 0.3, "users": 9, "x": 1.0}) == {"ndcg@10": pytest.approx(-0.05)}
    winner, means = whatif.more_graceful({"control": [-0.10, -0.02], "candidate": [-0.01, 0.0]})
    assert winner == "candidate" and means == {"control": pytest.approx(-0.06), "candidate": pytest.approx(-0.005)}
    assert whatif.more_graceful({"control": [-0.0101], "candidate": [-0.0100]})[0] is None  # within 0.1 pp
    assert whatif.more_graceful({"control": [], "candidate": [-0.2]})[0] is None


def test_manifest_blocks_default_and_validate() -> None:
    parsed = parse_manifest(manifest())
    assert parsed.whatif is None and parsed.drift.baseline is None and parsed.drift.psi == 0.2
    ok = parse_manifest(manifest(whatif={"scenarios": [
        {"name": "cold", "kind": "cold_start_items", "items": 20},
        {"name": "dearer-books", "kind": "price_shift", "category": "books", "fraction": 0.2}]},
        drift={"baseline": "s3://b/runs/x-0123456789ab", "features": {"u_revenue_30d": {"psi_threshold": 0.1}}}))
    assert ok.whatif is not None and [s.kind for s in ok.whatif.scenarios] == ["cold_start_items", "price_shift"]
    assert ok.drift.features["u_revenue_30d"].psi_threshold == 0.1


@pytest.mark.parametrize(("changes", "message"), [
    ({"whatif": {"scenarios": [{"name": "c", "kind": "cold_start_items"}]}}, r"whatif\.scenarios\.0: .*takes items"),
    ({"whatif": {"scenarios": [{"name": "p", "kind": "price_shift", "category": "x"}]}}, r"price_shift takes"),
    ({"whatif": {"scenarios": []}}, r"whatif\.scenarios: "),
    ({"whatif": {"scenarios": [{"name": "a", "kind": "cold_start_items", "items": 1}] * 2}}, "unique"),
    ({"drift": {"psi": 0}}, r"drift\.psi: "),
    ({"drift": {"baselne": "x"}}, r"drift\.baselne: unknown key"),
])
def test_manifest_blocks_reject_bad_input_naming_the_field(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ManifestError, match=message):
        parse_manifest(manifest(**changes))
