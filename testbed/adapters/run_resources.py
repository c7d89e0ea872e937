"""A run's ephemeral resources: its Kinesis stream and its DynamoDB state table, both named after the run id.

Creation never reuses what a crashed attempt left behind: a stream or table that already exists under the
name is deleted and created again, so no stale record or checkpoint can leak into this run. Every wait is
bounded by a deadline (seconds from now). Each call takes the boto3 client it needs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from testbed.adapters.kinesis import shard_ids
from testbed.errors import TransientError
from testbed.manifest import Replay

POLL_SECONDS = 1.0


def _wait(check: Callable[[], bool], deadline_s: float, what: str) -> None:
    until = time.monotonic() + deadline_s
    while not check():
        if time.monotonic() > until:
            raise TransientError(f"{what} did not settle within {deadline_s:.0f} s")
        time.sleep(POLL_SECONDS)


def _absent_is_none(call: Callable[[], Any], service: Any) -> Any:
    """`call()`, or None when the resource does not exist (the run's resources may already be gone)."""
    try:
        return call()
    except service.exceptions.ResourceNotFoundException:
        return None


def _stream_status(kinesis: Any, name: str) -> str | None:
    summary = _absent_is_none(lambda: kinesis.describe_stream_summary(StreamName=name), kinesis)
    return str(summary["StreamDescriptionSummary"]["StreamStatus"]) if summary else None


def _table_status(dynamodb: Any, name: str) -> str | None:
    described = _absent_is_none(lambda: dynamodb.describe_table(TableName=name), dynamodb)
    return str(described["Table"]["TableStatus"]) if described else None


def delete_stream(kinesis: Any, name: str) -> bool:
    return _absent_is_none(lambda: kinesis.delete_stream(StreamName=name, EnforceConsumerDeletion=True),
                           kinesis) is not None


def delete_table(dynamodb: Any, name: str) -> bool:
    return _absent_is_none(lambda: dynamodb.delete_table(TableName=name), dynamodb) is not None


def create_stream(kinesis: Any, name: str, replay: Replay, deadline_s: float) -> dict[str, Any]:
    """Create the run's stream (replacing a stale one), encrypted with the AWS-managed key; wait until ACTIVE."""
    stale = _stream_status(kinesis, name) is not None
    if stale:
        delete_stream(kinesis, name)
        _wait(lambda: _stream_status(kinesis, name) is None, deadline_s, f"deleting stale stream {name}")
    if replay.stream_mode == "on_demand":
        kinesis.create_stream(StreamName=name, StreamModeDetails={"StreamMode": "ON_DEMAND"})
    else:
        kinesis.create_stream(StreamName=name, ShardCount=replay.shards,
                              StreamModeDetails={"StreamMode": "PROVISIONED"})
    _wait(lambda: _stream_status(kinesis, name) == "ACTIVE", deadline_s, f"creating stream {name}")
    kinesis.start_stream_encryption(StreamName=name, EncryptionType="KMS", KeyId="alias/aws/kinesis")
    _wait(lambda: _stream_status(kinesis, name) == "ACTIVE", deadline_s, f"encrypting stream {name}")
    return {"stream": name, "mode": replay.stream_mode, "shards": shard_ids(kinesis, name), "replaced_stale": stale}


def create_table(dynamodb: Any, name: str, deadline_s: float) -> dict[str, Any]:
    """Create the run's state table (replacing a stale one) and wait until ACTIVE."""
    stale = _table_status(dynamodb, name) is not None
    if stale:
        delete_table(dynamodb, name)
        _wait(lambda: _table_status(dynamodb, name) is None, deadline_s, f"deleting stale table {name}")
    dynamodb.create_table(
        TableName=name, BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        Tags=[{"Key": "testbed:ephemeral", "Value": "true"}])
    _wait(lambda: _table_status(dynamodb, name) == "ACTIVE", deadline_s, f"creating table {name}")
    return {"table": name, "replaced_stale": stale}
