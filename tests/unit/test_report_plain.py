"""The words of a run: units per gate row, one plain sentence per row, the headline, and forest plots that keep to
one scale (testbed.report.plain, testbed.report.facts.forest_panels, testbed.report.charts.forest)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from testbed.core.gates import UNTRUSTED_TIMING
from testbed.record.gates import GateRow
from testbed.report import charts, facts, html, plain
from testbed.report.inputs import RunData
from tests.unit import report_run
from tests.unit.report_run import NOT_MEASURED


def row(**fields: Any) -> GateRow:
    base = {"name": "g", "metric": "ndcg@10", "stratum": "all", "interval": None, "threshold": None,
            "p_value": None, "n": 500, "reason": "stats", "confidence": 0.9}
    return GateRow(**{**NOT_MEASURED, **base, **fields})


def comparison(outcome: str, observed: float, interval: list[float], **fields: Any) -> GateRow:
    return row(kind="non_inferiority", outcome=outcome, observed=observed, interval=interval, threshold=-0.01,
               scale="absolute", **fields)


# ---------------------------------------------------------------- units

@pytest.mark.parametrize(("fields", "unit", "observed", "allowed", "interval"), [
    ({"kind": "non_inferiority", "scale": "absolute", "observed": -0.0907, "threshold": -0.01,
      "interval": [-0.1004, -0.0813]}, "abs_delta", "-0.0907 absolute Δ", "≥ -0.0100", "90% CI [-0.1004, -0.0813]"),
    ({"kind": "non_inferiority", "scale": "relative", "observed": 0.201, "threshold": -0.05,
      "interval": [0.163, 0.238]}, "rel_delta", "+20.1% relative Δ", "≥ -5.0%", "90% CI [+16.3%, +23.8%]"),
    ({"kind": "threshold", "scale": "absolute", "observed": 0.3566, "threshold": 0.02, "interval": [0.34, 0.37]},
     "value", "0.3566 candidate value", "≥ 0.0200", "90% CI [0.3400, 0.3700]"),
    ({"kind": "latency", "observed": 1.538, "threshold": 50.0, "interval": [1.05, 2.26]}, "ms", "1.54 ms",
     "≤ 50.00 ms", "90% CI [1.05 ms, 2.26 ms]"),
    ({"kind": "latency_ratio", "observed": 1.0412, "threshold": 1.5, "interval": [0.98, 1.12]}, "ratio",
     "1.04× candidate/control", "≤ 1.50×", "90% CI [0.98×, 1.12×]"),
    ({"kind": "error_rate", "observed": 0.0, "threshold": 0.001, "interval": [0.0, 0.0022]}, "rate", "0.00%",
     "≤ 0.10%", "90% CI [0.00%, 0.22%]"),
    ({"kind": "parity", "observed": 0.0, "threshold": 0.0, "confidence": None}, "rows", "0 rows", "0 rows", "n/a"),
    ({"kind": "sample_ratio", "observed": 1225.0, "threshold": 0.001, "confidence": None}, "users", "1225 users",
     "p ≥ 0.0010", "n/a"),
])
def test_every_number_of_a_row_carries_the_rows_unit(fields: dict[str, Any], unit: str, observed: str, allowed: str,
                                                     interval: str) -> None:
    gate = row(outcome="pass", **fields)
    assert (plain.unit_of(gate), plain.observed_text(gate), plain.limit_text(gate), plain.interval_text(gate)) == (
        unit, observed, allowed, interval)


# ---------------------------------------------------------------- sentences

def test_a_failed_comparison_says_how_far_it_fell_against_the_allowed_margin() -> None:
    gate = comparison("fail", -0.0907, [-0.1004, -0.0813], p_harm=1e-6, p_harm_adjusted=3e-6, p_value=1.0)
    assert plain.sentence(gate) == ("ndcg@10 fell by 0.091 for all users (90% CI 0.081–0.100), more than the allowed "
                                    "0.010.")
    assert plain.reason_line(gate) == ("FAIL g: ndcg@10 fell by 0.091 for all users (90% CI 0.081–0.100), more than "
                                       "the allowed 0.010 (harm p <0.0001, adjusted).")


def test_a_relative_comparison_speaks_in_percent() -> None:
    gate = row(kind="non_inferiority", scale="relative", metric="recall@10", outcome="fail", observed=-0.1674,
               interval=[-0.1923, -0.1404], threshold=-0.05, stratum="tier=gold", p_harm=2e-14)
    assert plain.sentence(gate) == ("recall@10 fell by 16.7% for tier=gold (90% CI 14.0%–19.2%), more than the "
                                    "allowed 5.0%.")


def test_passed_and_inconclusive_comparisons() -> None:
    rose = comparison("pass", 0.0907, [0.0813, 0.1004], p_value=1e-9)
    assert plain.sentence(rose) == ("ndcg@10 rose by 0.091 for all users (90% CI 0.081–0.100); a fall of up to 0.010 "
                                    "is allowed.")
    within = comparison("pass", -0.004, [-0.008, 0.001])
    assert plain.sentence(within) == ("ndcg@10 fell by 0.004 for all users (90% CI -0.008 to +0.001); a fall of up "
                                      "to 0.010 is allowed.")
    unsure = comparison("inconclusive", -0.004, [-0.015, 0.007], n=80, required_n=310)
    assert plain.sentence(unsure) == ("ndcg@10 changed by -0.004 for all users (90% CI -0.015 to +0.007): not enough "
                                      "evidence that it did not fall by more than the allowed 0.010; about 310 users "
                                      "would settle it.")


def test_superiority_threshold_and_engineering_sentences() -> None:
    better = row(kind="superiority", outcome="pass", observed=0.03, interval=[0.021, 0.04], threshold=0.01,
                 scale="absolute")
    assert plain.sentence(better) == ("ndcg@10 rose by 0.030 for all users (90% CI 0.021–0.040), more than the "
                                      "required gain of 0.010.")
    floor = row(kind="threshold", outcome="fail", metric="revenue@10", observed=3.25, threshold=4.5, scale="absolute")
    assert plain.sentence(floor) == "The candidate's revenue@10 is 3.250 for all users, below the floor of 4.500."
    ratio = row(kind="latency_ratio", metric="p95 CPU time candidate/control", outcome="inconclusive",
                observed=1.663, interval=[1.233, 3.218], threshold=1.5)
    assert plain.sentence(ratio) == ("The candidate's p95 CPU time is 1.66× the control's (90% CI 1.23×–3.22×), not "
                                     "shown to be within the limit of 1.50×.")
    local = row(kind="latency", metric="p95 latency ms", outcome="pass", observed=1.6, interval=[1.48, 8.87],
                threshold=50.0, role="advisory", reason=f"{UNTRUSTED_TIMING}; candidate p95 latency ms 1.6")
    assert plain.sentence(local) == ("The candidate's p95 latency is 1.60 ms (90% CI 1.48 ms–8.87 ms), within the "
                                     "limit of 50.00 ms; not gated here: timings count only from a deployed run.")
    errors = row(kind="error_rate", metric="error rate", outcome="fail", observed=0.004, threshold=0.001,
                 interval=[0.002, 0.007])
    assert plain.sentence(errors) == ("0.40% of the candidate's scoring requests failed (90% CI 0.20%–0.70%), over the "
                                      "limit of 0.10%.")
    parity = row(kind="parity", metric=None, outcome="fail", observed=3.0, threshold=0.0)
    assert plain.sentence(parity) == "3 rows of features differ between the stream and batch paths."
    srm = row(kind="sample_ratio", metric=None, outcome="fail", observed=1225.0, threshold=0.001, p_value=1e-5)
    assert plain.sentence(srm) == ("The slice's users per stratum do not match the sampling plan (p <0.0001, below the "
                                   "alpha 0.0010): the sample is biased.")


# ---------------------------------------------------------------- headline

def run_data(gates: list[GateRow], decision: str, reasons: list[str] | None = None) -> RunData:
    document = report_run.gates_model().model_copy(update={"gates": gates, "decision": decision,
                                                           "reasons": reasons or []})
    return RunData("runs/x-0123456789ab", None, gates=document, metrics=report_run.metrics_model())


def test_headline_of_a_fail_groups_the_failed_rows_by_metric() -> None:
    failed = [comparison("fail", -0.09, [-0.1, -0.08], stratum=s, name="ndcg-not-worse")
              for s in ("all", "tier=gold", "tier=silver")]
    guard = row(kind="latency_ratio", name="latency-ratio", outcome="inconclusive", observed=1.6, threshold=1.5,
                role="guardrail")
    top = plain.headline(run_data([*failed, guard], "FAIL"))
    assert top.why == "3 gates failed on proven harm: ndcg@10 (all users and 2 strata)"
    assert top.primary == "ndcg@10 0.3000 → 0.3120: +0.0120 (+4.0%), [+0.0030, +0.0210]"  # no manifest: no level
    assert top.guardrails == ("latency-ratio inconclusive (does not block: a guardrail blocks only on proven harm)")
    assert top.next_step.startswith("do not promote")


def test_headline_of_a_pass_and_of_an_inconclusive_run() -> None:
    passed = [comparison("pass", 0.09, [0.08, 0.1]), row(kind="latency_ratio", name="lat", outcome="pass",
                                                         observed=1.0, threshold=1.5, role="guardrail"),
              row(kind="latency", name="ms", outcome="fail", observed=90.0, threshold=50.0, role="advisory")]
    top = plain.headline(run_data(passed, "PASS"))
    assert (top.why, top.guardrails) == ("all 1 goal gates passed and no guardrail found harm",
                                         "lat held; 1 advisory gate reported only")
    assert top.next_step.startswith("promote the candidate")
    unsure = [comparison("inconclusive", -0.004, [-0.015, 0.007], n=80, required_n=310, stratum="tier=gold")]
    data = run_data(unsure, "INCONCLUSIVE", ["INCONCLUSIVE g [tier=gold]: stats", "unknown items above the limit"])
    top = plain.headline(data)
    assert top.why == "1 goal could not be decided: ndcg@10 (tier=gold)"
    assert top.next_step.startswith("rerun with more users (about 310")
    lines = plain.reason_lines(data)
    assert lines[0].startswith("INCONCLUSIVE g: ndcg@10 changed by -0.004 for tier=gold")
    assert lines[1:] == ["unknown items above the limit"]  # the decision's own reason that no row states


# ---------------------------------------------------------------- one scale per chart

def relative_gates() -> Any:
    """A relative-margin gate on all users only (like the demo's recall gate), beside the fixture's gates."""
    recall = row(name="recall-not-worse", kind="non_inferiority", metric="recall@10", scale="relative",
                 outcome="pass", observed=0.25, interval=[0.15, 0.35], threshold=-0.05, confidence=0.9)
    base = report_run.gates_model()
    return base.model_copy(update={"gates": [*base.gates, recall]})


def test_a_relative_margin_puts_every_stratum_of_its_panel_on_the_relative_scale() -> None:
    metrics = report_run.metrics_model()
    panels = {p.gate: p for p in facts.forest_panels(metrics, relative_gates(), 0.95)}
    recall = panels["recall-not-worse"]
    assert recall.scale == "relative" and {r.scale for r in recall.rows} == {"relative"}
    by_stratum = {r.stratum: r for r in recall.rows}
    assert (by_stratum["all"].delta, by_stratum["all"].confidence) == (0.25, 0.9)  # the gate's own row
    gold = metrics.deltas["tier=gold"]["recall@10"]
    assert by_stratum["tier=gold"].delta == pytest.approx(gold.relative)  # not the absolute delta 0.01
    assert (by_stratum["tier=gold"].low, by_stratum["tier=gold"].high) == tuple(gold.relative_interval)
    assert by_stratum["tier=gold"].confidence == 0.95
    ndcg = panels["ndcg-not-worse"]
    assert ndcg.scale == "absolute" and {r.scale for r in ndcg.rows} == {"absolute"}


def test_the_relative_chart_says_its_scale_and_labels_each_intervals_level() -> None:
    panel = next(p for p in facts.forest_panels(report_run.metrics_model(), relative_gates(), 0.95)
                 if p.gate == "recall-not-worse")
    svg = charts.forest(panel)
    assert "relative Δ, % of control" in svg and "absolute Δ" not in svg
    assert "90% CI (pass)" in svg and "95% CI (not gated)" in svg
    assert "+25.0%" in svg  # the all-users row, drawn in percent


def test_every_forest_figure_declares_one_scale_for_all_its_rows() -> None:
    data = RunData("runs/x-0123456789ab", None, gates=relative_gates(), metrics=report_run.metrics_model())
    page = html.forest_section(data)
    figures = re.findall(r'data-chart="(forest-[^"]+)" data-scale="([a-z]+)" data-row-scales="([a-z ]+)"', page)
    assert {name for name, _, _ in figures} == {"forest-ndcg-not-worse", "forest-recall-not-worse"}
    for _, scale, rows in figures:
        assert set(rows.split()) == {scale}
    assert dict((n, s) for n, s, _ in figures)["forest-recall-not-worse"] == "relative"


def test_drift_bars_keep_to_one_measure() -> None:
    drift = report_run.drift_model()
    features = list(drift.features)
    other = features[0].model_copy(update={"feature": "odd_one", "psi": None, "psi_threshold": None})
    svg = charts.drift_bars([*features, other])
    assert charts.drift_bar_measure([*features, other]) == "PSI" and "odd_one" not in svg
    assert "feature drift (PSI, threshold 0.2)" in svg


# ---------------------------------------------------------------- users a rerun can have

def test_users_needed_beyond_the_strata_population_are_not_reachable() -> None:
    """A stratum whose whole population is 11 users: no rerun can sample the ~30 that would settle it."""
    small = comparison("inconclusive", -0.004, [-0.015, 0.007], n=11, required_n=30, stratum="region=north",
                       eligible_users=11)
    assert plain.sentence(small).endswith("the allowed 0.010; not reachable: only 11 eligible users.")
    assert "30 users" not in plain.sentence(small)
    top = plain.headline(run_data([small], "INCONCLUSIVE", ["INCONCLUSIVE g [region=north]: stats"]))
    assert top.next_step.startswith("more users of this lake cannot settle it (region=north has only 11 eligible")
    reachable = small.model_copy(update={"eligible_users": 500})
    assert plain.sentence(reachable).endswith("; about 30 users would settle it.")
    both = plain.headline(run_data([small, reachable.model_copy(update={"stratum": "all"})], "INCONCLUSIVE"))
    assert both.next_step.startswith("rerun with more users (about 30")


def test_every_p_value_says_whether_it_is_adjusted() -> None:
    holm = comparison("fail", -0.09, [-0.1, -0.08], p_value=1.0, p_adjusted=1.0, p_harm=0.0001,
                      p_harm_adjusted=0.0004, correction="holm")
    assert facts.p_text(holm) == "harm p 0.0004, holm-adjusted"
    assert plain.sentence(holm, with_evidence=True).endswith("(harm p 0.0004, holm-adjusted).")
    assert plain.interval_text(holm) == "90% CI [-0.1000, -0.0800], holm-adjusted"
    none = holm.model_copy(update={"correction": "none", "p_harm_adjusted": 0.0001})
    assert facts.p_text(none) == "harm p 0.0001, unadjusted"
    assert plain.interval_text(none) == "90% CI [-0.1000, -0.0800]"
    page = html.gates_section(run_data([holm], "FAIL"))
    assert "<th>p unadjusted</th><th>p adjusted</th><th>harm p unadjusted</th><th>harm p adjusted</th>" in \
        page.replace(' class="n"', "")
