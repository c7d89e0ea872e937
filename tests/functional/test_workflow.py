"""The workflow through moto's Step Functions: retries, recorded errors, and the CI entry point's exit codes."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from testbed import remote, steps, workflow
from testbed.adapters.embedded_aws import EmbeddedAWS, embedded_aws
from testbed.cli import main
from testbed.errors import RunFailedError, TransientError
from testbed.local import run_local
from testbed.pipeline import drift as drift_step
from testbed.pipeline import evaluate as evaluate_step
from testbed.pipeline import features as features_step
from testbed.pipeline import replay as replay_step
from testbed.pipeline import teardown as teardown_step


def _run_ids(out: Path) -> list[Path]:
    return sorted((out / "runs").glob("*/run.json"))


def _definition() -> dict[str, Any]:
    return workflow.definition({step: f"arn:aws:lambda:us-east-1:1:function:{step}" for step in steps.NAMES})


def test_definition_retries_and_catches_every_task() -> None:
    asl = _definition()
    tasks = {name: s for name, s in asl["States"].items() if s["Type"] in ("Task", "Map")}
    assert set(tasks) >= {"Validate", "Slice", "Features", "PlanShards", "Score", "Gate", "Record"}
    for name, state in tasks.items():
        assert state["Catch"][0]["ErrorEquals"] == ["States.ALL"], name
        if name not in ("RecordError", "Teardown", "TeardownAfterError"):
            assert asl["States"][state["Catch"][0]["Next"]]["Next"] == "RecordError"
        retry = state.get("Retry") or state["ItemProcessor"]["States"]["ScoreShard"]["Retry"]
        assert retry[0]["BackoffRate"] >= 2 and "TransientError" in retry[0]["ErrorEquals"], name
    # a branch of the Parallel state records its own failure, naming its step, then fails; the Parallel's
    # catch tears down
    parallel = asl["States"]["EvaluateDriftWhatIf"]
    assert parallel["Catch"] == [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error",
                                  "Next": "TeardownAfterError"}]
    for branch, step in zip(parallel["Branches"], ("evaluate", "drift", "whatif"), strict=True):
        states = branch["States"]
        task = states[branch["StartAt"]]
        assert task["Resource"].endswith(f":function:{step}") and task["ResultPath"] == f"$.steps.{step}"
        assert task["Retry"][0]["BackoffRate"] >= 2 and "TransientError" in task["Retry"][0]["ErrorEquals"]
        failed = states[task["Catch"][0]["Next"]]
        assert task["Catch"][0]["ErrorEquals"] == ["States.ALL"] and failed["Result"] == step
        record = states[failed["Next"]]
        assert record["Resource"].endswith(":function:record_error")
        assert states[record["Next"]] == {"Type": "Fail", "ErrorPath": "$.error.Error", "CausePath": "$.error.Cause"}
    assert asl["States"]["Score"]["ItemReader"]["Resource"] == "arn:aws:states:::s3:listObjectsV2"
    assert asl["States"]["RunFailed"]["ErrorPath"] == "$.error.Error"
    # teardown runs on both paths, and a failing teardown still ends the execution as failed
    assert asl["States"]["Record"]["Next"] == "Teardown" and asl["States"]["Teardown"]["End"]
    assert asl["States"]["RecordError"]["Next"] == "TeardownAfterError"
    assert asl["States"]["TeardownAfterError"]["Next"] == "RunFailed"
    assert asl["States"]["Teardown"]["Catch"][0]["Next"] == "RunFailed"


def test_replay_and_consume_loop_until_done_and_spec_step_order_holds() -> None:
    asl = _definition()
    states = asl["States"]
    order: list[Any] = []
    name = "Validate"
    while name:
        state = states[name]
        if state["Type"] in ("Task", "Map"):
            order.append(name)
        if state["Type"] == "Parallel":
            order.append({b["StartAt"] for b in state["Branches"]})
        name = state.get("Next") or state.get("Default") if state["Type"] != "Choice" else (
            state["Choices"][0]["Next"] if name != "ExistingRecord?" else state["Default"])
    assert order == ["Validate", "Provision", "Slice", "Replay", "Consume", "Features", "PlanShards", "Score",
                     {"Evaluate", "Drift", "WhatIf"}, "Gate", "Record", "Teardown"]
    # the Parallel state keeps every step's result at $.steps.<step>: the earlier ones and each branch's own
    selector = states["EvaluateDriftWhatIf"]["ResultSelector"]
    assert states["EvaluateDriftWhatIf"]["ResultPath"] == "$.steps"
    assert selector["score.$"] == "$[0].steps.score" and selector["drift.$"] == "$[1].steps.drift"
    assert set(selector) == {f"{s}.$" for s in steps.NAMES if s not in ("validate", "record_error", "gate",
                                                                      "record", "teardown")}
    for step in ("Replay", "Consume"):
        name, cap = step.lower(), steps.step(step.lower()).max_rounds
        assert states[f"{step}Start"] == {"Type": "Pass", "Result": {"count": 1}, "ResultPath": f"$.rounds.{name}",
                                          "Next": step}
        loop = states[f"{step}Done?"]
        assert loop["Choices"] == [
            {"Variable": f"$.steps.{name}.done", "BooleanEquals": True,
             "Next": "ConsumeStart" if step == "Replay" else "Features"},
            {"Variable": f"$.rounds.{name}.count", "NumericGreaterThanEquals": cap, "Next": f"{step}TooManyRounds"}]
        again = states[loop["Default"]]
        assert again["Next"] == step and again["Parameters"] == {
            "count.$": f"States.MathAdd($.rounds.{name}.count, 1)"}
        too_many = states[f"{step}TooManyRounds"]
        assert too_many["Result"]["Error"] == workflow.LOOP_LIMIT_ERROR and too_many["ResultPath"] == "$.error"
        assert states[too_many["Next"]] == {"Type": "Pass", "Result": name, "ResultPath": "$.failed_step",
                                            "Next": "RecordError"}
    assert asl["TimeoutSeconds"] == workflow.RUN_TIMEOUT_SECONDS


def test_a_loop_that_never_finishes_stops_at_its_cap_and_records_error(
        small_lake: Path, manifest_data: dict[str, Any], write_manifest: Any, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    calls = {"n": 0}

    def stuck(*_: Any, **__: Any) -> dict[str, Any]:
        calls["n"] += 1
        return {"done": False, "published": 0, "records": 1}

    capped = tuple(dataclasses.replace(s, max_rounds=3) if s.name == "replay" else s for s in steps.STEPS)
    monkeypatch.setattr(steps, "STEPS", capped)
    monkeypatch.setattr(replay_step, "run_replay", stuck)
    out = tmp_path / "out"
    with pytest.raises(RunFailedError, match=workflow.LOOP_LIMIT_ERROR):
        run_local(write_manifest(manifest_data), str(small_lake), out)
    assert calls["n"] == 3
    (record_path,) = _run_ids(out)
    record = json.loads(record_path.read_text())
    assert record["decision"] == "ERROR" and record["failed_step"] == "replay"
    assert record["reasons"] == [f"replay: {workflow.LOOP_LIMIT_ERROR}: replay was called 3 times without "
                                 "finishing (its max_rounds)"]


def test_transient_error_is_retried_and_the_run_succeeds(
        small_lake: Path, manifest_data: dict[str, Any], write_manifest: Any, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    calls = {"n": 0}
    original = features_step.run_features

    def flaky(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 1:
            raise TransientError("throttled")
        return original(*args, **kwargs)

    monkeypatch.setattr(features_step, "run_features", flaky)
    seen: dict[str, Any] = {}
    result = run_local(write_manifest(manifest_data), str(small_lake), tmp_path / "out",
                       progress=lambda step, _i, _n, out: seen.update({step: out}) if out else None)
    assert calls["n"] == 2
    assert result.decision in ("PASS", "FAIL", "INCONCLUSIVE")
    retried = [e for e in result.history if e["type"] == "LambdaFunctionFailed"]
    assert len(retried) == 1
    # the Parallel state's branches report like any step, and their results stay at $.steps.<step>
    assert set(seen) == set(steps.TRACKED)  # (the branches finish in any order)
    assert seen["evaluate"]["users_evaluated"] == result.steps["evaluate"]["users_evaluated"] > 0
    assert seen["drift"]["baseline"] == result.steps["drift"]["baseline"] == "population"
    assert seen["whatif"]["skipped"] == result.steps["whatif"]["skipped"]  # the manifest has no whatif block
    assert {"evaluate", "drift", "whatif"} <= set(json.loads((result.run_dir / "run.json").read_text())["step_seconds"])


def test_failing_step_records_error_and_exits_4(
        small_lake: Path, manifest_data: dict[str, Any], write_manifest: Any, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    def broken(*_: Any, **__: Any) -> Any:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(features_step, "run_features", broken)
    out = tmp_path / "out"
    code = main(["run", str(write_manifest(manifest_data)), "--lake", str(small_lake), "--out", str(out), "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 4
    assert len(err) == 1 and "disk on fire" in err[0] and "Traceback" not in err[0]
    records = _run_ids(out)
    assert len(records) == 1
    record = json.loads(records[0].read_text())
    assert record["decision"] == "ERROR"
    assert record["failed_step"] == "features"
    assert "disk on fire" in record["reasons"][0]
    assert not (records[0].parent / "gates.json").exists()
    assert list((records[0].parent / "errors").glob("*.json"))


def test_teardown_runs_after_a_failure_and_empties_the_scratch_prefix(
        small_lake: Path, manifest_data: dict[str, Any], write_manifest: Any, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[str, Any]] = []
    remaining: list[str] = []
    original = teardown_step.run_teardown

    def broken(*_: Any, **__: Any) -> Any:
        raise RuntimeError("evaluate broke")

    def watched(ctx: Any) -> Any:
        assert list(ctx.storage.list_keys(ctx.scratch() + "/"))  # the shard plans are there before
        result = original(ctx)
        remaining.extend(ctx.storage.list_keys(ctx.scratch() + "/"))
        return result

    monkeypatch.setattr(evaluate_step, "run_evaluate", broken)
    monkeypatch.setattr(teardown_step, "run_teardown", watched)
    with pytest.raises(RunFailedError, match="evaluate broke"):
        run_local(write_manifest(manifest_data), str(small_lake), tmp_path / "out",
                  progress=lambda step, _i, _n, result: seen.append((step, result)))
    teardowns = [result for step, result in seen if step == "teardown" and result]
    assert len(teardowns) == 1  # the shard plan and the stream chunks, then the run's stream and table
    assert teardowns[0]["deleted_objects"] >= 2 and teardowns[0]["stream_deleted"] and teardowns[0]["table_deleted"]
    assert remaining == []


def test_a_failing_branch_records_its_own_step_and_tears_down(
        small_lake: Path, manifest_data: dict[str, Any], write_manifest: Any, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[str, Any]] = []

    def broken(*_: Any, **__: Any) -> Any:
        raise RuntimeError("baseline unreachable")

    monkeypatch.setattr(drift_step, "run_drift", broken)
    out = tmp_path / "out"
    with pytest.raises(RunFailedError, match="RuntimeError: baseline unreachable"):
        run_local(write_manifest(manifest_data), str(small_lake), out,
                  progress=lambda step, _i, _n, result: seen.append((step, result)))
    (record_path,) = _run_ids(out)
    record = json.loads(record_path.read_text())
    assert record["decision"] == "ERROR" and record["failed_step"] == "drift"
    assert record["reasons"] == ["drift: RuntimeError: baseline unreachable"]
    assert [json.loads(p.read_text())["failed_step"] for p in (record_path.parent / "errors").glob("*.json")] == [
        "drift"]
    assert ("drift", {"failed": "RuntimeError"}) in seen
    teardowns = [result for step, result in seen if step == "teardown" and result]
    assert len(teardowns) == 1 and teardowns[0]["stream_deleted"] and teardowns[0]["table_deleted"]
    assert not (record_path.parent / "gates.json").exists()


@pytest.fixture
def quick_follow(monkeypatch: pytest.MonkeyPatch) -> None:
    """`run --wait` polls a deployed execution every 2 s or more; the stand-in executions below end at once, so
    the follower polls them every 10 ms instead (the exit codes and output under test do not depend on it)."""
    original = remote.follow
    monkeypatch.setattr(remote, "follow", lambda *args, **kwargs: original(*args, **{**kwargs, "poll_s": 0.01}))


def _fake_machine(aws: EmbeddedAWS, final: dict[str, Any] | None, error: str | None = None) -> str:
    """A stand-in workflow whose execution ends like a real one would (output shape or failure)."""
    if error:
        states: dict[str, Any] = {"End": {"Type": "Fail", "Error": error, "Cause": json.dumps(
            {"errorMessage": "something broke", "errorType": error})}}
    else:
        states = {"End": {"Type": "Pass", "Result": final, "End": True}}
    created = aws.client("stepfunctions").create_state_machine(
        name=f"fake-{error or final['steps']['record']['decision']}",  # type: ignore[index]
        definition=json.dumps({"StartAt": "End", "States": states}), roleArn=aws.role_arn())
    return str(created["stateMachineArn"])


def _deployed_manifest(manifest_data: dict[str, Any], write_manifest: Any) -> Path:
    """A manifest a deployed run accepts: models are s3:// URIs."""
    manifest_data["models"] = {r: {"uri": f"s3://models/{r}.txt", "sha256": "0" * 64} for r in ("control", "candidate")}
    return Path(write_manifest(manifest_data))


def _output(decision: str) -> dict[str, Any]:
    return {"run": {"run_id": "x-000000000000", "run_uri": "s3://bucket/runs/x-000000000000",
                    "existing_decision": None}, "steps": {"record": {"decision": decision, "existing": False}}}


@pytest.mark.parametrize(("decision", "code"), [("PASS", 0), ("FAIL", 1), ("INCONCLUSIVE", 3)])
@pytest.mark.usefixtures("quick_follow")
def test_ci_entry_point_exit_codes(decision: str, code: int, manifest_data: dict[str, Any], write_manifest: Any,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    path = _deployed_manifest(manifest_data, write_manifest)
    with embedded_aws() as aws:
        arn = _fake_machine(aws, _output(decision))
        assert main(["run", str(path), "--state-machine-arn", arn, "--wait", "--quiet"]) == code
    out = capsys.readouterr().out.splitlines()  # the end-of-run summary (testbed/cli_output.py)
    assert out[0].split()[:2] == ["decision", decision]
    assert "record      s3://bucket/runs/x-000000000000" in out


@pytest.mark.parametrize(("error", "code"), [("RunFailedError", 4), ("ManifestError", 2), ("RuntimeError", 4)])
@pytest.mark.usefixtures("quick_follow")
def test_ci_entry_point_failed_execution(error: str, code: int, manifest_data: dict[str, Any], write_manifest: Any,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    path = _deployed_manifest(manifest_data, write_manifest)
    with embedded_aws() as aws:
        arn = _fake_machine(aws, None, error=error)
        assert main(["run", str(path), "--state-machine-arn", arn, "--wait", "--quiet"]) == code
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "something broke" in err[0]


def test_ci_entry_point_rejects_local_model_paths(manifest_data: dict[str, Any], write_manifest: Any,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    path = write_manifest(manifest_data)
    assert main(["run", str(path), "--state-machine-arn", "arn:aws:states:us-east-1:1:stateMachine:x",
                 "--wait"]) == 2
    assert "models.control.uri" in capsys.readouterr().err
