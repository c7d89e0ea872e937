"""How much the candidate changes the lists, for the reports: one sentence (report.md, report.html, the console,
--json, testbed compare) and the Jaccard histogram (report.html), from metrics.json's `list_change`."""

from __future__ import annotations

import html
from typing import Any

import pygal

from testbed.record.evaluation import ListChange, MetricsDocument
from testbed.report import charts
from testbed.report.inputs import RunData


def _block(metrics: MetricsDocument | None) -> ListChange | None:
    return metrics.list_change if metrics is not None else None


def _percent(share: float) -> str:
    return f"{share:.0%}".replace("%", " %")


def sentence(metrics: MetricsDocument | None) -> str | None:
    """"The candidate changes 64 % of top-10 slots; 12 % of users get entirely new lists (...)." for all users."""
    block = _block(metrics)
    everyone = block.strata.get("all") if block is not None else None
    if block is None or everyone is None:
        return None
    return (f"The candidate changes {_percent(everyone.changed_slot_share)} of top-{block.k} slots; "
            f"{_percent(everyone.new_list_share)} of users get entirely new lists (mean Jaccard "
            f"{everyone.mean_jaccard:.2f}, RBO {everyone.mean_rbo:.2f} at p = {block.rbo_persistence:g}, "
            f"{everyone.users} users).")


def as_json(metrics: MetricsDocument | None) -> dict[str, Any] | None:
    """--json's and testbed compare's `list_change`: the sentence and its numbers for all users."""
    block = _block(metrics)
    text = sentence(metrics)
    if block is None or text is None:
        return None
    everyone = block.strata["all"]
    return {"k": block.k, "users": everyone.users, "changed_slot_share": everyone.changed_slot_share,
            "new_list_share": everyone.new_list_share, "mean_jaccard": everyone.mean_jaccard,
            "mean_rbo": everyone.mean_rbo, "summary": text}


def markdown_lines(metrics: MetricsDocument | None) -> list[str]:
    text = sentence(metrics)
    return [f"- **List changes:** {text}"] if text else []


def histogram(block: ListChange) -> str:
    """Users per Jaccard@K bin (all users), the share of users whose top K keeps that much of the control's."""
    edges = block.jaccard_edges
    counts = block.strata["all"].jaccard_counts
    total = sum(counts)
    chart = pygal.Bar(**charts._config([charts.CANDIDATE], height=260, show_legend=False,
                                       value_formatter=lambda v: f"{v:.1f}%"))
    chart.title = f"users per Jaccard@{block.k} of the candidate's and the control's top {block.k}"
    chart.x_labels = [f"{a:.1f}–{b:.1f}" for a, b in zip(edges[:-1], edges[1:], strict=True)]
    chart.add("users", [100.0 * c / total if total else 0.0 for c in counts])
    return charts._svg(chart, "list-change")


def html_section(data: RunData) -> str:
    block, text = _block(data.metrics), sentence(data.metrics)
    head = '<h2 id="list-change">List changes</h2>'
    if block is None or text is None:
        return head + '<p class="note">No list changes in metrics.json.</p>'
    rows = "".join(f"<tr><td>{html.escape(label)}</td><td class=\"n\">{s.users}</td>"
                   f"<td class=\"n\">{_percent(s.changed_slot_share)}</td><td class=\"n\">{_percent(s.new_list_share)}"
                   f"</td><td class=\"n\">{s.mean_jaccard:.3f}</td><td class=\"n\">{s.mean_rbo:.3f}</td></tr>"
                   for label, s in block.strata.items())
    table = ("<table><thead><tr><th>stratum</th><th>users</th><th>slots changed</th><th>entirely new lists</th>"
             f"<th>mean Jaccard</th><th>mean RBO</th></tr></thead><tbody>{rows}</tbody></table>")
    figure = (f'<figure class="chart" data-chart="list-change">{histogram(block)}<figcaption>Jaccard 1: the same '
              f"items, perhaps reordered (RBO shows the order); 0: an entirely new list</figcaption></figure>")
    return f"{head}<p>{html.escape(text)}</p>{figure}{table}"
