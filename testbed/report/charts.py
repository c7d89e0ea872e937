"""The report's charts as static SVG strings, drawn with pygal (pure Python, ~1.3 MiB installed with its
dependencies, no native code), so the record Lambda can draw them next to the data layer.

pygal's SVG carries its CSS inline. Its JavaScript (tooltips) would load from the network, so `js=[]` turns it
off and `_svg` also drops the inline config script and the dated generator comment: the charts have no script,
no external reference, and the same data always gives the same bytes.
"""

from __future__ import annotations

import re
from typing import Any

import pygal
from pygal.style import Style

from testbed.core.metrics import COVERAGE
from testbed.record.base import OUTCOME_FAIL, OUTCOME_INCONCLUSIVE, OUTCOME_PASS
from testbed.record.drift import DailySeries, DriftFeature
from testbed.record.evaluation import MetricsDocument
from testbed.report import facts

CONTROL, CANDIDATE = "#718096", "#2b6cb0"
OUTCOME_COLORS = {OUTCOME_FAIL: "#c53030", OUTCOME_INCONCLUSIVE: "#b7791f", OUTCOME_PASS: "#2f855a",
                  facts.NOT_GATED: "#4a5568"}
MARGIN, ZERO = "#c53030", "#1a202c"
FONT = "-apple-system, 'Segoe UI', Roboto, 'Liberation Sans', Arial, sans-serif"
WIDTH = 760
LEGEND_COLUMNS, LEGEND_FONT = 4, 12
_SCRIPT = re.compile(r"<script\b[^>]*>.*?</script>", re.S)
_COMMENT = re.compile(r"<!--.*?-->", re.S)


def _style(colors: list[str]) -> Style:
    return Style(background="white", plot_background="white", foreground="#1a202c", foreground_strong="#1a202c",
                 foreground_subtle="#a0aec0", font_family=FONT, title_font_size=15, label_font_size=11,
                 major_label_font_size=11, legend_font_size=LEGEND_FONT, value_font_size=10, tooltip_font_size=11,
                 colors=tuple(colors) or ("#2b6cb0",), opacity="0.85", opacity_hover="0.95")


def _config(colors: list[str], **options: Any) -> dict[str, Any]:
    base = {"js": [], "style": _style(colors), "width": WIDTH, "height": 300, "explicit_size": True,
            "legend_at_bottom": True, "truncate_legend": -1, "truncate_label": -1,
            "margin": 12, "disable_xml_declaration": True}
    return {**base, **options}


def chart_id(name: str) -> str:
    return re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-") or "chart"


def _legend_room(chart: Any) -> None:
    """pygal reserves `series // columns` legend rows below the plot, one short of what it draws when the
    division is not exact (the last row was clipped): add the missing rows to the bottom margin."""
    config = chart.config
    count = len(getattr(chart, "raw_series", []))
    if not count or not config.legend_at_bottom or not config.show_legend:
        return
    columns = min(count, LEGEND_COLUMNS)
    rows, reserved = -(-count // columns), count // columns
    config.legend_at_bottom_columns = columns
    config.margin_bottom = config.margin + (rows - reserved) * 1.5 * LEGEND_FONT + 6


def _svg(chart: Any, name: str, thick_series: tuple[int, ...] = ()) -> str:
    """The chart's SVG without scripts or comments; `thick_series` get 4 px lines (pygal's own per-series
    stroke width loses to its base CSS)."""
    chart.uuid = chart_id(name)  # CSS scope `#chart-<name>`; pygal would use a random uuid
    _legend_room(chart)
    if thick_series:
        rules = "".join(f"#chart-{chart.uuid} .series.serie-{i} .line{{stroke-width:4px}}" for i in thick_series)
        chart.config.css = [*chart.config.css, f"inline:{rules}"]
    text = chart.render(is_unicode=True)
    return _COMMENT.sub("", _SCRIPT.sub("", text))


# ---------------------------------------------------------------- gates

def forest(panel: facts.ForestPanel, name: str | None = None, title: str | None = None,
           colors_by_outcome: dict[str, str] | None = None) -> str:
    """Per-stratum delta (dot) and interval (line) of one metric on the panel's one scale (absolute, or relative
    in % of control; the x-axis title says which), coloured by gate outcome, each interval series labelled with
    its confidence level; each gated row's margin is a dashed red tick at its threshold, and a black line marks
    no change."""
    rows = [r for r in panel.rows if r.delta is not None][::-1]  # pygal's y grows upwards: first row on top
    palette = colors_by_outcome or OUTCOME_COLORS
    relative = panel.scale == "relative"
    scale = 100.0 if relative else 1.0  # a relative panel is drawn in percent

    def text(value: float | None) -> str:
        return f"{value * 100:+.1f}%" if relative and value is not None else facts.signed(value)

    colors: list[str] = []
    series: list[tuple[str, list[Any], dict[str, Any]]] = []
    groups = sorted({(r.outcome, r.confidence) for r in rows},
                    key=lambda g: (facts.OUTCOME_ORDER.get(g[0], 9), g[1] or 0.0))
    for outcome, confidence in groups:
        segments: list[Any] = []
        dots: list[Any] = []
        for y, row in enumerate(rows):
            if (row.outcome, row.confidence) != (outcome, confidence):
                continue
            if row.low is not None and row.high is not None:
                segments += [(row.low * scale, y), (row.high * scale, y), None]
            dots.append({"value": ((row.delta or 0.0) * scale, y),
                         "label": f"{row.stratum}: {text(row.delta)} [{text(row.low)}, {text(row.high)}]"})
        shown = facts.level(confidence)
        if segments:
            series.append((f"{shown + ' CI' if shown else 'interval'} ({outcome})", segments[:-1],
                           {"show_dots": False}))
            colors.append(palette.get(outcome, "#4a5568"))
        series.append((f"delta ({outcome})", dots, {"stroke": False, "dots_size": 5}))
        colors.append(palette.get(outcome, "#4a5568"))
    ticks: list[Any] = []
    for y, row in enumerate(rows):
        if row.threshold is not None:
            ticks += [(row.threshold * scale, y - 0.35), (row.threshold * scale, y + 0.35), None]
    if ticks:
        series.append(("margin (gate threshold)", ticks[:-1], {"show_dots": False,
                                                               "stroke_style": {"dasharray": "5,3"}}))
        colors.append(MARGIN)
    series.append(("no change", [(0.0, -0.5), (0.0, len(rows) - 0.5)], {"show_dots": False}))
    colors.append(ZERO)
    chart = pygal.XY(**_config(colors, height=130 + 34 * max(len(rows), 1), allow_interruptions=True,
                               show_y_guides=False, range=(-0.5, len(rows) - 0.5), xrange=_xrange(rows, scale),
                               x_title=facts.SCALE_TITLES[panel.scale],
                               x_value_formatter=(lambda v: f"{v:+.1f}%") if relative
                               else (lambda v: facts.signed(v, 3))))
    chart.title = title or f"{panel.metric}: candidate − control" + (f" · gate {panel.gate}" if panel.gate else "")
    chart.y_labels = [{"label": r.stratum, "value": y} for y, r in enumerate(rows)]
    for label, values, options in series:
        chart.add(label, values, **options)
    thick = tuple(i for i, (label, _, _) in enumerate(series) if not label.startswith("no change"))
    return _svg(chart, name or f"forest-{panel.gate or panel.metric}", thick)


def _xrange(rows: list[facts.ForestRow], scale: float) -> tuple[float, float]:
    values = [0.0] + [v * scale for r in rows for v in (r.delta, r.low, r.high, r.threshold) if v is not None]
    low, high = min(values), max(values)
    pad = (high - low) * 0.08 or 0.01
    return low - pad, high + pad


# ---------------------------------------------------------------- slice

def composition(rows: list[facts.CompositionRow]) -> str:
    """Each stratum's share of the slice's users and of its events: where the evidence comes from."""
    users = sum(r.users or 0 for r in rows)
    events = sum(r.events or 0 for r in rows)
    chart = pygal.HorizontalBar(**_config([CANDIDATE, CONTROL], height=120 + 40 * len(rows),
                                          value_formatter=lambda v: f"{v:.1f}%", print_values=True))
    chart.title = "share of the slice per stratum"
    chart.x_labels = [r.stratum for r in rows]
    chart.add(f"users ({users})", [100.0 * (r.users or 0) / users if users else 0.0 for r in rows])
    chart.add(f"events ({events})", [100.0 * (r.events or 0) / events if events else 0.0 for r in rows])
    return _svg(chart, "composition")


def inclusion(rows: list[facts.CompositionRow]) -> str:
    """Mean inclusion probability per stratum (the sampling weights are its inverse)."""
    chart = pygal.HorizontalBar(**_config([CANDIDATE], height=110 + 32 * len(rows), show_legend=False,
                                          range=(0, 1), value_formatter=lambda v: f"{v:.3f}", print_values=True))
    chart.title = "mean inclusion probability per stratum"
    chart.x_labels = [r.stratum for r in rows]
    chart.add("inclusion probability", [r.p_mean if facts.is_number(r.p_mean) else None for r in rows])
    return _svg(chart, "inclusion")


# ---------------------------------------------------------------- drift

PERIOD_WORDS = {"day": "daily", "week": "weekly"}

def drift_bars(features: list[DriftFeature]) -> str:
    """Features ranked by shift, drifted ones in red, all on one measure (`drift_bar_measure`: PSI where any
    feature has it); features measured otherwise are left to the table."""
    measure = drift_bar_measure(features)
    shown = [f for f in reversed(features) if facts.drift_measure(f)[0] == measure]  # pygal: first at the bottom
    measures = [facts.drift_measure(f) for f in shown]
    chart = pygal.HorizontalBar(**_config([OUTCOME_COLORS[OUTCOME_FAIL], CONTROL], height=120 + 26 * len(shown),
                                          value_formatter=lambda v: f"{v:.3f}", print_values=True))
    label = measure
    limits = {float(m[2]) for m in measures if facts.is_number(m[2])}
    values = [float(m[1]) if facts.is_number(m[1]) else None for m in measures]
    if len(limits) == 1:  # one common threshold: scale to it, so small shifts look small
        limit = limits.pop()
        label += f", threshold {limit:g}"
        chart.config.range = (0.0, max([limit, *(v for v in values if v is not None)]) * 1.05)
    chart.title = f"feature drift ({label}), most shifted at the top"
    chart.x_labels = [f.feature for f in shown]
    chart.add("drifted", [v if f.drifted else None for v, f in zip(values, shown, strict=True)])
    chart.add("not drifted", [None if f.drifted else v for v, f in zip(values, shown, strict=True)])
    return _svg(chart, "drift-ranking")


def drift_bar_measure(features: list[DriftFeature]) -> str:
    """The one measure the drift bars show: PSI when any feature has one, else the most common method."""
    names = [facts.drift_measure(f)[0] for f in features]
    return "PSI" if "PSI" in names else max(sorted(set(names)), key=names.count) if names else "PSI"


def drift_daily(feature: str, series: DailySeries) -> str:
    """A top feature's daily (or weekly) PSI against its size-aware threshold, which moves with each period's
    size; shifted periods marked; the period and the suggested retraining date in the title."""
    psi = [float(v) if facts.is_number(v) else None for v in series.psi]
    limits = [float(v) if facts.is_number(v) else None for v in series.period_threshold]
    chart = pygal.Line(**_config([CANDIDATE, OUTCOME_COLORS[OUTCOME_FAIL], MARGIN], height=260, x_label_rotation=30,
                                 show_minor_x_labels=False, x_labels_major_count=8, dots_size=2,
                                 include_x_axis=True, value_formatter=lambda v: f"{v:.3f}"))
    retrain = series.retrain_after
    chart.title = (f"{feature}: {PERIOD_WORDS[series.period]} PSI"
                   + (f" · retrain after {retrain}" if retrain else ""))
    chart.x_labels = series.dates
    chart.add("PSI", psi)
    chart.add("shifted", [v if shifted else None for v, shifted in zip(psi, series.shifted, strict=True)],
              stroke=False, dots_size=4)
    chart.add(f"size-aware threshold (null {series.null_quantile:.0%}, bias + {series.threshold:g})", limits,
              show_dots=False, stroke_style={"width": 2, "dasharray": "5,3"})
    return _svg(chart, f"drift-daily-{feature}")


# ---------------------------------------------------------------- models

def score_distribution(scores: dict[str, Any]) -> str:
    """Share of each model's recommended-item scores per score bin (shared bins), as frequency polygons."""
    edges = scores["edges"]
    centres = [(a + b) / 2 for a, b in zip(edges[:-1], edges[1:], strict=True)]
    chart = pygal.XY(**_config([CONTROL, CANDIDATE], height=280, dots_size=2, fill=False,
                               x_value_formatter=lambda v: f"{v:.2f}", value_formatter=lambda v: f"{v:.1f}%"))
    chart.title = "score distribution of the recommended items (share per bin)"
    for model in ("control", "candidate"):
        counts = scores["counts"].get(model) or []
        total = sum(counts)
        chart.add(f"{model} (n={total})", [(x, 100.0 * c / total if total else 0.0)
                                          for x, c in zip(centres, counts, strict=True)])
    return _svg(chart, "scores")


def coverage(metrics: MetricsDocument) -> str:
    """coverage@k per stratum for both models: the share of the catalogue that gets recommended."""
    name = facts.coverage_name(metrics) or COVERAGE.name
    strata = [s for s in facts.strata_of(metrics)
              if any(facts.is_number(facts.model_value(metrics, m, name, s)) for m in ("control", "candidate"))]
    chart = pygal.Bar(**_config([CONTROL, CANDIDATE], height=280, value_formatter=lambda v: f"{v:.3f}",
                                print_values=True, range=(0, 1)))
    chart.title = f"{name}: share of the catalogue recommended"
    chart.x_labels = strata
    for model in ("control", "candidate"):
        values = [facts.model_value(metrics, model, name, s) for s in strata]
        chart.add(model, [float(v) if facts.is_number(v) else None for v in values])
    return _svg(chart, "coverage")


def popularity(shares: dict[str, Any]) -> str:
    """Share of each model's recommendations per catalogue popularity group (1 = the most popular tenth)."""
    buckets = int(shares["buckets"])
    chart = pygal.Bar(**_config([CONTROL, CANDIDATE], height=280, value_formatter=lambda v: f"{v:.1f}%"))
    chart.title = "recommendations per popularity tenth of the catalogue (1 = most popular)"
    chart.x_labels = [str(i + 1) for i in range(buckets)]
    for model in ("control", "candidate"):
        chart.add(f"{model} ({shares['distinct_items'].get(model, 0)} distinct items)",
                  [100.0 * v for v in shares["share"].get(model, [0.0] * buckets)])
    return _svg(chart, "popularity")
