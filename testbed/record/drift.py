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
    field: str  # the event field the series is computed on
    dates: list[str]
    psi: list[float | None]  # None: too few rows that day
    threshold: float
    retrain_after: str | None


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
    daily: dict[str, DailySeries]  # feature -> its event field's daily PSI
    drifted: int
    defaults: DriftDefaults
