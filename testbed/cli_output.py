"""What the CLI prints when a run ends: the machine-readable result (`--json`, schemas/run-result.schema.json),
the short aligned summary for people, and the one-line error with a hint of what to do next.

The summary and the JSON come from the same dictionary, so they cannot disagree.
"""

from __future__ import annotations

from typing import Any

from testbed.adapters.storage import Storage
from testbed.cli_support import EXIT_CODES
from testbed.core.gates import role_blocks
from testbed.errors import ERRORS_BY_NAME, TestbedError
from testbed.record.base import ERROR, OUTCOME_PASS, Decision
from testbed.record.drift import DriftDocument
from testbed.record.evaluation import MetricDelta
from testbed.record.gates import GateRow
from testbed.record.layout import HTML_REPORT, MARKDOWN_REPORT, RunLayout
from testbed.report import attribution, cohorts, facts, plain
from testbed.report import list_change as list_change_report
from testbed.report.inputs import RunData, load_run

RESULT_VERSION = 1
TOP_DRIFT = 5
SHOWN_FAILED = 5

INTERNAL_HINT = "rerun with `--debug` before the command for the traceback, and report it if it persists"


def hint_for(error: BaseException) -> str:
    """What to do next: the error's own hint; for a failed workflow, the hint the type the failing step raised
    (the CLI records it as `workflow_error`) defines itself, which is more specific than that of the
    InputError/RunFailedError carrying it."""
    raised = ERRORS_BY_NAME.get(str(getattr(error, "workflow_error", None)))
    if raised is not None and "hint" in vars(raised):
        return raised.hint
    return error.hint if isinstance(error, TestbedError) else INTERNAL_HINT


def one_line(text: str) -> str:
    lines = [line.strip() for line in str(text).strip().splitlines() if line.strip()]
    return lines[0] if lines else ""


def error_line(error: BaseException, internal: bool = False) -> str:
    """`testbed: error: <what> (next: <hint>)`, always one line."""
    message = one_line(str(error))
    if internal:
        message = f"internal error: {type(error).__name__}" + (f": {message}" if message else "")
    return f"testbed: error: {message} (next: {hint_for(error)})"


def error_result(error: BaseException, exit_code: int, command: str) -> dict[str, Any]:
    """The --json document of a command that ended in an error."""
    return {"version": RESULT_VERSION, "command": command, "mode": None, "run_id": None,
            "decision": ERROR if exit_code == EXIT_CODES[ERROR] and type(error).__name__ == "RunFailedError"
            else None, "exit_code": exit_code, "existing": False, "status": "ERROR", "execution_arn": None,
            "record": None, "reports": {"markdown": None, "html": None}, "reasons": [], "headline": None, "gates": [],
            "gate_counts": {}, "metrics": [], "drift": None, "cohorts": None, "step_seconds": {},
            "error": {"type": getattr(error, "workflow_error", None) or type(error).__name__,
                      "message": one_line(str(error)), "hint": hint_for(error)}}


def number(value: Any) -> float | None:
    return float(value) if facts.is_number(value) else None


def _interval(value: list[float | None] | None) -> list[float | None] | None:
    return [number(v) for v in value] if value is not None and len(value) == 2 else None


def _gate(g: GateRow) -> dict[str, Any]:
    return {"name": g.name, "kind": g.kind, "role": g.role, "metric": g.metric, "stratum": g.stratum,
            "outcome": g.outcome,
            "observed": number(g.observed), "threshold": number(g.threshold), "interval": _interval(g.interval),
            "confidence": number(g.confidence), "p_value": number(facts.p_shown(g)),
            "p_test": ("harm" if facts.shows_harm_p(g) else "pass") if facts.is_number(facts.p_shown(g)) else None,
            "p_adjustment": facts.p_adjustment(g) if facts.is_number(facts.p_shown(g)) else None,
            "unit": plain.unit_of(g), "summary": plain.sentence(g, with_evidence=True)}


def _headline(data: RunData) -> dict[str, Any]:
    top = plain.headline(data)
    return {"why": top.why, "primary": top.primary, "guardrails": top.guardrails, "next": top.next_step,
            "reasons": plain.reason_lines(data)}


def _metric(name: str, d: MetricDelta, confidence: float | None) -> dict[str, Any]:
    return {"metric": name, "control": number(d.control), "candidate": number(d.candidate),
            "delta": number(d.delta), "relative": number(d.relative), "interval": _interval(d.interval),
            "confidence": number(confidence)}


def _drift(drift: DriftDocument) -> dict[str, Any]:
    return {"drifted": facts.drifted_count(drift), "features": len(facts.drift_features(drift)),
            "top": [{"feature": f.feature, "method": f.method, "psi": number(f.psi), "drifted": f.drifted}
                    for f in facts.drift_features(drift, TOP_DRIFT)]}


def run_result(storage: Storage, command: str, mode: str, run_uri: str | None, *, decision: Decision | None,
               run_id: str | None = None, existing: bool = False, status: str = "SUCCEEDED",
               execution_arn: str | None = None) -> dict[str, Any]:
    """The result of `testbed run`/`demo` as data: the decision, the gates (failed first), the metric deltas
    of all users (largest first), drift, timings and where the record and reports are."""
    result: dict[str, Any] = {
        "version": RESULT_VERSION, "command": command, "mode": mode, "run_id": run_id, "decision": decision,
        "exit_code": EXIT_CODES[decision] if decision else 0, "existing": existing, "status": status,
        "execution_arn": execution_arn, "record": run_uri, "reports": {"markdown": None, "html": None},
        "reasons": [], "headline": None, "gates": [], "gate_counts": {}, "metrics": [], "drift": None,
        "cohorts": None, "step_seconds": {}, "error": None, "attribution": None}
    if run_uri is None:
        return result
    try:
        data = load_run(storage, run_uri, derived=False)
    except Exception:  # a deployed run's record may be unreadable with the caller's credentials
        return result
    result["run_id"] = run_id or (data.record.run_id if data.record is not None else None)
    result["reasons"] = data.reasons
    result["headline"] = _headline(data)
    result["gates"] = [_gate(g) for g in facts.ordered_gates(data.gates)]
    result["gate_counts"] = facts.gate_counts(data.gates) if data.gates is not None else {}
    result["metrics"] = [_metric(n, d, data.metric_confidence) for n, d in facts.top_deltas(data.metrics)]
    result["drift"] = _drift(data.drift) if data.drift is not None else None
    result["cohorts"] = cohorts.as_json(data)
    result["attribution"] = attribution.json_summary(data.attribution)
    result["list_change"] = list_change_report.as_json(data.metrics)
    seconds = data.completed.step_seconds if data.completed is not None else {}
    result["step_seconds"] = {k: float(v) for k, v in seconds.items() if facts.is_number(v)}
    layout = RunLayout.at(run_uri)
    for key, name in (("markdown", MARKDOWN_REPORT), ("html", HTML_REPORT)):
        uri = layout.report(name)
        result["reports"][key] = uri if storage.exists(uri) else None
    return result


def summary_lines(result: dict[str, Any]) -> list[str]:
    """The end-of-run table: decision and gate counts, the reasons (the first SHOWN_FAILED, then how many more),
    the gates that did not count (advisory, inconclusive guardrails) with their role, the metric deltas with their
    intervals' confidence level, drift, and where the record and both reports are. Labels are padded to one
    column."""
    rows: list[tuple[str, str]] = []
    decision = str(result.get("decision") or result.get("status"))
    counts = result.get("gate_counts") or {}
    rows.append(("decision", decision + (" (existing record, not rerun)" if result.get("existing") else "")
                 + (f"  [{facts.counts_text(counts)}]" if counts else "")))
    headline = result.get("headline")
    if headline:
        rows += [(label, headline[key]) for label, key in (("why", "why"), ("primary", "primary"),
                                                            ("guardrails", "guardrails"), ("next", "next"))
                 if headline.get(key)]
    reasons = headline["reasons"] if headline else result.get("reasons") or []
    rows += [("reason", reason) for reason in reasons[:SHOWN_FAILED]]
    if len(reasons) > SHOWN_FAILED:
        rows.append(("reason", f"+{len(reasons) - SHOWN_FAILED} more (all in report.md and --json)"))
    rows += [("not counted", f"{facts.ROLE_LABELS[g['role']]}: {g['outcome'].upper()} {g['name']}: {g['summary']}")
             for g in result.get("gates") or []
             if g["outcome"] != OUTCOME_PASS and not role_blocks(g["role"], g["outcome"])]
    lines = [f"{label:<12}{value}" for label, value in rows]
    metrics = result.get("metrics") or []
    if metrics:
        labels = [facts.metric_label(m["metric"]) for m in metrics]
        width = max(12, *(len(label) for label in labels)) + 2
        shown = facts.level(metrics[0].get("confidence"))  # one level for every metric interval of a run
        lines.append(f"{'metric':<{width}}{'control':>10}{'candidate':>11}{'delta':>10}  "
                     + (f"{shown} CI" if shown else "interval"))
        for label, m in zip(labels, metrics, strict=True):
            lo, hi = m["interval"] or (None, None)
            lines.append(f"{label:<{width}}{facts.num(m['control']):>10}{facts.num(m['candidate']):>11}"
                         f"{facts.signed(m['delta']):>10}  [{facts.signed(lo)}, {facts.signed(hi)}]")
    tail: list[tuple[str, str]] = []
    if result.get("list_change"):
        tail.append(("lists", result["list_change"]["summary"]))
    drift = result.get("drift")
    if drift is not None:
        top = ", ".join(f["feature"] for f in drift["top"] if f["drifted"])
        tail.append(("drift", f"{drift['drifted']} of {drift['features']} features drifted"
                     + (f": {top}" if top else "")))
    elif result.get("record") and result.get("decision") != ERROR:
        tail.append(("drift", "no drift diagnostics in this run"))
    if (result.get("cohorts") or {}).get("summary"):
        tail.append(("cohorts", result["cohorts"]["summary"]))
    if result.get("execution_arn"):
        tail.append(("execution", str(result["execution_arn"])))
    if result.get("record"):
        tail.append(("record", str(result["record"])))
    for key, name in (("markdown", "report.md"), ("html", "report.html")):
        if (result.get("reports") or {}).get(key):
            tail.append((name, str(result["reports"][key])))
    return lines + [f"{label:<12}{value}" for label, value in tail]
