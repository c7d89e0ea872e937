"""Read the run's stream back and fold it into features; returns done=false to be called again."""

from typing import Any

from testbed.invocation import Invocation
from testbed.observability import step_handler
from testbed.pipeline.consume import run_consume
from testbed.pipeline.context import RunContext


@step_handler("consume")
def lambda_handler(event: dict[str, Any], invocation: Invocation) -> dict[str, Any]:
    ctx = RunContext.from_event(event, invocation)
    return run_consume(ctx, ctx.manifest(), invocation.remaining_s)
