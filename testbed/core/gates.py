"""Gates and the decision. Fail-closed: PASS only when every gate passes.

Comparative gates (non_inferiority, superiority) read the paired per-user deltas of one metric:
- non_inferiority with margin m: pass if the (1 - 2·alpha) interval's lower end is above -m (one-sided test at
  alpha), fail if its upper end is below -m (a harm beyond the margin with confidence), else inconclusive.
- superiority with margin m: pass if the lower end is above m, fail if the upper end is below 0, else
  inconclusive.
A relative margin is multiplied by the control mean. `coverage@k` has no per-user values, so it is compared
on its point values. threshold: the candidate's value must reach `bound`. latency / error_rate: the
candidate's p-th percentile request latency (ms) / share of failed requests must not exceed `bound`.
Fewer than `min_users` users → inconclusive.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from testbed.core.stats import one_sided_p, paired_delta, percentile
from testbed.manifest import Gate

Pairs = dict[str, dict[str, tuple[np.ndarray, np.ndarray]]]  # stratum -> metric -> (control, candidate)
Aggregates = dict[str, dict[str, dict[str, float]]]  # model -> stratum -> metric -> value


def pair_by_stratum(per_user: pa.Table, strata: Mapping[str, str], metric_names: list[str]) -> Pairs:
    """(control, candidate) per-user values of each metric, for "all" and each stratum, aligned by user.

    `per_user` has one row per (model, user_id), sorted; `strata` maps user_id to its stratum (empty: "all" only).
    """
    by_model = {m: per_user.filter(pc.equal(per_user.column("model"), m)) for m in ("control", "candidate")}
    users = by_model["control"].column("user_id").to_numpy(zero_copy_only=False)
    if not np.array_equal(users, by_model["candidate"].column("user_id").to_numpy(zero_copy_only=False)):
        raise ValueError("control and candidate were evaluated on different users")
    labels = np.array([strata.get(u, "all") for u in users])
    masks = {"all": np.ones(len(users), bool)}
    masks.update({s: labels == s for s in sorted(set(strata.values()) - {"all"})})
    columns = {m: {name: table.column(name).to_numpy() for name in metric_names} for m, table in by_model.items()}
    return {stratum: {name: (columns["control"][name][mask], columns["candidate"][name][mask])
                      for name in metric_names} for stratum, mask in masks.items()}


@dataclass(frozen=True)
class GateInputs:
    pairs: Pairs
    aggregates: Aggregates
    latency_ms: dict[str, np.ndarray]
    error_rate: dict[str, float]
    strata: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class GateResult:
    name: str
    kind: str
    metric: str | None
    stratum: str
    observed: float | None
    interval: list[float] | None
    threshold: float | None
    p_value: float | None
    outcome: str  # pass | fail | inconclusive
    n: int | None
    reason: str

    def as_dict(self) -> dict[str, object]:
        return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in asdict(self).items()}


def _fmt(value: float | None) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.4g}"


def _comparative(gate: Gate, stratum: str, inputs: GateInputs) -> GateResult:
    assert gate.metric is not None and gate.margin is not None
    metric, name = gate.metric, gate.name
    base = inputs.aggregates["control"].get(stratum, {}).get(metric, math.nan)
    margin = gate.margin * abs(base) if gate.margin_type == "relative" else gate.margin
    if metric.startswith("coverage@"):
        cand = inputs.aggregates["candidate"].get(stratum, {}).get(metric, math.nan)
        delta = cand - base
        limit = -margin if gate.kind == "non_inferiority" else margin
        outcome = "pass" if delta > limit else "fail"
        return GateResult(name, gate.kind, metric, stratum, delta, None, limit, None, outcome, None,
                          f"{metric} delta {_fmt(delta)} vs limit {_fmt(limit)} (point values)")
    control, candidate = inputs.pairs.get(stratum, {}).get(metric, (np.empty(0), np.empty(0)))
    est = paired_delta(control, candidate, alpha=2 * gate.alpha)
    lo, hi = est.interval
    if gate.kind == "non_inferiority":
        limit, p = -margin, one_sided_p(est, -margin, "greater")
        outcome = "pass" if lo > limit else "fail" if hi < limit else "inconclusive"
    else:
        limit, p = margin, one_sided_p(est, margin, "greater")
        outcome = "pass" if lo > limit else "fail" if hi < 0 else "inconclusive"
    why = f"delta {_fmt(est.delta)} [{_fmt(lo)}, {_fmt(hi)}] vs limit {_fmt(limit)}, n={est.n}"
    if est.n < gate.min_users:
        outcome, why = "inconclusive", f"only {est.n} users (< min_users {gate.min_users}); {why}"
    return GateResult(name, gate.kind, metric, stratum, est.delta, [lo, hi], limit, p, outcome, est.n, why)


def _threshold(gate: Gate, stratum: str, inputs: GateInputs) -> GateResult:
    assert gate.metric is not None and gate.bound is not None
    value = inputs.aggregates["candidate"].get(stratum, {}).get(gate.metric, math.nan)
    outcome = "pass" if value >= gate.bound else "fail"
    return GateResult(gate.name, gate.kind, gate.metric, stratum, value, None, gate.bound, None, outcome, None,
                      f"candidate {gate.metric} {_fmt(value)} vs minimum {_fmt(gate.bound)}")


def _safety(gate: Gate, inputs: GateInputs) -> GateResult:
    assert gate.bound is not None
    if gate.kind == "latency":
        samples = inputs.latency_ms.get("candidate", np.empty(0))
        value, label = percentile(samples, gate.percentile), f"p{gate.percentile} latency ms"
        n: int | None = int(samples.size)
    else:
        value, label, n = inputs.error_rate.get("candidate", math.nan), "error rate", None
    outcome = "pass" if value <= gate.bound else "fail"  # NaN compares False: no data fails closed
    return GateResult(gate.name, gate.kind, label, "all", value, None, gate.bound, None, outcome, n,
                      f"candidate {label} {_fmt(value)} vs maximum {_fmt(gate.bound)}")


def evaluate(gates: list[Gate], inputs: GateInputs) -> list[GateResult]:
    results: list[GateResult] = []
    for gate in gates:
        if gate.kind in ("latency", "error_rate"):
            results.append(_safety(gate, inputs))
            continue
        strata = ["all"] + (inputs.strata if gate.scope == "per_stratum" else [])
        for stratum in strata:
            run = _threshold if gate.kind == "threshold" else _comparative
            results.append(run(gate, stratum, inputs))
    return results


def decide(results: list[GateResult]) -> tuple[str, list[str]]:
    """(decision, one reason line per failed or inconclusive gate); no gates at all is INCONCLUSIVE."""
    reasons = [f"{r.outcome.upper()} {r.name} [{r.stratum}]: {r.reason}" for r in results if r.outcome != "pass"]
    if not results:
        return "INCONCLUSIVE", ["no gates were evaluated"]
    if any(r.outcome == "fail" for r in results):
        return "FAIL", reasons
    if any(r.outcome == "inconclusive" for r in results):
        return "INCONCLUSIVE", reasons
    return "PASS", []
