"""The attribution documents (testbed.core.attribution defines every number): each scoring shard's sums,
attribution/shard-NNNNN.json, and the run's attribution.json that the evaluate step merges from them."""

from __future__ import annotations

from typing import Literal

from testbed.record.base import Document


class ShardAttribution(Document):
    """One shard's TreeSHAP sums over its sampled users; lists align with `features`."""

    features: list[str]
    users: int
    candidate_rows: int
    attributed_rows: int
    difference_users: int
    difference_rows: int
    abs_sum: dict[str, list[float]]  # role -> sum of |contribution| per feature
    reliance_sum: dict[str, list[float]]  # role -> sum of |standardised, user-centred contribution|
    difference_sum: list[float]  # sum of |candidate's minus control's standardised contribution|
    additivity_error: float


class FeatureImportance(Document):
    feature: str
    mean_abs: float  # mean |contribution| over the attributed rows, in the model's raw-score units
    share: float  # of the model's sum over features, a fraction


class FeatureDifference(Document):
    feature: str
    mean_abs_delta: float  # mean |candidate's minus control's standardised contribution| over the top-K rows
    share: float  # of the sum over features, a fraction
    control_reliance: float  # mean |control's standardised contribution| over the same rows
    candidate_reliance: float
    direction: Literal["candidate", "control", "equal"]  # the model that relies more on the feature


class AttributionDocument(Document):
    """Which features drive each model's scores, and which explain the difference between their rankings of
    the same items (definitions: testbed.core.attribution)."""

    method: str
    seed: int  # of the user sample, derived from the run's sampling seed
    users_requested: int  # the manifest's evaluation.attribution_users
    users: int  # sampled
    candidate_rows: int  # the sampled users' candidates
    attributed_rows: int  # their rows in either model's top K: TreeSHAP ran on these
    difference_users: int  # sampled users whose scores are finite and not all tied under both models
    difference_rows: int  # their attributed rows
    k: int
    additivity_error: float  # largest |contributions + bias - score| over the sampled rows
    models: dict[str, list[FeatureImportance]]  # role -> features, largest first
    difference: list[FeatureDifference]  # largest first
