"""Step 10: delete the run's ephemeral resources, after success and after any failure.

The run's Kinesis stream and DynamoDB state table (named after the run id, so teardown finds them even when
provision never reported back), the scratch prefix (Athena output, shard plans, stream chunks) and, on Athena,
the Glue table of the slice's materialised sampling (the slice step drops it itself unless it died). On a
versioned, Object-Locked bucket a delete leaves a delete marker; lifecycle rules remove the old versions once
their retention has passed.
"""

from __future__ import annotations

from typing import Any

from testbed.adapters import run_resources
from testbed.adapters.athena_engine import drop_table
from testbed.core.slice_sql import sampled_table
from testbed.pipeline import claim
from testbed.pipeline.context import RunContext
from testbed.record.steps import TeardownResult


def run_teardown(ctx: RunContext) -> dict[str, Any]:
    """Deletes nothing when another execution holds the run's claim: those resources are that execution's."""
    if not claim.holds(ctx):
        return TeardownResult(deleted_objects=0, stream_deleted=False, table_deleted=False).model_dump(mode="json")
    name, clients, settings = ctx.resource_name, ctx.invocation.clients, ctx.invocation.settings
    sampled = settings.engine == "athena" and drop_table(clients.client("glue"), str(settings.glue_database),
                                                         sampled_table(ctx.run_id))
    keys = list(ctx.storage.list_keys(ctx.layout.scratch() + "/"))
    ctx.storage.delete(keys)
    return TeardownResult(deleted_objects=len(keys),
                          stream_deleted=run_resources.delete_stream(clients.client("kinesis"), name),
                          table_deleted=run_resources.delete_table(clients.client("dynamodb"), name),
                          sampled_table_deleted=sampled).model_dump(mode="json")
