"""report.html: one self-contained page (inline CSS, charts as inline SVG, no script, no external reference) that
opens the same from S3, a CI artifact or a laptop. A Content-Security-Policy of `default-src 'none'` makes the
browser refuse any network load the page might still try.

Sections: decision banner with the headline (why, primary metric, guardrails, next step), one plain sentence per
gate that held PASS back, warnings (and retraining lines, facts.retrain_warnings) and the gates that did not count
(advisory ones, inconclusive guardrails), the gate table (failed first, each gate's role next to it, every number
in its unit) with a details table of every statistic and what the intervals cover, forest plots (one scale each) of
the per-stratum deltas with their margins, the metric table, the slice's composition and inclusion probabilities,
feature drift, the models' score distributions, coverage and item popularity, latency, what-if scenarios, and the
provenance. A section whose inputs are missing says so; a section that fails to render is replaced by a note (and
`errors` names it) unless `strict`, which tests use.
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable
from typing import Any

from testbed.record.base import ERROR, FAIL, INCONCLUSIVE, PASS
from testbed.record.features import ParityDocument
from testbed.record.gates import GateRow
from testbed.record.replay import ReplayDocument
from testbed.record.run import ParitySummary
from testbed.report import attribution, candidate_stage, charts, cohorts, facts, plain
from testbed.report import list_change as list_change_report
from testbed.report.inputs import RunData

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
DECISION_COLORS: dict[str, str] = {PASS: "#2f855a", FAIL: "#c53030", INCONCLUSIVE: "#b7791f", ERROR: "#742a2a"}
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
.banner ul{margin:8px 0 0;padding-left:20px}.banner ul.headline{list-style:none;padding-left:0;font-size:15px}
details summary{cursor:pointer;color:#2b6cb0;margin:6px 0}.banner code{color:#fff}
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


def _figure(name: str, svg: str, caption: str, scale: str | None = None, row_scales: list[str] | None = None) -> str:
    """A chart; `scale` (and every row's scale, which must all equal it) go into data attributes, so a browser
    check can assert that no chart mixes scales."""
    marks = (f' data-scale="{esc(scale)}"' if scale else "") + (
        f' data-row-scales="{esc(" ".join(row_scales))}"' if row_scales is not None else "")
    return (f'<figure class="chart" data-chart="{esc(charts.chart_id(name))}"{marks}>{svg}'
            f"<figcaption>{caption}</figcaption></figure>")


def _note(text: str) -> str:
    return f'<p class="note">{esc(text)}</p>'


# ---------------------------------------------------------------- sections

def headline_section(data: RunData) -> str:
    """The headline (testbed.report.plain): why, the primary metric, the guardrails and the next step."""
    if data.decision == "UNKNOWN":
        return ""
    items = "".join(f'<li><b>{esc(label)}:</b> {esc(text)}</li>' for label, text in plain.headline(data).lines())
    return f'<ul class="headline" id="headline">{items}</ul>'


def banner(data: RunData) -> str:
    color = DECISION_COLORS.get(data.decision, "#4a5568")
    reasons = "".join(f"<li>{esc(line)}</li>" for line in plain.reason_lines(data))
    warnings = "".join(f"<li>Warning: {esc(w)}</li>" for w in data.warnings)
    warnings += "".join(f"<li>Retraining: {esc(line)}</li>"
                        for line in facts.retrain_warnings(data.metrics, data.gates))
    warnings += "".join(f"<li>Did not count, {esc(facts.role_label(g))}: {esc(plain.reason_line(g))}</li>"
                        for g in facts.non_blocking(data.gates))
    counts = facts.gate_counts(data.gates)
    summary = esc(facts.counts_text(counts)) if data.gates is not None else "no gates.json"
    if data.decision == ERROR:
        step = data.failed_step
        summary = f"stopped in step <code>{esc(step if step is not None else 'n/a')}</code>"
    created = data.record.created_at if data.record is not None else None
    return (f'<header class="banner" style="background:{color}" id="decision">'
            f'<div class="decision">{esc(data.decision)}</div>'
            f"<div>run <code>{esc(data.run_id)}</code>" + (f" · {esc(created)}" if created else "")
            + f" · {summary}</div>" + headline_section(data) + (f"<ul>{reasons}</ul>" if reasons else "")
            + (f'<ul class="warnings">{warnings}</ul>' if warnings else "") + "</header>")


def _gate_cells(g: GateRow) -> list[str]:
    role = esc(facts.role_label(g))
    return [f'<span class="outcome {esc(g.outcome)}">{esc(g.outcome)}</span>', esc(g.name), role, esc(g.stratum),
            esc(plain.observed_text(g)), esc(plain.interval_text(g)), esc(plain.limit_text(g)),
            esc(plain.evidence(g) or "n/a"), esc(plain.sentence(g))]


def _detail_cells(g: GateRow) -> list[str]:
    """Every statistic of a row: both tests' p-values before and after the correction, n, MDE, users needed."""
    unit = plain.unit_of(g)
    return [esc(g.name), esc(g.kind), esc(g.metric or "n/a"), esc(g.stratum), esc(plain.UNIT_LABELS[unit]),
            esc(facts.num(g.n)), esc(facts.num(g.observed)), esc(facts.interval_at(g.interval, g.confidence)),
            esc(facts.num(g.threshold)), esc(facts.pvalue(g.p_value)), esc(facts.pvalue(g.p_adjusted)),
            esc(facts.pvalue(g.p_harm)), esc(facts.pvalue(g.p_harm_adjusted)), esc(facts.num(g.mde)),
            esc(f"not reachable ({g.eligible_users} eligible)" if plain.unreachable(g) else facts.num(g.required_n)),
            esc(g.method), esc(g.reason)]


def gates_section(data: RunData) -> str:
    if data.gates is None:
        return "<h2 id=\"gates\">Gates</h2>" + _note("No gates.json in this run.")
    ordered = facts.ordered_gates(data.gates)
    if not ordered:
        return "<h2 id=\"gates\">Gates</h2>" + _note("The manifest has no gates: the decision is INCONCLUSIVE.")
    extra = []
    decided = data.gate_table
    if decided is not None:
        extra.append(f"multiple-testing correction: {esc(decided.correction)}")
        if decided.sample_ratio is not None:
            extra.append(f"sample-ratio check p = {esc(facts.pvalue(decided.sample_ratio.p_value))}")
    table = _table(["outcome", "gate", "role", "stratum", "observed", "interval", "allowed", "evidence", "why"],
                   [_gate_cells(g) for g in ordered], numeric={4, 5, 6, 7},
                   row_classes=[g.outcome for g in ordered])
    details = _table(["gate", "kind", "metric", "stratum", "unit", "n", "estimate", "interval (as decided)", "limit",
                      "p unadjusted", "p adjusted", "harm p unadjusted", "harm p adjusted", "MDE", "users needed",
                      "method", "statistics"],
                     [_detail_cells(g) for g in ordered], numeric=set(range(5, 15)))
    return (f'<h2 id="gates">Gates</h2>{table}'
            + (f"<p>{' · '.join(extra)}</p>" if extra else "")
            + '<details id="gate-details"><summary>Details: every statistic of every gate row (p-values before '
              f"and after the correction, MDE, users a rerun needs)</summary>{details}</details>"
            + _note(facts.interval_scope(data.metrics)))


def forest_section(data: RunData) -> str:
    panels = facts.forest_panels(data.metrics, data.gates, data.metric_confidence)
    head = '<h2 id="deltas">Per-stratum deltas</h2>'
    if not panels:
        return head + _note("No metric deltas in this run.")
    figures = [_figure(f"forest-{p.gate or p.metric}", charts.forest(p),
                       f"{esc(p.metric)}, {esc(facts.SCALE_TITLES[p.scale])}: dot = the delta, line = its interval "
                       + ("(the gate's where gated, else metrics.json's, each with its level); dashed red = the "
                          "gate's margin" if p.gate else "(metrics.json)"),
                       scale=p.scale, row_scales=[r.scale for r in p.rows if r.delta is not None])
               for p in panels]
    return head + "".join(figures)


def cohorts_section(data: RunData) -> str:
    head = '<h2 id="cohorts">Worst cohorts</h2>'
    report = cohorts.block(data)
    if report is None or not report.worst:
        return head + _note("No cohort of the primary metric was tested in this run.")
    level = facts.level(report.confidence) or "the metrics'"
    caption = (f"{esc(report.metric)}, candidate − control, absolute: dot = the cohort's delta, line = its "
               f"{esc(report.correction)}-corrected {esc(level)} interval over the {report.tested} tested cohorts; "
               "red = proven harm, green = proven gain, grey = exploratory (does not survive the correction)")
    rows = [[esc(cell) for cell in row] for row in cohorts.table_rows(report)]
    return (head + f"<p>{esc(cohorts.summary(data))}. Cohorts under {report.min_users} users are not tested "
            f"({report.too_small} of them).</p>"
            + _figure(cohorts.CHART, cohorts.chart(report), caption, scale="absolute",
                      row_scales=["absolute"] * sum(f.delta is not None for f in report.worst))
            + _table(["cohort", "n", "control", "candidate", "delta", f"{esc(level)} CI", "corrected CI", "p",
                      "p corrected", "verdict"], rows, numeric={1, 2, 3, 4, 5, 6, 7, 8}))


def metrics_section(data: RunData) -> str:
    if data.metrics is None:
        return '<h2 id="metrics">Metrics</h2>' + _note("No metrics.json in this run.")
    rows = []
    for stratum in facts.strata_of(data.metrics):
        for name, d in sorted(facts.deltas(data.metrics, stratum).items()):
            retrains = facts.retrain_text(facts.retrain_spread(data.metrics, name)) if stratum == "all" else None
            shown = facts.interval_at(d.interval, data.metric_confidence, sign=True)
            rows.append([esc(stratum), esc(facts.metric_label(name)), esc(facts.num(d.control)),
                         esc(facts.num(d.candidate)),
                         esc(facts.signed(d.delta)), esc(facts.percent(d.relative)),
                         esc(f"{shown}; {retrains}" if retrains else shown),
                         esc(facts.pvalue(d.p_value)), esc(facts.num(d.n))])
    method = data.metrics.interval
    return ('<h2 id="metrics">Metrics</h2>'
            + (f"<p>K = {esc(data.k)}; intervals: {esc(method)}.</p>" if method else "")
            + _note(facts.interval_scope(data.metrics))
            + _table(["stratum", "metric", "control", "candidate", "delta", "relative", "interval", "p-value", "n"],
                     rows, numeric={2, 3, 4, 5, 6, 7, 8}))


def slice_section(data: RunData) -> str:
    rows = facts.composition(data.stats, data.inclusion)
    head = '<h2 id="slice">Slice composition</h2>'
    if not rows:
        return head + _note("No slice statistics in this run.")
    stats = data.stats
    users, events, strategy, seed, eligible, catalogue = (
        (stats.users, stats.rows.events, stats.strategy, stats.seed, stats.eligible_users, stats.catalogue_size)
        if stats is not None else ("n/a",) * 6)
    lead = (f"<p>{esc(users)} users, {esc(events)} events; {esc(strategy)} sampling, seed {esc(seed)}; "
            f"{esc(eligible)} eligible users; catalogue {esc(catalogue)} items.</p>")
    table = _table(["stratum", "users", "events", "eligible", "expected", "p min", "p mean", "p max"],
                   [[esc(r.stratum)] + [esc(facts.num(v)) for v in (r.users, r.events, r.eligible_users)]
                    + [esc(facts.num(r.expected_users, 1))]
                    + [esc(facts.num(v)) for v in (r.p_min, r.p_mean, r.p_max)] for r in rows],
                   numeric=set(range(1, 8)))
    figures = _figure("composition", charts.composition(rows), "users and events per stratum, as shares of the slice")
    if any(facts.is_number(r.p_mean) for r in rows):
        figures += _figure("inclusion", charts.inclusion(rows),
                           "inclusion probability p per stratum; metrics weight each user by 1/p where the gate "
                           "step does so")
    return head + lead + table + figures


def _defined(feature: str, definition: str | None) -> str:
    """A feature's name, with its declared definition underneath when it has one."""
    return esc(feature) + (f"<br><small>{esc(definition)}</small>" if definition else "")


def drift_section(data: RunData) -> str:
    head = '<h2 id="drift">Feature drift</h2>'
    if data.drift is None:
        return head + _note("No drift diagnostics in this run.")
    features = facts.drift_features(data.drift)
    baseline = data.drift.baseline
    lead = (f"<p>{esc(facts.drifted_count(data.drift))} of {len(features)} features drifted; baseline: "
            f"{esc(baseline.kind)} {esc(baseline.source)} ({esc(baseline.rows)} rows).</p>")
    if not features:
        return head + lead
    barred = features[:DRIFT_BARS]
    measure = charts.drift_bar_measure(barred)
    left = [f.feature for f in barred if facts.drift_measure(f)[0] != measure]
    out = head + lead + _figure("drift-ranking", charts.drift_bars(barred),
                                f"bars: {esc(measure)} of each feature against the baseline; red = drifted at its "
                                "threshold" + (f"; measured otherwise, in the table only: {esc(', '.join(left))}"
                                               if left else ""),
                                scale=measure, row_scales=[facts.drift_measure(f)[0] for f in barred
                                                           if facts.drift_measure(f)[0] == measure])
    rows = [[esc(f.rank), _defined(f.feature, f.definition), esc(f.table), esc(f.method), esc(facts.num(f.statistic)),
             esc(facts.num(f.threshold)), esc(facts.pvalue(f.p_value)), esc(facts.num(f.psi)),
             "yes" if f.drifted else "no", esc(", ".join(s.stratum for s in f.strata if s.drifted))]
            for f in features[:DRIFT_BARS]]
    out += _table(["rank", "feature", "table", "method", "statistic", "threshold", "p-value", "PSI", "drifted",
                   "drifted in strata"], rows, numeric={0, 4, 5, 6, 7})
    if data.drift.top_strata:
        out += "<h3>Strata most affected</h3>" + _table(
            ["stratum", "drifted features", "max PSI"],
            [[esc(s.stratum), esc(s.drifted_features), esc(facts.num(s.max_psi))] for s in data.drift.top_strata],
            numeric={1, 2})
    daily = data.drift.daily
    order = [f.feature for f in features if f.feature in daily]
    order += [name for name in daily if name not in order]
    for name in order[:DAILY_CHARTS]:
        series = daily[name]
        if not series.dates:
            continue
        words = charts.PERIOD_WORDS[series.period]
        if not any(facts.is_number(v) for v in series.psi):
            out += _note(f"{words.capitalize()} PSI of {name}: no {series.period} had enough data for a value.")
        else:
            shifted = sum(series.shifted)
            out += _figure(f"drift-daily-{name}", charts.drift_daily(name, series),
                           f"{words} PSI of {esc(name)} against the baseline ({esc(series.field)}); dashed: the "
                           f"size-aware threshold of each {series.period}, the larger of PSI's "
                           f"{series.null_quantile:.0%} quantile when nothing moved at that {series.period}'s "
                           f"size and that null's median + {series.threshold:g}; {shifted} of "
                           f"{len(series.dates)} {series.period}s shifted; retrain after: "
                           f"{esc(series.retrain_after or 'no lasting shift')}")
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
    if data.latency is not None:
        by_model = {"control": data.latency.control, "candidate": data.latency.candidate}
        rows = [[esc(m), esc(facts.num(v.p50_ms)), esc(facts.num(v.p95_ms)), esc(facts.num(v.p99_ms)),
                 esc(facts.num(v.cpu_p95_ms)), esc(v.requests_timed), esc(v.errors), esc(facts.num(v.error_rate))]
                for m, v in sorted(by_model.items())]
        timed = ("both models on the same requests, taking turns" if data.latency.paired else "each model apart")
        where = ("in the deployed Lambda function: absolute ms bounds are gated" if data.latency.measured_in ==
                 "lambda" else "outside Lambda: absolute ms bounds are reported, not gated")
        out += "<h3>Scoring latency per request (ms)</h3>" + _table(
            ["model", "p50", "p95", "p99", "CPU p95", "requests", "errors", "error rate"], rows,
            numeric=set(range(1, 8)))
        out += _note(f"Timed {timed}, {where}. Wall clock, except CPU p95: the scoring thread's CPU time, which "
                     "the latency-ratio gate compares because a busy machine does not move it.")
    return out


def whatif_section(data: RunData) -> str:
    if data.whatif is None:
        return ""
    out = '<h2 id="whatif">Catalogue what-if</h2>'
    if data.whatif.more_graceful:
        out += f"<p>Degrades more gracefully: <b>{esc(data.whatif.more_graceful)}</b>.</p>"
    rows = []
    for s in data.whatif.scenarios:
        params = json.dumps(s.params.model_dump(mode="json"), sort_keys=True)
        for model in ("control", "candidate"):
            changes = s.deltas_vs_baseline.get(model) or {}
            shown = ", ".join(f"{k} {facts.signed(v)}" for k, v in sorted(changes.items()) if facts.is_number(v))
            rows.append([esc(s.name), esc(s.kind), esc(params), esc(model), esc(shown or "n/a")])
    return out + (_table(["scenario", "kind", "params", "model", "change vs baseline"], rows) if rows
                  else _note("whatif.json lists no scenarios."))


def provenance_section(data: RunData) -> str:
    record = data.completed
    rows = [["run id", f"<code>{esc(data.run_id)}</code>"]]
    shown: list[tuple[str, str]] = []
    if record is not None:
        shown += [("manifest digest (SHA-256)", record.manifest_digest), ("lake", record.lake),
                  ("lake fingerprint", record.lake_fingerprint), ("code version", record.code_version)]
    if data.record is not None:
        shown.append(("created", data.record.created_at))
    rows += [[label, f"<code>{esc(value)}</code>"] for label, value in shown]
    seeds: dict[str, int | None] = {**(record.seeds.model_dump() if record is not None else {}),
                                    "bootstrap": data.gate_table.bootstrap_seed if data.gate_table else None}
    for name, seed in sorted(seeds.items()):
        if seed is not None:
            rows.append([f"seed: {esc(name)}", f"<code>{esc(seed)}</code>"])
    models = record.models if record is not None else {}
    given = facts.rankings_files(models, data.metrics)
    retrieved = candidate_stage.tables(models)
    for role in facts.model_roles(models):
        rows.append([f"{esc(role)} model", f"<code>{esc(models[role].uri)}</code><br>SHA-256 "
                                           f"<code>{esc(models[role].sha256)}</code>"])
        feature_set = models[role].feature_set
        if feature_set is not None:
            names = models[role].feature_names or []
            rows.append([f"{esc(role)} features", f"{esc(len(names))} of feature set {esc(feature_set.name)} "
                         f"({esc(feature_set.uri or 'built in')})<br>digest <code>{esc(feature_set.digest)}</code>"
                         f"<br><small>{esc(', '.join(names))}</small>"])
        if role in given:
            rows.append([f"{esc(role)} model kind", esc(given[role])])
        if role in retrieved:
            rows.append([f"{esc(role)} candidates", esc(retrieved[role])])
    if record is not None and record.slice.content_sha256:
        rows.append(["slice content SHA-256", f"<code>{esc(record.slice.content_sha256)}</code>"])
    out = '<h2 id="provenance">Provenance</h2>' + _table(["", ""], rows)
    out += _replay(record.replay if record is not None else None)
    parity: ParityDocument | ParitySummary | None = data.parity
    if parity is None and record is not None:
        parity = record.features.parity
    if parity is not None:
        out += (f"<p>Feature parity (stream vs batch): {esc(parity.rows_stream)} vs {esc(parity.rows_batch)} rows, "
                f"{esc(parity.mismatches)} mismatches.</p>")
    seconds = record.step_seconds if record is not None else {}
    if seconds:
        out += "<h3>Step timings (s)</h3>" + _table(
            list(map(esc, seconds)), [[esc(facts.num(v, 3)) for v in seconds.values()]],
            numeric=set(range(len(seconds))))
    if record is not None:
        cost = record.cost_estimate.model_dump(mode="json")
        out += "<p>Cost estimate: " + esc(", ".join(f"{k} {v}" for k, v in sorted(cost.items()))) + "</p>"
    return out


def _replay(replay: ReplayDocument | None) -> str:
    if replay is None:
        return _note("No Kinesis replay in this run.")
    out = (f"<h3>Replay offsets</h3><p>stream <code>{esc(replay.stream)}</code>: {esc(replay.records)} records in "
           f"{esc(replay.put_calls)} put calls, {esc(replay.retried_entries)} retried entries.</p>")
    if replay.shards:
        out += _table(["shard", "first sequence", "last sequence", "records"],
                      [[f"<code>{esc(s.shard_id)}</code>", f"<code>{esc(s.first_sequence)}</code>",
                        f"<code>{esc(s.last_sequence)}</code>", esc(s.records)] for s in replay.shards],
                      numeric={3})
    return out


SECTIONS: list[tuple[str, Callable[[RunData], str]]] = [
    ("gates", gates_section), ("attribution", lambda data: attribution.html_section(data.attribution)),
    ("deltas", forest_section), ("cohorts", cohorts_section), ("metrics", metrics_section),
    ("candidate-stage", candidate_stage.html_section), ("slice", slice_section),
    ("drift", drift_section), ("models", models_section), ("whatif", whatif_section),
    ("list-change", list_change_report.html_section),
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
    if data.decision != ERROR:
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
