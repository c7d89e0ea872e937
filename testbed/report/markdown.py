"""report.md: the compact summary for GitHub job summaries and PR comments.

Decision and reasons, the failed and inconclusive gates first (all gates when there are few), the largest
metric deltas, the most drifted features, one line each of slice and provenance, and a link to report.html.
It stays short (under 60 lines for the demo run) and is a pure function of the run data, so re-rendering a
record gives the same bytes.
"""

from __future__ import annotations

from testbed.report import facts
from testbed.report.inputs import RunData

ALL_GATES_UP_TO = 12  # more gates than this: list only the failed and inconclusive ones
TOP_DELTAS = 6
TOP_DRIFT = 5


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]


def _gates(data: RunData) -> list[str]:
    ordered = facts.ordered_gates(data.gates)
    if data.gates is None:
        return ["## Gates", "", "No gates.json in this run."]
    if not ordered:
        return ["## Gates", "", "The manifest has no gates."]
    shown = ordered if len(ordered) <= ALL_GATES_UP_TO else [g for g in ordered if g.get("outcome") != "pass"]
    rows = [[facts.gate_label(g), str(g.get("stratum", "all")), facts.num(g.get("observed")),
             facts.interval(g.get("interval")), facts.num(g.get("threshold")), facts.pvalue(facts.p_shown(g)),
             str(g.get("outcome"))] for g in shown]
    lines = ["## Gates", ""]
    lines += _table(["gate", "stratum", "observed", "interval", "threshold", "p-value", "outcome"], rows)
    hidden = len(ordered) - len(shown)
    if hidden:
        lines += ["", f"…and {hidden} passed gates (see report.html)."]
    return lines


def _deltas(data: RunData) -> list[str]:
    top = facts.top_deltas(data.metrics, TOP_DELTAS)
    if not top:
        return []
    method = (data.metrics or {}).get("interval")
    heading = f"## Top deltas (all users, K={data.k}" + (f"; {method})" if isinstance(method, str) else ")")
    rows = [[name, facts.num(d.get("control")), facts.num(d.get("candidate")), facts.signed(d.get("delta")),
             facts.percent(d.get("relative")), facts.interval(d.get("interval"), sign=True)] for name, d in top]
    coverage = facts.coverage_name(data.metrics)
    control = facts.model_value(data.metrics, "control", coverage or "")
    candidate = facts.model_value(data.metrics, "candidate", coverage or "")
    if coverage and facts.is_number(control) and facts.is_number(candidate):
        rows.append([coverage, facts.num(control), facts.num(candidate), facts.signed(candidate - control),
                     facts.percent((candidate - control) / control) if control else "n/a", "n/a"])
    return ["", heading, "", *_table(["metric", "control", "candidate", "delta", "relative", "interval"], rows)]


def _drift(data: RunData) -> list[str]:
    if data.drift is None:
        return ["", "## Drift", "", "No drift diagnostics in this run."]
    features = facts.drift_features(data.drift)
    drifted = facts.drifted_count(data.drift)
    baseline = (data.drift.get("baseline") or {}).get("kind")
    lines = ["", "## Drift", "", f"{drifted} of {len(features)} features drifted"
             + (f" (baseline: {baseline})." if baseline else ".")]
    if features:
        rows = []
        for f in features[:TOP_DRIFT]:
            label, value, threshold = facts.drift_measure(f)
            rows.append([str(f.get("feature")), str(f.get("method", "n/a")), facts.num(f.get("statistic")),
                         f"{label} {facts.num(value)} (limit {facts.num(threshold)})",
                         "yes" if f.get("drifted") else "no"])
        lines += ["", *_table(["feature", "method", "statistic", "shift", "drifted"], rows)]
    return lines


def _slice_and_provenance(data: RunData) -> list[str]:
    record, stats = data.record, data.stats or {}
    lines = []
    users = (record.get("slice") or {}).get("users", stats.get("users"))
    events = (record.get("slice") or {}).get("events", (stats.get("rows") or {}).get("events"))
    if users is not None:
        strata = len(stats.get("strata") or {})
        lines += ["", "## Slice and provenance", "",
                  f"- slice: {users} users, {events} events, {strata or 'no'} strata "
                  f"({stats.get('strategy', 'n/a')} sampling, seed {stats.get('seed', 'n/a')})"]
    else:
        lines += ["", "## Provenance", ""]
    if record.get("manifest_digest"):
        lines.append(f"- manifest `{str(record['manifest_digest'])[:16]}`, lake "
                     f"`{str(record.get('lake_fingerprint', 'n/a'))[:16]}`, code `{record.get('code_version')}`")
    models = record.get("models") or {}
    shas = [f"{role} `{str((models.get(role) or {}).get('sha256', 'n/a'))[:16]}`" for role in facts.model_roles(models)]
    if shas:
        lines.append("- models: " + ", ".join(shas))
    return lines


def render_markdown(data: RunData) -> str:
    lines = [f"# Testbed run `{data.run_id}`: **{data.decision}**", ""]
    total = sum(facts.gate_counts(data.gates).values())
    if data.reasons:
        lines += [f"- {reason}" for reason in data.reasons]
    elif data.gates is not None and total:
        lines.append(f"All {total} gates passed.")
    if data.decision == "ERROR":
        step = data.record.get("failed_step")
        lines += ["", f"The run stopped in step `{step}`; there are no gates or metrics." if step else
                  "The run stopped with an error; there are no gates or metrics."]
        return "\n".join(lines) + "\n"
    lines += ["", *_gates(data), *_deltas(data), *_drift(data), *_slice_and_provenance(data)]
    lines += ["", "Charts, every gate and the full provenance: [report.html](report.html)"]
    return "\n".join(lines) + "\n"
