"""Select, sample and mask the segment's slice."""

from typing import Any

from testbed.observability import step_handler
from testbed.pipeline.context import RunContext
from testbed.pipeline.slice import run_slice


@step_handler("slice")
def lambda_handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    ctx = RunContext.from_event(event)
    return run_slice(ctx, ctx.manifest())
