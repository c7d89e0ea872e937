"""Follow a Step Functions execution of the testbed workflow: bounded polling, step progress, typed failure.
The calls take the boto3 Step Functions client."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from testbed import steps
from testbed.errors import ERRORS_BY_NAME, InputError, RunFailedError, RunInProgressError, StepError

Progress = Callable[[str, int, int, dict[str, Any] | None], None]
DEADLINE_SECONDS = 3600
HISTORY_COST_FACTOR = 4.0  # progress polling spends at most about a fifth of the time fetching the history


def _step_of(event: dict[str, Any]) -> tuple[str, str] | None:
    """(step, 'entered'|'exited') for the history events that mark a tracked step."""
    kind = event["type"]
    details = event.get("stateEnteredEventDetails") or event.get("stateExitedEventDetails")
    if not details or kind not in ("TaskStateEntered", "TaskStateExited", "MapStateEntered", "MapStateExited"):
        return None
    step = steps.by_state(details["name"].removesuffix("AfterError"))  # TeardownAfterError is teardown too
    if step is None or step.name not in steps.TRACKED:
        return None
    return step.name, "entered" if kind.endswith("Entered") else "exited"


def history(sfn: Any, execution_arn: str) -> list[dict[str, Any]]:
    pages = sfn.get_paginator("get_execution_history").paginate(
        executionArn=execution_arn, PaginationConfig={"PageSize": 1000})
    return [event for page in pages for event in page["events"]]


def follow(sfn: Any, execution_arn: str, progress: Progress, *, poll_s: float = 2.0, max_poll_s: float = 10.0,
           deadline_s: float = DEADLINE_SECONDS, stop_at_deadline: bool = True) -> dict[str, Any]:
    """Poll an execution to its end (bounded), reporting each tracked step as it starts and finishes."""
    seen, started, next_history = 0, time.monotonic(), 0.0
    events: list[dict[str, Any]] = []
    entered: dict[str, Any] = {}  # step -> when its state was first entered
    while True:
        described = sfn.describe_execution(executionArn=execution_arn)
        finished = described["status"] != "RUNNING"
        if finished or time.monotonic() >= next_history:
            fetched = time.monotonic()
            events = history(sfn, execution_arn)
            # The whole history comes back each time (moto serialises it slowly, holding the GIL the execution's
            # own thread needs): wait HISTORY_COST_FACTOR times its cost before fetching it again.
            next_history = time.monotonic() + HISTORY_COST_FACTOR * (time.monotonic() - fetched)
        for event in events[seen:]:
            marked = _step_of(event)
            if marked:
                step, phase = marked
                index = steps.TRACKED.index(step) + 1
                result = None
                if phase == "entered":
                    entered.setdefault(step, event["timestamp"])
                else:
                    output = json.loads(event["stateExitedEventDetails"].get("output") or "{}")
                    result = _step_result(output, step)
                    if not result and isinstance(output.get("error"), dict):  # caught: the step failed
                        result = {"failed": output["error"].get("Error", "Error")}
                    elif "elapsed_s" not in result and step in entered:  # the scoring Map: no handler timed it
                        result["elapsed_s"] = round((event["timestamp"] - entered[step]).total_seconds(), 3)
                progress(step, index, len(steps.TRACKED), result)
        seen = len(events)
        if finished:
            return {**described, "history": events}
        if time.monotonic() - started > deadline_s:
            if stop_at_deadline:
                sfn.stop_execution(executionArn=execution_arn, error="Timeout", cause="deadline passed")
            raise StepError(f"execution {execution_arn} did not finish within {deadline_s:.0f}s"
                            + (" and was stopped" if stop_at_deadline else "; it is still running"))
        time.sleep(poll_s)
        poll_s = min(max_poll_s, poll_s * 1.5)  # back off on long runs


def _step_result(output: dict[str, Any], step: str) -> dict[str, Any]:
    value = output.get("run") if step == "validate" else (output.get("steps") or {}).get(step)
    return dict(value) if isinstance(value, dict) else {}


def raise_for_failure(error: str, cause: str) -> None:
    """Turn a failed execution into the typed error the CLI maps to an exit code."""
    try:
        message = json.loads(cause).get("errorMessage", cause)
    except (json.JSONDecodeError, AttributeError):
        message = cause
    message = (message or error).strip().splitlines()[0] if (message or error).strip() else error
    known = ERRORS_BY_NAME.get(error, StepError)
    if issubclass(known, InputError):
        raise InputError(message)
    if issubclass(known, RunInProgressError):  # nothing was recorded: not a failed run
        raise RunInProgressError(message)
    raise RunFailedError(f"{error}: {message}")


def run_id_from_history(history: list[dict[str, Any]]) -> str | None:
    for event in history:
        details = event.get("stateExitedEventDetails")
        if details and details.get("name") == "Validate":
            run_id = (json.loads(details.get("output") or "{}").get("run") or {}).get("run_id")
            return str(run_id) if run_id else None
    return None
