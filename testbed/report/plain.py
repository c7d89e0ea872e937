"""Each gate's numbers with their units, one plain sentence per gate, and the headline: the words every view of a
run (report.md, report.html, the console, `--json`) shows a reader who is not a statistician.

A gate row's figures measure different things by kind: an absolute or a relative delta, the candidate's value,
milliseconds, a latency ratio, an error rate, feature rows or users. `unit_of` names it once per row and every
number of the row (observed, interval ends, limit) is printed in it, so a relative delta never reads as an
absolute one. The full statistics (p-values before and after correction, MDE, users needed, method) stay in
gates.json and in the reports' details table; the sentence says what happened and against which limit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from testbed.core.cohorts import primary_metric
from testbed.core.gates import ADVISORY, COMPARISON_KINDS, GOAL, GUARDRAIL, UNTRUSTED_TIMING, role_blocks
from testbed.record.base import ERROR, FAIL, OUTCOME_FAIL, OUTCOME_INCONCLUSIVE, OUTCOME_PASS, PASS
from testbed.record.gates import GateRow
from testbed.report import facts
from testbed.report.inputs import RunData

Unit = Literal["abs_delta", "rel_delta", "value", "ms", "ratio", "rate", "rows", "users"]
UNIT_LABELS: dict[Unit, str] = {"abs_delta": "absolute Δ", "rel_delta": "relative Δ", "value": "candidate value",
                                "ms": "ms", "ratio": "candidate/control", "rate": "error rate",
                                "rows": "mismatching rows", "users": "users"}
ADJUSTING = ("holm", "bonferroni")  # corrections that change p-values and intervals


# ---------------------------------------------------------------- units

def unit_of(gate: GateRow) -> Unit:
    """What the row's observed value, interval and threshold measure."""
    if gate.kind in COMPARISON_KINDS:
        return "rel_delta" if gate.scale == "relative" else "abs_delta"
    return {"threshold": "value", "latency": "ms", "latency_ratio": "ratio", "error_rate": "rate",
            "parity": "rows", "sample_ratio": "users"}[gate.kind]  # type: ignore[return-value]


def short(value: float, sign: bool = False) -> str:
    """A figure for a sentence: 3 decimals, 2 significant digits when smaller than 0.01."""
    size = abs(value)
    text = f"{value:.2g}" if 0 < size < 0.01 else f"{value:.0f}" if size >= 1000 else f"{value:.3f}"
    return f"+{text}" if sign and value >= 0 else text


def quantity(unit: Unit, value: float | None, sign: bool = False, digits: int = 4) -> str:
    """One number in its unit: `-0.0907`, `-16.7%`, `1.60 ms`, `1.66×`, `0.10%`, `3 rows`, `1225 users`."""
    if not facts.is_number(value):
        return "n/a"
    if unit == "rel_delta":
        return f"{value * 100:+.1f}%" if sign else f"{value * 100:.1f}%"
    if unit == "rate":
        return f"{value * 100:.2f}%"
    if unit == "ms":
        return f"{value:.2f} ms"
    if unit == "ratio":
        return f"{value:.2f}×"
    if unit in ("rows", "users"):
        return f"{int(value)} {unit}"
    return facts.signed(value, digits) if sign else facts.num(value, digits)


def observed_text(gate: GateRow) -> str:
    """The observed value with its unit and kind, e.g. `-0.0907 absolute Δ` or `1.60 ms (p95)`."""
    unit = unit_of(gate)
    text = quantity(unit, gate.observed, sign=unit in ("abs_delta", "rel_delta"))
    if text == "n/a":
        return text
    if unit in ("abs_delta", "rel_delta", "value"):
        return f"{text} {UNIT_LABELS[unit]}"
    if unit == "ratio":
        return f"{text} {UNIT_LABELS[unit]}"
    return text


def limit_text(gate: GateRow) -> str:
    """What the row had to satisfy, in the same unit: `≥ -0.0100`, `≥ -5.0%`, `≤ 50.00 ms`, `p ≥ 0.001`."""
    unit = unit_of(gate)
    if gate.kind == "sample_ratio":
        return f"p ≥ {facts.num(gate.threshold)}" if facts.is_number(gate.threshold) else "n/a"
    if gate.kind == "parity":
        return "0 rows"
    bound = quantity(unit, gate.threshold, sign=unit in ("abs_delta", "rel_delta"))
    if bound == "n/a":
        return bound
    upper = gate.kind in ("latency", "latency_ratio", "error_rate")
    return f"{'≤' if upper else '≥'} {bound}"


def interval_text(gate: GateRow) -> str:
    """`90% CI [-0.1004, -0.0813]` in the row's unit; n/a without an interval."""
    if gate.interval is None or len(gate.interval) != 2 or not all(facts.is_number(v) for v in gate.interval):
        return "n/a"
    unit = unit_of(gate)
    sign = unit in ("abs_delta", "rel_delta")
    low, high = (quantity(unit, v, sign=sign) for v in gate.interval)
    shown = facts.level(gate.confidence)
    adjusted = f", {gate.correction}-adjusted" if gate.correction in ADJUSTING else ""
    return (f"{shown} CI " if shown else "") + f"[{low}, {high}]{adjusted}"


def ci_name(gate: GateRow) -> str:
    """`90% CI`, `90% holm-adjusted CI` (the interval the decision used), or `interval` without a level."""
    shown = facts.level(gate.confidence)
    adjusted = f"{gate.correction}-adjusted " if gate.correction in ADJUSTING else ""
    return f"{shown} {adjusted}CI" if shown else "interval"


def unreachable(gate: GateRow) -> bool:
    """The users a rerun would need exceed the users the stratum has in the lake."""
    return gate.required_n is not None and gate.eligible_users is not None and gate.required_n > gate.eligible_users


# ---------------------------------------------------------------- sentences

def _amount(unit: Unit, value: float) -> str:
    """A magnitude in a sentence: `0.091`, `16.7%`."""
    return f"{abs(value) * 100:.1f}%" if unit == "rel_delta" else short(abs(value))


def _signed(unit: Unit, value: float) -> str:
    """A signed change in a sentence: `-0.004`, `+1.2%`."""
    return f"{value * 100:+.1f}%" if unit == "rel_delta" else short(value, sign=True)


def _ci(gate: GateRow, unit: Unit, magnitude: bool) -> str:
    """`(90% CI 0.081–0.100)`: as magnitudes when the sentence says "fell by"/"rose by" and the whole interval
    lies on that side of zero, else signed."""
    if gate.interval is None or not all(facts.is_number(v) for v in gate.interval):
        return ""
    low, high = (float(v) for v in gate.interval)  # type: ignore[arg-type]
    shown = ci_name(gate)
    if magnitude and (low > 0) == (high > 0) and low != 0 and high != 0:
        a, b = sorted((abs(low), abs(high)))
        return f" ({shown} {_amount(unit, a)}–{_amount(unit, b)})"
    if unit == "rel_delta":
        return f" ({shown} {low * 100:+.1f}% to {high * 100:+.1f}%)"
    if unit == "value":
        return f" ({shown} {short(low)}–{short(high)})"
    return f" ({shown} {short(low, True)} to {short(high, True)})"


def _who(gate: GateRow) -> str:
    return "all users" if gate.stratum == "all" else gate.stratum


def _more_users(gate: GateRow) -> str:
    if gate.required_n is None or gate.n is None or gate.required_n <= gate.n:
        return ""
    if unreachable(gate):
        return f"; not reachable: only {gate.eligible_users} eligible users"
    return f"; about {gate.required_n} users would settle it"


def _comparison(gate: GateRow) -> str:
    unit = unit_of(gate)
    metric, who, delta = gate.metric, _who(gate), gate.observed
    if not facts.is_number(delta) or not facts.is_number(gate.threshold):
        return f"{metric} could not be compared for {who}: {gate.reason}."
    margin = _amount(unit, gate.threshold)
    moved = f"{metric} {'rose' if delta > 0 else 'fell'} by {_amount(unit, delta)} for {who}" if delta else \
        f"{metric} did not change for {who}"
    ci = _ci(gate, unit, magnitude=bool(delta))
    point = " (point values)" if gate.interval is None else ""
    if gate.kind == "non_inferiority":
        if gate.outcome == OUTCOME_FAIL:
            return f"{moved}{ci}{point}, more than the allowed {margin}."
        if gate.outcome == OUTCOME_PASS:
            return f"{moved}{ci}{point}; a fall of up to {margin} is allowed."
        return (f"{metric} changed by {_signed(unit, delta)} for {who}{_ci(gate, unit, False)}: not "
                f"enough evidence that it did not fall by more than the allowed {margin}{_more_users(gate)}.")
    if gate.outcome == OUTCOME_PASS:
        return f"{moved}{ci}{point}, more than the required gain of {margin}."
    if gate.outcome == OUTCOME_FAIL:
        return f"{moved}{ci}{point}: the candidate is worse, not the required gain of {margin}."
    return (f"{metric} changed by {_signed(unit, delta)} for {who}{_ci(gate, unit, False)}: not shown "
            f"to reach the required gain of {margin}{_more_users(gate)}.")


def _threshold(gate: GateRow) -> str:
    value, bound = gate.observed, gate.threshold
    if not facts.is_number(value) or not facts.is_number(bound):
        return f"the candidate's {gate.metric} could not be estimated for {_who(gate)}: {gate.reason}."
    head = f"the candidate's {gate.metric} is {short(value)} for {_who(gate)}{_ci(gate, 'value', False)}"
    if gate.outcome == OUTCOME_PASS:
        return f"{head}, above the floor of {short(bound)}."
    if gate.outcome == OUTCOME_FAIL:
        return f"{head}, below the floor of {short(bound)}."
    return f"{head}: not shown to be above the floor of {short(bound)}{_more_users(gate)}."


def _engineering(gate: GateRow) -> str:
    unit = unit_of(gate)
    value, bound = quantity(unit, gate.observed), quantity(unit, gate.threshold)
    low_high = gate.interval if gate.interval is not None and all(facts.is_number(v) for v in gate.interval) else None
    shown = f"{facts.level(gate.confidence)} CI" if facts.level(gate.confidence) else "interval"
    ci = f" ({shown} {quantity(unit, low_high[0])}–{quantity(unit, low_high[1])})" if low_high else ""
    if gate.observed is None:
        return f"{gate.reason}."
    if gate.kind == "latency":
        what = f"the candidate's {gate.metric.split(' ')[0] if gate.metric else ''} latency is {value}{ci}"
    elif gate.kind == "latency_ratio":  # metric: "p95 CPU time candidate/control" (or "p95 latency ...")
        measure = (gate.metric or "latency").removesuffix(" candidate/control")
        what = f"the candidate's {measure} is {value} the control's{ci}"
    else:
        what = f"{value} of the candidate's scoring requests failed{ci}"
    verdict = {OUTCOME_PASS: f"within the limit of {bound}", OUTCOME_FAIL: f"over the limit of {bound}",
               OUTCOME_INCONCLUSIVE: f"not shown to be within the limit of {bound}"}[gate.outcome]
    tail = "; not gated here: timings count only from a deployed run" if gate.reason.startswith(UNTRUSTED_TIMING) \
        else ""
    return f"{what}, {verdict}{tail}."


def _run_check(gate: GateRow) -> str:
    if gate.kind == "parity":
        if gate.outcome == OUTCOME_PASS:
            rows = f" on all {gate.n} rows" if gate.n is not None else ""
            return f"the stream-built and batch-built features match{rows}."
        return f"{quantity('rows', gate.observed)} of features differ between the stream and batch paths."
    p = facts.pvalue(gate.p_value)
    if gate.outcome == OUTCOME_PASS:
        return f"the slice's {quantity('users', gate.observed)} match the sampling plan per stratum (p {p})."
    return (f"the slice's users per stratum do not match the sampling plan (p {p}, below the alpha "
            f"{facts.num(gate.threshold)}): the sample is biased.")


SENTENCES: dict[str, Callable[[GateRow], str]] = {
    "non_inferiority": _comparison, "superiority": _comparison, "threshold": _threshold,
    "latency": _engineering, "latency_ratio": _engineering, "error_rate": _engineering,
    "parity": _run_check, "sample_ratio": _run_check}


def sentence(gate: GateRow, with_evidence: bool = False) -> str:
    """One plain sentence: what changed, by how much, against which limit, e.g. "ndcg@10 fell by 0.091 for all
    users (90% CI 0.081–0.100), more than the allowed 0.010." With `with_evidence`, the deciding p-value goes
    before the full stop ("…, more than the allowed 0.010 (harm p <0.0001).")."""
    text = SENTENCES[gate.kind](gate).rstrip(".")
    if text.startswith("the "):  # a metric name keeps its case (ndcg@10, not Ndcg@10)
        text = "T" + text[1:]
    shown = evidence(gate) if with_evidence else ""
    return text + (f" ({shown})" if shown else "") + "."


def evidence(gate: GateRow) -> str:
    """The p-value that decided the row, named: `harm p <0.0001` for a failed one; empty without a test."""
    text = facts.p_text(gate)
    return "" if text == "n/a" else text


def reason_line(gate: GateRow) -> str:
    """`FAIL ndcg-not-worse: <sentence, with its p-value>`: a row as the reasons list shows it (the sentence
    names the stratum)."""
    return f"{gate.outcome.upper()} {gate.name}: {sentence(gate, with_evidence=True)}"


# ---------------------------------------------------------------- headline

@dataclass(frozen=True)
class Headline:
    """The top of every view: the decision, why in one line, the primary metric's change, the guardrails and
    what the user does next."""

    decision: str
    why: str
    primary: str | None
    guardrails: str
    next_step: str

    def lines(self) -> list[tuple[str, str]]:
        rows = [("why", self.why)]
        if self.primary:
            rows.append(("primary", self.primary))
        return [*rows, *([("guardrails", self.guardrails)] if self.guardrails else []), ("next", self.next_step)]


def blocking(data: RunData) -> list[GateRow]:
    """The rows that held PASS back (a goal that did not pass, a guardrail that failed), failed first."""
    return [g for g in facts.ordered_gates(data.gates) if role_blocks(g.role, g.outcome)]


def reason_lines(data: RunData) -> list[str]:
    """What held PASS back, one line each: a plain sentence per blocking row, then the decision's reasons that no
    row states (no user evaluated, untrusted data). testbed.core.gates.decide lists the blocking rows' reasons
    first, so the others are those after them. An ERROR run's reasons are its error, as recorded."""
    if data.decision == ERROR:
        return list(data.reasons)
    rows = blocking(data)
    return [reason_line(g) for g in rows] + data.reasons[len(rows):]


def _names(rows: list[GateRow]) -> str:
    """`ndcg@10 (all users and 3 strata), recall@10`: the blocking rows grouped by what they measure."""
    groups: dict[str, list[str]] = {}
    for g in rows:
        groups.setdefault(g.metric or g.name, []).append(g.stratum)
    parts = []
    for name, strata in groups.items():
        others = [s for s in strata if s != "all"]
        if not others:
            parts.append(name)
            continue
        where = (["all users"] if "all" in strata else []) + (
            [f"{len(others)} strata"] if len(others) > 1 else others)
        parts.append(f"{name} ({' and '.join(where)})")
    return ", ".join(parts)


def _why(data: RunData, rows: list[GateRow]) -> str:
    decision, gates = data.decision, facts.gate_rows(data.gates)
    if decision == ERROR:
        step = data.failed_step
        return f"the run stopped{f' in step {step}' if step else ''} with an error (below); no gate was decided"
    if decision == PASS:
        goals = [g for g in gates if g.role == GOAL]
        guarded = any(g.role == GUARDRAIL for g in gates)
        return f"all {len(goals)} goal gates passed" + (" and no guardrail found harm" if guarded else "")
    failed = [g for g in rows if g.outcome == OUTCOME_FAIL]
    if decision == FAIL and failed:
        return f"{len(failed)} gate{'s' if len(failed) > 1 else ''} failed on proven harm: {_names(failed)}"
    if rows:
        return f"{len(rows)} goal{'s' if len(rows) > 1 else ''} could not be decided: {_names(rows)}"
    return data.reasons[0] if data.reasons else "no gates decided this run"


def _primary(data: RunData) -> str | None:
    """The first goal comparison's metric (nDCG@K without one): control → candidate, delta, relative change and
    metrics.json's interval with its level."""
    metric = primary_metric(facts.gate_rows(data.gates), data.k) if data.k else None
    found = facts.deltas(data.metrics).get(metric or "")
    if metric is None or found is None:
        return None
    ci = facts.interval_at(found.interval, data.metric_confidence, sign=True)
    return (f"{metric} {facts.num(found.control)} → {facts.num(found.candidate)}: {facts.signed(found.delta)} "
            f"({facts.percent(found.relative)}), {ci}")


def _guardrails(data: RunData) -> str:
    rows = [g for g in facts.gate_rows(data.gates) if g.role == GUARDRAIL]
    advisory = [g for g in facts.gate_rows(data.gates) if g.role == ADVISORY]
    tail = f"; {len(advisory)} advisory gate{'s' if len(advisory) > 1 else ''} reported only" if advisory else ""
    if not rows:
        return "none declared (every gate is a goal)" + tail
    held = [g.name for g in rows if g.outcome == OUTCOME_PASS]
    failed = [g.name for g in rows if g.outcome == OUTCOME_FAIL]
    unsure = [g.name for g in rows if g.outcome == OUTCOME_INCONCLUSIVE]
    parts = ([f"{', '.join(held)} held"] if held else []) + ([f"{', '.join(failed)} FAILED"] if failed else []) \
        + ([f"{', '.join(unsure)} inconclusive (does not block: a guardrail blocks only on proven harm)"]
           if unsure else [])
    return "; ".join(parts) + tail


def _next(data: RunData, rows: list[GateRow]) -> str:
    decision = data.decision
    if decision == PASS:
        return "promote the candidate, or start its live canary; cite this run id as the evidence"
    if decision == FAIL:
        return "do not promote; report.html shows the per-stratum deltas and drift behind each failed gate"
    if decision == ERROR:
        return "fix the error and rerun; no decision was made"
    short = [g for g in rows if g.required_n is not None and g.n is not None and g.required_n > g.n]
    needed = [g.required_n for g in short if g.required_n is not None and not unreachable(g)]
    if needed:
        return (f"rerun with more users (about {max(needed)}: raise sampling.rate or widen the time window) "
                "before deciding")
    if short:
        capped = min(short, key=lambda g: g.eligible_users or 0)
        return (f"more users of this lake cannot settle it ({_who(capped)} has only {capped.eligible_users} "
                "eligible users): widen the time window or revisit the gate's margin and min_users")
    return "resolve the reasons below and rerun; do not promote on this run"


def headline(data: RunData) -> Headline:
    rows = blocking(data)
    guardrails = "" if data.decision == ERROR else _guardrails(data)
    return Headline(str(data.decision), _why(data, rows), _primary(data), guardrails, _next(data, rows))
