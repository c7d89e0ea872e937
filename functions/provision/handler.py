"""Create the run's Kinesis stream and DynamoDB state table."""

from typing import Any

from testbed.invocation import Invocation
from testbed.observability import step_handler
from testbed.pipeline.context import RunContext
from testbed.pipeline.provision import run_provision


@step_handler("provision")
def lambda_handler(event: dict[str, Any], invocation: Invocation) -> dict[str, Any]:
    ctx = RunContext.from_event(event, invocation)
    return run_provision(ctx, ctx.manifest(), invocation.remaining_s)
