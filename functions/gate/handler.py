"""Apply the gates and decide."""

from typing import Any

from testbed.invocation import Invocation
from testbed.observability import record_decision, step_handler
from testbed.pipeline.context import RunContext
from testbed.pipeline.gate import run_gate


@step_handler("gate")
def lambda_handler(event: dict[str, Any], invocation: Invocation) -> dict[str, Any]:
    ctx = RunContext.from_event(event, invocation)
    result = run_gate(ctx, ctx.manifest(), event["run"].get("warnings", []))
    record_decision(invocation.settings, result["decision"])
    return result
