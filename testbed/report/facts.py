"""What every view of a run shows, derived once from the run's documents (their testbed.record models): the gate
order (failures first), the top metric deltas, the forest-plot rows, the drift ranking and the slice's
composition. Also the number formats, so the Markdown, the HTML, the terminal and `testbed compare` print the
same figures.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeGuard

from testbed.core.gates import STATISTICAL_KINDS, role_blocks
from testbed.core.metrics import COVERAGE, metric_named
from testbed.record.base import OUTCOME_FAIL, OUTCOME_INCONCLUSIVE, OUTCOME_PASS, Number
from testbed.record.drift import DriftDocument, DriftFeature
from testbed.record.evaluation import MetricDelta, MetricsDocument, RetrainSpread
from testbed.record.gates import GateRow, GatesFile
from testbed.record.slice import SliceStats

OUTCOME_ORDER: dict[str, int] = {OUTCOME_FAIL: 0, OUTCOME_INCONCLUSIVE: 1, OUTCOME_PASS: 2}
NOT_GATED = "not gated"  # the outcome a forest row shows for a stratum no gate tested
INTERVAL_KINDS = ("non_inferiority", "superiority")
MAX_FOREST_PANELS = 6


# ---------------------------------------------------------------- formats

def is_number(value: Any) -> TypeGuard[float]:
    """A finite int or float (not a bool)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def num(value: Any, digits: int = 4) -> str:
    """A figure as the reports print it: n/a when absent or not finite, 4 decimals, scientific when tiny."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if value != 0 and abs(value) < 10 ** -(digits - 1):
        return f"{value:.2e}"
    return f"{value:.{digits}f}"


def signed(value: Any, digits: int = 4) -> str:
    text = num(value, digits)
    return f"+{text}" if is_number(value) and value >= 0 and not text.startswith("+") else text


def pvalue(value: Any) -> str:
    if not is_number(value):
        return "n/a"
    return "<0.0001" if value < 1e-4 else f"{value:.4f}"


def interval(value: Any, sign: bool = False) -> str:
    if not isinstance(value, list | tuple) or len(value) != 2:
        return "n/a"
    show = signed if sign else num
    return f"[{show(value[0])}, {show(value[1])}]"


def level(confidence: Any) -> str | None:
    """`90%` for a confidence of 0.9; None when unknown."""
    return f"{confidence:.0%}" if is_number(confidence) else None


def interval_at(value: Any, confidence: Any, sign: bool = False) -> str:
    """An interval with its confidence level, `90% CI [a, b]`, so that intervals of different levels side by side
    cannot be confused; the bare interval when the level is unknown."""
    text = interval(value, sign)
    shown = level(confidence)
    return f"{shown} CI {text}" if shown is not None and text != "n/a" else text


def percent(value: Any, digits: int = 1) -> str:
    return f"{value * 100:+.{digits}f}%" if is_number(value) else "n/a"


# ---------------------------------------------------------------- gates

def gate_rows(gates: GatesFile | None) -> list[GateRow]:
    return gates.gates if gates is not None else []


def ordered_gates(gates: GatesFile | None) -> list[GateRow]:
    """Failed gates first, then inconclusive, then passed; the gate step's order within each group."""
    return sorted(gate_rows(gates), key=lambda g: OUTCOME_ORDER[g.outcome])


def gate_counts(gates: GatesFile | None) -> dict[str, int]:
    counts = dict.fromkeys(OUTCOME_ORDER, 0)
    for gate in gate_rows(gates):
        counts[gate.outcome] += 1
    return counts


def counts_text(counts: dict[str, int]) -> str:
    total = sum(counts.values())
    shown = ", ".join(f"{n} {outcome}" for outcome, n in counts.items() if n)
    return f"{total} gates: {shown}" if total else "no gates"


ROLE_LABELS = {"goal": "goal", "guardrail": "guardrail (blocks on proven harm only)",
               "advisory": "advisory (never changes the decision)"}


def role_label(gate: GateRow) -> str:
    """The gate's role as every gate table shows it, next to the gate: what its outcome does to the decision."""
    return ROLE_LABELS[gate.role]


def non_blocking(gates: GatesFile | None) -> list[GateRow]:
    """Rows that did not pass and did not count: advisory ones and inconclusive guardrails."""
    return [g for g in gate_rows(gates) if g.outcome != OUTCOME_PASS and not role_blocks(g.role, g.outcome)]


def gate_label(gate: GateRow) -> str:
    return f"{gate.name} ({gate.metric})" if gate.metric else gate.name


def shows_harm_p(gate: GateRow) -> bool:
    """A failed gate with a harm test: its evidence is the harm test's p-value, not the pass test's (near 1)."""
    return gate.outcome == OUTCOME_FAIL and (gate.p_harm is not None or gate.p_harm_adjusted is not None)


def p_shown(gate: GateRow) -> float | None:
    """The p-value of the test that decided the outcome, multiplicity-adjusted when the gate step recorded it:
    the harm test's for a failed gate that has one (`shows_harm_p`), else the pass test's."""
    if shows_harm_p(gate):
        return gate.p_harm_adjusted if gate.p_harm_adjusted is not None else gate.p_harm
    return gate.p_adjusted if gate.p_adjusted is not None else gate.p_value


def p_label(gate: GateRow) -> str:
    """Which test `p_shown` comes from, as the reports label it."""
    return "harm p" if shows_harm_p(gate) else "p"


def p_adjustment(gate: GateRow) -> str:
    """Whether `p_shown` is multiplicity-adjusted: `holm-adjusted`, `bonferroni-adjusted`, `unadjusted` (a row
    outside the family, or a run without a correction); `adjusted` for records that did not name the correction."""
    recorded = gate.p_harm_adjusted if shows_harm_p(gate) else gate.p_adjusted
    if recorded is None or gate.kind not in STATISTICAL_KINDS or gate.correction == "none":
        return "unadjusted"
    return f"{gate.correction}-adjusted" if gate.correction else "adjusted"


def p_text(gate: GateRow) -> str:
    """`harm p 0.0012, holm-adjusted`, `p <0.0001, unadjusted`, or n/a for a gate compared on point values."""
    value = p_shown(gate)
    return f"{p_label(gate)} {pvalue(value)}, {p_adjustment(gate)}" if is_number(value) else "n/a"


# ---------------------------------------------------------------- metrics

def deltas(metrics: MetricsDocument | None, stratum: str = "all") -> dict[str, MetricDelta]:
    return metrics.deltas.get(stratum, {}) if metrics is not None else {}


def top_deltas(metrics: MetricsDocument | None, count: int | None = None,
               stratum: str = "all") -> list[tuple[str, MetricDelta]]:
    """Metric deltas ranked by the size of the relative change (the absolute one when relative is missing)."""
    def size(item: tuple[str, MetricDelta]) -> float:
        d = item[1]
        value = d.relative if is_number(d.relative) else d.delta
        return abs(float(value)) if is_number(value) else -1.0

    ranked = sorted(deltas(metrics, stratum).items(), key=lambda item: (-size(item), item[0]))
    return ranked[:count] if count is not None else ranked


def metric_label(name: str) -> str:
    """A metric's name as a table shows it: marked when a lower value is better (arp, exposure_gini), so a
    negative delta there reads as the gain it is."""
    try:
        lower = not metric_named(name).higher_is_better
    except ValueError:  # a name this code does not register (an older record): shown as it is
        lower = False
    return f"{name} (lower is better)" if lower else name


def model_value(metrics: MetricsDocument | None, model: str, metric: str, stratum: str = "all") -> Number | None:
    if metrics is None:
        return None
    return metrics.models.get(model, {}).get(stratum, {}).get(metric)


def model_roles(models: Mapping[str, Any]) -> list[str]:
    """Model roles in a fixed order: control, candidate, then any other by name."""
    return [r for r in ("control", "candidate") if r in models] + sorted(r for r in models
                                                                        if r not in ("control", "candidate"))


def strata_of(metrics: MetricsDocument | None) -> list[str]:
    """"all" first, then the strata in name order."""
    if metrics is None:
        return []
    names = set(metrics.deltas)
    for model in metrics.models.values():
        names |= set(model)
    return (["all"] if "all" in names else []) + sorted(names - {"all"})


def coverage_name(metrics: MetricsDocument | None) -> str | None:
    return COVERAGE.at(metrics.k) if metrics is not None else None


# ---------------------------------------------------------------- retrains

INTERVAL_SCOPE = ("Intervals are over users only: they cover which users were sampled, with the models held fixed, "
                  "not how much the models move between retrains")
COMPARABLE_SHARE = 0.5  # retrain deltas spanning half the way to a gate's threshold can change its outcome


def interval_scope(metrics: MetricsDocument | None) -> str:
    """What every report says next to its intervals."""
    if metrics is not None and metrics.training_variance is not None:
        retrains = len(metrics.training_variance.retrains)
        return f"{INTERVAL_SCOPE}; the seed variants' spread over {retrains} retrains is shown beside them."
    return f"{INTERVAL_SCOPE} (declare models.*.seed_variants to measure that)."


def retrain_spread(metrics: MetricsDocument | None, metric: str) -> RetrainSpread | None:
    if metrics is None or metrics.training_variance is None:
        return None
    return metrics.training_variance.metrics.get(metric)


def retrain_text(spread: RetrainSpread | None) -> str | None:
    """`the delta moves by ±0.0040 between retrains`: the retrains' standard deviation; None without one."""
    if spread is None or not is_number(spread.std):
        return None
    return f"the delta moves by ±{num(spread.std)} between retrains"


def retrain_warnings(metrics: MetricsDocument | None, gates: GatesFile | None) -> list[str]:
    """One line per interval gate on all users whose retrain deltas span at least half the distance between its
    observed delta and its threshold (for a delta near zero: half its margin): a retrain of the same models could
    change that gate's outcome."""
    lines = []
    for gate in gate_rows(gates):
        spread = retrain_spread(metrics, gate.metric or "")
        if (spread is None or gate.kind not in INTERVAL_KINDS or gate.stratum != "all"
                or not is_number(gate.threshold) or not is_number(gate.observed)):
            continue
        values = spread.relative_deltas if gate.scale == "relative" else spread.deltas
        deltas = [float(v) for v in values if is_number(v)]
        distance = abs(gate.observed - gate.threshold)
        if len(deltas) > 1 and max(deltas) - min(deltas) >= COMPARABLE_SHARE * distance:
            what = "relative delta" if gate.scale == "relative" else "delta"
            lines.append(f"{gate_label(gate)}: the {what} moves from {signed(min(deltas))} to {signed(max(deltas))} "
                         f"between retrains, comparable to its distance {num(distance)} from the gate's threshold "
                         f"{signed(gate.threshold)}: retraining the same models could change this outcome")
    return lines


# ---------------------------------------------------------------- forest plot

Scale = Literal["absolute", "relative"]
SCALE_TITLES: dict[str, str] = {"absolute": "absolute Δ (candidate − control)",
                                "relative": "relative Δ, % of control ((candidate − control) / control)"}


@dataclass(frozen=True)
class ForestRow:
    stratum: str
    delta: float | None
    low: float | None
    high: float | None
    threshold: float | None
    outcome: str  # a gate outcome, or NOT_GATED
    scale: Scale  # what delta, low, high and threshold measure
    confidence: float | None  # the interval's level


@dataclass(frozen=True)
class ForestPanel:
    """One chart: every row on `scale`, the scale of the panel's gate (a relative margin: relative deltas)."""

    metric: str
    gate: str | None
    kind: str | None
    scale: Scale = "absolute"
    rows: list[ForestRow] = field(default_factory=list)


def _interval_of(value: list[float | None] | None) -> tuple[float | None, float | None]:
    if value is not None and len(value) == 2:
        low, high = value
        if is_number(low) and is_number(high):
            return float(low), float(high)
    return None, None


def _number(value: Any) -> float | None:
    return float(value) if is_number(value) else None


def _gate_row(stratum: str, gate: GateRow) -> ForestRow:
    low, high = _interval_of(gate.interval)
    return ForestRow(stratum, _number(gate.observed), low, high, _number(gate.threshold), gate.outcome,
                     "relative" if gate.scale == "relative" else "absolute", _number(gate.confidence))


def _delta_row(metrics: MetricsDocument | None, stratum: str, metric: str, scale: Scale,
               confidence: float | None) -> ForestRow | None:
    """metrics.json's delta of a stratum no gate tested, on the panel's scale (the relative delta and its
    interval on a relative panel)."""
    found = deltas(metrics, stratum).get(metric)
    if found is None:
        return None
    relative = scale == "relative"
    low, high = _interval_of(found.relative_interval if relative else found.interval)
    return ForestRow(stratum, _number(found.relative if relative else found.delta), low, high, None, NOT_GATED,
                     scale, confidence)


def forest_panels(metrics: MetricsDocument | None, gates: GatesFile | None,
                  confidence: float | None = None) -> list[ForestPanel]:
    """One panel per interval gate (non-inferiority, superiority): a row per stratum with the delta and its
    interval, all on the gate's scale (absolute or relative); gated rows use the gate's own interval and carry
    its margin (the threshold), the other strata show metrics.json's interval (level `confidence`) on the same
    scale. Without such gates, one panel of the largest absolute delta, unmarked."""
    by_gate: dict[str, list[GateRow]] = {}
    for gate in gate_rows(gates):
        if gate.kind in INTERVAL_KINDS and gate.metric:
            by_gate.setdefault(gate.name, []).append(gate)
    strata = strata_of(metrics)
    panels = []
    for name, rows in list(by_gate.items())[:MAX_FOREST_PANELS]:
        metric = rows[0].metric or ""
        scale: Scale = "relative" if rows[0].scale == "relative" else "absolute"
        gated = {g.stratum: g for g in rows}
        panel_rows = [_gate_row(s, gated[s]) if s in gated else _delta_row(metrics, s, metric, scale, confidence)
                      for s in strata + [s for s in gated if s not in strata]]
        panels.append(ForestPanel(metric, name, rows[0].kind, scale, [r for r in panel_rows if r]))
    top = top_deltas(metrics, 1)
    if not panels and top:
        rows_ = [_delta_row(metrics, s, top[0][0], "absolute", confidence) for s in strata]
        panels.append(ForestPanel(top[0][0], None, None, "absolute", [r for r in rows_ if r]))
    return [p for p in panels if any(r.delta is not None for r in p.rows)]


# ---------------------------------------------------------------- slice and drift

@dataclass(frozen=True)
class CompositionRow:
    """One stratum of the slice: slice/stats.json's counts and slice/users.parquet's inclusion probabilities."""

    stratum: str
    users: int | None
    events: int | None
    eligible_users: int | None
    expected_users: float | None
    p_min: float | None
    p_mean: float | None
    p_max: float | None


def composition(stats: SliceStats | None,
                inclusion: dict[str, dict[str, float]] | None) -> list[CompositionRow]:
    """Per stratum: users, events, eligible and expected users (slice/stats.json) and the inclusion
    probabilities (slice/users.parquet)."""
    strata = stats.strata if stats is not None else {}
    rows = []
    for name in sorted(set(strata) | set(inclusion or {})):
        row = strata.get(name)
        probability = (inclusion or {}).get(name) or {}
        users = row.users if row is not None else probability.get("users")
        rows.append(CompositionRow(name, None if users is None else int(users),
                                   row.events if row is not None else None,
                                   row.eligible_users if row is not None else None,
                                   row.expected_users if row is not None else None,
                                   probability.get("min"), probability.get("mean"), probability.get("max")))
    return rows


def drift_features(drift: DriftDocument | None, count: int | None = None) -> list[DriftFeature]:
    """drift.json's features, most shifted first (by `rank`, then by PSI)."""
    def key(f: DriftFeature) -> tuple[int, float, str]:
        return f.rank, -float(f.psi) if is_number(f.psi) else 0.0, f.feature

    ranked = sorted(drift.features if drift is not None else [], key=key)
    return ranked[:count] if count is not None else ranked


def drifted_count(drift: DriftDocument | None) -> int | None:
    return drift.drifted if drift is not None else None


def drift_measure(feature: DriftFeature) -> tuple[str, float | None, float | None]:
    """(label, value, threshold) of the one number a drift bar shows: PSI when present (comparable across
    methods), else the method's statistic."""
    if is_number(feature.psi):
        return "PSI", feature.psi, feature.psi_threshold
    return feature.method or "statistic", feature.statistic, feature.threshold


def rankings_files(models: Mapping[str, Any], metrics: MetricsDocument | None) -> dict[str, str]:
    """Per model given as a rankings file: one sentence on what the run did with it and the slice users it has no
    list for (they count as misses)."""
    out = {}
    coverage = metrics.rankings_coverage or {} if metrics is not None else {}
    for role in model_roles(models):
        if getattr(models[role], "kind", None) != "rankings":
            continue
        text = "a rankings file: its lists are judged as given (no scoring, latency, attribution or what-ifs)"
        row = coverage.get(role)
        if row is not None:
            text += (f"; no list for {row.uncovered_users} of {row.slice_users} slice users (counted as misses), "
                     f"{row.users_outside_slice} listed users outside the slice ignored")
        out[role] = text
    return out
