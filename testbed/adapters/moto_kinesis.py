"""Make moto's embedded Kinesis linear in stream length, for local runs only (FIELD-NOTES: it is quadratic).

Every call still goes through boto3, botocore's request validation and moto's request parsing, shard routing,
size limits and sequence numbers; only three hot spots change:
- `Shard.get_max_sequence_number` / `get_min_sequence_number` copied every key of the shard for each record;
  they now read the first or last key of the ordered dict.
- `Shard.get_records` scanned the shard from its first record on every call; sequence numbers in moto are
  consecutive integers per shard, so it now jumps to the first record after the iterator (falling back to the
  original scan if a shard's keys are ever not consecutive).
- The PutRecords and GetRecords responses went through moto's generic shape serializer (about 70% of a call);
  they are now written as the same JSON wire document directly: base64 `Data`, string `SequenceNumber`,
  epoch-seconds `ApproximateArrivalTimestamp`, exactly what botocore parses from AWS.
- Each record's arrival time went through moto's `utcnow` and `unix_time`, which import `datetime.UTC` and rebuild
  the epoch on every call (about a fifth of a replay's CPU); the same two values now come from a module-level
  UTC and epoch.
- The stream holds every record until teardown, so its size is the local run's largest single allocation at scale
  (828 bytes per record of a 211-byte payload with moto's own `Record`). A slotted record keeps the payload as
  bytes instead of its base64 text, the arrival time as one float (the datetime is derived when asked for) and the
  partition key interned (a user's key repeats over their events). Every attribute reads as moto's does.
"""

from __future__ import annotations

import base64
import json
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

_installed = False


def _max_sequence(self: Any) -> int:
    return next(reversed(self.records)) if self.records else 0


def _min_sequence(self: Any) -> int:
    return next(iter(self.records)) if self.records else 0


def _fast_get_records(original: Any) -> Any:
    def get_records(self: Any, last_sequence_id: str, limit: int | None) -> tuple[list[Any], int, int]:
        if not self.records:
            return [], int(last_sequence_id), 0
        first, last = next(iter(self.records)), next(reversed(self.records))
        if last - first + 1 != len(self.records):
            return original(self, last_sequence_id, limit)
        start = max(int(last_sequence_id) + 1, first)
        stop = last if limit is None else min(last, start + int(limit) - 1)
        records = [self.records[number] for number in range(start, stop + 1)]
        if not records:
            return [], int(last_sequence_id), 0
        behind_ms = int((self.records[last].created_at - records[-1].created_at) * 1000)
        return records, records[-1].sequence_number, behind_ms

    return get_records


_EPOCH = datetime(1970, 1, 1)  # noqa: DTZ001 - moto's record times are naive UTC


def _utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _unix_time(dt: datetime | None = None) -> float:
    delta = (dt or _utcnow()) - _EPOCH
    return (delta.days * 86400) + (delta.seconds + (delta.microseconds / 1e6))


class CompactRecord:
    """moto's kinesis `Record` in about half the memory: the same constructor and attributes."""

    __slots__ = ("_payload", "created_at", "explicit_hash_key", "partition_key", "sequence_number")

    def __init__(self, partition_key: str, data: str, sequence_number: int, explicit_hash_key: str):
        self.partition_key = sys.intern(partition_key)
        self._payload = base64.b64decode(data)
        self.sequence_number = sequence_number
        self.explicit_hash_key = explicit_hash_key
        self.created_at = _unix_time()

    @property
    def data(self) -> str:
        """The payload as base64 text, as moto's record holds it (botocore sends canonical base64)."""
        return base64.b64encode(self._payload).decode("ascii")

    @property
    def created_at_datetime(self) -> datetime:
        return _EPOCH + timedelta(seconds=self.created_at)

    def to_json(self) -> dict[str, Any]:
        return {"Data": self._payload, "PartitionKey": self.partition_key,
                "SequenceNumber": str(self.sequence_number), "ApproximateArrivalTimestamp": self.created_at_datetime}


def _put_records_response(self: Any) -> str:
    result = self.kinesis_backend.put_records(self._get_param("StreamARN"), self._get_param("StreamName"),
                                              self._get_param("Records"))
    return json.dumps(result)


def _get_records_response(self: Any) -> str:
    next_iterator, records, behind_ms = self.kinesis_backend.get_records(
        self._get_param("StreamARN"), self._get_param("ShardIterator"), self._get_param("Limit"))
    return json.dumps({
        "NextShardIterator": next_iterator, "MillisBehindLatest": behind_ms,
        "Records": [{"Data": r.data, "PartitionKey": r.partition_key, "SequenceNumber": str(r.sequence_number),
                     "ApproximateArrivalTimestamp": r.created_at} for r in records],
    })


def install() -> None:
    """Patch moto's Kinesis in this process (idempotent)."""
    global _installed  # noqa: PLW0603 - a process-wide patch is applied once
    if _installed:
        return
    from moto.kinesis import models, responses

    models.Shard.get_max_sequence_number = _max_sequence  # type: ignore[method-assign]
    models.Shard.get_min_sequence_number = _min_sequence  # type: ignore[method-assign]
    models.Shard.get_records = _fast_get_records(models.Shard.get_records)  # type: ignore[method-assign]
    models.utcnow = _utcnow  # the names Record.__init__ reads the arrival time through
    models.Record = CompactRecord  # type: ignore[misc,assignment]  # the name Shard.put_record builds records through
    models.unix_time = _unix_time
    responses.KinesisResponse.put_records = _put_records_response  # type: ignore[method-assign,assignment]
    responses.KinesisResponse.get_records = _get_records_response  # type: ignore[method-assign,assignment]
    _installed = True
