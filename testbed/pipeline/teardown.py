"""Step 10: delete the run's ephemeral resources, after success and after any failure.

Today that is the scratch prefix (Athena query output, shard plans). On a versioned, Object-Locked bucket
a delete leaves a delete marker; lifecycle rules remove the old versions once their retention has passed.
"""

from __future__ import annotations

from typing import Any

from testbed.adapters import storage
from testbed.pipeline.context import RunContext


def run_teardown(ctx: RunContext) -> dict[str, Any]:
    keys = list(storage.list_keys(ctx.scratch() + "/"))
    storage.delete(keys)
    return {"deleted_objects": len(keys)}
