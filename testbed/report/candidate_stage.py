"""The candidate stage's ceiling, for the reports: one sentence per model (report.md, report.html) and a table per
stratum (report.html), from metrics.json's candidate_recall@N and candidate_hit_rate@N (testbed.core.metrics); and
the provenance line of a model's own candidates table (run.json models.<role>.candidates)."""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import Any

from testbed.core.metrics import CANDIDATE_HIT_RATE, CANDIDATE_RECALL
from testbed.record.base import MetricValues
from testbed.record.evaluation import MetricsDocument
from testbed.report import facts
from testbed.report.inputs import RunData

NOT_APPLICABLE = "not applicable (a rankings file has no candidate stage)"


def _named(values: MetricValues, name: str) -> tuple[str, float] | None:
    """(column, value) of the metric `name` at whatever N the run used; None when the group has none."""
    for key, value in values.items():
        if key.partition("@")[0] == name and facts.is_number(value):
            return key, value
    return None


def measured(metrics: MetricsDocument | None) -> bool:
    """Whether the run measured any model's candidate stage (records from before it was measured: no)."""
    return metrics is not None and any(_named(groups.get("all", {}), CANDIDATE_RECALL.name)
                                       for groups in metrics.models.values())


def _percent(share: float) -> str:
    return f"{share:.1%}"


def sentences(metrics: MetricsDocument | None) -> dict[str, str]:
    """Per model, what its candidates let a ranker reach for all users ("not applicable" for a rankings file)."""
    if metrics is None or not measured(metrics):
        return {}
    out = {}
    for role in facts.model_roles(metrics.models):
        everyone = metrics.models[role].get("all", {})
        recall, hit_rate = _named(everyone, CANDIDATE_RECALL.name), _named(everyone, CANDIDATE_HIT_RATE.name)
        if recall is None or hit_rate is None:
            out[role] = f"{CANDIDATE_RECALL.name} {NOT_APPLICABLE}"
            continue
        out[role] = (f"the ranker can reach at most {_percent(recall[1])} of what users went on to buy or engage "
                     f"with ({recall[0]} = {facts.num(recall[1])}); {_percent(1 - hit_rate[1])} of users have no "
                     f"label item among their candidates ({hit_rate[0]} = {facts.num(hit_rate[1])})")
    return out


def tables(models: Mapping[str, Any]) -> dict[str, str]:
    """Per model scored on its own candidates table: one sentence naming it (the others use the built-in stage)."""
    out = {}
    for role in facts.model_roles(models):
        table = getattr(models[role], "candidates", None)
        if table is not None:
            out[role] = (f"its own candidates table {table.uri} (SHA-256 {table.sha256[:16]}…, {table.rows} rows for "
                         f"{table.users} users) instead of the built-in candidate stage")
    return out


def markdown_lines(metrics: MetricsDocument | None) -> list[str]:
    said = sentences(metrics)
    if not said:
        return []
    if len(said) > 1 and len(set(said.values())) == 1:  # one stage for both: say it once
        return [f"- **Candidate stage:** both models: {next(iter(said.values()))}."]
    return ["- **Candidate stage:** " + "; ".join(f"{role}: {text}" for role, text in said.items()) + "."]


def html_section(data: RunData) -> str:
    head = '<h2 id="candidate-stage">Candidate stage</h2>'
    metrics = data.metrics
    if metrics is None or not measured(metrics):
        return head + '<p class="note">No candidate-stage recall in metrics.json.</p>'
    said = "".join(f"<li>{html.escape(role)}: {html.escape(text)}.</li>" for role, text in sentences(metrics).items())
    rows = []
    for role in facts.model_roles(metrics.models):
        for stratum, values in metrics.models[role].items():
            recall, hit_rate = _named(values, CANDIDATE_RECALL.name), _named(values, CANDIDATE_HIT_RATE.name)
            cells = ([_percent(recall[1]), _percent(1 - hit_rate[1])] if recall is not None and hit_rate is not None
                     else ["not applicable", "not applicable"])
            rows.append(f"<tr><td>{html.escape(role)}</td><td>{html.escape(stratum)}</td>"
                        + "".join(f'<td class="n">{html.escape(c)}</td>' for c in cells)
                        + f'<td class="n">{html.escape(facts.num(values.get("users")))}</td></tr>')
    table = ("<table><thead><tr><th>model</th><th>stratum</th><th>label items among the candidates</th>"
             "<th>users with none</th><th>users</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>")
    note = ('<p class="note">The candidates are every item a model scored for the user (at most '
            "evaluation.candidates_per_user); no ordering of them reaches more. Users with no label item are "
            "left out, as for every metric.</p>")
    return f"{head}<ul>{said}</ul>{note}{table}"
