"""The worst cohorts of metrics.json (testbed.core.cohorts) in the reports: one line for report.md and the
console, a table and a forest plot for report.html, the block for `--json`."""

from __future__ import annotations

from typing import Any

from testbed.record.evaluation import CohortFinding, WorstCohorts
from testbed.report import charts, facts
from testbed.report.inputs import RunData

SHOWN_IN_SUMMARY = 3
PROVEN_HARM, PROVEN_GAIN, EXPLORATORY = "proven harm", "proven gain", "exploratory"
VERDICT_COLORS = {PROVEN_HARM: "#c53030", PROVEN_GAIN: "#2f855a", EXPLORATORY: "#718096"}
CHART = "forest-worst-cohorts"


def block(data: RunData) -> WorstCohorts | None:
    return data.metrics.cohorts if data.metrics is not None else None


def verdict(f: CohortFinding) -> str:
    if f.exploratory or f.delta is None:
        return EXPLORATORY
    return PROVEN_HARM if f.delta < 0 else PROVEN_GAIN


def _who(f: CohortFinding) -> str:
    return f"{f.family.replace('_', ' ')} {f.cohort} ({f.n} users)"


def summary(data: RunData) -> str | None:
    """"ndcg@10 falls most for tenure new (120 users): -0.0310, 95% corrected CI [...], proven harm; then ..." or,
    when no tested cohort loses on its estimate, the smallest change."""
    report = block(data)
    if report is None or not report.worst:
        return None
    first, rest = report.worst[0], report.worst[1:SHOWN_IN_SUMMARY]
    ci = facts.interval_at(first.interval_adjusted, report.confidence, sign=True).replace(" CI", " corrected CI")
    found = f"{facts.signed(first.delta)}, {ci}, {verdict(first)}"
    scope = f"{report.tested} cohorts of ≥ {report.min_users} users tested, {report.correction}-corrected"
    if first.delta is None or first.delta >= 0:
        return f"no tested cohort loses {report.metric}; the smallest change: {_who(first)} {found} ({scope})"
    then = "; then " + ", ".join(f"{_who(f)} {facts.signed(f.delta)}" for f in rest) if rest else ""
    return f"{report.metric} falls most for {_who(first)}: {found}{then} ({scope})"


def as_json(data: RunData) -> dict[str, Any] | None:
    """--json `cohorts`: the summary sentence and the worst SHOWN_IN_SUMMARY cohorts (all of them: metrics.json)."""
    report = block(data)
    if report is None:
        return None
    worst = [{"family": f.family, "cohort": f.cohort, "n": f.n, "delta": f.delta,
              "interval_adjusted": f.interval_adjusted, "p_adjusted": f.p_adjusted, "verdict": verdict(f)}
             for f in report.worst[:SHOWN_IN_SUMMARY]]
    return {"metric": report.metric, "summary": summary(data), "worst": worst}


def forest_panel(report: WorstCohorts) -> facts.ForestPanel:
    """The worst cohorts on one absolute scale, each with its corrected interval, coloured by verdict."""
    rows = [facts.ForestRow(f"{f.family.replace('_', ' ')}: {f.cohort} (n={f.n})", f.delta, *_ends(f), None,
                            verdict(f), "absolute", None) for f in report.worst]
    return facts.ForestPanel(report.metric, None, None, "absolute", rows)


def _ends(f: CohortFinding) -> tuple[float | None, float | None]:
    low, high = f.interval_adjusted
    return low, high


def chart(report: WorstCohorts) -> str:
    return charts.forest(forest_panel(report), CHART, f"{report.metric}: candidate − control, worst cohorts",
                         VERDICT_COLORS)


def table_rows(report: WorstCohorts) -> list[list[str]]:
    """One row per cohort: who, n, both means, delta, both intervals, both p-values, verdict."""
    return [[f"{f.family.replace('_', ' ')}: {f.cohort}", facts.num(f.n), facts.num(f.control),
             facts.num(f.candidate), facts.signed(f.delta), facts.interval(f.interval, sign=True),
             facts.interval(f.interval_adjusted, sign=True), facts.pvalue(f.p_value), facts.pvalue(f.p_adjusted),
             verdict(f)] for f in report.worst]
