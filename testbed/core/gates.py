"""Gates and the decision. Fail-closed: PASS only when every goal passes and no guardrail fails.

Each gate has a role (testbed.manifest Gate): a goal must pass for PASS (failed: FAIL; inconclusive:
INCONCLUSIVE); a guardrail blocks only on proven harm (failed: FAIL; inconclusive does not block); an advisory
row is computed and recorded but never changes the decision (`notes` lists it for the reader).

Each statistical gate row (one per gate and stratum) runs two one-sided tests at the gate's alpha, on the
BCa bootstrap of the row's statistic (testbed.core.stats / bootstrap):
- the pass test, H0 "not good enough": non_inferiority H0: delta <= -margin; superiority H0: delta <= margin;
  threshold H0: candidate mean <= bound. `p_value` is its p-value.
- the harm test, H0 "no harm beyond the limit": non_inferiority H0: delta >= -margin; superiority
  H0: delta >= 0 (the candidate is worse than control); threshold H0: candidate mean >= bound.
A relative margin tests the relative delta (delta / control mean) against the margin as a fraction.
Each family of tests (pass tests; harm tests) across all gates x strata is corrected for multiple testing
(Holm by default, or Bonferroni, or none): PASS when the adjusted pass p-value <= alpha, FAIL when the
adjusted harm p-value <= alpha, INCONCLUSIVE otherwise (the interval still holds both a harm beyond the
limit and its absence) or when the row has fewer than `min_users` users. `interval` is the interval the
decision used: the nulls the row's corrected pass and harm tests do not reject (testbed.core.inversion), so a
tested row passes iff it lies above the limit and fails iff it lies below the harm limit;
`interval_unadjusted` is the same for the uncorrected tests (the (1 - 2 alpha) BCa interval). Every row
reports the minimum detectable effect (distance from the limit detected with `power` at the corrected level)
and the users a rerun needs to be conclusive at the observed effect, said to be out of reach when more than
the stratum's eligible users in the lake.

Rows that are not statistical tests, compared on point values (p_value null): `coverage@k` (no per-user
values), latency (the candidate's p-th percentile request latency, with a distribution-free order-statistic
interval; an engineering bound in ms, gated only on timings the record trusts, those of a deployed Lambda
run: elsewhere the row is advisory, "not gated") and error_rate (share of failed requests, with a Wilson
interval). latency_ratio compares the candidate/control ratio of the p-th percentile of request timings
taken interleaved on the same requests (their scoring-thread CPU time where recorded: a ratio of costs
that a busy machine does not move, unlike wall-clock time), with a seeded paired percentile bootstrap (BCa's jackknife
acceleration does not suit a percentile); it is outside the multiple-testing family, like the other
engineering bounds. Two rows come from the run itself: "feature-parity" (stream vs batch features, when
features/parity.json exists) and "sample-ratio" (testbed.core.sample_ratio); a failed one blocks PASS.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from testbed.core.bootstrap import Replicates, bca_p_greater
from testbed.core.inversion import family_rejects, inverted_interval
from testbed.core.metrics import RatioMetric, metric_named
from testbed.core.sample_ratio import METHOD as SAMPLE_RATIO_METHOD
from testbed.core.sample_ratio import SampleRatio
from testbed.core.special import binom_cdf, norm_ppf
from testbed.core.stats import (
    Comparison,
    Correction,
    adjust_p_values,
    minimum_detectable_effect,
    per_test_alpha,
    percentile,
    required_users,
)
from testbed.manifest import Gate

Aggregates = dict[str, dict[str, dict[str, float]]]  # model -> stratum -> metric -> value
COMPARISON_KINDS = ("non_inferiority", "superiority")  # the kinds that test the paired delta
STATISTICAL_KINDS = (*COMPARISON_KINDS, "threshold")
MANIFEST_KINDS = (*STATISTICAL_KINDS, "latency", "latency_ratio", "error_rate")
GOAL, GUARDRAIL, ADVISORY = "goal", "guardrail", "advisory"
BOOTSTRAP_CHUNK = 250  # latency-ratio resamples drawn at once (bounds memory at 10,000 timed requests)
UNTRUSTED_TIMING = ("not gated: request timings are trusted only from a deployed (Lambda) run; use a "
                    "latency_ratio gate for runs elsewhere")


@dataclass(frozen=True)
class GateSettings:
    correction: Correction = "holm"
    power: float = 0.9
    resamples: int = 2000  # latency-ratio bootstrap
    seed: int = 0


@dataclass(frozen=True)
class GateInputs:
    comparisons: dict[str, Comparison]  # stratum -> paired evidence ("all" and every stratum)
    aggregates: Aggregates
    latency_ms: dict[str, np.ndarray]  # wall clock per timed request
    error_rate: dict[str, float]
    scored_users: dict[str, int] = field(default_factory=dict)
    strata: list[str] = field(default_factory=list)
    sample_ratio: SampleRatio | None = None
    parity: dict[str, Any] | None = None
    evaluated_users: int | None = None  # users with per-user metrics (a label in the label window)
    latency_trusted: bool = False  # timings from a deployed Lambda run: absolute ms bounds are gated
    latency_paired: bool = False  # control and candidate timed interleaved on the same requests, in order
    latency_cpu_ms: dict[str, np.ndarray] = field(default_factory=dict)  # the same requests' scoring CPU time
    eligible_users: dict[str, int] = field(default_factory=dict)  # stratum ("all" too) -> users the lake has
    unestimable: dict[str, str] = field(default_factory=dict)  # metric ("revenue") -> why no row can estimate it
    untimed: tuple[str, ...] = ()  # roles given as rankings files: no request of theirs was timed or counted


@dataclass(frozen=True)
class GateResult:
    name: str
    kind: str
    metric: str | None
    stratum: str
    observed: float | None
    interval: list[float] | None  # what the decision used: multiplicity-adjusted for a tested row
    threshold: float | None
    p_value: float | None  # unadjusted
    outcome: str  # pass | fail | inconclusive
    n: int | None
    reason: str
    relative: float | None = None
    statistic: float | None = None
    p_adjusted: float | None = None
    p_harm: float | None = None
    p_harm_adjusted: float | None = None
    alpha: float | None = None
    confidence: float | None = None
    scale: str | None = None  # absolute | relative (what observed, interval and threshold measure)
    mde: float | None = None
    required_n: int | None = None
    method: str = ""
    role: str = GOAL  # goal | guardrail | advisory: what the outcome does to the decision
    interval_unadjusted: list[float] | None = None  # the (1 - 2 alpha) interval of the uncorrected tests
    correction: str | None = None  # the correction behind p_adjusted, p_harm_adjusted and interval
    eligible_users: int | None = None  # the stratum's users in the lake: a rerun cannot sample more

    def as_dict(self) -> dict[str, object]:
        def clean(v: Any) -> Any:
            if isinstance(v, float) and not math.isfinite(v):
                return None
            return [clean(x) for x in v] if isinstance(v, list) else v

        return {k: clean(v) for k, v in asdict(self).items()}


def _fmt(value: float | None) -> str:
    return "n/a" if value is None or (isinstance(value, float) and not math.isfinite(value)) else f"{value:.4g}"


def _finite(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


@dataclass
class _Test:
    """One statistical row before the multiple-testing correction."""

    gate: Gate
    stratum: str
    scale: str
    label: str  # what is tested, e.g. "ndcg@10 delta"
    estimate: float
    std_error: float
    limit: float  # the pass test's null value
    harm_limit: float  # the harm test's null value
    p_pass: float
    p_harm: float
    n: int
    delta: float
    relative: float
    short: str | None = None  # set when the row cannot be tested (too few users)
    widening: float = 1.0  # the small-sample factor inside std_error (testbed.core.stats)
    column: Replicates | None = None  # the tested statistic's replicates (None: no evaluated users)


def _statistic(gate: Gate) -> tuple[str, str, str]:
    """(which statistic of a Comparison, scale, label) a gate tests."""
    assert gate.metric is not None
    if gate.kind == "threshold":
        return "candidate", "absolute", f"candidate {gate.metric}"
    if gate.margin_type == "relative":
        return "relative", "relative", f"{gate.metric} relative delta"
    return "delta", "absolute", f"{gate.metric} delta"


def _limits(gate: Gate) -> tuple[float, float]:
    """(pass-test null, harm-test null) on the row's scale."""
    if gate.kind == "threshold":
        assert gate.bound is not None
        return gate.bound, gate.bound
    assert gate.margin is not None
    if gate.kind == "non_inferiority":
        return -gate.margin, -gate.margin
    return gate.margin, 0.0


def _test(gate: Gate, stratum: str, cmp: Comparison | None, unestimable: str | None = None) -> _Test:
    assert gate.metric is not None
    limit, harm_limit = _limits(gate)
    if cmp is None or unestimable is not None:
        why_not = unestimable or f"no evaluated users (< min_users {gate.min_users})"
        return _Test(gate, stratum, "absolute", gate.metric, math.nan, math.nan, limit, harm_limit,
                     math.nan, math.nan, cmp.n if cmp is not None else 0, math.nan, math.nan, short=why_not)
    key, scale, label = _statistic(gate)
    rep: Replicates = getattr(cmp, key)
    j = cmp.column(gate.metric)
    column = Replicates(rep.estimate[j:j + 1], rep.boot[:, j:j + 1], rep.jack[:, j:j + 1])
    p_pass = float(bca_p_greater(column, limit)[0])
    p_harm = 1.0 - float(bca_p_greater(column, harm_limit)[0])
    short: str | None = f"only {cmp.n} users (< min_users {gate.min_users})" if cmp.n < gate.min_users else None
    if short is None and not math.isfinite(p_pass):
        short = _undefined_ratio(gate.metric, cmp) or f"{label} could not be estimated on {cmp.n} users"
    return _Test(gate, stratum, scale, label, float(column.estimate[0]), float(column.std_error[0]), limit,
                 harm_limit, p_pass, p_harm, cmp.n, float(cmp.delta.estimate[j]), float(cmp.relative.estimate[j]),
                 short, float(cmp.widening[key][j]), column)


def _why_unestimable(name: str, unestimable: dict[str, str]) -> str | None:
    """Why the slice cannot estimate metric `name` (None: it can); a ratio metric needs both of its parts."""
    metric = metric_named(name)
    k = name.partition("@")[2]
    for part in (metric, metric.numerator, metric.denominator) if isinstance(metric, RatioMetric) else (metric,):
        if part.name in unestimable:
            why = unestimable[part.name]
            return why if part is metric else f"{name} needs {part.name}@{k}: {why}"
    return None


def _undefined_ratio(name: str, cmp: Comparison) -> str | None:
    """Why a ratio metric (aov@K) has no test on this group: a model without a user in its denominator (no
    converting user), or resamples without one; None for other metrics."""
    metric = metric_named(name)
    if not isinstance(metric, RatioMetric):
        return None
    denominator = metric.denominator.at(int(name.partition("@")[2]))
    j = cmp.column(denominator)
    empty = [role for role in ("control", "candidate") if not getattr(cmp, role).estimate[j] > 0]
    if empty:
        return (f"{name} is undefined: the {' and the '.join(empty)} {'have' if len(empty) > 1 else 'has'} no "
                f"user with {denominator} > 0 among the {cmp.n} users of this group (a ratio per converting user "
                "needs one)")
    return (f"{name} could not be estimated: some bootstrap resamples of the {cmp.n} users hold no user with "
            f"{denominator} > 0 for a model (too few converting users)")


def _distance(t: _Test) -> float:
    """How far the estimate is from the limit it would be declared against (NaN: more users will not help)."""
    if t.gate.kind == "superiority" and t.harm_limit <= t.estimate <= t.limit:
        return math.nan
    nearest = t.harm_limit if t.gate.kind == "superiority" and t.estimate < t.harm_limit else t.limit
    return t.estimate - nearest


def _reach(need: int | None, eligible: int | None) -> str:
    """What the reason says about users a rerun needs: capped by the users the stratum has in the lake."""
    if need is None:
        return ""
    if eligible is not None and need > eligible:
        return f"; not reachable: only {eligible} eligible users (~{need} would be conclusive)"
    return f"; ~{need} users would be conclusive"


def _finish(t: _Test, adjusted: tuple[float, float], intervals: tuple[tuple[float, float], tuple[float, float]], *,
            family: int, settings: GateSettings, resamples: int, eligible: int | None) -> GateResult:
    p_adj, p_harm_adj = adjusted
    gate = t.gate
    level = per_test_alpha(gate.alpha, family, settings.correction)
    mde = minimum_detectable_effect(t.std_error, level, settings.power) if t.n >= 2 else math.nan
    # a rerun's larger sample needs (almost) no small-sample widening: project from the plain bootstrap SE
    distance = _distance(t)
    need = required_users(t.n, t.std_error / t.widening, distance, level, settings.power)
    need = None if need is None else max(need, gate.min_users)
    if t.short is not None:
        outcome = "inconclusive"
    elif p_adj <= gate.alpha:
        outcome = "pass"
    elif p_harm_adj <= gate.alpha:
        outcome = "fail"
    else:
        outcome = "inconclusive"
    (lo, hi), unadjusted = intervals
    conf = round(1 - 2 * gate.alpha, 6)
    what = "relative delta" if t.scale == "relative" else ("value" if gate.kind == "threshold" else "delta")
    tested = settings.correction != "none" and t.short is None
    adjusted_by = (f" ({settings.correction}-adjusted; unadjusted [{_fmt(unadjusted[0])}, {_fmt(unadjusted[1])}])"
                   if tested else " (unadjusted)")
    corr = f" ({settings.correction}-adjusted {_fmt(p_adj)})" if tested else ""
    corr_harm = f" ({settings.correction}-adjusted {_fmt(p_harm_adj)})" if tested else ""
    harm_limit = f", harm limit {_fmt(t.harm_limit)}" if t.harm_limit != t.limit else ""
    why = (f"{gate.metric} {what} {_fmt(t.estimate)}, {conf:.0%} CI [{_fmt(lo)}, {_fmt(hi)}]{adjusted_by}"
           f", limit {_fmt(t.limit)}{harm_limit}; unadjusted p {_fmt(t.p_pass)}{corr}, "
           f"harm p {_fmt(t.p_harm)}{corr_harm}; n {t.n}; MDE {_fmt(mde)}")
    if outcome == "inconclusive":
        why += _reach(need, eligible)
    if outcome == "inconclusive" and need is None and gate.kind == "superiority" and math.isnan(distance) \
            and t.n >= 2:
        why += "; the estimate lies between no harm and the required gain: more users will not pass it"
    if t.short is not None:
        why = f"{t.short}; {why}" if t.column is not None or t.n == 0 else t.short
    statistic = (t.estimate - t.limit) / t.std_error if t.std_error > 0 else math.nan
    return GateResult(
        gate.name, gate.kind, gate.metric, t.stratum, _finite(t.estimate), [lo, hi], t.limit,
        _finite(t.p_pass), outcome, t.n, why, relative=_finite(t.relative), statistic=_finite(statistic),
        p_adjusted=_finite(p_adj), p_harm=_finite(t.p_harm), p_harm_adjusted=_finite(p_harm_adj),
        alpha=gate.alpha, confidence=conf, scale=t.scale, mde=_finite(mde), required_n=need,
        method=f"{t.label}: BCa bootstrap ({resamples} resamples), one-sided tests at alpha {gate.alpha}, "
               f"{settings.correction} across gates x strata; interval: the nulls the "
               f"{'adjusted' if tested else 'unadjusted'} tests do not reject",
        interval_unadjusted=list(unadjusted), correction=settings.correction if t.short is None else None,
        eligible_users=eligible)


def _intervals(t: _Test, position: int | None, families: tuple[list[float], list[float]],
               correction: Correction) -> tuple[tuple[float, float], tuple[float, float]]:
    """(the interval the decision used, the unadjusted one): the nulls the row's corrected (uncorrected) pass
    and harm tests do not reject (testbed.core.inversion). A row outside the family shows the unadjusted one."""
    if t.column is None:
        return (math.nan, math.nan), (math.nan, math.nan)
    alpha = t.gate.alpha
    unadjusted = inverted_interval(t.column, lambda p: p <= alpha, lambda p: p <= alpha)
    if position is None or correction == "none":
        return unadjusted, unadjusted
    passes, harms = families
    return inverted_interval(t.column, family_rejects(passes, position, correction, alpha),
                             family_rejects(harms, position, correction, alpha)), unadjusted


def _point(gate: Gate, stratum: str, inputs: GateInputs) -> GateResult:
    """coverage@k has no per-user values: compared on its point values, pass or fail."""
    assert gate.metric is not None
    base = inputs.aggregates["control"].get(stratum, {}).get(gate.metric, math.nan)
    cand = inputs.aggregates["candidate"].get(stratum, {}).get(gate.metric, math.nan)
    if gate.kind == "threshold":
        assert gate.bound is not None
        observed, limit, scale, what = cand, gate.bound, "absolute", "candidate value"
    else:
        assert gate.margin is not None
        relative = gate.margin_type == "relative"
        observed = (cand - base) / base if relative and base else (cand - base if not relative else math.nan)
        limit = -gate.margin if gate.kind == "non_inferiority" else gate.margin
        scale, what = ("relative", "relative delta") if relative else ("absolute", "delta")
    passed = observed >= limit if gate.kind == "threshold" else observed > limit
    outcome = "pass" if passed else "fail"  # NaN compares False: fails closed
    rel = (cand - base) / base if base else math.nan
    return GateResult(gate.name, gate.kind, gate.metric, stratum, _finite(observed), None, limit, None, outcome,
                      None, f"{gate.metric} {what} {_fmt(observed)} vs limit {_fmt(limit)} (point values)",
                      relative=_finite(rel), statistic=_finite(observed), alpha=gate.alpha, scale=scale,
                      method="point values (no per-user values to resample)")


def quantile_interval(samples: np.ndarray, q: float, alpha: float) -> list[float] | None:
    """Distribution-free two-sided (1 - 2 alpha) interval for the q-quantile from order statistics."""
    x = np.sort(samples)
    n = x.size
    if n == 0:
        return None
    cdf = binom_cdf(np.arange(n + 1), n, q)  # P(Bin <= k)
    lower = np.flatnonzero(cdf <= alpha)  # X_(k+1) <= quantile with probability 1 - P(Bin <= k)
    upper = np.flatnonzero(cdf >= 1 - alpha)  # X_(k+1) >= quantile with probability P(Bin <= k)
    if not lower.size or not upper.size or upper[0] >= n:
        return None
    return [float(x[lower[-1]]), float(x[upper[0]])]


def wilson_interval(errors: int, n: int, alpha: float) -> list[float] | None:
    if n <= 0:
        return None
    z = norm_ppf(1 - alpha)
    p = errors / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return [max(0.0, centre - half), min(1.0, centre + half)]


def _not_measurable(gate: Gate, inputs: GateInputs, roles: tuple[str, ...], label: str) -> GateResult | None:
    """An inconclusive row, never a pass, when a model the gate times is a rankings file (None otherwise)."""
    untimed = [role for role in roles if role in inputs.untimed]
    if not untimed:
        return None
    role: str = ADVISORY if gate.kind == "latency" and not inputs.latency_trusted else gate.role
    what = "is a rankings file" if len(untimed) == 1 else "are rankings files"
    why = f"not measurable: {' and '.join(untimed)} {what} (precomputed lists: no request was timed or counted)"
    return GateResult(gate.name, gate.kind, label, "all", None, None, gate.bound, None, "inconclusive", None, why,
                      alpha=gate.alpha, confidence=round(1 - 2 * gate.alpha, 6), scale="absolute",
                      method="not measured", role=role)


def _safety(gate: Gate, inputs: GateInputs) -> GateResult:
    assert gate.bound is not None
    label = f"p{gate.percentile} latency ms" if gate.kind == "latency" else "error rate"
    if (unmeasured := _not_measurable(gate, inputs, ("candidate",), label)) is not None:
        return unmeasured
    if gate.kind == "latency":
        samples = inputs.latency_ms.get("candidate", np.empty(0))
        value = percentile(samples, gate.percentile)
        n: int | None = int(samples.size)
        interval = quantile_interval(samples, gate.percentile / 100, gate.alpha)
        method = "point estimate vs an engineering bound; order-statistic interval"
    else:
        value = inputs.error_rate.get("candidate", math.nan)
        n = inputs.scored_users.get("candidate")
        errors = round(value * n) if n and math.isfinite(value) else 0
        interval = wilson_interval(errors, n, gate.alpha) if n else None
        method = "point estimate vs an engineering bound; Wilson interval"
    outcome = "pass" if value <= gate.bound else "fail"  # NaN compares False: no data fails closed
    why = f"candidate {label} {_fmt(value)} vs maximum {_fmt(gate.bound)}"
    role: str = gate.role
    if gate.kind == "latency" and not inputs.latency_trusted:
        why, role = f"{UNTRUSTED_TIMING}; {why}", ADVISORY
    return GateResult(gate.name, gate.kind, label, "all", _finite(value), interval, gate.bound, None, outcome, n,
                      why, statistic=_finite(value), alpha=gate.alpha, confidence=round(1 - 2 * gate.alpha, 6),
                      scale="absolute", method=method, role=role)


def percentile_ratio_replicates(control: np.ndarray, candidate: np.ndarray, q: float, resamples: int,
                                rng: np.random.Generator) -> np.ndarray:
    """Paired bootstrap of percentile(candidate, q) / percentile(control, q): requests resampled together."""
    n = control.size
    out = []
    for start in range(0, resamples, BOOTSTRAP_CHUNK):
        idx = rng.integers(0, n, size=(min(BOOTSTRAP_CHUNK, resamples - start), n))
        out.append(np.percentile(candidate[idx], q, axis=1) / np.percentile(control[idx], q, axis=1))
    return np.concatenate(out) if out else np.empty(0)


def _latency_ratio(gate: Gate, inputs: GateInputs, settings: GateSettings) -> GateResult:
    """Pass when the ratio is below the bound at `alpha` (bootstrap share at or above it), fail when above. On
    the requests' CPU times where both models have them (a ratio of costs that load does not move), else on
    their wall-clock times."""
    assert gate.bound is not None
    cpu = inputs.latency_cpu_ms
    timings = cpu if len(cpu.get("control", ())) and len(cpu.get("candidate", ())) else inputs.latency_ms
    control = timings.get("control", np.empty(0))
    candidate = timings.get("candidate", np.empty(0))
    clock = "CPU time" if timings is cpu else "latency"
    label = f"p{gate.percentile} {clock} candidate/control"
    if (unmeasured := _not_measurable(gate, inputs, ("control", "candidate"), label)) is not None:
        return replace(unmeasured, scale="relative")
    conf = round(1 - 2 * gate.alpha, 6)
    method = (f"paired percentile bootstrap ({settings.resamples} resamples, seed {settings.seed}) over requests "
              f"timed interleaved ({'scoring-thread CPU time' if clock == 'CPU time' else 'wall clock'}); one-sided "
              "at alpha, outside the multiple-testing family")
    if not inputs.latency_paired or control.size != candidate.size or control.size < 2:
        return GateResult(gate.name, gate.kind, label, "all", None, None, gate.bound, None, "inconclusive",
                          int(min(control.size, candidate.size)), "no paired request timings (control and "
                          "candidate timed on the same requests): the ratio cannot be estimated",
                          alpha=gate.alpha, confidence=conf, scale="relative", method=method, role=gate.role)
    ratio = percentile(candidate, gate.percentile) / percentile(control, gate.percentile)
    boot = percentile_ratio_replicates(control, candidate, gate.percentile, settings.resamples,
                                       np.random.default_rng(settings.seed))
    lo, hi = (float(v) for v in np.quantile(boot, [gate.alpha, 1 - gate.alpha]))
    p_pass = float((np.sum(boot >= gate.bound) + 1) / (boot.size + 1))  # H0: ratio >= bound
    p_harm = float((np.sum(boot <= gate.bound) + 1) / (boot.size + 1))  # H0: ratio <= bound
    outcome = "pass" if p_pass <= gate.alpha else "fail" if p_harm <= gate.alpha else "inconclusive"
    why = (f"candidate/control p{gate.percentile} {clock} ratio {_fmt(ratio)}, {conf:.0%} CI [{_fmt(lo)}, "
           f"{_fmt(hi)}], maximum {_fmt(gate.bound)}; p {_fmt(p_pass)}, harm p {_fmt(p_harm)}; "
           f"n {control.size} paired requests")
    return GateResult(gate.name, gate.kind, label, "all", _finite(ratio), [lo, hi], gate.bound, p_pass, outcome,
                      int(control.size), why, statistic=_finite(ratio), p_harm=p_harm, alpha=gate.alpha,
                      confidence=conf, scale="relative", method=method, role=gate.role)


def parity_result(parity: dict[str, Any]) -> GateResult:
    mismatches = int(parity.get("mismatches", 0))
    features = parity.get("features_mismatched") or []
    why = (f"{mismatches} mismatching feature rows between stream ({parity.get('rows_stream')} rows) and batch "
           f"({parity.get('rows_batch')} rows)" + (f": {', '.join(map(str, list(features)[:5]))}" if features else ""))
    return GateResult("feature-parity", "parity", None, "all", float(mismatches), None, 0.0, None,
                      "pass" if mismatches == 0 else "fail", parity.get("rows_batch"), why,
                      statistic=float(mismatches), method="stream-built vs batch-built feature rows")


def sample_ratio_result(srm: SampleRatio) -> GateResult:
    worst = srm.worst()
    detail = ""
    if worst is not None and srm.strata[worst]["contribution"] > 0:
        row = srm.strata[worst]
        detail = f"; largest gap {worst}: {row['observed']} vs {_fmt(row['expected'])} expected"
    why = (f"users per stratum vs inclusion probabilities: chi2 {_fmt(srm.statistic)} on {srm.dof} dof, "
           f"p {_fmt(srm.p_value)} ({'>=' if srm.passed else '<'} {_fmt(srm.alpha)}){detail}")
    return GateResult("sample-ratio", "sample_ratio", None, "all", float(srm.observed), None, srm.alpha,
                      srm.p_value, "pass" if srm.passed else "fail", srm.observed, why,
                      statistic=_finite(srm.statistic), p_adjusted=srm.p_value, alpha=srm.alpha,
                      method=SAMPLE_RATIO_METHOD)


def _rows(gate: Gate, inputs: GateInputs) -> list[str]:
    return ["all"] + (inputs.strata if gate.scope == "per_stratum" else [])


def evaluate(gates: list[Gate], inputs: GateInputs, settings: GateSettings | None = None) -> list[GateResult]:
    """Every gate row, in manifest order ("all" first, then strata); parity and sample ratio come first."""
    settings = settings or GateSettings()
    slots: list[GateResult | _Test] = []
    for gate in gates:
        if gate.kind == "latency_ratio":
            slots.append(_latency_ratio(gate, inputs, settings))
            continue
        if gate.kind in ("latency", "error_rate"):
            slots.append(_safety(gate, inputs))
            continue
        for stratum in _rows(gate, inputs):
            if gate.metric is not None and not metric_named(gate.metric).paired:
                slots.append(replace(_point(gate, stratum, inputs), role=gate.role))
            else:
                assert gate.metric is not None
                slots.append(_test(gate, stratum, inputs.comparisons.get(stratum),
                                   _why_unestimable(gate.metric, inputs.unestimable)))
    tests = [s for s in slots if isinstance(s, _Test) and s.short is None]
    families = ([t.p_pass for t in tests], [t.p_harm for t in tests])
    position = {id(t): i for i, t in enumerate(tests)}
    adjusted = dict(zip(map(id, tests), zip(adjust_p_values(families[0], settings.correction),
                                            adjust_p_values(families[1], settings.correction),
                                            strict=True), strict=True))
    resamples = next(iter(inputs.comparisons.values())).resamples if inputs.comparisons else 0
    results: list[GateResult] = []
    if inputs.parity is not None:
        results.append(parity_result(inputs.parity))
    if inputs.sample_ratio is not None:
        results.append(sample_ratio_result(inputs.sample_ratio))
    for slot in slots:
        if isinstance(slot, GateResult):
            results.append(slot)
            continue
        intervals = _intervals(slot, position.get(id(slot)), families, settings.correction)
        results.append(replace(_finish(slot, adjusted.get(id(slot), (math.nan, math.nan)), intervals,
                                       family=len(tests), settings=settings, resamples=resamples,
                                       eligible=inputs.eligible_users.get(slot.stratum)), role=slot.gate.role))
    return results


def role_blocks(role: str, outcome: str) -> bool:
    """Whether a row's outcome holds PASS back: a goal that did not pass, a guardrail that failed."""
    if role == ADVISORY:
        return False
    return outcome == "fail" if role == GUARDRAIL else outcome != "pass"


def blocks(result: GateResult) -> bool:
    return role_blocks(result.role, result.outcome)


def notes(results: list[GateResult]) -> list[str]:
    """One line per row that did not pass but does not block: advisory rows and inconclusive guardrails."""
    out = []
    for r in results:
        if r.outcome == "pass" or blocks(r):
            continue
        effect = "never changes the decision" if r.role == ADVISORY else "blocks only on proven harm"
        out.append(f"{r.role} {r.name} [{r.stratum}] {r.outcome} ({r.role}: {effect}): {r.reason}")
    return out


def decide(results: list[GateResult], evaluated_users: int | None = None,
           blockers: Sequence[str] = ()) -> tuple[str, list[str]]:
    """(decision, one reason line per blocking row: a goal that did not pass, a guardrail that failed).
    Advisory rows never count (`notes` reports them). INCONCLUSIVE, never PASS, when no goal or guardrail was
    evaluated, when every such row saw nothing (n = 0), when no user was evaluated (`evaluated_users` 0: nobody
    in the slice has a label, so only safety gates could have passed) or when the run's data cannot be trusted
    (`blockers`, one reason line each). A failed goal or guardrail stays FAIL."""
    reasons = [f"{r.outcome.upper()} {r.name} [{r.stratum}]: {r.reason}" for r in results if blocks(r)]
    manifest_rows = [r for r in results if r.kind in MANIFEST_KINDS and r.role != ADVISORY]
    if not manifest_rows:
        advisory_only = any(r.kind in MANIFEST_KINDS for r in results)
        none = "no gates were evaluated" + (" but advisory ones, which never decide" if advisory_only else "")
        return "INCONCLUSIVE", [*reasons, none, *blockers]
    if any(r.outcome == "fail" for r in results if blocks(r)):
        return "FAIL", reasons
    if evaluated_users == 0:
        reasons.append("no user was evaluated: no sampled user has a label in [time.cutoff, time.end)")
    if all(r.n == 0 for r in manifest_rows):
        reasons.append("the gates tested nothing: every gate row has n = 0")
    reasons.extend(blockers)
    if reasons:
        return "INCONCLUSIVE", reasons
    return "PASS", []
