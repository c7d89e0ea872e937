"""The evaluate step's documents: metrics.json (testbed.core.metrics aggregate, testbed.core.stats
delta_summaries) and latency.json (testbed.pipeline.evaluate latency_summary)."""

from __future__ import annotations

from typing import Literal

from testbed.record.base import Document, MetricValues, absent, omitted_when_empty


class MetricDelta(Document):
    """Candidate minus control of one metric in one stratum; non-finite values are null."""

    n: int
    delta: float | None
    relative: float | None
    control: float | None
    candidate: float | None
    std_error: float | None
    p_value: float | None
    method: str
    resamples: int
    weighted: bool
    effective_n: float | None
    df: float | None
    small_sample_factor: float | None
    interval: list[float | None]
    relative_interval: list[float | None]
    t_interval: list[float | None]


class MetricsDocument(Document):
    k: int
    models: dict[str, dict[str, MetricValues]]  # model -> stratum ("all" first) -> metric -> mean (NaN: no users)
    excluded_users: dict[str, dict[str, int]]  # model -> stratum -> users not evaluated
    deltas: dict[str, dict[str, MetricDelta]]  # stratum -> metric -> delta
    interval: str  # how the intervals were computed


class ModelLatency(Document):
    requests_timed: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    users: int
    errors: int
    error_rate: float
    ms: list[float]  # wall clock per timed request
    # the same requests' scoring-thread CPU time (records from before: absent); p95 of it in cpu_p95_ms
    cpu_ms: list[float] = omitted_when_empty()
    cpu_p95_ms: float | None = absent()


TimingSource = Literal["lambda", "local"]


class LatencyDocument(Document):
    """`ms` of both models pair by index when `paired` (the same requests, timed interleaved); `measured_in`
    says whether the timings come from a deployed Lambda function (trusted for absolute ms bounds)."""

    control: ModelLatency
    candidate: ModelLatency
    paired: bool = False  # records from before interleaved timing: not paired
    measured_in: TimingSource = "local"
