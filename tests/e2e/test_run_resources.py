"""Whole local runs: the run's stream and state table exist during the run and are gone after teardown, whether
the run passed, a step failed, or feature parity failed. The test lists the resources when teardown returns."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from testbed.adapters import kinesis
from testbed.adapters.embedded_aws import LambdaContext
from testbed.errors import RunFailedError
from testbed.local import run_local
from testbed.pipeline import consume
from testbed.pipeline import gate as gate_step
from testbed.pipeline import teardown as teardown_step
from testbed.pipeline.context import RunContext
from tests.run_record_check import check_run_files

LOOKS_PER_TIME_UP = 15


def _resources(ctx: RunContext) -> dict[str, list[str]]:
    clients = ctx.invocation.clients
    return {"streams": clients.client("kinesis").list_streams()["StreamNames"],
            "tables": clients.client("dynamodb").list_tables()["TableNames"]}


@pytest.fixture
def listings(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """What exists just before and just after each teardown of the run."""
    seen: list[dict[str, Any]] = []
    original = teardown_step.run_teardown

    def watched(ctx: RunContext) -> dict[str, Any]:
        before = _resources(ctx)
        result = original(ctx)
        seen.append({"name": ctx.resource_name, "before": before, "after": _resources(ctx),
                     "scratch_after": list(ctx.storage.list_keys(ctx.scratch() + "/")), "result": result})
        return result

    monkeypatch.setattr(teardown_step, "run_teardown", watched)
    return seen


def _assert_torn_down(listings: list[dict[str, Any]]) -> None:
    assert len(listings) == 1
    (seen,) = listings
    assert seen["before"] == {"streams": [seen["name"]], "tables": [seen["name"]]}
    assert seen["after"] == {"streams": [], "tables": []} and seen["scratch_after"] == []
    assert seen["result"]["stream_deleted"] and seen["result"]["table_deleted"]


# A whole run looping replay and consume (~28 CPU-s); the failed-step teardown runs stay in the default suite.
@pytest.mark.slow
def test_a_passing_run_loops_replay_and_consume_records_offsets_and_parity_then_tears_down(
        small_lake: Path, manifest_data: dict[str, Any], write_manifest: Any, tmp_path: Path,
        listings: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch) -> None:
    # every LOOKS_PER_TIME_UP-th look at the Lambda clock finds the time up: replay and consume stop, and the state
    # machine loops (a few loops prove the resume; each costs a whole invocation)
    looks = itertools.count(1)
    monkeypatch.setattr(LambdaContext, "get_remaining_time_in_millis",
                        lambda _: 0 if next(looks) % LOOKS_PER_TIME_UP == 0 else 900_000)
    monkeypatch.setattr(kinesis, "GET_LIMIT", 500)
    result = run_local(write_manifest(manifest_data), str(small_lake), tmp_path / "out")
    _assert_torn_down(listings)
    entered = [e["stateEnteredEventDetails"]["name"] for e in result.history if e["type"] == "TaskStateEntered"]
    assert entered.count("Replay") > 1 and entered.count("Consume") > 1
    record = json.loads((result.run_dir / "run.json").read_text())
    replay = record["replay"]
    assert replay["stream"] == listings[0]["name"] and replay["published"] == record["slice"]["events"]
    assert sum(s["records"] for s in replay["shards"]) == replay["published"]
    assert all(int(s["first_sequence"]) <= int(s["last_sequence"]) for s in replay["shards"])
    assert record["features"]["parity"]["mismatches"] == 0
    assert record["features"]["stream"]["distinct_event_ids"] == record["slice"]["events"]
    assert replay["invocations"] == entered.count("Replay") and replay["put_calls"] == -(-replay["published"] // 500)
    parity_gate = [g for g in json.loads((result.run_dir / "gates.json").read_text())["gates"]
                   if g["kind"] == "parity"]
    assert len(parity_gate) == 1 and parity_gate[0]["outcome"] == "pass"
    for entity in ("user", "item", "user_category"):
        stream = pq.read_table(result.run_dir / "features" / f"stream_{entity}.parquet")
        batch = pq.read_table(result.run_dir / "features" / f"batch_{entity}.parquet")
        assert stream.num_rows == batch.num_rows > 0


def test_a_failed_step_still_tears_down(small_lake: Path, manifest_data: dict[str, Any], write_manifest: Any,
                                        tmp_path: Path, listings: list[dict[str, Any]],
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_: Any, **__: Any) -> Any:
        raise RuntimeError("gate service lost")

    monkeypatch.setattr(gate_step, "run_gate", broken)
    with pytest.raises(RunFailedError):
        run_local(write_manifest(manifest_data), str(small_lake), tmp_path / "out")
    _assert_torn_down(listings)


def test_a_parity_failure_is_an_error_naming_the_feature_and_tears_down(
        small_lake: Path, manifest_data: dict[str, Any], write_manifest: Any, tmp_path: Path,
        listings: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch) -> None:
    original = consume.decode

    def one_cent_off(records: list[dict[str, Any]], shard_id: str, schema: pa.Schema) -> pa.Table:
        table = original(records, shard_id, schema)
        return table.set_column(table.schema.get_field_index("price"), "price", pc.add(table.column("price"), 0.01))

    monkeypatch.setattr(consume, "decode", one_cent_off)
    out = tmp_path / "out"
    with pytest.raises(RunFailedError, match=r"ParityError: feature parity failed: .*revenue_\d+d"):
        run_local(write_manifest(manifest_data), str(small_lake), out)
    _assert_torn_down(listings)
    (run_dir,) = (out / "runs").iterdir()
    record = json.loads((run_dir / "run.json").read_text())
    assert record["decision"] == "ERROR" and record["failed_step"] == "features"
    assert "revenue" in record["reasons"][0]
    gates = json.loads((run_dir / "gates.json").read_text())
    assert [(g["name"], g["outcome"]) for g in gates["gates"]] == [("feature-parity", "fail")]
    parity = json.loads((run_dir / "features" / "parity.json").read_text())
    assert parity["mismatches"] > 0 and 0 < len(parity["examples"]) <= 20
    assert {"run", "error", "gates", "parity"} <= check_run_files(run_dir)
