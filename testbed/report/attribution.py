"""The reports' feature attribution (attribution.json; testbed.core.attribution defines every number): the
features that most explain the difference between the two models' rankings, with the model that relies more
on each, and each model's mean |TreeSHAP contribution| per feature. report.md gets one line, report.html a
section with two bar charts (inline SVG, drawn like testbed.report.charts), `--json` and `testbed compare` the
top features."""

from __future__ import annotations

import html
from typing import Any

import pygal

from testbed.record.attribution import AttributionDocument, FeatureDifference
from testbed.report import charts

TOP_LINE = 3  # features named in report.md and testbed compare
TOP_BARS = 10
DIRECTION_WORDS = {"candidate": "candidate relies more", "control": "candidate relies less",
                   "equal": "both alike"}


def _share(value: float) -> str:
    return f"{value * 100:.0f} %"


def _named(d: FeatureDifference) -> str:
    return f"{d.feature} ({_share(d.share)}, {DIRECTION_WORDS[d.direction]})"


def scope(doc: AttributionDocument) -> str:
    return f"TreeSHAP on {doc.users} sampled users, both models' top {doc.k}"


def sentence(doc: AttributionDocument, top: int = TOP_LINE) -> str:
    """Which features the two models' rankings differ most through, e.g. 'ui_events (31 %, candidate relies
    more), ...'; says so when no sampled user could be compared."""
    shown = [d for d in doc.difference if d.mean_abs_delta > 0][:top]
    if not doc.difference_rows or not shown:
        return f"no difference between the models' rankings to attribute ({scope(doc)})"
    return f"the rankings differ most through {', '.join(_named(d) for d in shown)} ({scope(doc)})"


def markdown_lines(doc: AttributionDocument | None) -> list[str]:
    """report.md's one headline bullet: the top features behind the difference."""
    return [] if doc is None else [f"- **Features behind the difference:** {sentence(doc)}."]


def _bars(doc: AttributionDocument) -> str:
    """The difference's shares, largest at the top; blue where the candidate relies more, grey where less."""
    shown = [d for d in doc.difference[:TOP_BARS] if d.mean_abs_delta > 0][::-1]  # pygal: first at the bottom
    chart = pygal.HorizontalBar(**charts._config([charts.CANDIDATE, charts.CONTROL], height=120 + 26 * len(shown),
                                                 value_formatter=lambda v: f"{v:.0f} %", print_values=True))
    chart.title = "what the rankings differ through: share of mean |Δ standardised contribution|"
    chart.x_labels = [d.feature for d in shown]
    chart.add("candidate relies more", [d.share * 100 if d.direction == "candidate" else None for d in shown])
    chart.add("candidate relies less", [None if d.direction == "candidate" else d.share * 100 for d in shown])
    return charts._svg(chart, "attribution-difference")


def _per_model(doc: AttributionDocument) -> str:
    """Each model's share of mean |contribution| for the features the difference ranks highest."""
    features = [d.feature for d in doc.difference[:TOP_BARS]][::-1]
    shares = {role: {f.feature: f.share * 100 for f in doc.models[role]} for role in ("control", "candidate")}
    chart = pygal.HorizontalBar(**charts._config([charts.CONTROL, charts.CANDIDATE], height=120 + 34 * len(features),
                                                 value_formatter=lambda v: f"{v:.0f} %"))
    chart.title = "each model's share of mean |contribution| (TreeSHAP)"
    chart.x_labels = features
    for role in ("control", "candidate"):
        chart.add(role, [shares[role].get(f, 0.0) for f in features])
    return charts._svg(chart, "attribution-models")


def _figure(name: str, svg: str, caption: str) -> str:
    return (f'<figure class="chart" data-chart="{charts.chart_id(name)}">{svg}'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def html_section(doc: AttributionDocument | None) -> str:
    head = '<h2 id="attribution">Feature attribution</h2>'
    if doc is None:
        return head + '<p class="note">No attribution in this run (evaluation.attribution_users 0, or an older ' \
                      "record).</p>"
    text = sentence(doc)
    out = head + f"<p>{html.escape(text[:1].upper() + text[1:])}.</p>"
    if doc.difference_rows:
        out += _figure("attribution-difference", _bars(doc),
                       "per feature, the mean over the sampled users' top-K items of |candidate's minus control's "
                       "contribution|, each standardised by the user's score spread under its model")
    out += _figure("attribution-models", _per_model(doc),
                   f"mean |contribution| over {doc.attributed_rows} top-K rows, as a share of the model's total")
    return out


def json_summary(doc: AttributionDocument | None) -> dict[str, Any] | None:
    """--json's `attribution`: the sample and the top features behind the difference."""
    if doc is None:
        return None
    return {"users": doc.users, "seed": doc.seed, "k": doc.k, "difference_rows": doc.difference_rows,
            "top": [{"feature": d.feature, "share": d.share, "direction": d.direction}
                    for d in doc.difference[:TOP_BARS]],
            "models": {role: [{"feature": f.feature, "share": f.share} for f in features[:TOP_BARS]]
                       for role, features in doc.models.items()}}


def compare_side(doc: AttributionDocument | None) -> list[dict[str, Any]] | None:
    """testbed compare's per-run top features behind the difference (None without attribution)."""
    return None if doc is None else [{"feature": d.feature, "share": d.share, "direction": d.direction}
                                     for d in doc.difference[:TOP_LINE]]


def compare_lines(a: list[dict[str, Any]] | None, b: list[dict[str, Any]] | None) -> list[str]:
    def side(top: list[dict[str, Any]] | None) -> str:
        if top is None:
            return "n/a"
        return ", ".join(f"{t['feature']} {_share(t['share'])}" for t in top) or "no difference"
    return ["", "features behind the difference", f"  A {side(a)}", f"  B {side(b)}"]
