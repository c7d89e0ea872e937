"""Score one shard of users with both models. Input may carry {shard: {index, count}}."""

from typing import Any

from testbed.observability import step_handler
from testbed.pipeline.context import RunContext
from testbed.pipeline.score import run_score


@step_handler("score")
def lambda_handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    ctx = RunContext.from_event(event)
    shard = event.get("shard") or {"index": 0, "count": 1}
    return run_score(ctx, ctx.manifest(), int(shard["index"]), int(shard["count"]))
