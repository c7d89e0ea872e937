"""drift.json: feature drift of the slice against its baseline (testbed.pipeline.drift, testbed.core.drift)."""

from __future__ import annotations

from typing import Literal

from testbed.record.base import Document, absent


class Baseline(Document):
    kind: Literal["population", "reference_run"]
    source: str
    rows: int
    tables: dict[str, int]  # entity -> feature rows


class StratumVerdict(Document):
    stratum: str
    statistic: float | None
    psi: float | None
    drifted: bool
    method: str
    p_value: float | None
    vs: str  # "stratum": the baseline's same stratum; "all": the whole baseline
    rows: int


class CategoryVerdict(Document):
    category: str
    statistic: float | None
    psi: float | None
    drifted: bool
    method: str
    p_value: float | None
    vs: str
    rows: int


class SideRows(Document):
    baseline: int
    slice: int


class DriftFeature(Document):
    feature: str
    table: str  # the feature table (one per key set: user, item, user_category...) or event
    type: Literal["numeric", "categorical"]
    method: str
    statistic: float | None
    threshold: float
    p_value: float | None
    psi: float | None
    psi_threshold: float
    drifted: bool
    psi_warning: bool
    rows: SideRows
    strata: list[StratumVerdict]
    categories: list[CategoryVerdict] | None = absent()  # numeric event fields only
    definition: str | None = absent()  # a declared aggregation's definition (feature_spec.describe)
    rank: int


class SkippedFeature(Document):
    feature: str
    table: str
    reason: str


class StratumShift(Document):
    stratum: str
    drifted_features: int
    max_psi: float
    features: list[str]


class CategoryShift(Document):
    category: str
    drifted_features: int
    max_psi: float
    features: list[str]


class DailySeries(Document):
    """A size-aware series: each period's PSI against PSI's null at that period's size (testbed.core.drift)."""

    field: str  # the event field the series is computed on
    period: Literal["day", "week"]  # week when the median day is too sparse for its bins
    dates: list[str]  # the first day of each period
    rows: list[int]  # the slice's rows in the period
    effective_rows: list[int]  # the size the null is drawn at (rows over the users' design effect)
    psi: list[float | None]  # None: too few rows in the period
    bias: list[float | None]  # the null's median PSI at that size: what PSI reads when nothing moved
    period_threshold: list[float | None]  # max(the null's `null_quantile` quantile, bias + threshold)
    p_value: list[float | None]  # share of the null at or above the period's PSI
    shifted: list[bool]  # PSI at or above the period's threshold
    threshold: float  # the practical PSI threshold, applied above the bias
    null_quantile: float
    retrain_after: str | None  # first day of the latest lasting run of shifted periods


class DriftDefaults(Document):
    ks_p_value: float
    wasserstein: float
    jensen_shannon: float
    psi: float
    psi_warning: float
    small_sample_rows: int
    bins: int


class DriftDocument(Document):
    baseline: Baseline
    slice_rows: dict[str, int]
    features: list[DriftFeature]  # ranked, most shifted first
    skipped: list[SkippedFeature]
    top_strata: list[StratumShift]
    top_categories: list[CategoryShift]
    daily: dict[str, DailySeries]  # feature -> its event field's size-aware daily (or weekly) PSI
    drifted: int
    defaults: DriftDefaults
