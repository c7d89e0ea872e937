"""Merge scored shards and compute metrics per model and stratum."""

from typing import Any

from testbed.invocation import Invocation
from testbed.observability import step_handler
from testbed.pipeline.context import RunContext
from testbed.pipeline.evaluate import run_evaluate


@step_handler("evaluate")
def lambda_handler(event: dict[str, Any], invocation: Invocation) -> dict[str, Any]:
    ctx = RunContext.from_event(event, invocation)
    return run_evaluate(ctx, ctx.manifest())
