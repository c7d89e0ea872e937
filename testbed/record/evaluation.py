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


class RetrainPair(Document):
    """The SHA-256 of the control and of the candidate model file of one retrain."""

    control: str
    candidate: str


class RetrainSpread(Document):
    """One metric's delta (and relative delta) per retrain, in `retrains` order, and their spread; non-finite
    values are null, `std` is null with a single finite delta."""

    deltas: list[float | None]
    relative_deltas: list[float | None]
    min: float | None
    max: float | None
    std: float | None
    relative_min: float | None
    relative_max: float | None
    relative_std: float | None


class TrainingVariance(Document):
    """How much each gated metric's delta on all users moves between retrains of the models (their manifest
    `seed_variants`; testbed.core.training_variance defines the retrains and the spread)."""

    stratum: str  # "all"
    method: str
    retrains: list[RetrainPair]  # retrain 0 is the manifest's models
    metrics: dict[str, RetrainSpread]  # gated metric -> spread


class CohortFinding(Document):
    """One tested cohort's paired delta of the primary metric; non-finite values are null."""

    family: str  # stratum | activity | tenure | top_category
    cohort: str
    n: int
    control: float | None
    candidate: float | None
    delta: float | None
    interval: list[float | None]  # at the metrics' confidence
    interval_adjusted: list[float | None]  # what the corrected two-sided test does not reject
    p_value: float | None  # two-sided, for delta = 0
    p_adjusted: float | None  # corrected across every tested cohort (`correction`)
    exploratory: bool  # the corrected p-value is above 1 - confidence


class WorstCohorts(Document):
    """Where the candidate hurts most: the tested cohorts with the lowest paired delta of the primary metric
    (testbed.core.cohorts defines the families, the test and the correction)."""

    metric: str
    min_users: int
    tested: int
    too_small: int
    correction: str
    confidence: float
    worst: list[CohortFinding]  # lowest delta first


class ListChangeStratum(Document):
    """How much the candidate's top K differs from the control's for one stratum's users (plain user means)."""

    users: int
    mean_jaccard: float
    mean_rbo: float
    changed_slot_share: float  # mean share of a user's top-K slots whose item changed
    new_list_share: float  # users whose top K shares no item with the control's (Jaccard 0)
    jaccard_counts: list[int]  # users per Jaccard bin of `jaccard_edges`


class ListChange(Document):
    """Control vs candidate top-K lists per user (testbed.core.list_change: Jaccard, RBO_ext, changed slots)."""

    k: int
    rbo_persistence: float
    jaccard_edges: list[float]  # histogram bin edges; the last bin is closed
    strata: dict[str, ListChangeStratum]  # "all" first, then strata


class RankingsCoverage(Document):
    """A model given as a rankings file: how its lists met the slice. A slice user without a list counts as an
    empty list (a miss on every metric), never dropped."""

    slice_users: int
    covered_users: int  # slice users the file has a list for
    uncovered_users: int
    users_outside_slice: int  # users with a list who are not in the slice: ignored


class MetricsDocument(Document):
    """Every interval here (`deltas`) is over users only: it resamples which users were sampled, with the models
    held fixed. It does not cover how much the models themselves move between retrains (another LightGBM seed
    can move a delta by more than its interval); `training_variance`, present when the manifest declares seed
    variants, measures that."""

    k: int
    models: dict[str, dict[str, MetricValues]]  # model -> stratum ("all" first) -> metric -> mean (NaN: no users)
    excluded_users: dict[str, dict[str, int]]  # model -> stratum -> users not evaluated
    deltas: dict[str, dict[str, MetricDelta]]  # stratum -> metric -> delta
    interval: str  # how the intervals were computed
    training_variance: TrainingVariance | None = absent()  # absent: no seed variants declared
    cohorts: WorstCohorts | None = absent()  # absent: the primary metric has no per-user values
    list_change: ListChange | None = absent()  # absent: records from before list changes were measured
    rankings_coverage: dict[str, RankingsCoverage] | None = absent()  # role -> coverage; only for rankings files


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
