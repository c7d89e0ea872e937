"""What the reports derive from a run, checked against hand-worked figures (tests/unit/report_run.py)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from testbed.adapters.storage import UriStorage
from testbed.record.evaluation import MetricsDocument, RetrainPair, RetrainSpread, TrainingVariance
from testbed.report import facts
from testbed.report.inputs import inclusion_by_stratum, load_run, popularity_shares, score_histograms
from tests.unit import report_run


def test_number_formats() -> None:
    assert facts.num(0.99) == "0.9900"
    assert facts.num(None) == "n/a" and facts.num(math.nan) == "n/a" and facts.num(math.inf) == "n/a"
    assert facts.num(12) == "12"
    assert facts.num(0.00004) == "4.00e-05"  # would print as 0.0000
    assert facts.num(0.0) == "0.0000"
    assert facts.signed(0.0123) == "+0.0123" and facts.signed(-0.5) == "-0.5000" and facts.signed(None) == "n/a"
    assert facts.pvalue(2e-58) == "<0.0001" and facts.pvalue(0.05) == "0.0500" and facts.pvalue(None) == "n/a"
    assert facts.interval([0.1, 0.25]) == "[0.1000, 0.2500]" and facts.interval(None) == "n/a"
    assert facts.interval([-0.1, 0.2], sign=True) == "[-0.1000, +0.2000]"
    assert facts.percent(0.25) == "+25.0%" and facts.percent(-0.1875) == "-18.8%"
    assert not facts.is_number(True) and not facts.is_number("1") and facts.is_number(3)


def test_metrics_better_when_lower_are_marked_in_tables() -> None:
    assert facts.metric_label("arp@10") == "arp@10 (lower is better)"
    assert facts.metric_label("exposure_gini@5") == "exposure_gini@5 (lower is better)"
    assert facts.metric_label("ndcg@10") == "ndcg@10"
    assert facts.metric_label("revenue_per_user@10") == "revenue_per_user@10"
    assert facts.metric_label("retired_metric@10") == "retired_metric@10"  # an older record's name stays as it is


def test_failed_gates_come_first_then_inconclusive_then_passed() -> None:
    ordered = facts.ordered_gates(report_run.gates_model())
    assert [(g.name, g.stratum, g.outcome) for g in ordered] == [
        ("revenue-floor", "all", "fail"), ("ndcg-not-worse", "tier=gold", "inconclusive"),
        ("ndcg-not-worse", "all", "pass"), ("latency-p95", "all", "pass")]
    assert facts.gate_counts(report_run.gates_model()) == {"fail": 1, "inconclusive": 1, "pass": 2}
    assert facts.counts_text({"fail": 1, "inconclusive": 0, "pass": 2}) == "3 gates: 1 fail, 2 pass"
    assert facts.ordered_gates(None) == [] and facts.counts_text(facts.gate_counts(None)) == "no gates"


def test_adjusted_p_value_is_the_one_shown() -> None:
    gate = report_run.gates_model().gates[0]
    assert facts.p_shown(gate) == 0.0003
    assert facts.p_shown(gate.model_copy(update={"p_value": 0.2, "p_adjusted": None})) == 0.2


def test_a_failed_gate_shows_the_harm_tests_p_value_and_says_so() -> None:
    gate = report_run.gates_model().gates[0].model_copy(update={
        "outcome": "fail", "p_value": 1.0, "p_adjusted": 1.0, "p_harm": 0.00002, "p_harm_adjusted": 0.00008})
    assert (facts.p_shown(gate), facts.p_label(gate), facts.p_text(gate)) == (0.00008, "harm p",
                                                                              "harm p <0.0001, adjusted")
    unadjusted = gate.model_copy(update={"p_harm_adjusted": None, "p_harm": 0.003})  # latency_ratio: no family
    assert facts.p_text(unadjusted) == "harm p 0.0030, unadjusted"
    srm = gate.model_copy(update={"p_value": 0.0002, "p_adjusted": 0.0002, "p_harm": None, "p_harm_adjusted": None})
    assert facts.p_text(srm) == "p 0.0002, adjusted"  # a failed check without a harm test: its own p-value
    assert facts.p_text(report_run.gates_model().gates[2]) == "n/a"  # point values


def test_intervals_carry_their_confidence_level() -> None:
    assert facts.interval_at([0.1, 0.2], 0.9) == "90% CI [0.1000, 0.2000]"
    assert facts.interval_at([-0.1, 0.2], 0.95, sign=True) == "95% CI [-0.1000, +0.2000]"
    assert facts.interval_at([0.1, 0.2], None) == "[0.1000, 0.2000]"
    assert facts.interval_at(None, 0.9) == "n/a"


def test_top_deltas_rank_by_size_of_the_relative_change() -> None:
    ranked = facts.top_deltas(report_run.metrics_model())
    assert [name for name, _ in ranked] == ["recall@10", "revenue@10", "ndcg@10"]  # 0.25, -0.1875, 0.04
    assert ranked[0][1].relative == pytest.approx(0.25)
    assert [name for name, _ in facts.top_deltas(report_run.metrics_model(), 1)] == ["recall@10"]
    assert facts.top_deltas(None) == []


def test_forest_panel_uses_gate_intervals_where_gated_and_metrics_elsewhere() -> None:
    panels = facts.forest_panels(report_run.metrics_model(), report_run.gates_model())
    assert [(p.metric, p.gate, p.kind) for p in panels] == [("ndcg@10", "ndcg-not-worse", "non_inferiority")]
    rows = panels[0].rows
    assert [r.stratum for r in rows] == ["all", "tier=gold", "tier=silver"]
    assert rows[0] == facts.ForestRow("all", 0.012, 0.004, 0.02, -0.01, "pass", "absolute", None)
    assert rows[1] == facts.ForestRow("tier=gold", -0.004, -0.015, 0.007, -0.01, "inconclusive", "absolute", None)
    silver = rows[2]
    assert silver.delta == pytest.approx(0.02) and (silver.low, silver.high) == (0.01, 0.03)
    assert silver.threshold is None and silver.outcome == "not gated" and silver.scale == "absolute"
    assert panels[0].scale == "absolute"


def test_forest_without_interval_gates_plots_the_largest_delta_unmarked() -> None:
    panels = facts.forest_panels(report_run.metrics_model(), report_run.gates_model().model_copy(update={"gates": []}))
    assert [(p.metric, p.gate) for p in panels] == [("recall@10", None)]
    assert all(r.threshold is None for r in panels[0].rows) and len(panels[0].rows) == 3
    assert facts.forest_panels(None, None) == []


def test_composition_joins_stats_and_inclusion() -> None:
    rows = facts.composition(report_run.stats_model(), inclusion_by_stratum(report_run.users_table()))
    gold = rows[0]
    assert gold.stratum == "tier=gold" and (gold.users, gold.events, gold.eligible_users) == (80, 3000, 100)
    assert (gold.p_min, gold.p_max) == (0.6, 0.8) and gold.p_mean == pytest.approx(0.7)
    assert facts.composition(None, None) == []


def test_inclusion_by_stratum_and_without_strata() -> None:
    out = inclusion_by_stratum(report_run.users_table())
    assert list(out) == ["tier=gold", "tier=silver"]
    assert out["tier=silver"]["users"] == 3 and out["tier=silver"]["mean"] == pytest.approx(0.4)
    assert (out["tier=silver"]["min"], out["tier=silver"]["max"]) == (0.3, 0.5)
    flat = inclusion_by_stratum(report_run.users_table().drop_columns(["stratum"]))
    assert list(flat) == ["all"] and flat["all"]["users"] == 5 and flat["all"]["mean"] == pytest.approx(0.52)


def test_score_histograms_share_bins_and_count_non_finite_scores_apart() -> None:
    out = score_histograms(report_run.rankings_table(), bins=5)
    assert out is not None
    assert out["edges"] == pytest.approx([0.5, 1.0, 1.5, 2.0, 2.5, 3.0])
    assert out["counts"] == {"control": [0, 2, 0, 2, 2], "candidate": [1, 0, 0, 0, 4]}
    assert out["n"] == {"control": 6, "candidate": 5} and out["non_finite"] == {"control": 0, "candidate": 1}
    assert out["mean"]["control"] == pytest.approx(2.0) and out["mean"]["candidate"] == pytest.approx(2.5)
    assert out["median"] == {"control": 2.0, "candidate": 3.0}
    reference = np.histogram([3.0, 3.0, 0.5, 3.0, 3.0], bins=np.linspace(0.5, 3.0, 6))[0]
    assert out["counts"]["candidate"] == reference.tolist()


def test_popularity_shares_per_catalogue_tenth() -> None:
    out = popularity_shares(report_run.rankings_table(), report_run.items_table())
    assert out is not None and out["buckets"] == 10 and out["catalogue_items"] == 10
    assert out["share"]["control"] == pytest.approx([4 / 6, 2 / 6] + [0.0] * 8)
    assert out["share"]["candidate"] == pytest.approx([1 / 3, 0, 0, 0, 1 / 3, 0, 0, 0, 0, 1 / 3])
    assert out["distinct_items"] == {"control": 2, "candidate": 3}
    assert out["basis"] == "views, carts and purchases in the 90 days before the cutoff"
    fifths = popularity_shares(report_run.rankings_table(), report_run.items_table(), buckets=5)
    assert fifths is not None and fifths["share"]["candidate"] == pytest.approx([1 / 3, 0, 1 / 3, 0, 1 / 3])


def test_recommended_item_without_features_counts_as_least_popular() -> None:
    rankings = pa.table({"user_id": ["u1", "u1"], "model": ["control", "candidate"], "rank": [1, 1],
                         "item_id": ["zz-new", "i00"], "score": [1.0, 1.0]})
    out = popularity_shares(rankings, report_run.items_table(), buckets=11)
    assert out is not None and out["catalogue_items"] == 11
    assert out["share"]["control"][-1] == 1.0 and out["share"]["candidate"][0] == 1.0


def test_popularity_needs_an_interaction_column() -> None:
    assert popularity_shares(report_run.rankings_table(), pa.table({"item_id": ["i00"]})) is None


def test_drift_ranking_and_measure() -> None:
    drift = report_run.drift_model()
    assert [f.feature for f in facts.drift_features(drift)] == ["i_revenue_30d", "i_price", "u_views_7d"]
    assert facts.drifted_count(drift) == 2 and facts.drifted_count(None) is None
    assert facts.drifted_count(drift) == sum(f.drifted for f in drift.features)  # the total agrees with the rows
    assert facts.drift_measure(drift.features[0]) == ("PSI", 0.42, 0.2)
    without_psi = drift.features[1].model_copy(update={"method": "ks", "statistic": 0.3, "threshold": 0.1, "psi": None})
    assert facts.drift_measure(without_psi) == ("ks", 0.3, 0.1)


def test_load_run_reads_everything_and_lists_what_is_missing(tmp_path: Path) -> None:
    run = report_run.write_run(tmp_path, whatif=False, attribution=True,
                               skip=("latency.json", "features/batch_item.parquet"))
    (run / "features" / "parity.json").write_text("{not json")
    data = load_run(UriStorage(), str(run))
    assert data.run_id == report_run.RUN_ID and data.decision == "FAIL" and data.k == 10
    assert data.gates is not None and data.metrics is not None and data.drift is not None
    assert data.whatif is None and data.latency is None and data.parity is None and data.popularity is None
    assert data.scores is not None and data.inclusion is not None
    assert set(data.missing) == {"whatif.json", "latency.json", "features/parity.json (unreadable: JSONDecodeError)",
                                 "features/batch_item.parquet"}
    light = load_run(UriStorage(), str(run), derived=False)
    assert light.scores is None and light.inclusion is None and light.gates is not None


def _with_retrains(deltas: list[float]) -> MetricsDocument:
    spread = RetrainSpread(deltas=list(deltas), relative_deltas=[d / 0.3 for d in deltas], min=min(deltas),
                           max=max(deltas), std=float(np.std(deltas, ddof=1)), relative_min=None, relative_max=None,
                           relative_std=None)
    variance = TrainingVariance(stratum="all", method="m", retrains=[RetrainPair(control="c", candidate="d")] * 3,
                                metrics={"ndcg@10": spread})
    return report_run.metrics_model().model_copy(update={"training_variance": variance})


def test_every_report_says_the_intervals_are_over_users_only() -> None:
    assert facts.interval_scope(report_run.metrics_model()).startswith("Intervals are over users only")
    assert "seed_variants" in facts.interval_scope(None)
    assert facts.retrain_text(facts.retrain_spread(report_run.metrics_model(), "ndcg@10")) is None


def test_a_retrain_spread_comparable_to_the_distance_from_the_threshold_is_said() -> None:
    """The gate on all users observes +0.012 against a threshold of -0.01 (distance 0.022)."""
    gates = report_run.gates_model()
    wide = _with_retrains([0.012, 0.001, 0.015])  # range 0.014 >= half of 0.022
    assert facts.retrain_text(facts.retrain_spread(wide, "ndcg@10")) == "the delta moves by ±0.0074 between retrains"
    [line] = facts.retrain_warnings(wide, gates)
    assert line.startswith("ndcg-not-worse (ndcg@10): the delta moves from +0.0010 to +0.0150 between retrains, "
                           "comparable to its distance 0.0220 from the gate's threshold -0.0100")
    assert facts.retrain_warnings(_with_retrains([0.012, 0.010, 0.013]), gates) == []  # range 0.003: no
