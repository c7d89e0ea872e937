"""Create the run's Kinesis stream and DynamoDB state table."""

from typing import Any

from testbed.adapters.lambda_context import remaining_s
from testbed.observability import step_handler
from testbed.pipeline.context import RunContext
from testbed.pipeline.provision import run_provision


@step_handler("provision")
def lambda_handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    ctx = RunContext.from_event(event)
    return run_provision(ctx, ctx.manifest(), remaining_s)
