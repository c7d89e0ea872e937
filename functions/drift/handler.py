"""Compare the slice's features with their baseline (the population in the lake, or a reference run)."""

from typing import Any

from testbed.invocation import Invocation
from testbed.observability import step_handler
from testbed.pipeline.context import RunContext
from testbed.pipeline.drift import run_drift


@step_handler("drift")
def lambda_handler(event: dict[str, Any], invocation: Invocation) -> dict[str, Any]:
    ctx = RunContext.from_event(event, invocation)
    return run_drift(ctx, ctx.manifest())
