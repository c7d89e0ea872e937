"""The manifest (SPEC §3): a frozen pydantic model, its JSON Schema, canonical form and digest."""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, StrictBool, ValidationError, field_validator, model_validator

from testbed.core.event_types import DEFAULT_VOCABULARY, DeclaredType, EventVocabulary
from testbed.core.event_types import NAME as EVENT_TYPE_NAME
from testbed.core.metrics import METRIC_NAMES, canonical_name, metric_named
from testbed.core.predicates import COLUMN, Filter, Strict
from testbed.core.ranking_data import GeneratorKind
from testbed.core.roles import ROLES
from testbed.errors import ManifestError, ManifestFileError
from testbed.strict_json import DocumentError, check_json_data, loads_json, loads_yaml

SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,47}$")
SHA256 = re.compile(r"^[0-9a-f]{64}$")
METRIC_AT_K = re.compile(rf"({'|'.join(METRIC_NAMES)})@([1-9][0-9]*)")  # canonical: ndcg@10, not ndcg@010
MAX_RELATIVE_MARGIN = 0.5  # non_inferiority: allowing more than half the control's value as harm needs an override


class Segment(Strict):
    name: str = Field(min_length=1, max_length=64)
    filters: list[Filter] = Field(default_factory=list)


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


class TimeWindow(Strict):
    """Features use events before `cutoff`; labels use events in [cutoff, end)."""

    start: datetime
    cutoff: datetime
    end: datetime

    @field_validator("start", "cutoff", "end")
    @classmethod
    def _to_utc(cls, value: datetime) -> datetime:
        return _utc(value)

    @model_validator(mode="after")
    def _ordered(self) -> TimeWindow:
        if not self.start < self.cutoff:
            raise ValueError("time.start must be before time.cutoff")
        if not self.cutoff < self.end:
            raise ValueError("time.cutoff must be before time.end")
        return self


class Sampling(Strict):
    strategy: Literal["uniform", "stratified", "revenue_weighted", "head_tail"] = "uniform"
    rate: float = Field(default=1.0, gt=0, le=1, description="Target share of eligible users, in (0, 1].")
    seed: int = Field(default=0, ge=0, lt=2**63)
    strata: list[Annotated[str, Field(pattern=COLUMN.pattern)]] = Field(default_factory=list)
    min_events_per_user: int = Field(default=1, ge=0, description="Pre-cutoff events a user needs to be eligible.")
    head_share: float = Field(default=0.2, gt=0, lt=1, description="head_tail: share of users counted as heavy.")
    head_rate: float | None = Field(default=None, gt=0, le=1, description="head_tail: rate for heavy users.")

    @model_validator(mode="after")
    def _strata_needed(self) -> Sampling:
        if self.strategy == "stratified" and not self.strata:
            raise ValueError("sampling.strata must name at least one column for strategy stratified")
        return self


class Features(Strict):
    windows_days: list[Annotated[int, Field(ge=1, le=365)]] = Field(default_factory=lambda: [7, 30, 90])

    @field_validator("windows_days")
    @classmethod
    def _sorted_unique(cls, value: list[int]) -> list[int]:
        if not value or len(set(value)) != len(value):
            raise ValueError("windows_days must be non-empty and unique")
        return sorted(value)


class FeatureSetRef(Strict):
    uri: str = Field(min_length=1, description="Local path or s3:// URI of a feature set file (YAML or JSON).")
    sha256: str = Field(pattern=SHA256.pattern)


class SeedVariant(Strict):
    uri: str = Field(min_length=1, description="Local path or s3:// URI of a LightGBM model file.")
    sha256: str = Field(pattern=SHA256.pattern)


class CandidatesRef(Strict):
    uri: str = Field(min_length=1, description="Local path or s3:// URI of a Parquet candidates table: user_id, "
                                               "item_id, optional retrieval_score and source.")
    sha256: str = Field(pattern=SHA256.pattern)


class CandidateGenerator(Strict):
    kind: GeneratorKind = Field(description="recent_items: the user's own pre-cutoff items, most recent first; "
                                            "category_top: best-sellers of the user's top three categories; "
                                            "global_top: best-sellers; co_occurrence: items sharing pre-cutoff "
                                            "sessions (baskets) with the user's own items, most shared first.")
    quota: int | None = Field(default=None, ge=1, le=1000, description="The generator offers its top `quota` "
                              "items per user (an item an earlier generator offered stays the earlier one's); "
                              "absent: evaluation.candidates_per_user.")


def _empty(value: list[Any]) -> bool:
    return not value


ModelKind = Literal["lightgbm", "rankings"]


class ModelRef(Strict):
    kind: ModelKind = Field(
        default="lightgbm", exclude_if=lambda value: value == "lightgbm",
        description="lightgbm: `uri` is a LightGBM text model the run scores; rankings: `uri` is a Parquet of "
                    "precomputed top-K lists (user_id, rank, item_id, optional score) used as they are: no "
                    "scoring, latency, attribution, seed variants or what-ifs for this side (README: 'Judging a "
                    "model that is not LightGBM').")
    uri: str = Field(min_length=1, description="Local path or s3:// URI of a LightGBM model file (kind "
                                               "rankings: of the rankings Parquet).")
    sha256: str = Field(pattern=SHA256.pattern)
    features: FeatureSetRef | None = Field(
        default=None, description="The model's feature set; absent: the testbed's retail-default set for "
                                  "features.windows_days (testbed/feature_sets/retail-default.yaml).")
    seed_variants: list[SeedVariant] = Field(
        default_factory=list, max_length=20, exclude_if=_empty,
        description="The same model retrained identically but for its seed (e.g. `testbed train --seed 2`), on "
                    "the same feature set: the run scores them too and reports, next to each gated metric's "
                    "sampling interval, how much the delta moves between retrains (metrics.json "
                    "training_variance).")
    candidates: CandidatesRef | None = Field(
        default=None, exclude_if=lambda value: value is None,
        description="The candidates the user's own retrieval stage produced as of time.cutoff (at most "
                    "evaluation.candidates_per_user per user): the model scores exactly these (user, item) pairs "
                    "instead of the built-in candidate stage's (README: 'A model's own candidate stage').")

    generators: list[CandidateGenerator] | None = Field(
        default=None, min_length=1, max_length=8, exclude_if=lambda value: value is None,
        description="The built-in candidate stage as a list of generators with quotas, in priority order; absent: "
                    "recent_items (half the list), category_top, global_top (README: 'Declared candidate "
                    "generators').")

    @model_validator(mode="after")
    def _one_candidate_stage(self) -> ModelRef:
        if self.generators is not None and self.candidates is not None:
            raise ValueError("generators: a model scores either its candidates table or the built-in generators; "
                             "remove one")
        kinds = [g.kind for g in self.generators or []]
        if len(set(kinds)) != len(kinds):
            raise ValueError("generators: each generator kind may appear once")
        return self

    @model_validator(mode="after")
    def _rankings_take_no_model_fields(self) -> ModelRef:
        if self.kind == "rankings":
            for name, given in (("features", self.features is not None), ("seed_variants", bool(self.seed_variants)),
                                ("candidates", self.candidates is not None),
                                ("generators", self.generators is not None)):
                if given:
                    raise ValueError(f"{name}: a rankings file (kind rankings) is not scored, so it takes no "
                                     f"{name}; remove it or give a LightGBM model")
        return self

    @model_validator(mode="after")
    def _variants_differ(self) -> ModelRef:
        seen = {self.sha256}
        for i, variant in enumerate(self.seed_variants):
            if variant.sha256 in seen:
                raise ValueError(f"seed_variants.{i}.sha256: the same file as the model or an earlier variant")
            seen.add(variant.sha256)
        return self


class Models(Strict):
    control: ModelRef
    candidate: ModelRef

    def roles_of(self, kind: ModelKind) -> list[str]:
        """The roles whose model is of `kind`, control first."""
        return [role for role in ROLES if getattr(self, role).kind == kind]


class Relevance(Strict):
    """The grades of SPEC §2's three event types: the spelling of the default vocabulary's grades."""

    view: int = Field(default=1, ge=0, le=100)
    add_to_cart: int = Field(default=2, ge=0, le=100)
    purchase: int = Field(default=3, ge=0, le=100)


class EventType(Strict):
    """One declared event type of the lake (what each flag does: testbed.core.event_types)."""

    name: str = Field(pattern=EVENT_TYPE_NAME.pattern, description="The events' event_type value.")
    relevance: int = Field(default=0, ge=0, le=100, description="Label grade of such an event in the label window "
                           "(a user-item pair takes its events' highest); 0: not a label.")
    conversion: StrictBool = Field(default=False, description="A conversion carries revenue (price x quantity; a line "
                             "with quantity <= 0 is a return: no grade, no revenue) and is what conversion@K, "
                             "aov@K and revenue@K count.")
    click: StrictBool = Field(default=False, description="What click_through@K counts.")
    exposure: StrictBool = Field(default=False, description="The item was shown (an impression, with optional position "
                           "and propensity columns): kept in the slice and replayed; neither a click nor a "
                           "conversion.")

    @model_validator(mode="after")
    def _exposure_is_not_an_action(self) -> EventType:
        for flag in ("conversion", "click"):
            if self.exposure and getattr(self, flag):
                raise ValueError(f"{flag}: an exposure (shown, not acted on) cannot also be a {flag}")
        return self


class Evaluation(Strict):
    k: int = Field(default=10, ge=1, le=100)
    candidates_per_user: int = Field(default=100, ge=1, le=1000)
    relevance: Relevance = Field(default_factory=Relevance, description="Grades of view, add_to_cart and "
                                 "purchase when event_types is not declared.")
    event_types: list[EventType] | None = Field(
        default=None, min_length=1, max_length=64, exclude_if=lambda value: value is None,
        description="The lake's event types; absent: view 1 (click), add_to_cart 2, purchase 3 (conversion) "
                    "with evaluation.relevance's grades. Events of other types are invalid input.")
    users_per_shard: int = Field(default=5000, ge=100, le=100_000,
                                 description="Users per scoring shard (one Distributed Map item each).")
    latency_sample_users: int = Field(default=200, ge=0, le=10000,
                                      description="Users scored one request at a time to measure latency.")
    attribution_users: int = Field(
        default=50, ge=0, le=10000, exclude_if=lambda value: value == 50,
        description="Users whose candidate rows get TreeSHAP feature attributions (attribution.json), a sample "
                    "seeded from sampling.seed; 0 turns attribution off. It changes no ranking or metric.")
    max_unknown_item_share: float = Field(
        default=0.01, ge=0.0, le=1.0,
        description="Largest share of slice events, or of label items, whose item is missing from items/: above it "
                    "the run is INCONCLUSIVE; a smaller non-zero share is a warning in the record and the reports.")
    cohort_min_users: int = Field(
        default=30, ge=2, le=100_000, exclude_if=lambda value: value == 30,
        description="Smallest cohort (stratum, activity decile, new or returning, top category) whose paired "
                    "delta of the primary metric is tested for metrics.json's worst cohorts.")
    training_overlap: Literal["warn", "error"] = Field(
        default="warn", exclude_if=lambda value: value == "warn",
        description="A model whose recorded training window (its `testbed train` sidecar) reads events of "
                    "[time.cutoff, time.end): warn (a warning in the record and the reports) or error (invalid "
                    "input, exit 2).")

    @model_validator(mode="after")
    def _one_vocabulary(self) -> Evaluation:
        if self.event_types is None:
            return self
        if self.relevance != Relevance():
            raise ValueError("relevance: give the grades in event_types[].relevance when event_types is declared")
        names = [t.name for t in self.event_types]
        for i, name in enumerate(names):
            if name in names[:i]:
                raise ValueError(f"event_types.{i}.name: {name!r} is declared twice")
        if not any(t.relevance > 0 for t in self.event_types):
            raise ValueError("event_types: no type has a relevance above 0, so nothing could be a label")
        return self

    def vocabulary(self) -> EventVocabulary:
        """The declared event types, or the default three graded by `relevance`."""
        if self.event_types is None:
            grades = self.relevance.model_dump()
            return EventVocabulary(tuple(
                replace(t, relevance=grades[t.name]) for t in DEFAULT_VOCABULARY.types))
        return EventVocabulary(tuple(
            DeclaredType(t.name, t.relevance, conversion=t.conversion, click=t.click,
                                     exposure=t.exposure) for t in self.event_types))


GateKind = Literal["non_inferiority", "superiority", "threshold", "latency", "latency_ratio", "error_rate"]
GateRole = Literal["goal", "guardrail", "advisory"]
SAFETY_KINDS = ("latency", "latency_ratio", "error_rate")
DEFAULT_ROLE: GateRole = "goal"  # every gate blocked PASS before roles existed: the default keeps that


def _default_role(role: str) -> bool:
    return role == DEFAULT_ROLE


class Gate(Strict):
    """One gate, tested on "all" users or on "all" and every stratum (scope per_stratum).

    non_inferiority / superiority test the paired per-user delta (candidate minus control) against a margin,
    absolute or relative to the control's mean (then the relative delta is tested); threshold tests the
    candidate's own mean against a minimum `bound`; latency / error_rate bound the candidate's p-th
    percentile request latency (ms) / share of failed requests; latency_ratio bounds the candidate/control
    ratio of the p-th percentile latency, both timed on the same requests. Tests are one-sided at `alpha`,
    corrected across gates x strata as `statistics.correction` says; fewer than `min_users` users is
    inconclusive.
    `role` says what an outcome does to the decision: a goal must pass for PASS; a guardrail blocks only on
    proven harm (it fails; inconclusive does not block); an advisory gate is computed and reported only.
    Gates that cannot fail are refused: a threshold outside the metric's range, an error_rate bound of 1
    or more, and (unless `allow_large_margin`) a non_inferiority margin above 0.5 relative or as wide as
    the metric's range absolute.
    """

    name: str = Field(pattern=SLUG.pattern)
    kind: GateKind
    role: GateRole = Field(default=DEFAULT_ROLE, exclude_if=_default_role, description="goal: must pass for "
                           "PASS; guardrail: blocks only when it fails (proven harm), not when inconclusive; "
                           "advisory: computed, reported and recorded, never changes the decision.")
    metric: str | None = Field(default=None, description="e.g. ndcg@10 (k = evaluation.k); required except for "
                               "safety gates. An alias is read as its metric's name (revenue_per_user@10 is "
                               "revenue@10, the name the records carry).")
    margin: float | None = Field(default=None, ge=0, description="Allowed harm (non_inferiority) or needed gain "
                                 "(superiority); a fraction of the control's mean when margin_type is relative.")
    margin_type: Literal["absolute", "relative"] = "absolute"
    allow_large_margin: bool = Field(default=False, description="non_inferiority: accept a margin above the "
                                     "sanity limit (relative above 0.5, or absolute as wide as the metric's range).")
    bound: float | None = Field(default=None, description="threshold: minimum candidate value, inside the metric's "
                                "range; latency: maximum ms (> 0), gated only on timings from a deployed (Lambda) run; "
                                "latency_ratio: maximum candidate/control ratio (> 0); error_rate: maximum share, in "
                                "[0, 1).")
    percentile: Literal[50, 95, 99] = 95
    alpha: float = Field(default=0.05, gt=0, lt=0.5, description="One-sided level of the gate's tests.")
    scope: Literal["all", "per_stratum"] = "all"
    min_users: int = Field(default=30, ge=1, description="Fewer evaluated users in a stratum: inconclusive.")

    @field_validator("metric")
    @classmethod
    def _registered_name(cls, metric: str | None) -> str | None:
        return canonical_name(metric) if metric is not None else None

    @model_validator(mode="after")
    def _complete(self) -> Gate:
        if self.kind in SAFETY_KINDS:
            if self.bound is None:
                raise ValueError(f"gate {self.name}: kind {self.kind} needs bound")
            self._safety_bound_possible(self.bound)
            return self
        if self.metric is None:
            raise ValueError(f"gate {self.name}: kind {self.kind} needs metric")
        if not METRIC_AT_K.fullmatch(self.metric):
            raise ValueError(f"gate {self.name}: unknown metric {self.metric!r} (use e.g. ndcg@10)")
        gated = metric_named(self.metric)
        if not gated.higher_is_better:
            raise ValueError(f"gate {self.name}: {self.metric} is better when lower and gates read higher as better; "
                             f"gate {gated.gate_instead}@{self.metric.partition('@')[2]} instead ({self.metric} is "
                             "reported in metrics.json without a gate)")
        if self.kind == "threshold":
            if self.bound is None:
                raise ValueError(f"gate {self.name}: kind threshold needs bound")
            self._threshold_possible(self.bound)
        elif self.margin is None:
            raise ValueError(f"gate {self.name}: kind {self.kind} needs margin")
        elif self.kind == "non_inferiority" and not self.allow_large_margin:
            self._margin_sane(self.margin)
        return self

    def _safety_bound_possible(self, bound: float) -> None:
        if self.kind == "error_rate" and not 0 <= bound < 1:
            raise ValueError(f"gate {self.name}: an error_rate bound is a share of failed requests in [0, 1), "
                             f"got {bound} (1 or more passes anything)")
        if self.kind == "latency" and bound <= 0:
            raise ValueError(f"gate {self.name}: a latency bound must be positive (milliseconds), got {bound}")
        if self.kind == "latency_ratio" and bound <= 0:
            raise ValueError(f"gate {self.name}: a latency_ratio bound is a positive ratio (1.5: the candidate "
                             f"may be 50% slower), got {bound}")

    def _threshold_possible(self, bound: float) -> None:
        assert self.metric is not None
        low, high = metric_named(self.metric).bounds
        if not low < bound <= high:
            allowed = f"in ({low:g}, {high:g}]" if math.isfinite(high) else f"above {low:g}"
            raise ValueError(f"gate {self.name}: bound {bound:g} for {self.metric} must be {allowed}: the metric "
                             f"is never below {low:g}, so a lower bound could not fail and a higher one never pass")

    def _margin_sane(self, margin: float) -> None:
        assert self.metric is not None
        low, high = metric_named(self.metric).bounds
        if self.margin_type == "relative" and margin > MAX_RELATIVE_MARGIN:
            raise ValueError(f"gate {self.name}: a relative margin of {margin:g} lets the candidate be "
                             f"{margin:.0%} worse than control; margins above {MAX_RELATIVE_MARGIN:g} need "
                             "allow_large_margin: true (a fraction: 0.1 means 10%)")
        if self.margin_type == "absolute" and margin >= high - low:
            raise ValueError(f"gate {self.name}: an absolute margin of {margin:g} spans all of {self.metric}'s "
                             f"range [{low:g}, {high:g}], so the gate could not fail; set allow_large_margin: true "
                             "if that is meant")


class Statistics(Strict):
    """How the gates are tested (one block for all gates): bootstrap, multiple testing, power, sample ratio."""

    correction: Literal["holm", "bonferroni", "none"] = Field(
        default="holm", description="Multiple-testing correction across gates x strata.")
    resamples: int = Field(default=2000, ge=2000, le=100_000, description="Bootstrap resamples (BCa intervals).")
    bootstrap_seed: int | None = Field(default=None, ge=0, lt=2**63, description="Default: sampling.seed.")
    confidence: float = Field(default=0.95, ge=0.5, lt=1, description="Level of the metrics.json intervals.")
    power: float = Field(default=0.9, ge=0.5, lt=1, description="Power behind each gate's MDE and required users.")
    sample_ratio_alpha: float = Field(default=0.001, gt=0, lt=0.5,
                                      description="The sample-ratio check fails below this p-value.")


class Replay(Strict):
    """The run's Kinesis replay: stream sizing, pacing and how hard to retry throttled records."""

    stream_mode: Literal["on_demand", "provisioned"] = "on_demand"
    shards: int = Field(default=4, ge=1, le=500, description="Shard count when stream_mode is provisioned.")
    speedup: float | None = Field(default=None, gt=0, description="Event-time seconds per wall second; unset: "
                                  "publish as fast as the stream accepts.")
    max_attempts: int = Field(default=8, ge=1, le=20, description="PutRecords attempts per record before failing.")


class DriftFeature(Strict):
    """Thresholds for one feature; unset fields keep the `drift` defaults."""

    threshold: float | None = Field(default=None, gt=0, description="The method's threshold: KS p-value, "
                                    "normalised Wasserstein or Jensen-Shannon distance.")
    psi_threshold: float | None = Field(default=None, gt=0)


class Drift(Strict):
    """Feature drift of the slice against a baseline (testbed.pipeline.drift); defaults follow evidently."""

    baseline: str | None = Field(default=None, min_length=1, description="Artifacts URI of a reference run "
                                 "(.../runs/<run_id>); unset: the segment's unsampled population in the window.")
    ks_p_value: float = Field(default=0.05, gt=0, lt=1, description="KS drifts below this p-value.")
    wasserstein: float = Field(default=0.1, gt=0, description="Wasserstein / reference std drifts at or above.")
    jensen_shannon: float = Field(default=0.1, gt=0, le=0.8326, description="JS distance drifts at or above.")
    psi: float = Field(default=0.2, gt=0, description="PSI at or above this is drift (significant shift).")
    psi_warning: float = Field(default=0.1, gt=0, description="PSI at or above this is reported as moderate.")
    small_sample_rows: int = Field(default=1000, ge=1, description="KS up to this many baseline rows, "
                                   "Wasserstein above (numeric features).")
    bins: int = Field(default=10, ge=2, le=100, description="PSI quantile bins from the baseline.")
    features: dict[Annotated[str, Field(pattern=COLUMN.pattern)], DriftFeature] = Field(default_factory=dict)
    daily_features: int = Field(default=3, ge=0, le=20, description="Top features given a daily PSI series.")
    daily_min_rows: int = Field(default=100, ge=1, description="Days with fewer slice rows get no PSI.")
    retrain_min_days: int = Field(default=3, ge=1, le=60, description="Evaluated days needed on each side "
                                  "of the day a daily PSI series crosses its threshold (the retraining date).")
    min_stratum_rows: int = Field(default=50, ge=1, description="Strata with fewer slice rows are not tested.")
    max_baseline_users: int = Field(default=100_000, ge=100, description="Population baselines above this "
                                    "many eligible users use a uniform sample of this size.")


class WhatIfScenario(Strict):
    """One catalogue perturbation: N cold-start items, or a category's prices shifted by a fraction."""

    name: str = Field(pattern=SLUG.pattern)
    kind: Literal["cold_start_items", "price_shift"]
    items: int | None = Field(default=None, ge=1, le=10_000, description="cold_start_items: how many.")
    category: str | None = Field(default=None, min_length=1, description="price_shift: the items' category.")
    fraction: float | None = Field(default=None, gt=-1, le=10, description="price_shift: 0.2 means +20%.")

    @model_validator(mode="after")
    def _complete(self) -> WhatIfScenario:
        if self.kind == "cold_start_items" and (self.items is None or self.category or self.fraction is not None):
            raise ValueError(f"scenario {self.name}: cold_start_items takes items (and no category/fraction)")
        if self.kind == "price_shift" and (self.category is None or self.fraction is None or self.items):
            raise ValueError(f"scenario {self.name}: price_shift takes category and fraction (and no items)")
        return self


class WhatIf(Strict):
    """Catalogue what-ifs scored with both models on a seeded subset of the slice's users (labels unchanged)."""

    scenarios: list[WhatIfScenario] = Field(min_length=1)
    max_users: int = Field(default=1000, ge=10, le=100_000, description="Users scored per scenario.")
    seed: int = Field(default=0, ge=0, lt=2**63, description="Picks the users and the cold items' attributes.")

    @model_validator(mode="after")
    def _unique(self) -> WhatIf:
        names = [s.name for s in self.scenarios]
        if len(set(names)) != len(names):
            raise ValueError("scenario names must be unique")
        return self


class Pii(Strict):
    """Columns replaced by keyed hashes in the slice (`mask`), and columns that look personal but are not
    (`allow`); validation refuses any other lake column that looks personal."""

    mask: list[Annotated[str, Field(pattern=COLUMN.pattern)]] = Field(default_factory=lambda: ["email"])
    allow: list[Annotated[str, Field(pattern=COLUMN.pattern)]] = Field(
        default_factory=list, description="Columns the PII check flags (by name or values) that hold no personal "
        "data, e.g. a product name; they are neither masked nor refused.")

    def masks(self, column: str) -> bool:
        return column.lower() in {c.lower() for c in self.mask}


class Manifest(Strict):
    """A run's full description. Unknown keys are errors everywhere."""

    name: str = Field(pattern=SLUG.pattern, description="Slug used in the run id.")
    description: str = ""
    segment: Segment
    time: TimeWindow
    sampling: Sampling = Field(default_factory=Sampling)
    features: Features = Field(default_factory=Features)
    models: Models
    evaluation: Evaluation = Field(default_factory=Evaluation)
    gates: list[Gate] = Field(default_factory=list)
    statistics: Statistics = Field(default_factory=Statistics)
    pii: Pii = Field(default_factory=Pii)
    replay: Replay = Field(default_factory=Replay)
    drift: Drift = Field(default_factory=Drift)
    whatif: WhatIf | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Manifest:
        names = [g.name for g in self.gates]
        if len(set(names)) != len(names):
            raise ValueError("gates: gate names must be unique")
        for i, gate in enumerate(self.gates):
            cut_off = metric_named(gate.metric).cut_off if gate.metric else "k"
            wanted = getattr(self.evaluation, cut_off)
            if gate.metric and int(gate.metric.partition("@")[2]) != wanted:
                raise ValueError(f"gates.{i}.metric: gate {gate.name}: {gate.metric} must use {cut_off}={wanted}")
        return self

    @model_validator(mode="after")
    def _masked_values_never_echoed(self) -> Manifest:
        """A masked column's raw values must not reach the record: strata labels, filter values and what-if
        categories are all written out (metrics.json, gates.json, drift.json, manifest.json, the reports)."""
        for i, column in enumerate(self.sampling.strata):
            if self.pii.masks(column):
                raise ValueError(f"sampling.strata.{i}: column {column} is masked (pii.mask); its values would "
                                 "label every per-stratum result: stratify on a column that is not masked")
        for i, flt in enumerate(self.segment.filters):
            if self.pii.masks(flt.column) and flt.op not in ("is_null", "not_null"):
                raise ValueError(f"segment.filters.{i}: column {flt.column} is masked (pii.mask); a filter value "
                                 "on it would be kept raw in the run record: filter on user_id instead (only "
                                 "is_null and not_null are allowed on a masked column)")
        for i, scenario in enumerate(self.whatif.scenarios if self.whatif else []):
            if scenario.category is not None and self.pii.masks("category"):
                raise ValueError(f"whatif.scenarios.{i}.category: column category is masked (pii.mask); a "
                                 "price_shift names one of its raw values")
        for role in self.models.roles_of("rankings"):
            if self.pii.masks("user_id"):
                raise ValueError(f"models.{role}.kind: a rankings file lists raw user_ids, which pii.mask masks "
                                 "in the slice, so no list could be matched to its user")
        for role in ROLES:
            if getattr(self.models, role).candidates is not None and self.pii.masks("user_id"):
                raise ValueError(f"models.{role}.candidates: a candidates table lists raw user_ids, which pii.mask "
                                 "masks in the slice, so no candidate could be matched to its user")
        for i, column in enumerate(self.pii.allow):
            if self.pii.masks(column):
                raise ValueError(f"pii.allow.{i}: column {column} is also in pii.mask; name it in one list")
        return self

    def canonical_json(self) -> str:
        """Sorted keys, no whitespace, defaults filled, UTC times: equal manifests give equal bytes."""
        return json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))

    def content_json(self) -> str:
        """The canonical form without the models' and feature sets' `uri`s: their `sha256` names the content, so
        the same files in another folder (or read from another working directory) give the same bytes."""
        data = self.model_dump(mode="json")
        for model in data["models"].values():
            model.pop("uri")
            for variant in model.get("seed_variants", []):
                variant.pop("uri")
            if model["features"] is not None:
                model["features"].pop("uri")
        return json.dumps(data, sort_keys=True, separators=(",", ":"))

    def digest(self) -> str:
        """SHA-256 of the content form: what the run record's manifest_digest and the run id are made from."""
        return hashlib.sha256(self.content_json().encode()).hexdigest()


def _location(error: Any) -> str:
    return ".".join(str(part) for part in error["loc"])


def parse_manifest(data: Any, source: str = "manifest") -> Manifest:
    """Validate raw data; raise ManifestError with one line naming the first offending field."""
    try:
        check_json_data(data)  # data parsed elsewhere (an execution input) gets the strict loaders' limits too
        return Manifest.model_validate(data)
    except DocumentError as exc:
        raise ManifestError(f"{source}: {exc}") from None
    except ValidationError as exc:
        error = exc.errors()[0]
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown key"
        where = _location(error)
        raise ManifestError(f"{source}: {where}: {message}" if where else f"{source}: {message}") from None


def manifest_data(text: bytes, source: str) -> dict[str, Any]:
    """Raw manifest data from JSON text (YAML if `source` ends .yaml/.yml), parsed by the strict loaders."""
    try:
        data = loads_yaml(text) if source.endswith((".yaml", ".yml")) else loads_json(text)
    except DocumentError as exc:
        raise ManifestError(f"{source}: {exc}") from None
    if not isinstance(data, dict):
        raise ManifestError(f"{source}: the manifest must be an object")
    return data


def read_manifest_file(path: Path) -> dict[str, Any]:
    """Raw manifest data from a JSON or YAML file, local model and feature set paths resolved against the file's
    folder (not the working directory)."""
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise ManifestFileError(f"{path}: cannot read manifest file ({exc.strerror})") from None
    data = manifest_data(text, str(path))
    models = data.get("models")
    for model in models.values() if isinstance(models, dict) else ():
        _resolve_uri(model, path.parent)
        _resolve_uri(model.get("features") if isinstance(model, dict) else None, path.parent)
    return data


def _resolve_uri(ref: Any, folder: Path) -> None:
    uri = ref.get("uri") if isinstance(ref, dict) else None
    if isinstance(uri, str) and uri and not uri.startswith("s3://"):  # "" stays empty: not the folder itself
        ref["uri"] = str((folder / uri).resolve())


def json_schema() -> dict[str, Any]:
    schema = Manifest.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://testbed.local/manifest.schema.json"
    return schema
