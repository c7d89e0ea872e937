"""`testbed run MANIFEST --state-machine-arn ARN [--wait]`: start the deployed workflow (CI, schedules)."""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from testbed.adapters import storage
from testbed.adapters.executions import Progress, follow, raise_for_failure
from testbed.errors import InputError
from testbed.manifest import read_manifest_file
from testbed.record.base import Decision
from testbed.record.layout import RunLayout
from testbed.record.steps import RecordResult


@dataclass
class RemoteResult:
    execution_arn: str
    status: str
    decision: Decision | None
    run_id: str | None
    record: str | None


def execution_input(manifest_path: Path, lake: str | None, artifacts: str | None) -> dict[str, Any]:
    raw = read_manifest_file(manifest_path)
    for role, model in (raw.get("models") or {}).items():
        if isinstance(model, dict) and not storage.is_s3(str(model.get("uri", ""))):
            raise InputError(f"manifest: models.{role}.uri: a deployed run needs an s3:// model URI "
                             f"(upload the model first), got {model.get('uri')}")
    document: dict[str, Any] = {"manifest": raw}
    if lake:
        document["lake"] = lake
    if artifacts:
        document["artifacts"] = artifacts
    return document


def execution_name(raw_name: Any) -> str:
    slug = re.sub(r"[^A-Za-z0-9_-]", "-", str(raw_name or "run"))[:40]
    return f"{slug}-{uuid.uuid4().hex[:16]}"


def start_run(sfn: Any, manifest_path: Path, state_machine_arn: str, *, lake: str | None = None,
              artifacts: str | None = None, wait: bool = True, progress: Progress | None = None,
              deadline_s: float = 3600, poll_s: float = 2.0) -> RemoteResult:
    """Start the workflow through `sfn` (a Step Functions client) and, with `wait`, follow it to its end."""
    document = execution_input(manifest_path, lake, artifacts)
    started = sfn.start_execution(stateMachineArn=state_machine_arn,
                                  name=execution_name(document["manifest"].get("name")), input=json.dumps(document))
    arn = started["executionArn"]
    if not wait:
        return RemoteResult(arn, "RUNNING", None, None, None)
    ended = follow(sfn, arn, progress or (lambda *_: None), poll_s=poll_s, deadline_s=deadline_s,
                   stop_at_deadline=False)
    if ended["status"] != "SUCCEEDED":
        raise_for_failure(ended.get("error") or ended["status"], ended.get("cause") or "")
    output = json.loads(ended.get("output") or "{}")
    run = output.get("run") or {}
    decision = run.get("existing_decision") or _recorded_decision(output)
    if decision is None:
        raise InputError(f"execution {arn} succeeded without a decision; is {state_machine_arn} a testbed workflow?")
    record = RunLayout.at(run["run_uri"]).record.uri if run.get("run_uri") else None
    return RemoteResult(arn, ended["status"], decision, run.get("run_id"), record)


def _recorded_decision(output: dict[str, Any]) -> Decision | None:
    """The record step's decision in the workflow's final state (`$.steps.record`), if it ran."""
    try:
        return RecordResult.model_validate(output["steps"]["record"]).decision
    except (KeyError, TypeError, ValidationError):
        return None
