"""Select, sample and mask the segment's slice."""

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from testbed.invocation import Invocation
from testbed.observability import emit_metric, step_handler
from testbed.pipeline.context import RunContext
from testbed.pipeline.slice import run_slice


@step_handler("slice")
def lambda_handler(event: dict[str, Any], invocation: Invocation) -> dict[str, Any]:
    ctx = RunContext.from_event(event, invocation)
    result = run_slice(ctx, ctx.manifest())
    emit_metric(invocation.settings, "SliceUsers", MetricUnit.Count, result["users"], ("step", "slice"))
    return result
