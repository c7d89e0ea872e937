"""plan_shards, record and record_error on a MemoryStorage: the documents they write, through their models."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from testbed.adapters.storage import MemoryStorage
from testbed.core import gates
from testbed.manifest import parse_manifest
from testbed.pipeline.context import RunContext
from testbed.pipeline.plan import read_shard, run_plan
from testbed.pipeline.record import record_error, run_record
from testbed.record import io
from testbed.record.gates import ParityFailureGates
from testbed.record.run import ErrorRecord, RunRecord
from testbed.record.scores import ShardResult
from tests.steps.conftest import load_fixture_run
from tests.unit import report_run

MODELS = {role: {"uri": f"s3://models/{role}.txt", "sha256": "a" * 64, "bytes": 10, "features": 3}
          for role in ("control", "candidate")}
VALIDATION = {"manifest_digest": "d" * 64, "lake_fingerprint": "f" * 64, "code_version": "test",
              "models": MODELS, "elapsed_s": 1.5, "bytes_scanned": 0}
STEPS: dict[str, Any] = {"slice": {"elapsed_s": 2.0, "bytes_scanned": 0}, "score": {"shards": 2}}
SHARD_SECONDS = (1.0, 0.5)  # the scoring shards' own seconds, in their result documents


def test_plan_writes_one_shard_object_per_users_per_shard(memory: MemoryStorage, ctx: RunContext) -> None:
    io.write(memory, ctx.layout.slice_stats, report_run.stats_model())  # 400 users
    data = report_run.manifest_data()
    data["evaluation"] = {**data.get("evaluation", {}), "users_per_shard": 150}
    result = run_plan(ctx, parse_manifest(data))
    assert result == {"bucket": "art", "prefix": f"scratch/{ctx.run_id}/shards/", "shards": 3}
    plans = list(memory.list_keys(ctx.layout.shard_plans + "/"))
    assert [p.rsplit("/", 1)[1] for p in plans] == ["shard-00000.json", "shard-00001.json", "shard-00002.json"]
    assert json.loads(memory.read_bytes(plans[2])) == {"count": 3, "index": 2}
    assert read_shard(ctx, f"scratch/{ctx.run_id}/shards/shard-00001.json") == (1, 3)
    assert read_shard(ctx, None) == (0, 1)


def _ready_for_record(memory: MemoryStorage, ctx: RunContext, tmp_path: Path) -> None:
    load_fixture_run(memory, ctx, tmp_path)
    for index, seconds in enumerate(SHARD_SECONDS):
        io.write(memory, ctx.layout.shard_result(index), ShardResult(
            shard=index, users=200, candidate_rows=2000, predict_seconds={"control": 0.1, "candidate": 0.1},
            seconds=seconds))
    io.write(memory, ctx.layout.replay, report_run.replay_model())
    io.write(memory, ctx.layout.stream_stats, report_run.stream_model())


def test_record_writes_run_json_once(memory: MemoryStorage, ctx: RunContext, tmp_path: Path) -> None:
    _ready_for_record(memory, ctx, tmp_path)
    manifest = parse_manifest(report_run.manifest_data())
    assert run_record(ctx, manifest, VALIDATION, STEPS) == {"decision": "FAIL", "existing": False}
    record = io.read(memory, ctx.layout.record)
    assert isinstance(record, RunRecord)
    assert record.reasons == report_run.gates_model().reasons
    assert record.step_seconds["score"] == 1.5 and record.step_seconds["validate"] == 1.5
    assert record.step_seconds["replay"] == report_run.replay_model().seconds
    assert record.slice.users == 400 and record.models["control"].sha256 == "a" * 64
    assert {"run.json", "report.md", "report.html", "gates.json", "metrics.json"} <= set(record.artifacts)
    assert record.report.written and record.report.files == ["report.html", "report.md"]
    first = memory.read_bytes(ctx.layout.record.uri)
    assert run_record(ctx, manifest, VALIDATION, STEPS) == {"decision": "FAIL", "existing": True}
    assert memory.read_bytes(ctx.layout.record.uri) == first  # a final decision is never replaced


def test_record_error_keeps_every_error_and_never_replaces_a_decision(memory: MemoryStorage, ctx: RunContext,
                                                                      tmp_path: Path) -> None:
    cause = json.dumps({"errorMessage": "scoring broke\nTraceback ..."})
    assert record_error(ctx, "score", "StepError", cause) == {"decision": "ERROR", "existing": False}
    record = io.read(memory, ctx.layout.record)
    assert isinstance(record, ErrorRecord)
    assert record.reasons == ["score: StepError: scoring broke"] and record.failed_step == "score"
    assert len(list(memory.list_keys(ctx.layout.errors + "/"))) == 1
    io.write(memory, ctx.layout.record, report_run.record_model("PASS", []))
    assert record_error(ctx, "teardown", "StepError", "late") == {"decision": "PASS", "existing": True}
    assert io.read(memory, ctx.layout.record).decision == "PASS"
    assert len(list(memory.list_keys(ctx.layout.errors + "/"))) >= 1


def test_a_parity_failure_leaves_its_gate_row(memory: MemoryStorage, ctx: RunContext) -> None:
    parity = report_run.parity_model().model_copy(update={"mismatches": 4})
    io.write(memory, ctx.layout.parity, parity)
    record_error(ctx, "features", "ParityError", "feature parity failed")
    written = io.read(memory, ctx.layout.gates)
    assert isinstance(written, ParityFailureGates)
    assert [(g.name, g.outcome, g.observed) for g in written.gates] == [("feature-parity", "fail", 4.0)]
    assert written.reasons == ["features: ParityError: feature parity failed"]


def test_a_writer_cannot_add_a_key_the_model_does_not_declare(memory: MemoryStorage, ctx: RunContext,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    io.write(memory, ctx.layout.parity, report_run.parity_model())
    original = gates.GateResult.as_dict
    monkeypatch.setattr(gates.GateResult, "as_dict", lambda self: {**original(self), "surprise": 1})
    with pytest.raises(ValidationError, match="surprise"):
        record_error(ctx, "features", "ParityError", "feature parity failed")
    assert not memory.exists(ctx.layout.gates.uri)
