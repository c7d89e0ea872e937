"""drift.json from real slices of generated lakes: the price-shift acceptance, no false alarms, the Athena path.

The runs here are built step by step (slice, then batch features with the core code) rather than through the
whole workflow, so each takes about a second.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from testbed.adapters.athena_engine import AthenaEngine
from testbed.adapters.duckdb_engine import DuckDBEngine
from testbed.adapters.embedded_aws import embedded_aws
from testbed.adapters.storage import UriStorage
from testbed.core import feature_sql
from testbed.core.drift import EVENT_FIELDS
from testbed.core.generate import generate_lake
from testbed.core.slice_sql import CATALOGUE_SQL, plain_statements, population_events_sql, population_extract
from testbed.errors import ManifestError
from testbed.invocation import Invocation
from testbed.manifest import Manifest, parse_manifest
from testbed.pipeline import drift, feature_sets, slice_data
from testbed.pipeline.context import RunContext
from testbed.pipeline.slice import run_slice
from tests.conftest import BASE_MANIFEST, SMALL_LAKE

SHIFT = ("electronics", 0.2, dt.date(2026, 9, 20))
PRICE_DERIVED = {"price", "price_index", "revenue"}


def manifest_data(**changes: Any) -> dict[str, Any]:
    data = copy.deepcopy(BASE_MANIFEST)
    data["models"] = {r: {"uri": f"/unused/{r}.txt", "sha256": "0" * 64} for r in ("control", "candidate")}
    data.update(copy.deepcopy(changes))
    return data


def prepare_run(run_uri: str, lake: Path | str, data: dict[str, Any]) -> tuple[RunContext, Manifest]:
    """A run directory holding what evaluate reads: manifest.json, the slice and the batch feature tables."""
    manifest = parse_manifest(data)
    ctx = RunContext(run_id=run_uri.rstrip("/").rsplit("/", 1)[1], run_uri=run_uri, lake=str(lake),
                     invocation=Invocation.outside_lambda())
    ctx.storage.write_json(ctx.layout.manifest.uri, manifest.model_dump(mode="json"))
    run_slice(ctx, manifest)
    events, items, users = (slice_data.read(ctx, name) for name in ("events", "items", "users"))
    tables = feature_sql.batch_tables(events, items, users, feature_sets.run_set(ctx.storage, manifest),
                                      manifest.time.cutoff)
    for group, table in tables.items():
        ctx.storage.write_parquet(ctx.layout.batch_features(group), table.combine_chunks())
    return ctx, manifest


@pytest.fixture(scope="module")
def shifted_lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("shifted-lake")
    generate_lake(root, dataclasses.replace(SMALL_LAKE, price_shift=SHIFT))
    return root


def is_price_derived(feature: str) -> bool:
    return feature in PRICE_DERIVED or "_revenue_" in feature


def test_a_price_shift_puts_price_features_on_top(small_lake: Path, shifted_lake: Path, tmp_path: Path) -> None:
    reference, _ = prepare_run(str(tmp_path / "runs" / "reference-000000000001"), small_lake, manifest_data())
    ctx, manifest = prepare_run(str(tmp_path / "runs" / "shifted-000000000002"), shifted_lake,
                                manifest_data(drift={"baseline": reference.run_uri}))
    summary = drift.run_drift(ctx, manifest)
    document = json.loads((Path(ctx.run_uri) / "drift.json").read_text())
    assert summary == {"drifted_features": document["drifted"], "top_feature": "price_index",
                       "baseline": "reference_run"}
    assert document["baseline"] == {"kind": "reference_run", "source": reference.run_uri,
                                    "rows": document["baseline"]["rows"], "tables": document["baseline"]["tables"]}
    top = document["features"][0]
    assert top["feature"] == "price_index" and top["table"] == "event" and top["rank"] == 1
    assert is_price_derived(top["feature"]) and top["psi_warning"]
    others = [f for f in document["features"] if not is_price_derived(f["feature"]) and f["psi"] is not None]
    assert top["psi"] > 5 * max(f["psi"] for f in others)
    assert not any(f["drifted"] for f in others)  # only prices moved
    # the shifted category is named, with a drifted price index, and the shift date is recovered
    assert top["categories"][0]["category"] == "electronics" and top["categories"][0]["drifted"]
    assert document["top_categories"][0]["category"] == "electronics"
    assert "price_index" in document["top_categories"][0]["features"]
    assert document["daily"]["price_index"]["retrain_after"] == SHIFT[2].isoformat()
    before = [p for d, p in zip(document["daily"]["price_index"]["dates"], document["daily"]["price_index"]["psi"],
                                strict=True) if d < SHIFT[2].isoformat() and p is not None]
    assert before and max(before) < document["daily"]["price_index"]["threshold"]


@pytest.mark.parametrize("sampling", [
    {"strategy": "uniform", "rate": 0.5, "seed": 3},
    {"strategy": "stratified", "rate": 0.3, "seed": 3, "strata": ["loyalty_tier"]},
    {"strategy": "revenue_weighted", "rate": 0.3, "seed": 3},
], ids=lambda s: s["strategy"])
def test_an_unshifted_lake_flags_nothing_against_its_population(small_lake: Path, tmp_path: Path,
                                                                sampling: dict[str, Any]) -> None:
    ctx, manifest = prepare_run(str(tmp_path / "runs" / "plain-000000000003"), small_lake,
                                manifest_data(sampling=sampling))
    drift.run_drift(ctx, manifest)
    document = json.loads((Path(ctx.run_uri) / "drift.json").read_text())
    stats = json.loads((Path(ctx.run_uri) / "slice" / "stats.json").read_text())
    assert document["baseline"]["kind"] == "population"
    assert document["baseline"]["rows"] == stats["eligible_users"]
    assert document["drifted"] == 0, [f["feature"] for f in document["features"] if f["drifted"]]
    assert not any(g["drifted"] for f in document["features"] for g in f["strata"] + f.get("categories", []))
    assert {f["table"] for f in document["features"]} == {"user", "user_category", "user_item", "event"}
    assert {s["table"] for s in document["skipped"]} == {"item", "global"}  # not per user: scale with the sample
    assert [f["rank"] for f in document["features"]] == list(range(1, len(document["features"]) + 1))
    if sampling["strategy"] == "stratified":
        assert {s["stratum"] for s in document["top_strata"]} >= {"loyalty_tier=none", "loyalty_tier=bronze"}
        assert all(s["vs"] == "stratum" for f in document["features"] for s in f["strata"])
    assert all(v["retrain_after"] is None for v in document["daily"].values())


def test_a_reference_without_features_is_a_manifest_error(small_lake: Path, tmp_path: Path) -> None:
    ctx, manifest = prepare_run(str(tmp_path / "runs" / "x-000000000004"), small_lake,
                                manifest_data(drift={"baseline": str(tmp_path / "runs" / "missing")}))
    tables = r"\{global,item,user,user_category,user_item\}"
    with pytest.raises(ManifestError, match=rf"drift\.baseline: .* is not a run with features "
                                            rf"\(none of features/batch_{tables}\.parquet\)"):
        drift.run_drift(ctx, manifest)


def test_the_population_goes_through_the_engine_with_the_slice_sql(small_lake: Path, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Athena path: the slice's users and events statements at rate 1, the catalogue and the population extract,
    as UNLOADs under the run's scratch prefix.

    moto's Athena runs no SQL, so DuckDB computes the answers and they are placed where each UNLOAD writes.
    """
    local, manifest = prepare_run(str(tmp_path / "runs" / "local-000000000005"), small_lake, manifest_data())
    spec = feature_sets.run_set(local.storage, manifest)
    expected = drift.population_side(local, manifest, spec)
    population = manifest.model_copy(update={"sampling": manifest.sampling.model_copy(
        update={"strategy": "uniform", "rate": 1.0, "seed": manifest.sampling.seed + 1})})
    extract = population_extract(manifest, spec)
    plain, params = plain_statements(population, extract)
    duck = DuckDBEngine(str(small_lake))
    answers = [duck.query(plain[name], params) for name in ("users", "events")]
    answers += [duck.query(CATALOGUE_SQL), duck.query(population_events_sql(population, extract))]
    duck.close()
    with embedded_aws() as aws:
        aws.client("s3").create_bucket(Bucket="art")
        aws.client("athena").create_work_group(Name="wg", Configuration={})
        run_uri = "s3://art/runs/cloud-000000000006"
        s3 = UriStorage(aws.client("s3"))
        s3.write_bytes(run_uri + "/slice/stats.json", (Path(local.run_uri) / "slice" / "stats.json").read_bytes())
        ctx = RunContext(run_id="cloud-000000000006", run_uri=run_uri, lake="s3://lake",
                         invocation=Invocation.outside_lambda())
        tokens = iter(f"q{i}" for i in range(4))

        def athena(invocation: Invocation, lake: str, dates: Any, scratch: str | None = None) -> AthenaEngine:
            assert scratch == "s3://art/scratch/cloud-000000000006/drift"
            return AthenaEngine(aws.client("athena"), aws.client("glue"), "wg", "lakedb", scratch,
                                storage=invocation.storage, remaining_s=invocation.remaining_s,
                                token=lambda: next(tokens), poll_s=0.01)

        for i, table in enumerate(answers):
            s3.write_parquet(f"s3://art/scratch/cloud-000000000006/drift/unload/q{i}/part-0.parquet", table)
        monkeypatch.setattr(drift, "make_engine", athena)
        side = drift.population_side(ctx, manifest, spec)
        ids = aws.client("athena").list_query_executions()["QueryExecutionIds"]
        sent = [aws.client("athena").get_query_execution(QueryExecutionId=i)["QueryExecution"] for i in ids]
    statements = sorted(s["Query"] for s in sent if s["Query"].startswith("UNLOAD (WITH segment_users AS"))
    extract = [s["Query"] for s in sent if s["Query"].startswith('UNLOAD (SELECT e."item_id"')]
    catalogue = [s["Query"] for s in sent if s["Query"].startswith(f"UNLOAD ({CATALOGUE_SQL})")]
    assert len(statements) == 2 and len(extract) == 1 and len(catalogue) == 1 and len(sent) == 4
    assert all("CAST(1.0 AS DOUBLE) AS _tb_inclusion_probability" in s for s in statements)
    assert all(f"'{manifest.sampling.seed + 1}:'" in s for s in statements)
    assert all(s["WorkGroup"] == "wg" and s["QueryExecutionContext"]["Database"] == "lakedb" for s in sent)
    assert set(side.features) == set(spec.groups())
    for group, table in expected.features.items():
        assert side.features[group].equals(table), group
    assert side.users.equals(expected.users)


def test_reweighted_user_rows_carry_the_inclusion_probability(small_lake: Path, tmp_path: Path) -> None:
    ctx, manifest = prepare_run(str(tmp_path / "runs" / "w-000000000007"), small_lake,
                                manifest_data(sampling={"strategy": "revenue_weighted", "rate": 0.3, "seed": 3}))
    side = drift.slice_side(ctx, manifest, feature_sets.run_set(ctx.storage, manifest))
    users = ctx.storage.read_parquet(ctx.uri("slice", "users.parquet"))
    expected = [1.0 / p for p in users.column("inclusion_probability").to_pylist()]
    assert side.users.column("weight").to_pylist() == pytest.approx(expected)
    assert side.users.column("user_id").to_pylist() == users.column("user_id").to_pylist()
    assert pa.types.is_string(side.users.schema.field("stratum").type)


def test_a_reference_whose_slice_expired_still_compares_its_feature_tables(small_lake: Path, tmp_path: Path) -> None:
    reference, _ = prepare_run(str(tmp_path / "runs" / "old-000000000008"), small_lake, manifest_data())
    recorded = json.loads((Path(reference.run_uri) / "manifest.json").read_text())
    recorded["added_by_a_later_version"] = True  # the reference's manifest is read leniently
    (Path(reference.run_uri) / "manifest.json").write_text(json.dumps(recorded))
    for name in ("events", "items"):
        (Path(reference.run_uri) / "slice" / f"{name}.parquet").unlink()  # bulky data expired
    ctx, manifest = prepare_run(str(tmp_path / "runs" / "new-000000000009"), small_lake,
                                manifest_data(drift={"baseline": reference.run_uri}))
    drift.run_drift(ctx, manifest)
    document = json.loads((Path(ctx.run_uri) / "drift.json").read_text())
    assert {f["table"] for f in document["features"]} == {"global", "item", "user", "user_category", "user_item"}
    assert {s["feature"] for s in document["skipped"]} == set(EVENT_FIELDS)
    assert document["daily"] == {} and document["drifted"] == 0
    per_key = [f for f in document["features"] if f["table"] != "global"]
    assert per_key and all(f["statistic"] == 0.0 and f["psi"] == 0.0 for f in per_key)  # the same slice
    assert all(f["statistic"] is None and not f["drifted"] for f in document["features"] if f["table"] == "global")
    assert document["top_strata"] == []  # unstratified: no per-stratum repeat of the whole comparison
