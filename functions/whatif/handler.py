"""Score the manifest's catalogue what-ifs with both models; returns at once when it asks for none."""

from typing import Any

from testbed.invocation import Invocation
from testbed.observability import step_handler
from testbed.pipeline.context import RunContext
from testbed.pipeline.whatif import run_whatif


@step_handler("whatif")
def lambda_handler(event: dict[str, Any], invocation: Invocation) -> dict[str, Any]:
    ctx = RunContext.from_event(event, invocation)
    return run_whatif(ctx, ctx.manifest())
