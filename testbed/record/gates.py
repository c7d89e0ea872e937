"""gates.json: every gate row, the sample-ratio check and the decision (testbed.pipeline.gate,
testbed.core.gates GateResult.as_dict, testbed.core.sample_ratio SampleRatio.as_dict).

A parity failure ends a run before the gate step; the record step then writes `ParityFailureGates`, whose only
row is the failed parity gate.
"""

from __future__ import annotations

from typing import Literal

from testbed.record.base import Document, FinalDecision, Outcome, omitted_when_empty

GateKind = Literal["non_inferiority", "superiority", "threshold", "latency", "latency_ratio", "error_rate", "parity",
                   "sample_ratio"]
GateRole = Literal["goal", "guardrail", "advisory"]


class GateRow(Document):
    """One gate on one stratum; non-finite numbers are null."""

    name: str
    kind: GateKind
    metric: str | None
    stratum: str
    observed: float | None
    interval: list[float | None] | None  # the interval the decision used: multiplicity-adjusted when tested
    threshold: float | None
    p_value: float | None  # unadjusted (p_adjusted: after the correction)
    outcome: Outcome
    n: int | None
    reason: str
    relative: float | None
    statistic: float | None
    p_adjusted: float | None
    p_harm: float | None
    p_harm_adjusted: float | None
    alpha: float | None
    confidence: float | None
    scale: Literal["absolute", "relative"] | None
    mde: float | None
    required_n: int | None
    method: str
    role: GateRole = "goal"  # what the outcome did to the decision; records from before roles: all goals
    # the (1 - 2 alpha) interval of the uncorrected tests (records from before: none)
    interval_unadjusted: list[float | None] | None = None
    # the correction behind p_adjusted, p_harm_adjusted and interval; None: the row was not in the family
    correction: Literal["holm", "bonferroni", "none"] | None = None
    eligible_users: int | None = None  # the stratum's users in the lake, which caps users a rerun can have


class SampleRatioStratum(Document):
    observed: int
    expected: float
    eligible: int | None
    contribution: float | None  # None: users where none were expected (the check fails outright)


class SampleRatioCheck(Document):
    statistic: float | None  # Pearson's chi-squared
    dof: int
    p_value: float
    alpha: float
    method: str
    observed: int
    expected: float
    outcome: Literal["pass", "fail"]
    strata: dict[str, SampleRatioStratum]


class GatesDocument(Document):
    """Each gate row's interval and p-value come from resampling users with the models held fixed: they cover
    which users were sampled, not how much the models move between retrains (metrics.json's
    `training_variance` measures that when the manifest declares seed variants)."""

    gates: list[GateRow]
    correction: Literal["holm", "bonferroni", "none"]
    power: float
    resamples: int
    bootstrap_seed: int
    sample_ratio: SampleRatioCheck | None
    decision: FinalDecision
    reasons: list[str]
    warnings: list[str] = omitted_when_empty()  # what the decision tolerated but a reader must see
    # advisory rows and inconclusive guardrails that did not pass, one line each (testbed.core.gates notes)
    non_blocking: list[str] = omitted_when_empty()


class ParityFailureGates(Document):
    gates: list[GateRow]
    decision: Literal["ERROR"]
    reasons: list[str]


GatesFile = GatesDocument | ParityFailureGates
