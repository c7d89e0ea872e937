"""features/parity.json (stream vs batch features, testbed.core.parity) and features/stream_stats.json
(what the consume step read and folded, testbed.pipeline.consume)."""

from __future__ import annotations

from testbed.record.base import Document, Number

FeatureValue = Number | str | None  # a feature value, or "present"/"absent" for a row missing on one side


class ParityExample(Document):
    entity: str
    key: dict[str, str | None]
    feature: str
    stream: FeatureValue
    batch: FeatureValue


class EntityParity(Document):
    rows_stream: int
    rows_batch: int
    mismatches: int


class ParityDocument(Document):
    rows_stream: int
    rows_batch: int
    mismatches: int
    float_tolerance: float
    features_mismatched: dict[str, int]
    examples: list[ParityExample]
    entities: dict[str, EntityParity]


class StreamStats(Document):
    events: int
    distinct_event_ids: int
    records_read: int
    duplicates_dropped: int
    arrived_out_of_order: int
    rows: dict[str, int]  # entity -> feature rows folded
    invocations: int
    seconds: float
    events_per_s: float | None
