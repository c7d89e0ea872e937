"""Delete the run's ephemeral resources; runs after success and after failure (a no-op before a run id)."""

from typing import Any

from testbed.invocation import Invocation
from testbed.observability import step_handler
from testbed.pipeline.context import RunContext
from testbed.pipeline.teardown import run_teardown


@step_handler("teardown")
def lambda_handler(event: dict[str, Any], invocation: Invocation) -> dict[str, Any]:
    if not (event.get("run") or {}).get("run_uri"):
        return {"deleted_objects": 0}
    return run_teardown(RunContext.from_event(event, invocation))
