"""The workflow's state stays under Step Functions' 256 KiB cap whatever the number of scoring shards: the real
ASL on moto's interpreter, every step a trivial in-process Lambda, the score shard returning what the real one
returns (testbed.record.steps.ScoreResult)."""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

import pytest

from testbed import steps, workflow
from testbed.adapters import moto_item_reader
from testbed.adapters.embedded_aws import embedded_aws
from testbed.record.layout import RunLayout
from testbed.record.steps import ScoreResult

STATE_CAP = 256 * 1024  # bytes of any state's input or output
BUCKET = "testbed-scratch"
RUN_ID = "20260101t000000-0123456789abcdef"  # as long as a real run id
LAYOUT = RunLayout.of("s3://testbed-artifacts", RUN_ID)


def shard_result(index: int) -> dict[str, Any]:
    """What the score handler returns for a shard of 5,000 users (with the handler's elapsed_s)."""
    result = ScoreResult(shard=index, result=LAYOUT.shard_result(index).uri, users=5000, candidate_rows=500_000)
    return {**result.model_dump(mode="json"), "elapsed_s": 123.456}


@dataclass(frozen=True)
class Execution:
    status: str
    output: dict[str, Any]
    largest_io: int  # bytes of the largest input or output of any history event
    shards_scored: int


def _handler(step: str, shards: int, scored: list[int], lock: threading.Lock) -> Any:
    def handle(event: dict[str, Any], _context: Any) -> dict[str, Any]:
        if step == "validate":
            return {"run_id": RUN_ID, "existing_decision": None}
        if step in ("replay", "consume"):
            return {"done": True}
        if step == "plan_shards":
            return {"bucket": BUCKET, "prefix": "shards/", "shards": shards}
        if step == "score":
            index = int(event["shard_key"].rsplit("-", 1)[1].removesuffix(".json"))
            with lock:
                scored.append(index)
            return shard_result(index)
        return {"elapsed_s": 0.1}
    return handle


def run_workflow(shards: int) -> Execution:
    scored: list[int] = []
    lock = threading.Lock()
    with embedded_aws() as aws:
        s3 = aws.client("s3")
        s3.create_bucket(Bucket=BUCKET)
        for index in range(shards):
            s3.put_object(Bucket=BUCKET, Key=f"shards/shard-{index:05d}.json", Body=b"{}")
        arns = {s.name: aws.register_function(f"size-{s.name.replace('_', '-')}", _handler(s.name, shards, scored,
                                                                                            lock), {})
                for s in steps.STEPS}
        sfn = aws.client("stepfunctions")
        machine = sfn.create_state_machine(name=f"size-{uuid.uuid4().hex[:8]}", roleArn=aws.role_arn(),
                                           definition=json.dumps(workflow.definition(arns)))["stateMachineArn"]
        arn = sfn.start_execution(stateMachineArn=machine, name=f"run-{uuid.uuid4().hex}",
                                  input=json.dumps({"manifest": {}}))["executionArn"]
        deadline = time.monotonic() + 600
        while (described := sfn.describe_execution(executionArn=arn))["status"] == "RUNNING":
            assert time.monotonic() < deadline, "the execution did not finish in 10 minutes"
            time.sleep(0.2)
        pages = sfn.get_paginator("get_execution_history").paginate(executionArn=arn)
        events = [event for page in pages for event in page["events"]]
    sizes = [len(details[field].encode()) for event in events for details in event.values()
             if isinstance(details, dict) for field in ("input", "output") if isinstance(details.get(field), str)]
    return Execution(described["status"], json.loads(described.get("output") or "{}"),
                     max([*sizes, len((described.get("output") or "").encode())]), len(set(scored)))


def _collected_bytes(shards: int) -> int:
    """The state's size if the Map kept every shard's result, as it did before."""
    return len(json.dumps([shard_result(i) for i in range(shards)]).encode())


def test_the_score_map_keeps_only_its_shard_count_in_the_state() -> None:
    small, large = run_workflow(10), run_workflow(100)
    for execution, shards in ((small, 10), (large, 100)):
        assert execution.status == "SUCCEEDED" and execution.shards_scored == shards
        assert execution.output["steps"]["score"] == {"shards": shards}
    # extrapolated to 2,000 shards from the growth per shard, the largest state stays far under the cap
    per_shard = (large.largest_io - small.largest_io) / 90
    assert per_shard < 1 and large.largest_io + 1900 * per_shard < STATE_CAP / 64
    # while keeping every shard's result (the old ResultPath) would not fit
    assert _collected_bytes(2000) > STATE_CAP


@pytest.mark.slow
def test_two_thousand_shards_stay_under_the_state_cap() -> None:
    execution = run_workflow(2000)
    assert execution.status == "SUCCEEDED"
    assert execution.shards_scored == 2000  # more than one page of the ItemReader's listing
    assert execution.output["steps"]["score"] == {"shards": 2000}
    assert execution.largest_io < STATE_CAP / 64
    assert _collected_bytes(2000) > STATE_CAP


def test_the_score_map_discards_item_outputs_and_caps_concurrency_from_the_step_table() -> None:
    arns = {name: f"arn:aws:lambda:us-east-1:1:function:{name}" for name in steps.NAMES}
    score = steps.step("score")
    states = workflow.definition(arns)["States"]
    mapped = states[score.state]
    assert mapped["MaxConcurrency"] == score.max_concurrency is not None
    assert mapped["ItemProcessor"]["States"][f"{score.state}Shard"]["OutputPath"] is None  # each item: {}
    assert mapped["ResultSelector"] == {"shards.$": "States.ArrayLength($)"}
    assert mapped["ResultPath"] == "$.steps.score" and "ResultWriter" not in mapped  # moto has none
    # the Parallel state copies $.steps.<step> by name: one entry per step, never per shard
    selector = states["EvaluateDriftWhatIf"]["ResultSelector"]
    assert set(selector) == {f"{name}.$" for name in steps.NAMES[1:steps.NAMES.index("whatif") + 1]}


def test_the_item_reader_lists_every_page_of_objects(monkeypatch: pytest.MonkeyPatch) -> None:
    with embedded_aws() as aws:
        s3 = aws.client("s3")
        s3.create_bucket(Bucket=BUCKET)
        for index in range(3):
            s3.put_object(Bucket=BUCKET, Key=f"shards/shard-{index:05d}.json", Body=b"{}")
        calls: list[dict[str, Any]] = []

        class Client:
            def list_objects_v2(self, **parameters: Any) -> dict[str, Any]:
                calls.append(parameters)
                return dict(s3.list_objects_v2(**parameters))

        from moto.stepfunctions.parser.asl.component.state.exec.state_map.item_reader.eval.resource_eval_s3 import (
            ResourceEvalS3,
        )

        monkeypatch.setattr(ResourceEvalS3, "_get_s3_client", staticmethod(lambda **_: Client()))
        env = type("Env", (), {"stack": [{"Bucket": BUCKET, "Prefix": "shards/", "MaxKeys": 1}]})()
        moto_item_reader._list_every_object(env, None, None)
    assert [o["Key"] for o in env.stack[0]] == [f"shards/shard-{i:05d}.json" for i in range(3)] and len(calls) == 3
