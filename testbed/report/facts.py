"""What every view of a run shows, derived once from plain run data: the gate order (failures first), the top
metric deltas, the forest-plot rows, the drift ranking and the slice's composition. Also the number formats, so
the Markdown, the HTML, the terminal and `testbed compare` print the same figures.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, TypeGuard

from testbed.core.metrics import COVERAGE

OUTCOME_ORDER = {"fail": 0, "inconclusive": 1, "pass": 2}
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


def percent(value: Any, digits: int = 1) -> str:
    return f"{value * 100:+.{digits}f}%" if is_number(value) else "n/a"


# ---------------------------------------------------------------- gates

def gate_rows(gates: dict[str, Any] | None) -> list[dict[str, Any]]:
    rows = (gates or {}).get("gates") or []
    return [g for g in rows if isinstance(g, dict)]


def ordered_gates(gates: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Failed gates first, then inconclusive, then passed; the gate step's order within each group."""
    return sorted(gate_rows(gates), key=lambda g: OUTCOME_ORDER.get(str(g.get("outcome")), len(OUTCOME_ORDER)))


def gate_counts(gates: dict[str, Any] | None) -> dict[str, int]:
    counts = {"fail": 0, "inconclusive": 0, "pass": 0}
    for gate in gate_rows(gates):
        outcome = str(gate.get("outcome"))
        counts[outcome] = counts.get(outcome, 0) + 1
    return counts


def counts_text(counts: dict[str, int]) -> str:
    total = sum(counts.values())
    shown = ", ".join(f"{n} {outcome}" for outcome, n in counts.items() if n)
    return f"{total} gates: {shown}" if total else "no gates"


def gate_label(gate: dict[str, Any]) -> str:
    metric = gate.get("metric")
    return f"{gate.get('name')} ({metric})" if metric else str(gate.get("name"))


def p_shown(gate: dict[str, Any]) -> Any:
    """The p-value the decision used: the multiplicity-adjusted one when the gate step recorded it."""
    return gate.get("p_adjusted") if gate.get("p_adjusted") is not None else gate.get("p_value")


# ---------------------------------------------------------------- metrics

def deltas(metrics: dict[str, Any] | None, stratum: str = "all") -> dict[str, dict[str, Any]]:
    found = ((metrics or {}).get("deltas") or {}).get(stratum) or {}
    return {name: d for name, d in found.items() if isinstance(d, dict)}


def top_deltas(metrics: dict[str, Any] | None, count: int | None = None,
               stratum: str = "all") -> list[tuple[str, dict[str, Any]]]:
    """Metric deltas ranked by the size of the relative change (the absolute one when relative is missing)."""
    def size(item: tuple[str, dict[str, Any]]) -> float:
        d = item[1]
        value = d.get("relative") if is_number(d.get("relative")) else d.get("delta")
        return abs(float(value)) if is_number(value) else -1.0

    ranked = sorted(deltas(metrics, stratum).items(), key=lambda item: (-size(item), item[0]))
    return ranked[:count] if count is not None else ranked


def model_value(metrics: dict[str, Any] | None, model: str, metric: str, stratum: str = "all") -> Any:
    return (((metrics or {}).get("models") or {}).get(model) or {}).get(stratum, {}).get(metric)


def model_roles(models: dict[str, Any]) -> list[str]:
    """Model roles in a fixed order: control, candidate, then any other by name."""
    return [r for r in ("control", "candidate") if r in models] + sorted(r for r in models
                                                                        if r not in ("control", "candidate"))


def strata_of(metrics: dict[str, Any] | None) -> list[str]:
    """"all" first, then the strata in name order."""
    names = set(((metrics or {}).get("deltas") or {}).keys())
    for model in ((metrics or {}).get("models") or {}).values():
        names |= set(model.keys()) if isinstance(model, dict) else set()
    return (["all"] if "all" in names else []) + sorted(names - {"all"})


def coverage_name(metrics: dict[str, Any] | None) -> str | None:
    k = (metrics or {}).get("k")
    return COVERAGE.at(k) if k is not None else None


# ---------------------------------------------------------------- forest plot

@dataclass(frozen=True)
class ForestRow:
    stratum: str
    delta: float | None
    low: float | None
    high: float | None
    threshold: float | None
    outcome: str  # a gate outcome, or "not gated"


@dataclass(frozen=True)
class ForestPanel:
    metric: str
    gate: str | None
    kind: str | None
    rows: list[ForestRow] = field(default_factory=list)


def _interval_of(value: Any) -> tuple[float | None, float | None]:
    if isinstance(value, list | tuple) and len(value) == 2 and all(is_number(v) for v in value):
        return float(value[0]), float(value[1])
    return None, None


def _number(value: Any) -> float | None:
    return float(value) if is_number(value) else None


def _gate_row(stratum: str, gate: dict[str, Any]) -> ForestRow:
    low, high = _interval_of(gate.get("interval"))
    return ForestRow(stratum, _number(gate.get("observed")), low, high, _number(gate.get("threshold")),
                     str(gate.get("outcome")))


def _delta_row(metrics: dict[str, Any] | None, stratum: str, metric: str) -> ForestRow | None:
    found = deltas(metrics, stratum).get(metric)
    if found is None:
        return None
    low, high = _interval_of(found.get("interval"))
    return ForestRow(stratum, _number(found.get("delta")), low, high, None, "not gated")


def forest_panels(metrics: dict[str, Any] | None, gates: dict[str, Any] | None) -> list[ForestPanel]:
    """One panel per interval gate (non-inferiority, superiority): a row per stratum with the delta and its
    interval; gated rows use the gate's own interval and carry its margin (the threshold), the other strata
    show metrics.json's interval. Without such gates, one panel of the largest delta, unmarked."""
    by_gate: dict[str, list[dict[str, Any]]] = {}
    for gate in gate_rows(gates):
        if gate.get("kind") in INTERVAL_KINDS and gate.get("metric"):
            by_gate.setdefault(str(gate.get("name")), []).append(gate)
    strata = strata_of(metrics)
    panels = []
    for name, rows in list(by_gate.items())[:MAX_FOREST_PANELS]:
        metric = str(rows[0]["metric"])
        gated = {str(g.get("stratum")): g for g in rows}
        panel_rows = [_gate_row(s, gated[s]) if s in gated else _delta_row(metrics, s, metric)
                      for s in strata + [s for s in gated if s not in strata]]
        panels.append(ForestPanel(metric, name, str(rows[0].get("kind")), [r for r in panel_rows if r]))
    top = top_deltas(metrics, 1)
    if not panels and top:
        rows_ = [_delta_row(metrics, s, top[0][0]) for s in strata]
        panels.append(ForestPanel(top[0][0], None, None, [r for r in rows_ if r]))
    return [p for p in panels if any(r.delta is not None for r in p.rows)]


# ---------------------------------------------------------------- slice and drift

def composition(stats: dict[str, Any] | None,
                inclusion: dict[str, dict[str, float]] | None) -> list[dict[str, Any]]:
    """Per stratum: users, events, eligible and expected users (slice/stats.json) and the inclusion
    probabilities (slice/users.parquet)."""
    strata = (stats or {}).get("strata") or {}
    names = sorted(set(strata) | set(inclusion or {}))
    rows = []
    for name in names:
        row = strata.get(name) or {}
        probability = (inclusion or {}).get(name) or {}
        rows.append({"stratum": name, "users": row.get("users", probability.get("users")),
                     "events": row.get("events"), "eligible_users": row.get("eligible_users"),
                     "expected_users": row.get("expected_users"), "p_min": probability.get("min"),
                     "p_mean": probability.get("mean"), "p_max": probability.get("max")})
    return rows


def drift_features(drift: dict[str, Any] | None, count: int | None = None) -> list[dict[str, Any]]:
    """drift.json's features, most shifted first (by `rank`, else by PSI)."""
    features = [f for f in (drift or {}).get("features") or [] if isinstance(f, dict)]

    def key(f: dict[str, Any]) -> tuple[float, float, str]:
        rank = f.get("rank")
        psi = f.get("psi")
        return (float(rank) if is_number(rank) else math.inf, -float(psi) if is_number(psi) else 0.0,
                str(f.get("feature")))

    ranked = sorted(features, key=key)
    return ranked[:count] if count is not None else ranked


def drifted_count(drift: dict[str, Any] | None) -> int | None:
    if drift is None:
        return None
    value = drift.get("drifted")
    if isinstance(value, int):
        return value
    return sum(bool(f.get("drifted")) for f in drift_features(drift))


def drift_measure(feature: dict[str, Any]) -> tuple[str, Any, Any]:
    """(label, value, threshold) of the one number a drift bar shows: PSI when present (comparable across
    methods), else the method's statistic."""
    if is_number(feature.get("psi")):
        return "PSI", feature["psi"], feature.get("psi_threshold")
    return str(feature.get("method") or "statistic"), feature.get("statistic"), feature.get("threshold")
