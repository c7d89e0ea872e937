"""Read the run's stream back and fold it into features; returns done=false to be called again."""

from typing import Any

from testbed.adapters.lambda_context import remaining_s
from testbed.observability import step_handler
from testbed.pipeline.consume import run_consume
from testbed.pipeline.context import RunContext


@step_handler("consume")
def lambda_handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    ctx = RunContext.from_event(event)
    return run_consume(ctx, ctx.manifest(), remaining_s)
