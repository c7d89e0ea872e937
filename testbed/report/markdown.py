"""report.md: the compact summary for GitHub job summaries and PR comments.

Decision and headline (why, primary metric, guardrails, next step; then the worst cohorts, the features behind
the difference, how much the lists change and what the candidate stages let a ranker reach, a line each), one
plain sentence per gate that held PASS back, warnings (also a retraining line per gate whose seed variants' deltas
could change it), the gates that did not pass but did not count (advisory gates, inconclusive guardrails), the
failed and inconclusive gates first (all gates when there are few, every number in its unit), the largest metric
deltas (with their seed-to-seed spread when the run has seed variants), the most drifted features (only the
largest shift when none drifted), one line each of slice and provenance, and a link to report.html. It stays short
(within 60 lines for the demo run, also with its models swapped) and is a pure function of the run data, so
re-rendering a record gives the same bytes.
"""

from __future__ import annotations

from testbed.record.base import ERROR, OUTCOME_PASS
from testbed.report import attribution, candidate_stage, cohorts, facts, plain
from testbed.report import list_change as list_change_report
from testbed.report.inputs import RunData

ALL_GATES_UP_TO = 12  # more gates than this: list only the failed and inconclusive ones
TOP_DELTAS = 5
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
    shown = ordered if len(ordered) <= ALL_GATES_UP_TO else [g for g in ordered if g.outcome != OUTCOME_PASS]
    rows = [[facts.gate_label(g), facts.role_label(g), g.stratum, plain.observed_text(g), plain.interval_text(g),
             plain.limit_text(g), plain.evidence(g) or "n/a", g.outcome] for g in shown]
    lines = ["## Gates", ""]
    lines += _table(["gate", "role", "stratum", "observed", "interval", "allowed", "evidence", "outcome"], rows)
    hidden = len(ordered) - len(shown)
    if hidden:
        lines += ["", f"…and {hidden} passed gates (see report.html)."]
    return [*lines, "", facts.interval_scope(data.metrics)]


def _with_retrains(interval: str, retrains: str | None) -> str:
    return f"{interval}; {retrains}" if retrains else interval


def _deltas(data: RunData) -> list[str]:
    top = facts.top_deltas(data.metrics, TOP_DELTAS)
    if not top or data.metrics is None:
        return []
    heading = f"## Top deltas (all users, K={data.k}; {data.metrics.interval})"
    rows = [[facts.metric_label(name), facts.num(d.control), facts.num(d.candidate), facts.signed(d.delta),
             facts.percent(d.relative),
             _with_retrains(facts.interval_at(d.interval, data.metric_confidence, sign=True),
                            facts.retrain_text(facts.retrain_spread(data.metrics, name)))] for name, d in top]
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
    lines = ["", "## Drift", "", f"{facts.drifted_count(data.drift)} of {len(features)} features drifted "
             f"(baseline: {data.drift.baseline.kind})."]
    if features and not facts.drifted_count(data.drift):  # nothing drifted: the largest shift is enough
        label, value, threshold = facts.drift_measure(features[0])
        lines[-1] = lines[-1][:-1] + (f"; the largest shift: {features[0].feature}, {label} {facts.num(value)} "
                                      f"(limit {facts.num(threshold)}).")
    elif features:
        rows = []
        for f in features[:TOP_DRIFT]:
            label, value, threshold = facts.drift_measure(f)
            rows.append([f"{f.feature} ({f.definition})" if f.definition else f.feature, f.method,
                         facts.num(f.statistic),
                         f"{label} {facts.num(value)} (limit {facts.num(threshold)})", "yes" if f.drifted else "no"])
        lines += ["", *_table(["feature", "method", "statistic", "shift", "drifted"], rows)]
    return lines


def _slice_and_provenance(data: RunData) -> list[str]:
    record, stats = data.completed, data.stats
    lines = []
    users = record.slice.users if record is not None else stats.users if stats is not None else None
    events = record.slice.events if record is not None else stats.rows.events if stats is not None else None
    if users is not None:
        sampling = f"{stats.strategy} sampling, seed {stats.seed}" if stats is not None else "n/a sampling, seed n/a"
        lines += ["", "## Slice and provenance", "",
                  f"- slice: {users} users, {events} events, {(len(stats.strata) if stats else 0) or 'no'} strata "
                  f"({sampling})"]
    else:
        lines += ["", "## Provenance", ""]
    if record is not None:
        lines.append(f"- manifest `{record.manifest_digest[:16]}`, lake `{record.lake_fingerprint[:16]}`, code "
                     f"`{record.code_version}`")
        shas = [f"{role} `{record.models[role].sha256[:16]}`" for role in facts.model_roles(record.models)]
        if shas:
            lines.append("- models: " + ", ".join(shas))
        sets = [f"{role} {len(m.feature_names or [])} of `{m.feature_set.name}` `{m.feature_set.digest[:16]}`"
                for role, m in ((r, record.models[r]) for r in facts.model_roles(record.models))
                if m.feature_set is not None]
        if sets:
            lines.append("- features: " + ", ".join(sets))
        lines += [f"- {role}: {text}" for role, text in facts.rankings_files(record.models, data.metrics).items()]
        lines += [f"- {role}: {text}" for role, text in candidate_stage.tables(record.models).items()]
    return lines


def _headline(data: RunData) -> list[str]:
    """The headline, then one plain sentence per row that held PASS back and the reasons no row states, then
    warnings and the rows that did not count."""
    lines = [f"- **{label.capitalize()}:** {text}" for label, text in plain.headline(data).lines()]
    worst = cohorts.summary(data)
    lines += [f"- **Cohorts:** {worst}"] if worst else []
    lines += attribution.markdown_lines(data.attribution) + list_change_report.markdown_lines(data.metrics)
    lines += candidate_stage.markdown_lines(data.metrics)
    reasons = plain.reason_lines(data)
    notes = [f"**Warning:** {warning}" for warning in data.warnings]
    notes += [f"**Retraining:** {line}" for line in facts.retrain_warnings(data.metrics, data.gates)]
    notes += [f"**Did not count**, {facts.role_label(g)}: {plain.reason_line(g)}"
              for g in facts.non_blocking(data.gates)]
    listed = reasons + notes
    return lines + ([""] + [f"- {line}" for line in listed] if listed else [])


def render_markdown(data: RunData) -> str:
    lines = [f"# Testbed run `{data.run_id}`: **{data.decision}**", "", *_headline(data)]
    if data.decision == ERROR:
        return "\n".join(lines) + "\n"
    lines += ["", *_gates(data), *_deltas(data), *_drift(data), *_slice_and_provenance(data)]
    lines += ["", "Charts, every gate and the full provenance: [report.html](report.html)"]
    return "\n".join(lines) + "\n"
