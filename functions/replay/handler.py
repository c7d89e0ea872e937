"""Publish the slice to the run's stream; returns done=false when the time limit cut it short."""

from typing import Any

from testbed.invocation import Invocation
from testbed.observability import step_handler
from testbed.pipeline.context import RunContext
from testbed.pipeline.replay import run_replay


@step_handler("replay")
def lambda_handler(event: dict[str, Any], invocation: Invocation) -> dict[str, Any]:
    ctx = RunContext.from_event(event, invocation)
    return run_replay(ctx, ctx.manifest(), invocation.remaining_s)
