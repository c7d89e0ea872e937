"""Gates and the decision: hand-made evidence with known outcomes."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from testbed.core import gates, stats
from testbed.core.sample_ratio import sample_ratio_test
from testbed.manifest import Gate
from testbed.pipeline.gate import eligible_users
from tests.unit import report_run

GATES_JSON_KEYS = {"name", "kind", "metric", "stratum", "observed", "relative", "interval", "threshold", "statistic",
                   "p_value", "p_adjusted", "alpha", "outcome", "n", "mde", "required_n", "method", "reason"}


def _sample(delta: float, n: int, sd: float, seed: int, gold_delta: float | None = None) -> stats.PairedSample:
    """Two metrics; the per-user deltas have exactly mean `delta` (in the gold stratum `gold_delta`)."""
    rng = np.random.default_rng(seed)
    control = rng.uniform(0.2, 0.4, (n, 2))
    labels = np.array(["tier=bronze", "tier=gold"] * (n // 2), dtype=object)
    noise = rng.normal(0, sd, (n, 2))
    shift = np.full(n, delta)
    if gold_delta is not None:
        shift[labels == "tier=gold"] = gold_delta
    for label in ("tier=bronze", "tier=gold"):  # exact means within each stratum
        mask = labels == label
        noise[mask] -= noise[mask].mean(axis=0)
    candidate = control + shift[:, None] + noise
    return stats.PairedSample(("ndcg@10", "recall@10"), np.array([f"u{i:04d}" for i in range(n)], dtype=object),
                              labels, np.ones(n), control, candidate)


def _inputs(delta: float = 0.0, n: int = 400, sd: float = 0.05, seed: int = 0, gold_delta: float | None = None,
            **extra: object) -> gates.GateInputs:
    sample = _sample(delta, n, sd, seed, gold_delta)
    comparisons = stats.compare_strata(sample, 2000, seed=1, fixed_stratum_sizes=False)
    aggregates = {"control": {"all": {"ndcg@10": float(sample.control[:, 0].mean()), "coverage@10": 0.30}},
                  "candidate": {"all": {"ndcg@10": float(sample.candidate[:, 0].mean()), "coverage@10": 0.25}}}
    fields: dict[str, object] = {"latency_ms": {"candidate": np.linspace(1, 100, 100)},
                                 "error_rate": {"candidate": 0.0}, "scored_users": {"candidate": 400}, **extra}
    return gates.GateInputs(comparisons=comparisons, aggregates=aggregates,  # type: ignore[arg-type]
                            strata=[s for s in comparisons if s != "all"], **fields)


def _gate(**kw: object) -> Gate:
    return Gate.model_validate({"name": "g", **kw})


def _one(gate: Gate, inputs: gates.GateInputs, settings: gates.GateSettings | None = None) -> gates.GateResult:
    [result] = gates.evaluate([gate], inputs, settings)
    return result


@pytest.mark.parametrize(("delta", "outcome"), [(0.0, "pass"), (-0.05, "fail"), (-0.01, "inconclusive")])
def test_non_inferiority(delta: float, outcome: str) -> None:
    result = _one(_gate(kind="non_inferiority", metric="ndcg@10", margin=0.01), _inputs(delta))
    assert result.outcome == outcome
    assert result.threshold == -0.01 and result.scale == "absolute"
    assert result.observed == pytest.approx(delta, abs=1e-12)
    assert result.interval is not None and result.interval[0] < result.observed < result.interval[1]
    assert result.confidence == 0.9
    assert result.p_value is not None and result.p_harm is not None
    assert (result.p_value <= 0.05) == (outcome == "pass") and (result.p_harm <= 0.05) == (outcome == "fail")
    # one row, so Holm changes nothing
    assert result.p_adjusted == result.p_value


def test_p_value_agrees_with_the_t_test_on_normal_data() -> None:
    inputs = _inputs(-0.008, n=2000, sd=0.05)  # p around 0.04: inside the resamples, not the extrapolated tail
    result = _one(_gate(kind="non_inferiority", metric="ndcg@10", margin=0.01), inputs)
    cmp = inputs.comparisons["all"]
    t = (cmp.delta.estimate[0] + 0.01) / cmp.t_std_error[0]
    assert 0.01 < result.p_value < 0.1  # type: ignore[operator]
    assert result.p_value == pytest.approx(scipy_stats.t.sf(t, 1999), rel=0.15)
    assert result.statistic == pytest.approx((result.observed + 0.01) / cmp.delta.std_error[0])  # type: ignore[operator]


def test_relative_margin_tests_the_relative_delta() -> None:
    inputs = _inputs(-0.02)
    cmp = inputs.comparisons["all"]
    relative = float(cmp.relative.estimate[0])
    result = _one(_gate(kind="non_inferiority", metric="ndcg@10", margin=0.2, margin_type="relative"), inputs)
    assert (result.scale, result.threshold) == ("relative", -0.2)
    assert result.observed == pytest.approx(relative) and result.relative == pytest.approx(relative)
    assert result.outcome == "pass"
    harmful = _one(_gate(kind="non_inferiority", metric="ndcg@10", margin=0.02, margin_type="relative"), inputs)
    assert relative < -0.05 and harmful.outcome == "fail"


def test_superiority() -> None:
    sup = _gate(kind="superiority", metric="ndcg@10", margin=0.0)
    assert _one(sup, _inputs(0.02)).outcome == "pass"
    assert _one(sup, _inputs(-0.02)).outcome == "fail"
    # gain confidently above 0 but below the required 0.05: more users will not pass it
    between = _one(_gate(kind="superiority", metric="ndcg@10", margin=0.05), _inputs(0.02))
    assert between.outcome == "inconclusive" and between.required_n is None
    assert "more users will not pass it" in between.reason


def test_threshold_is_tested_on_the_candidate_mean() -> None:
    inputs = _inputs(0.0)
    mean = float(inputs.comparisons["all"].candidate.estimate[0])
    assert _one(_gate(kind="threshold", metric="ndcg@10", bound=0.99), inputs).outcome == "fail"
    low = _one(_gate(kind="threshold", metric="ndcg@10", bound=0.1), inputs)
    assert low.outcome == "pass" and low.observed == pytest.approx(mean)
    assert _one(_gate(kind="threshold", metric="ndcg@10", bound=mean), inputs).outcome == "inconclusive"


def test_coverage_is_compared_on_point_values() -> None:
    result = _one(_gate(kind="non_inferiority", metric="coverage@10", margin=0.01), _inputs(0.0))
    assert result.observed == pytest.approx(-0.05) and result.outcome == "fail" and result.p_value is None
    relative = _one(_gate(kind="non_inferiority", metric="coverage@10", margin=0.2, margin_type="relative"),
                    _inputs(0.0))
    assert relative.observed == pytest.approx(-0.05 / 0.30) and relative.outcome == "pass"


def test_safety_gates() -> None:
    lat = _one(_gate(kind="latency", percentile=95, bound=50), _inputs(0.0))
    assert lat.observed == pytest.approx(np.percentile(np.linspace(1, 100, 100), 95))
    assert lat.outcome == "fail" and lat.p_value is None
    # order statistics X_(l), X_(u) with P(Bin(100, .95) <= l - 1) <= .05 and P(Bin(100, .95) <= u - 1) >= .95
    x = np.linspace(1, 100, 100)
    cdf = scipy_stats.binom.cdf(np.arange(101), 100, 0.95)
    assert lat.interval == [x[np.flatnonzero(cdf <= 0.05)[-1]], x[np.flatnonzero(cdf >= 0.95)[0]]]
    err = _one(_gate(kind="error_rate", bound=0.0), _inputs(0.0))
    assert err.outcome == "pass" and err.interval is not None and err.interval[0] == 0.0 < err.interval[1] < 0.01


def test_missing_latency_fails_closed() -> None:
    empty = _inputs(0.0, latency_ms={}, error_rate={}, scored_users={})
    assert _one(_gate(kind="latency", bound=50), empty).outcome == "fail"
    assert _one(_gate(kind="error_rate", bound=0.1), empty).outcome == "fail"


def test_too_few_users_is_inconclusive_and_left_out_of_the_correction() -> None:
    inputs = _inputs(0.0)
    few, other = gates.evaluate([_gate(kind="non_inferiority", metric="ndcg@10", margin=0.5, min_users=1000),
                                 _gate(name="h", kind="non_inferiority", metric="recall@10", margin=0.5)], inputs)
    assert few.outcome == "inconclusive" and "min_users" in few.reason and few.p_adjusted is None
    assert other.p_adjusted == other.p_value  # a family of one


def test_per_stratum_rows_and_holm_across_gates_and_strata() -> None:
    inputs = _inputs(-0.0049, n=600)  # both strata just below 0.05 alone
    chosen = [_gate(kind="non_inferiority", metric="ndcg@10", margin=0.01, scope="per_stratum"),
              _gate(name="h", kind="non_inferiority", metric="recall@10", margin=0.01)]
    holm = gates.evaluate(chosen, inputs)
    assert [(r.name, r.stratum) for r in holm] == [("g", "all"), ("g", "tier=bronze"), ("g", "tier=gold"),
                                                   ("h", "all")]
    raw = [r.p_value for r in holm]
    assert [r.p_adjusted for r in holm] == pytest.approx(stats.adjust_p_values(raw, "holm"))  # type: ignore[arg-type]
    assert [r.p_harm_adjusted for r in holm] == pytest.approx(
        stats.adjust_p_values([r.p_harm for r in holm], "holm"))  # type: ignore[arg-type]
    assert holm[0].outcome == "pass"
    for row in holm[1:3]:  # each stratum passes alone, not after the correction
        assert row.p_value is not None and row.p_adjusted is not None and row.p_value <= 0.05 < row.p_adjusted
        assert row.outcome == "inconclusive"
    none = gates.evaluate(chosen, inputs, gates.GateSettings(correction="none"))
    assert [r.outcome for r in none[1:3]] == ["pass", "pass"] and none[1].p_adjusted == none[1].p_value
    bonf = gates.evaluate(chosen, inputs, gates.GateSettings(correction="bonferroni"))
    assert [r.p_adjusted for r in bonf] == pytest.approx([min(1.0, 4 * p) for p in raw])  # type: ignore[operator]


def test_mde_and_required_users_are_reported() -> None:
    inputs = _inputs(-0.006, n=400, sd=0.08)
    result = _one(_gate(kind="non_inferiority", metric="ndcg@10", margin=0.01), inputs,
                  gates.GateSettings(power=0.8))
    assert result.outcome == "inconclusive"
    cmp = inputs.comparisons["all"]
    se, widening = float(cmp.delta.std_error[0]), float(cmp.widening["delta"][0])
    assert 1.0 < widening < 1.01  # 400 well-behaved users: almost no small-sample widening
    z = scipy_stats.norm.ppf(0.95) + scipy_stats.norm.ppf(0.8)
    assert result.mde == pytest.approx(z * se)
    distance = result.observed + 0.01  # type: ignore[operator]
    assert result.required_n == math.ceil(400 * (z * se / widening / distance) ** 2)  # projected without it
    assert result.required_n is not None and result.required_n > 400
    assert f"~{result.required_n} users would be conclusive" in result.reason


def test_parity_row_comes_first_only_when_parity_was_checked() -> None:
    gate = _gate(kind="non_inferiority", metric="ndcg@10", margin=0.01)
    assert [r.kind for r in gates.evaluate([gate], _inputs(0.0))] == ["non_inferiority"]
    ok = {"rows_stream": 10, "rows_batch": 10, "mismatches": 0, "examples": [], "features_mismatched": []}
    rows = gates.evaluate([gate], _inputs(0.0, parity=ok))
    assert (rows[0].name, rows[0].kind, rows[0].metric, rows[0].observed, rows[0].threshold, rows[0].outcome) == (
        "feature-parity", "parity", None, 0.0, 0.0, "pass")
    bad = gates.evaluate([gate], _inputs(0.0, parity={**ok, "mismatches": 3, "features_mismatched": ["u_views_7d"]}))
    assert bad[0].outcome == "fail" and "u_views_7d" in bad[0].reason
    assert gates.decide(bad)[0] == "FAIL"


def test_sample_ratio_row_blocks_pass() -> None:
    gate = _gate(kind="non_inferiority", metric="ndcg@10", margin=0.01)
    fine = sample_ratio_test({"all": {"users": 200, "expected_users": 200.0}})
    rows = gates.evaluate([gate], _inputs(0.0, sample_ratio=fine))
    assert [r.kind for r in rows] == ["sample_ratio", "non_inferiority"]
    assert gates.decide(rows) == ("PASS", [])
    skewed = sample_ratio_test({"a": {"users": 160, "expected_users": 100.0},
                                "b": {"users": 70, "expected_users": 100.0}})
    rows = gates.evaluate([gate], _inputs(0.0, sample_ratio=skewed))
    assert (rows[0].outcome, rows[0].statistic, rows[0].threshold) == ("fail", 45.0, 0.001)
    decision, reasons = gates.decide(rows)
    assert decision == "FAIL" and reasons[0].startswith("FAIL sample-ratio [all]: ")
    assert "a: 160 vs 100 expected" in reasons[0]


def test_decision_is_fail_closed() -> None:
    ok = gates.GateResult("a", "threshold", "ndcg@10", "all", 1.0, None, 0.5, None, "pass", None, "")
    unsure = gates.GateResult("b", "non_inferiority", "ndcg@10", "gold", 0.0, [-1, 1], -0.1, 0.4, "inconclusive",
                              10, "wide")
    bad = gates.GateResult("c", "latency", "p95", "all", 90.0, None, 50.0, None, "fail", 100, "slow")
    assert gates.decide([ok]) == ("PASS", [])
    assert gates.decide([ok, unsure])[0] == "INCONCLUSIVE"
    decision, reasons = gates.decide([ok, unsure, bad])
    assert decision == "FAIL"
    assert reasons == ["INCONCLUSIVE b [gold]: wide", "FAIL c [all]: slow"]
    assert gates.decide([])[0] == "INCONCLUSIVE"
    srm_only = gates.GateResult("sample-ratio", "sample_ratio", None, "all", 5.0, None, 0.001, 0.5, "pass", 5, "")
    assert gates.decide([srm_only]) == ("INCONCLUSIVE", ["no gates were evaluated"])


def test_reason_lines_name_gate_stratum_and_numbers() -> None:
    rows = gates.evaluate([_gate(name="ndcg-gate", kind="non_inferiority", metric="ndcg@10", margin=0.01,
                                 scope="per_stratum")], _inputs(-0.01, n=400))
    _, reasons = gates.decide(rows)
    assert len(reasons) == 3
    for reason, row in zip(reasons, rows, strict=True):
        assert reason.startswith(f"INCONCLUSIVE ndcg-gate [{row.stratum}]: ndcg@10 delta ")
        assert "90% CI [" in reason and "limit -0.01" in reason and f"n {row.n}" in reason and "MDE" in reason
        assert "\n" not in reason


def test_result_dicts_carry_the_gates_json_shape_without_nan() -> None:
    rows = gates.evaluate([_gate(kind="non_inferiority", metric="ndcg@10", margin=0.01),
                           _gate(name="lat", kind="latency", bound=10)],
                          _inputs(0.0, sample_ratio=sample_ratio_test({"all": {"users": 9, "expected_users": 9}})))
    for row in rows:
        data = row.as_dict()
        assert GATES_JSON_KEYS <= set(data)
        assert data["outcome"] in ("pass", "fail", "inconclusive")
    nan_row = gates.GateResult("a", "non_inferiority", "ndcg@10", "all", math.nan, [math.nan, 1.0], 0.1, math.nan,
                               "fail", 0, "")
    data = nan_row.as_dict()
    assert data["observed"] is None and data["p_value"] is None and data["interval"] == [None, 1.0]


def test_users_needed_are_capped_by_the_strata_eligible_population() -> None:
    """The gold stratum has only 11 users in the lake: the advice says so instead of a number no rerun reaches."""
    gate = _gate(kind="non_inferiority", metric="ndcg@10", margin=0.01, scope="per_stratum")
    rows = gates.evaluate([gate], _inputs(-0.006, n=400, sd=0.08, eligible_users={"all": 90000, "tier=gold": 11}))
    gold = next(r for r in rows if r.stratum == "tier=gold")
    assert gold.outcome == "inconclusive" and gold.required_n is not None and gold.required_n > 11
    assert gold.eligible_users == 11
    assert f"not reachable: only 11 eligible users (~{gold.required_n} would be conclusive)" in gold.reason
    assert "users would be conclusive" not in gold.reason.replace("would be conclusive)", "")
    whole = rows[0]
    assert whole.eligible_users == 90000 and "not reachable" not in whole.reason


def test_gate_inputs_carry_each_strata_eligible_users() -> None:
    assert eligible_users(report_run.stats_model()) == {"all": 800, "tier=gold": 100, "tier=silver": 700}


def test_a_metric_the_lake_cannot_estimate_makes_its_rows_inconclusive_with_that_reason() -> None:
    """A lake without prices: every revenue row is INCONCLUSIVE with the cause in one line, outside the family."""
    import pyarrow as pa

    from testbed.manifest import parse_manifest
    from testbed.pipeline.gate import unestimable
    from tests.conftest import BASE_MANIFEST

    manifest = parse_manifest({**BASE_MANIFEST, "models": {r: {"uri": f"/m/{r}.txt", "sha256": "0" * 64}
                                                           for r in ("control", "candidate")}})
    unpriced = pa.table({"user_id": ["u1"], "item_id": ["i1"], "relevance": [3], "revenue": [0.0]})
    why = unestimable(unpriced, manifest)
    assert list(why) == ["revenue"] and why["revenue"].startswith("revenue cannot be estimated: no label-window "
                                                                  "purchase [2026-10-17T00:00:00+00:00")
    priced = unpriced.set_column(3, "revenue", pa.array([12.5]))
    assert unestimable(priced, manifest) == {}
    rows = gates.evaluate([_gate(kind="non_inferiority", metric="recall@10", margin=0.01, scope="per_stratum"),
                           _gate(name="ndcg", kind="non_inferiority", metric="ndcg@10", margin=0.01)],
                          _inputs(0.0, unestimable={"recall": why["revenue"]}))
    recall = [r for r in rows if r.metric == "recall@10"]
    assert len(recall) == 3 and all(r.outcome == "inconclusive" and r.reason == why["revenue"] for r in recall)
    assert all(r.correction is None and r.n == 400 // (1 if r.stratum == "all" else 2) for r in recall)
    ndcg = next(r for r in rows if r.metric == "ndcg@10")
    assert ndcg.outcome == "pass" and ndcg.p_adjusted == ndcg.p_value  # a family of one
