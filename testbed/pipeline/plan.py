"""Plan scoring shards: one small S3 object per shard, which the workflow's Distributed Map lists."""

from __future__ import annotations

import math
from typing import Any

from testbed.adapters import storage
from testbed.manifest import Manifest
from testbed.pipeline.context import RunContext


def run_plan(ctx: RunContext, manifest: Manifest) -> dict[str, Any]:
    users = storage.read_json(ctx.uri("slice", "stats.json"))["users"]
    count = max(1, math.ceil(users / manifest.evaluation.users_per_shard))
    for index in range(count):
        storage.write_json(ctx.scratch("shards", f"shard-{index:05d}.json"), {"index": index, "count": count})
    bucket, key = storage.split_s3(ctx.scratch("shards") + "/")
    return {"bucket": bucket, "prefix": key, "shards": count}


def read_shard(ctx: RunContext, shard_key: str | None) -> tuple[int, int]:
    """(index, count) of the shard object a Map item names; the whole slice when there is none."""
    if not shard_key:
        return 0, 1
    bucket, _ = storage.split_s3(ctx.run_uri)
    shard = storage.read_json(f"s3://{bucket}/{shard_key}")
    return int(shard["index"]), int(shard["count"])
