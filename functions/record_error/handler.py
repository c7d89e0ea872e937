"""Record decision ERROR after a failed step. Input: the state plus {failed_step, error: {Error, Cause}}."""

from typing import Any

from testbed.invocation import Invocation
from testbed.observability import step_handler
from testbed.pipeline.context import RunContext
from testbed.pipeline.record import NOT_RECORDED, record_error


@step_handler("record_error")
def lambda_handler(event: dict[str, Any], invocation: Invocation) -> dict[str, Any]:
    error = event.get("error") or {}
    if not (event.get("run") or {}).get("run_uri"):
        return dict(NOT_RECORDED)  # failed before a run id existed
    ctx = RunContext.from_event(event, invocation)
    return record_error(ctx, event.get("failed_step", "unknown"), error.get("Error", "Error"), error.get("Cause", ""))
