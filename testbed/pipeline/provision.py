"""Step 2: create the run's Kinesis stream and DynamoDB state table, named after the run id."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from testbed.adapters import run_resources
from testbed.manifest import Manifest
from testbed.pipeline import claim
from testbed.pipeline.context import RunContext
from testbed.record.steps import ProvisionResult

RESERVE_S = 10.0  # leave this much of the invocation to report a slow AWS as a retryable error


def run_provision(ctx: RunContext, manifest: Manifest, remaining_s: Callable[[], float]) -> dict[str, Any]:
    """Replaces a stale stream or table only while this execution holds the run's claim (testbed.pipeline.claim):
    they are then a retry's or an ended execution's, never a live one's."""
    claim.require(ctx)
    name, clients = ctx.resource_name, ctx.invocation.clients
    table = run_resources.create_table(clients.client("dynamodb"), name, max(5.0, remaining_s() - RESERVE_S))
    stream = run_resources.create_stream(clients.client("kinesis"), name, manifest.replay,
                                         max(5.0, remaining_s() - RESERVE_S))
    return ProvisionResult.model_validate({**stream, **table, "replaced_stale": stream["replaced_stale"]
                                           or table["replaced_stale"]}).model_dump(mode="json")
