"""The score step's files: scores/shard-NNNNN.result.json, scores/shard-NNNNN.latency.json,
scores/shard-NNNNN.error.json, and the shard plan objects under the scratch prefix that the workflow's Distributed
Map lists (testbed.pipeline.score, plan)."""

from __future__ import annotations

from testbed.record.base import Document, omitted_when_empty
from testbed.record.evaluation import TimingSource


class ModelShardLatency(Document):
    ms: list[float]  # one timed request per sampled user: wall clock
    errors: int
    cpu_ms: list[float] = omitted_when_empty()  # the same requests: the scoring thread's CPU time


class ShardLatency(Document):
    users: int
    control: ModelShardLatency  # ms pairs by index with the candidate's when `paired`
    candidate: ModelShardLatency
    paired: bool = False
    measured_in: TimingSource = "local"


class ShardResult(Document):
    """What one shard scored and what it took: kept in S3, not in the workflow's state (testbed.workflow)."""

    shard: int
    users: int
    candidate_rows: int
    predict_seconds: dict[str, float]  # model -> seconds
    attribution_users: int = 0  # users of the shard's attribution sample (attribution/shard-NNNNN.json)
    attribution_seconds: float = 0.0  # what computing and writing its sums took
    seconds: float  # the shard's scoring, from loading the models to writing this document


class ShardError(Document):
    error: str  # the exception's class name (testbed.errors.ERRORS_BY_NAME maps it back)
    message: str


class ShardPlan(Document):
    index: int
    count: int
