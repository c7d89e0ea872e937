"""report.html: one self-contained page (inline CSS, charts as inline SVG, no script, no external reference) that
opens the same from S3, a CI artifact or a laptop. A Content-Security-Policy of `default-src 'none'` makes the
browser refuse any network load the page might still try.

Sections: decision banner with reasons (failed gates repeated there with their numbers), the gate table (failed
first), forest plots of the per-stratum deltas with their margins, the metric table, the slice's composition
and inclusion probabilities, feature drift, the models' score distributions, coverage and item popularity,
latency, what-if scenarios, and the provenance. A section whose inputs are missing says so; a section that
fails to render is replaced by a note (and `errors` names it) unless `strict`, which tests use.
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable
from typing import Any

from testbed.report import charts, facts
from testbed.report.inputs import RunData

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
DECISION_COLORS = {"PASS": "#2f855a", "FAIL": "#c53030", "INCONCLUSIVE": "#b7791f", "ERROR": "#742a2a"}
DRIFT_BARS = 15
DAILY_CHARTS = 3
CSS = """
body{font-family:-apple-system,'Segoe UI',Roboto,'Liberation Sans',Arial,sans-serif;margin:0;color:#1a202c;
background:#f7fafc;line-height:1.45}
main{max-width:1100px;margin:0 auto;padding:16px 24px 48px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:32px 0 8px;border-bottom:1px solid #e2e8f0;padding-bottom:4px}
h3{font-size:15px;margin:18px 0 6px}
.banner{color:#fff;padding:18px 24px;border-radius:0 0 8px 8px}
.banner .decision{font-size:30px;font-weight:700;letter-spacing:1px}
.banner ul{margin:8px 0 0;padding-left:20px}.banner code{color:#fff}
.failed{background:#fff5f5;border-left:4px solid #c53030;padding:8px 12px;margin:12px 0}
.note{color:#4a5568;font-style:italic}
table{border-collapse:collapse;margin:6px 0 12px;font-size:13px;background:#fff}
th,td{border:1px solid #e2e8f0;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#edf2f7}td.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
tr.fail td{background:#fff5f5}tr.inconclusive td{background:#fffaf0}
.outcome{font-weight:700;text-transform:uppercase;font-size:12px}
.outcome.fail{color:#c53030}.outcome.inconclusive{color:#b7791f}.outcome.pass{color:#2f855a}
figure.chart{background:#fff;border:1px solid #e2e8f0;border-radius:6px;margin:10px 0;padding:6px;
display:inline-block;vertical-align:top}
figure.chart svg{display:block;max-width:100%;height:auto}
figcaption{font-size:12px;color:#4a5568;max-width:740px;padding:2px 6px}
code{font-size:12px;word-break:break-all}
"""


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _table(header: list[str], rows: list[list[str]], numeric: set[int] | None = None,
           row_classes: list[str] | None = None) -> str:
    """A table from already-escaped cells; `numeric` columns align right."""
    numeric = numeric or set()
    head = "".join(f"<th>{h}</th>" for h in header)
    body = []
    for i, row in enumerate(rows):
        cls = f' class="{row_classes[i]}"' if row_classes and row_classes[i] else ""
        cells = "".join(f'<td class="n">{c}</td>' if j in numeric else f"<td>{c}</td>" for j, c in enumerate(row))
        body.append(f"<tr{cls}>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _figure(name: str, svg: str, caption: str) -> str:
    return (f'<figure class="chart" data-chart="{esc(charts.chart_id(name))}">{svg}'
            f"<figcaption>{caption}</figcaption></figure>")


def _note(text: str) -> str:
    return f'<p class="note">{esc(text)}</p>'


# ---------------------------------------------------------------- sections

def banner(data: RunData) -> str:
    color = DECISION_COLORS.get(data.decision, "#4a5568")
    reasons = "".join(f"<li>{esc(r)}</li>" for r in data.reasons)
    counts = facts.gate_counts(data.gates)
    summary = esc(facts.counts_text(counts)) if data.gates is not None else "no gates.json"
    if data.decision == "ERROR":
        summary = f"stopped in step <code>{esc(data.record.get('failed_step', 'n/a'))}</code>"
    created = data.record.get("created_at")
    return (f'<header class="banner" style="background:{color}" id="decision">'
            f'<div class="decision">{esc(data.decision)}</div>'
            f"<div>run <code>{esc(data.run_id)}</code>" + (f" · {esc(created)}" if created else "")
            + f" · {summary}</div>" + (f"<ul>{reasons}</ul>" if reasons else "") + "</header>")


def _gate_cells(g: dict[str, Any]) -> list[str]:
    p_value = facts.pvalue(g.get("p_value"))
    if g.get("p_adjusted") is not None:
        p_value += f" (adj. {facts.pvalue(g.get('p_adjusted'))})"
    return [f'<span class="outcome {esc(g.get("outcome"))}">{esc(g.get("outcome"))}</span>', esc(g.get("name")),
            esc(g.get("kind", "n/a")), esc(g.get("metric") or "n/a"), esc(g.get("stratum", "all")),
            esc(facts.num(g.get("observed"))), esc(facts.interval(g.get("interval"))),
            esc(facts.num(g.get("threshold"))), esc(p_value), esc(facts.num(g.get("n"))),
            esc(g.get("reason", ""))]


def gates_section(data: RunData) -> str:
    if data.gates is None:
        return "<h2 id=\"gates\">Gates</h2>" + _note("No gates.json in this run.")
    ordered = facts.ordered_gates(data.gates)
    if not ordered:
        return "<h2 id=\"gates\">Gates</h2>" + _note("The manifest has no gates: the decision is INCONCLUSIVE.")
    failed = [g for g in ordered if g.get("outcome") == "fail"]
    callout = ""
    if failed:
        items = "".join(f"<li><b>{esc(facts.gate_label(g))}</b> on <code>{esc(g.get('stratum', 'all'))}</code>: "
                        f"observed {esc(facts.num(g.get('observed')))}, interval "
                        f"{esc(facts.interval(g.get('interval')))}, threshold {esc(facts.num(g.get('threshold')))}"
                        f", p {esc(facts.pvalue(facts.p_shown(g)))}</li>" for g in failed)
        callout = f'<div class="failed" id="failed-gates"><b>Failed gates</b><ul>{items}</ul></div>'
    extra = []
    if data.gates.get("correction"):
        extra.append(f"multiple-testing correction: {esc(data.gates['correction'])}")
    ratio = data.gates.get("sample_ratio")
    if isinstance(ratio, dict) and ratio.get("p_value") is not None:
        extra.append(f"sample-ratio check p = {esc(facts.pvalue(ratio.get('p_value')))}")
    table = _table(["outcome", "gate", "kind", "metric", "stratum", "observed", "interval", "threshold (margin)",
                    "p-value", "n", "reason"], [_gate_cells(g) for g in ordered], numeric={5, 6, 7, 8, 9},
                   row_classes=[str(g.get("outcome")) for g in ordered])
    return (f'<h2 id="gates">Gates</h2>{callout}{table}'
            + (f"<p>{' · '.join(extra)}</p>" if extra else ""))


def forest_section(data: RunData) -> str:
    panels = facts.forest_panels(data.metrics, data.gates)
    head = '<h2 id="deltas">Per-stratum deltas</h2>'
    if not panels:
        return head + _note("No metric deltas in this run.")
    figures = [_figure(f"forest-{p.gate or p.metric}", charts.forest(p),
                       f"{esc(p.metric)}: dot = candidate − control, line = interval "
                       + ("(the gate's interval where gated, else metrics.json's); dashed red = the gate's margin"
                          if p.gate else "(metrics.json)")) for p in panels]
    return head + "".join(figures)


def metrics_section(data: RunData) -> str:
    if data.metrics is None:
        return '<h2 id="metrics">Metrics</h2>' + _note("No metrics.json in this run.")
    rows = []
    for stratum in facts.strata_of(data.metrics):
        for name, d in sorted(facts.deltas(data.metrics, stratum).items()):
            rows.append([esc(stratum), esc(name), esc(facts.num(d.get("control"))),
                         esc(facts.num(d.get("candidate"))), esc(facts.signed(d.get("delta"))),
                         esc(facts.percent(d.get("relative"))), esc(facts.interval(d.get("interval"), sign=True)),
                         esc(facts.pvalue(d.get("p_value"))), esc(facts.num(d.get("n")))])
    method = data.metrics.get("interval")
    return ('<h2 id="metrics">Metrics</h2>'
            + (f"<p>K = {esc(data.k)}; intervals: {esc(method)}.</p>" if method else "")
            + _table(["stratum", "metric", "control", "candidate", "delta", "relative", "interval", "p-value", "n"],
                     rows, numeric={2, 3, 4, 5, 6, 7, 8}))


def slice_section(data: RunData) -> str:
    rows = facts.composition(data.stats, data.inclusion)
    head = '<h2 id="slice">Slice composition</h2>'
    if not rows:
        return head + _note("No slice statistics in this run.")
    stats = data.stats or {}
    lead = (f"<p>{esc(stats.get('users', 'n/a'))} users, {esc((stats.get('rows') or {}).get('events', 'n/a'))} "
            f"events; {esc(stats.get('strategy', 'n/a'))} sampling, seed {esc(stats.get('seed', 'n/a'))}; "
            f"{esc(stats.get('eligible_users', 'n/a'))} eligible users; catalogue "
            f"{esc(stats.get('catalogue_size', 'n/a'))} items.</p>")
    table = _table(["stratum", "users", "events", "eligible", "expected", "p min", "p mean", "p max"],
                   [[esc(r["stratum"])] + [esc(facts.num(r[k])) for k in ("users", "events", "eligible_users")]
                    + [esc(facts.num(r["expected_users"], 1))]
                    + [esc(facts.num(r[k])) for k in ("p_min", "p_mean", "p_max")] for r in rows],
                   numeric=set(range(1, 8)))
    figures = _figure("composition", charts.composition(rows), "users and events per stratum, as shares of the slice")
    if any(facts.is_number(r["p_mean"]) for r in rows):
        figures += _figure("inclusion", charts.inclusion(rows),
                           "inclusion probability p per stratum; metrics weight each user by 1/p where the gate "
                           "step does so")
    return head + lead + table + figures


def drift_section(data: RunData) -> str:
    head = '<h2 id="drift">Feature drift</h2>'
    if data.drift is None:
        return head + _note("No drift diagnostics in this run.")
    features = facts.drift_features(data.drift)
    baseline = data.drift.get("baseline") or {}
    lead = (f"<p>{esc(facts.drifted_count(data.drift))} of {len(features)} features drifted; baseline: "
            f"{esc(baseline.get('kind', 'n/a'))} {esc(baseline.get('source', ''))}"
            + (f" ({esc(baseline.get('rows'))} rows)" if baseline.get("rows") is not None else "") + ".</p>")
    if not features:
        return head + lead
    out = head + lead + _figure("drift-ranking", charts.drift_bars(features[:DRIFT_BARS]),
                                "bars: PSI of each feature against the baseline (or the method's statistic); red = "
                                "drifted at its threshold")
    rows = [[esc(f.get("rank", "")), esc(f.get("feature")), esc(f.get("table", "")), esc(f.get("method", "")),
             esc(facts.num(f.get("statistic"))), esc(facts.num(f.get("threshold"))),
             esc(facts.pvalue(f.get("p_value"))),
             esc(facts.num(f.get("psi"))), "yes" if f.get("drifted") else "no",
             esc(", ".join(str(s.get("stratum")) for s in f.get("strata") or [] if s.get("drifted")))]
            for f in features[:DRIFT_BARS]]
    out += _table(["rank", "feature", "table", "method", "statistic", "threshold", "p-value", "PSI", "drifted",
                   "drifted in strata"], rows, numeric={0, 4, 5, 6, 7})
    top_strata = [s for s in data.drift.get("top_strata") or [] if isinstance(s, dict)]
    if top_strata:
        out += "<h3>Strata most affected</h3>" + _table(
            ["stratum", "drifted features", "max PSI"],
            [[esc(s.get("stratum")), esc(s.get("drifted_features")), esc(facts.num(s.get("max_psi")))]
             for s in top_strata], numeric={1, 2})
    daily = data.drift.get("daily") or {}
    order = [str(f.get("feature")) for f in features if str(f.get("feature")) in daily]
    order += [name for name in daily if name not in order]
    for name in order[:DAILY_CHARTS]:
        series = daily[name]
        if not isinstance(series, dict) or not series.get("dates"):
            continue
        if not any(facts.is_number(v) for v in series.get("psi") or []):
            out += _note(f"Daily PSI of {name}: no day had enough data for a value.")
        else:
            out += _figure(f"drift-daily-{name}", charts.drift_daily(name, series),
                           f"daily PSI of {esc(name)} against the baseline; retrain after: "
                           f"{esc(series.get('retrain_after') or 'no crossing')}")
    return out


def models_section(data: RunData) -> str:
    out = '<h2 id="models">Models: scores, coverage and popularity</h2>'
    if data.scores:
        n, mean = data.scores["n"], data.scores["mean"]
        caption = "; ".join(f"{m}: {n.get(m, 0)} scores, mean {esc(facts.num(mean.get(m)))}"
                            for m in ("control", "candidate"))
        out += _figure("scores", charts.score_distribution(data.scores),
                       f"top-K scores from rankings.parquet ({caption}); the two models' scores need not share a "
                       "scale")
    else:
        out += _note("No rankings in this run: no score distributions.")
    if data.metrics is not None and facts.model_value(data.metrics, "control",
                                                      facts.coverage_name(data.metrics) or "") is not None:
        out += _figure("coverage", charts.coverage(data.metrics), "distinct recommended items / catalogue size")
    else:
        out += _note("No coverage in metrics.json.")
    if data.popularity:
        out += _figure("popularity", charts.popularity(data.popularity),
                       f"catalogue of {esc(data.popularity['catalogue_items'])} items ranked by "
                       f"{esc(data.popularity['basis'])}, cut into {esc(data.popularity['buckets'])} equal groups")
    else:
        out += _note("No item features in this run: no item popularity.")
    if data.latency:
        rows = [[esc(m), esc(facts.num(v.get("p50_ms"))), esc(facts.num(v.get("p95_ms"))),
                 esc(facts.num(v.get("p99_ms"))), esc(v.get("requests_timed", "n/a")), esc(v.get("errors", "n/a")),
                 esc(facts.num(v.get("error_rate")))]
                for m, v in sorted(data.latency.items()) if isinstance(v, dict)]
        out += "<h3>Scoring latency per request (ms)</h3>" + _table(
            ["model", "p50", "p95", "p99", "requests", "errors", "error rate"], rows, numeric=set(range(1, 7)))
    return out


def whatif_section(data: RunData) -> str:
    if data.whatif is None:
        return ""
    scenarios = [s for s in data.whatif.get("scenarios") or [] if isinstance(s, dict)]
    out = '<h2 id="whatif">Catalogue what-if</h2>'
    if data.whatif.get("more_graceful"):
        out += f"<p>Degrades more gracefully: <b>{esc(data.whatif['more_graceful'])}</b>.</p>"
    rows = []
    for s in scenarios:
        for model in ("control", "candidate"):
            changes = (s.get("deltas_vs_baseline") or {}).get(model) or {}
            shown = ", ".join(f"{k} {facts.signed(v)}" for k, v in sorted(changes.items()) if facts.is_number(v))
            rows.append([esc(s.get("name")), esc(s.get("kind")), esc(json.dumps(s.get("params"), sort_keys=True)),
                         esc(model), esc(shown or "n/a")])
    return out + (_table(["scenario", "kind", "params", "model", "change vs baseline"], rows) if rows
                  else _note("whatif.json lists no scenarios."))


def provenance_section(data: RunData) -> str:
    r = data.record
    rows = [["run id", f"<code>{esc(data.run_id)}</code>"]]
    for label, key in (("manifest digest (SHA-256)", "manifest_digest"), ("lake", "lake"),
                       ("lake fingerprint", "lake_fingerprint"), ("code version", "code_version"),
                       ("created", "created_at")):
        if r.get(key) is not None:
            rows.append([label, f"<code>{esc(r[key])}</code>"])
    seeds = {**(r.get("seeds") or {}), "bootstrap": (data.gates or {}).get("bootstrap_seed")}
    for name, seed in sorted(seeds.items()):
        if seed is not None:
            rows.append([f"seed: {esc(name)}", f"<code>{esc(seed)}</code>"])
    models = r.get("models") or {}
    for role in facts.model_roles(models):
        model = models[role] if isinstance(models[role], dict) else {}
        rows.append([f"{esc(role)} model", f"<code>{esc(model.get('uri', 'n/a'))}</code><br>SHA-256 "
                                           f"<code>{esc(model.get('sha256', 'n/a'))}</code>"])
    slice_info = r.get("slice") or {}
    if slice_info.get("content_sha256"):
        rows.append(["slice content SHA-256", f"<code>{esc(slice_info['content_sha256'])}</code>"])
    out = '<h2 id="provenance">Provenance</h2>' + _table(["", ""], rows)
    out += _replay(r.get("replay"))
    parity = data.parity or (r.get("features") or {}).get("parity")
    if isinstance(parity, dict):
        out += (f"<p>Feature parity (stream vs batch): {esc(parity.get('rows_stream', 'n/a'))} vs "
                f"{esc(parity.get('rows_batch', 'n/a'))} rows, {esc(parity.get('mismatches', 'n/a'))} mismatches.</p>")
    seconds = r.get("step_seconds") or {}
    if seconds:
        out += "<h3>Step timings (s)</h3>" + _table(
            list(map(esc, seconds)), [[esc(facts.num(v, 3)) for v in seconds.values()]],
            numeric=set(range(len(seconds))))
    cost = r.get("cost_estimate") or {}
    if cost:
        out += "<p>Cost estimate: " + esc(", ".join(f"{k} {v}" for k, v in sorted(cost.items()))) + "</p>"
    return out


def _replay(replay: Any) -> str:
    if not isinstance(replay, dict):
        return _note("No Kinesis replay in this run.")
    shards = [s for s in replay.get("shards") or [] if isinstance(s, dict)]
    out = (f"<h3>Replay offsets</h3><p>stream <code>{esc(replay.get('stream', 'n/a'))}</code>: "
           f"{esc(replay.get('records', 'n/a'))} records in {esc(replay.get('put_calls', 'n/a'))} put calls, "
           f"{esc(replay.get('retried_entries', 0))} retried entries.</p>")
    if shards:
        out += _table(["shard", "first sequence", "last sequence", "records"],
                      [[f"<code>{esc(s.get('shard_id'))}</code>", f"<code>{esc(s.get('first_sequence'))}</code>",
                        f"<code>{esc(s.get('last_sequence'))}</code>", esc(s.get("records", "n/a"))]
                       for s in shards], numeric={3})
    return out


SECTIONS: list[tuple[str, Callable[[RunData], str]]] = [
    ("gates", gates_section), ("deltas", forest_section), ("metrics", metrics_section), ("slice", slice_section),
    ("drift", drift_section), ("models", models_section), ("whatif", whatif_section),
    ("provenance", provenance_section)]


def page(title: str, body: str) -> str:
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{esc(title)}</title><style>{CSS}</style></head><body>{body}</body></html>\n")


def render_html(data: RunData, strict: bool = False, errors: list[str] | None = None) -> str:
    """The page. A section that raises is replaced by a note naming the error (appended to `errors`), unless
    `strict`, where it raises."""
    parts = [banner(data), "<main>"]
    if data.decision != "ERROR":
        for name, section in SECTIONS:
            try:
                parts.append(section(data))
            except Exception as exc:
                if strict:
                    raise
                if errors is not None:
                    errors.append(f"{name}: {type(exc).__name__}: {exc}")
                parts.append(f'<h2>{esc(name)}</h2>' + _note(f"This section could not be rendered "
                                                               f"({type(exc).__name__}: {exc})."))
    else:
        parts.append(provenance_section(data))
    if data.missing:
        parts.append(f'<p class="note">Not in this run record: {esc(", ".join(data.missing))}.</p>')
    parts.append("</main>")
    return page(f"{data.decision} · {data.run_id}", "".join(parts))


def minimal_html(run_id: str, decision: str, reasons: list[str], problem: str) -> str:
    """What the record step writes when the full report fails: the decision still reaches the reader."""
    items = "".join(f"<li>{esc(r)}</li>" for r in reasons)
    color = DECISION_COLORS.get(decision, "#4a5568")
    note = _note(f"The full report could not be rendered: {problem}. See run.json, gates.json and metrics.json "
                 "in this folder.")
    body = (f'<header class="banner" style="background:{color}"><div class="decision">{esc(decision)}</div>'
            f"<div>run <code>{esc(run_id)}</code></div>" + (f"<ul>{items}</ul>" if items else "") + "</header>"
            f"<main>{note}</main>")
    return page(f"{decision} · {run_id}", body)
