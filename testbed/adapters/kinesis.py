"""Kinesis calls for the replay: one PutRecords batch, and pages of one shard after a sequence number.
Each takes the boto3 Kinesis client it calls."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

GET_LIMIT = 10_000  # the GetRecords maximum
EMPTY_PAGE_PAUSE_S = 0.2  # AWS allows 5 GetRecords calls per second per shard


def put_records(kinesis: Any, stream: str, entries: list[tuple[str, bytes]]) -> list[dict[str, Any]]:
    """Send one batch of (partition key, data); the per-entry results, in order (SequenceNumber or ErrorCode)."""
    response = kinesis.put_records(
        StreamName=stream, Records=[{"PartitionKey": key, "Data": data} for key, data in entries])
    return list(response["Records"])


def shard_ids(kinesis: Any, stream: str) -> list[str]:
    pages = kinesis.get_paginator("list_shards").paginate(StreamName=stream)
    return [shard["ShardId"] for page in pages for shard in page["Shards"]]


def read_shard(kinesis: Any, stream: str, shard_id: str, *, after: str | None, until: int,
               remaining_s: Callable[[], float], reserve_s: float) -> Iterator[list[dict[str, Any]]]:
    """Pages of records after sequence `after` (from the shard's start when None) up to sequence `until`.

    Stops when the page holding `until` was returned, or when the time left falls under `reserve_s`.
    """
    start = ({"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "StartingSequenceNumber": after} if after
             else {"ShardIteratorType": "TRIM_HORIZON"})
    iterator = kinesis.get_shard_iterator(StreamName=stream, ShardId=shard_id, **start)["ShardIterator"]
    while iterator and remaining_s() > reserve_s:
        page = kinesis.get_records(ShardIterator=iterator, Limit=GET_LIMIT)
        records = page["Records"]
        if records:
            yield records
            if int(records[-1]["SequenceNumber"]) >= until:
                return
        else:
            time.sleep(EMPTY_PAGE_PAUSE_S)
        iterator = page.get("NextShardIterator")
