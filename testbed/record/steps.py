"""The payloads the state machine passes between steps (testbed.workflow): the `run` object validate returns
(state path `$.run`), and each step's result (`$.steps.<step>`). Every handler's result also carries
`elapsed_s`, added by testbed.observability.step_handler.
"""

from __future__ import annotations

from testbed.record.base import Decision, Document, FinalDecision, absent, omitted_when_empty
from testbed.record.run import ModelProvenance


class StepResult(Document):
    elapsed_s: float | None = absent()  # the handler's wall time


class ValidatedRun(StepResult):
    """What validate returns: the run every later step receives as `run`. `run_uri` only with an artifacts
    root (`testbed validate` has none); `existing_decision` set when a final record already exists;
    `execution` the ARN of the workflow execution that holds the run's claim (none outside a workflow);
    `warnings` what validation tolerated (a model trained over the run's label window)."""

    run_id: str
    lake: str
    manifest_digest: str
    lake_fingerprint: str
    code_version: str
    models: dict[str, ModelProvenance]
    existing_decision: FinalDecision | None
    bytes_scanned: int
    run_uri: str | None = absent()
    execution: str | None = absent()
    warnings: list[str] = omitted_when_empty()  # what the gate step copies into gates.json's warnings
    # what this lake cannot measure for this manifest, one line each (testbed.pipeline.validate_lake_capabilities)
    limitations: list[str] = omitted_when_empty()


class ProvisionResult(StepResult):
    stream: str
    mode: str
    shards: list[str]
    table: str
    replaced_stale: bool


class SliceResult(StepResult):
    users: int
    events: int
    content_sha256: str
    bytes_scanned: int


class ReplayResult(StepResult):
    done: bool
    published: int
    records: int
    put_calls: int
    retried_entries: int


class ConsumeResult(StepResult):
    """`shards_done` and `shards` are absent when a repeated call finds the fold already done."""

    done: bool
    records_read: int
    duplicates: int
    shards_done: int | None = absent()
    shards: int | None = absent()


class FeaturesResult(StepResult):
    feature_rows: int  # over every feature table
    tables: dict[str, int]  # feature table (one per key set) -> rows
    parity_mismatches: int


class PlanResult(StepResult):
    bucket: str
    prefix: str  # the key prefix of the shard objects the scoring Map lists
    shards: int


class ScoreResult(StepResult):
    """What one scoring shard returns: a key and counts. Its numbers are in its result document (`result`,
    testbed.record.scores.ShardResult); the workflow keeps none of this in its state."""

    shard: int
    result: str  # the URI of scores/shard-NNNNN.result.json
    users: int
    candidate_rows: int


class ScoreMapResult(StepResult):
    """What the scoring Map leaves at `$.steps.score`: how many shards it ran, whatever their number."""

    shards: int


class EvaluateResult(StepResult):
    users_evaluated: int
    rankings_rows: int
    labels_rows: int


class GateStepResult(StepResult):
    decision: FinalDecision
    reasons: list[str]
    gates: dict[str, int]  # outcome -> gate rows


class RecordResult(StepResult):
    """record and record_error: the decision on record, and whether it was already there."""

    decision: Decision
    existing: bool


class TeardownResult(StepResult):
    deleted_objects: int
    stream_deleted: bool
    table_deleted: bool
    sampled_table_deleted: bool = False  # the slice's Glue table (Athena only), left when the slice step died


class DriftResult(StepResult):
    drifted_features: int
    top_feature: str | None  # the most drifted feature; None without features
    baseline: str  # "population" or "reference"


class WhatIfResult(StepResult):
    scenarios: int
    more_graceful: str | None  # None: the models are within the tie margin


class WhatIfSkipped(StepResult):
    """What the what-if step returns for a manifest without a whatif block, or with a rankings file for a model
    (and it writes no whatif.json)."""

    scenarios: int
    skipped: str
