"""run.json, the run record (testbed.pipeline.record), and errors/*.json. A run that completed has a
`RunRecord`; a run that failed has an `ErrorRecord` there (and one more under errors/ per failure)."""

from __future__ import annotations

from typing import Literal

from testbed.record.base import Document, FinalDecision, absent, omitted_when_empty
from testbed.record.features import StreamStats
from testbed.record.replay import ReplayDocument


class FeatureSetProvenance(Document):
    name: str
    digest: str  # SHA-256 of the set's canonical JSON (categorical mappings included)
    uri: str | None = absent()  # absent: the testbed's own retail-default set
    sha256: str | None = absent()  # of the file's bytes


class TrainingWindowRecord(Document):
    """The events the model's training read, from its `testbed train` sidecar (testbed.core.training_window)."""

    features_from: str | None = absent()  # ISO-8601; absent in sidecars from before it was recorded
    cutoff: str
    label_end: str


class SeedVariantProvenance(Document):
    uri: str
    sha256: str
    bytes: int


class RankingsFileSummary(Document):
    """A model of kind rankings: what its file holds (testbed.core.rankings_lists checked it)."""

    rows: int
    users: int
    longest_list: int
    as_of: str | None = absent()  # ISO-8601: the date its Parquet metadata declares (as_of, created_at...)


class CandidatesTableSummary(Document):
    """A model's own candidates table (manifest models.<role>.candidates; testbed.core.candidates_table checked
    it)."""

    uri: str
    sha256: str
    rows: int
    users: int
    as_of: str | None = absent()  # ISO-8601: the date its Parquet metadata declares (as_of, created_at...)


class ModelProvenance(Document):
    uri: str
    sha256: str
    bytes: int
    features: int  # the model's feature count (0 for a rankings file)
    kind: Literal["rankings"] | None = absent()  # absent: a LightGBM model
    rankings: RankingsFileSummary | None = absent()  # only for kind rankings
    candidates: CandidatesTableSummary | None = absent()  # absent: the built-in candidate stage
    feature_names: list[str] | None = absent()  # in the model's own order (absent in records before feature sets)
    feature_set: FeatureSetProvenance | None = absent()
    training: TrainingWindowRecord | None = absent()  # absent: no sidecar recorded the window for this file
    # whether that window reads events of [time.cutoff, time.end); unknown without a recorded window
    # (absent in records from before the check)
    training_overlap: Literal["none", "overlap", "unknown"] | None = absent()
    seed_variants: list[SeedVariantProvenance] = omitted_when_empty()  # retrains with other seeds


class Seeds(Document):
    sampling: int


class SliceSummary(Document):
    users: int
    events: int
    content_sha256: str


class ParitySummary(Document):
    rows_stream: int
    rows_batch: int
    mismatches: int
    float_tolerance: float


class FeatureSummary(Document):
    parity: ParitySummary
    stream: StreamStats


class CostEstimate(Document):
    lambda_gb_seconds: float
    athena_bytes_scanned: int
    usd: float


class ReportStatus(Document):
    """Whether report.md and report.html were written; `seconds` only when rendering ran."""

    written: bool
    files: list[str]
    seconds: float | None = absent()
    errors: list[str]


class RunRecord(Document):
    run_id: str
    decision: FinalDecision
    reasons: list[str]
    warnings: list[str] = omitted_when_empty()  # gates.json's: what the decision tolerated
    created_at: str  # ISO-8601, UTC, seconds
    manifest_digest: str
    lake: str
    lake_fingerprint: str
    code_version: str
    seeds: Seeds
    models: dict[str, ModelProvenance]  # role -> model file
    slice: SliceSummary
    replay: ReplayDocument
    features: FeatureSummary
    step_seconds: dict[str, float]
    cost_estimate: CostEstimate
    artifacts: list[str]  # paths relative to the run root
    report: ReportStatus


class ErrorRecord(Document):
    run_id: str
    decision: Literal["ERROR"]
    reasons: list[str]
    failed_step: str
    error: str  # the exception's class name
    created_at: str


RunFile = RunRecord | ErrorRecord
