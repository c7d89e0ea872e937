"""Gates and the decision: hand-made evidence with known outcomes."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from testbed.core import gates
from testbed.core.stats import one_sided_p, paired_delta
from testbed.manifest import Gate


def _inputs(delta: float, n: int = 400, sd: float = 0.05, seed: int = 0) -> gates.GateInputs:
    rng = np.random.default_rng(seed)
    control = rng.uniform(0.2, 0.4, n)
    noise = rng.normal(0, sd, n)
    candidate = control + delta + noise - noise.mean()  # exact mean delta
    aggregates = {"control": {"all": {"ndcg@10": float(control.mean()), "coverage@10": 0.30}},
                  "candidate": {"all": {"ndcg@10": float(candidate.mean()), "coverage@10": 0.25}}}
    return gates.GateInputs(pairs={"all": {"ndcg@10": (control, candidate)}}, aggregates=aggregates,
                            latency_ms={"candidate": np.linspace(1, 100, 100)}, error_rate={"candidate": 0.0})


def _gate(**kw: object) -> Gate:
    return Gate.model_validate({"name": "g", **kw})


def test_paired_delta_matches_scipy() -> None:
    rng = np.random.default_rng(1)
    a, b = rng.normal(0, 1, 50), rng.normal(0.1, 1, 50)
    est = paired_delta(a, b, alpha=0.05)
    ref = scipy_stats.ttest_rel(b, a).confidence_interval(0.95)
    assert est.interval[0] == pytest.approx(ref.low, abs=1e-12)
    assert est.interval[1] == pytest.approx(ref.high, abs=1e-12)
    assert one_sided_p(est, 0.0, "greater") == pytest.approx(scipy_stats.ttest_rel(b, a, alternative="greater").pvalue)


@pytest.mark.parametrize(("delta", "outcome"), [(0.0, "pass"), (-0.05, "fail"), (-0.01, "inconclusive")])
def test_non_inferiority(delta: float, outcome: str) -> None:
    result = gates.evaluate([_gate(kind="non_inferiority", metric="ndcg@10", margin=0.01)], _inputs(delta))[0]
    assert result.outcome == outcome
    assert result.threshold == -0.01
    assert result.observed == pytest.approx(delta, abs=1e-12)
    assert result.interval is not None and result.interval[0] < result.observed < result.interval[1]


def test_relative_margin_uses_the_control_mean() -> None:
    inputs = _inputs(-0.02)
    control_mean = inputs.aggregates["control"]["all"]["ndcg@10"]
    result = gates.evaluate([_gate(kind="non_inferiority", metric="ndcg@10", margin=0.2, margin_type="relative")],
                            inputs)[0]
    assert result.threshold == pytest.approx(-0.2 * control_mean)
    assert result.outcome == "pass"


def test_superiority_and_threshold() -> None:
    sup = gates.evaluate([_gate(kind="superiority", metric="ndcg@10", margin=0.0)], _inputs(0.02))[0]
    worse = gates.evaluate([_gate(kind="superiority", metric="ndcg@10", margin=0.0)], _inputs(-0.02))[0]
    floor = gates.evaluate([_gate(kind="threshold", metric="ndcg@10", bound=0.99)], _inputs(0.0))[0]
    assert (sup.outcome, worse.outcome, floor.outcome) == ("pass", "fail", "fail")


def test_coverage_is_compared_on_point_values() -> None:
    result = gates.evaluate([_gate(kind="non_inferiority", metric="coverage@10", margin=0.01)], _inputs(0.0))[0]
    assert result.observed == pytest.approx(-0.05)
    assert result.outcome == "fail"


def test_safety_gates() -> None:
    lat = gates.evaluate([_gate(kind="latency", percentile=95, bound=50)], _inputs(0.0))[0]
    assert lat.observed == pytest.approx(np.percentile(np.linspace(1, 100, 100), 95))
    assert lat.outcome == "fail"
    err = gates.evaluate([_gate(kind="error_rate", bound=0.0)], _inputs(0.0))[0]
    assert err.outcome == "pass"


def test_missing_latency_fails_closed() -> None:
    inputs = _inputs(0.0)
    empty = gates.GateInputs(inputs.pairs, inputs.aggregates, {}, {})
    assert gates.evaluate([_gate(kind="latency", bound=50)], empty)[0].outcome == "fail"
    assert gates.evaluate([_gate(kind="error_rate", bound=0.1)], empty)[0].outcome == "fail"


def test_too_few_users_is_inconclusive() -> None:
    result = gates.evaluate([_gate(kind="non_inferiority", metric="ndcg@10", margin=0.5, min_users=1000)],
                            _inputs(0.0))[0]
    assert result.outcome == "inconclusive"
    assert "min_users" in result.reason


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


def test_result_dicts_have_no_nan() -> None:
    result = gates.GateResult("a", "non_inferiority", "ndcg@10", "all", math.nan, None, 0.1, math.nan, "fail", 0, "")
    assert result.as_dict()["observed"] is None and result.as_dict()["p_value"] is None
