"""Score one shard of users with both models. Input: {run, shard_key} from the workflow's Distributed Map."""

from typing import Any

from testbed.invocation import Invocation
from testbed.observability import step_handler
from testbed.pipeline.context import RunContext
from testbed.pipeline.plan import read_shard
from testbed.pipeline.score import record_shard_failure, run_score


@step_handler("score")
def lambda_handler(event: dict[str, Any], invocation: Invocation) -> dict[str, Any]:
    ctx = RunContext.from_event(event, invocation)
    index, count = read_shard(ctx, event.get("shard_key"))
    try:
        return run_score(ctx, ctx.manifest(), index, count)
    except Exception as exc:
        record_shard_failure(ctx, index, exc)
        raise
