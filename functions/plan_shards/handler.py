"""Write one S3 object per scoring shard for the Distributed Map to list."""

from typing import Any

from testbed.invocation import Invocation
from testbed.observability import step_handler
from testbed.pipeline.context import RunContext
from testbed.pipeline.plan import run_plan


@step_handler("plan_shards")
def lambda_handler(event: dict[str, Any], invocation: Invocation) -> dict[str, Any]:
    ctx = RunContext.from_event(event, invocation)
    return run_plan(ctx, ctx.manifest())
