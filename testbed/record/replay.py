"""replay.json: what the replay step published to the run's stream (testbed.pipeline.replay)."""

from __future__ import annotations

from testbed.record.base import Document


class ReplayShard(Document):
    shard_id: str
    first_sequence: str | None
    last_sequence: str | None
    records: int


class ReplayDocument(Document):
    stream: str
    stream_mode: str
    records: int
    published: int
    put_calls: int
    retried_entries: int
    errors: dict[str, int]  # PutRecords error code -> entries
    shards: list[ReplayShard]
    invocations: int
    seconds: float
    speedup: float | None
    events_per_s: float | None
