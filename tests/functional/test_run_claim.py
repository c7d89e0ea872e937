"""Two executions of one manifest in the embedded AWS: the second reports the first as in progress and
provisions, deletes and writes nothing of it."""

from __future__ import annotations

import json
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from testbed.adapters.embedded_aws import embedded_aws
from testbed.adapters.executions import raise_for_failure
from testbed.errors import RunInProgressError
from testbed.local import LOCAL_BUCKET, deploy_local_workflow
from testbed.pipeline import replay as replay_step
from testbed.settings import Settings

WAIT_S = 120.0


def _wait_for_end(sfn: Any, arn: str) -> dict[str, Any]:
    until = time.monotonic() + WAIT_S
    while time.monotonic() < until:
        described = sfn.describe_execution(executionArn=arn)
        if described["status"] != "RUNNING":
            return dict(described)
        time.sleep(0.2)
    raise AssertionError(f"{arn} still running after {WAIT_S} s")


def _objects(s3: Any) -> dict[str, str]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=LOCAL_BUCKET)
    return {o["Key"]: o["ETag"] for page in pages for o in page.get("Contents", [])}


def test_a_second_execution_of_a_running_run_changes_nothing_of_it(
        small_lake: Path, manifest_data: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    entered, release = threading.Event(), threading.Event()
    original = replay_step.run_replay

    def held(*args: Any, **kwargs: Any) -> Any:  # the first execution stays in replay until released
        entered.set()
        release.wait(WAIT_S)
        return original(*args, **kwargs)

    monkeypatch.setattr(replay_step, "run_replay", held)
    settings = Settings.from_environment().model_copy(update={"local_concurrency": 2})
    with embedded_aws(settings) as aws:
        aws.client("s3").create_bucket(Bucket=LOCAL_BUCKET)
        machine = deploy_local_workflow(aws, settings)
        sfn, s3, kinesis = aws.client("stepfunctions"), aws.client("s3"), aws.client("kinesis")
        state = json.dumps({"manifest": manifest_data, "lake": str(small_lake), "artifacts": f"s3://{LOCAL_BUCKET}"})
        first = sfn.start_execution(stateMachineArn=machine, name=f"first-{uuid.uuid4().hex}", input=state)
        assert entered.wait(WAIT_S)
        (claim_key,) = [k for k in _objects(s3) if k.endswith("/claim.json")]
        run_id = claim_key.split("/")[1]
        assert json.loads(s3.get_object(Bucket=LOCAL_BUCKET, Key=claim_key)["Body"].read())["execution"] == \
            first["executionArn"]
        streams = kinesis.list_streams()["StreamNames"]
        before = _objects(s3)

        second = sfn.start_execution(stateMachineArn=machine, name=f"second-{uuid.uuid4().hex}", input=state)
        ended = _wait_for_end(sfn, second["executionArn"])
        assert ended["status"] == "FAILED" and ended["error"] == "RunInProgressError"
        with pytest.raises(RunInProgressError, match=f"run {run_id} is already in progress") as caught:
            raise_for_failure(ended["error"], ended["cause"])
        assert first["executionArn"] in str(caught.value) and caught.value.exit_code == 4
        assert _objects(s3) == before  # no record, no error file, no manifest rewritten, no scratch deleted
        assert kinesis.list_streams()["StreamNames"] == streams  # the first's stream is still there

        release.set()
        finished = _wait_for_end(sfn, first["executionArn"])
        assert finished["status"] == "SUCCEEDED"
        record = json.loads(s3.get_object(Bucket=LOCAL_BUCKET, Key=f"runs/{run_id}/run.json")["Body"].read())
        assert record["decision"] in ("PASS", "FAIL", "INCONCLUSIVE")
        assert json.loads(finished["output"])["steps"]["teardown"]["stream_deleted"]
