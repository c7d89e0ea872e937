"""Plan scoring shards: one small S3 object per shard, which the workflow's Distributed Map lists."""

from __future__ import annotations

import math
from typing import Any

from testbed.adapters.storage import split_s3
from testbed.manifest import Manifest
from testbed.pipeline.context import RunContext
from testbed.record import documents, io
from testbed.record.layout import DocumentPath
from testbed.record.scores import ShardPlan
from testbed.record.steps import PlanResult


def run_plan(ctx: RunContext, manifest: Manifest) -> dict[str, Any]:
    users = io.read(ctx.storage, ctx.layout.slice_stats).users
    count = max(1, math.ceil(users / manifest.evaluation.users_per_shard))
    for index in range(count):
        io.write(ctx.storage, ctx.layout.shard_plan(index), ShardPlan(index=index, count=count))
    bucket, key = split_s3(ctx.layout.shard_plans + "/")
    return PlanResult(bucket=bucket, prefix=key, shards=count).model_dump(mode="json")


def read_shard(ctx: RunContext, shard_key: str | None) -> tuple[int, int]:
    """(index, count) of the shard object a Map item names; the whole slice when there is none."""
    if not shard_key:
        return 0, 1
    bucket, _ = split_s3(ctx.run_uri)
    shard = io.read(ctx.storage, DocumentPath(f"s3://{bucket}/{shard_key}", documents.SHARD_PLAN))
    return shard.index, shard.count
