"""Write the immutable run record and the report."""

from typing import Any

from testbed.invocation import Invocation
from testbed.observability import step_handler
from testbed.pipeline.context import RunContext
from testbed.pipeline.record import run_record


@step_handler("record")
def lambda_handler(event: dict[str, Any], invocation: Invocation) -> dict[str, Any]:
    ctx = RunContext.from_event(event, invocation)
    return run_record(ctx, ctx.manifest(), event["run"], event.get("steps", {}))
