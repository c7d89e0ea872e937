"""Acceptance by simulation (slow): A/A false failures, power at the reported n, interval coverage.

The user model and the figures' meaning are in benchmarks/gates_simulation.py, which prints the full-size
run (500 A/A, 400 power, 1,000 coverage repetitions); these are smaller runs of the same functions.
"""

from __future__ import annotations

import pytest

from benchmarks import gates_simulation as sim

pytestmark = pytest.mark.slow


def test_aa_fails_in_at_most_alpha_of_repetitions() -> None:
    result = sim.aa(200, seed=11)
    assert result["repetitions"] >= 200
    assert result["demo_gates"]["fail_rate"] <= 0.05
    # with the true delta exactly on a harm limit, the harm test's size is alpha: FAIL and PASS near 5 %
    assert result["boundary"]["fail_rate"] <= 0.05 + 2 * (0.05 * 0.95 / 200) ** 0.5
    assert result["boundary"]["pass_rate"] <= 0.05 + 2 * (0.05 * 0.95 / 200) ** 0.5


def test_a_harm_of_twice_the_margin_fails_at_the_reported_sample_size() -> None:
    result = sim.power(200, seed=12)
    assert result["pilot"]["outcome"] == "fail"
    assert result["at_required_n"]["fail_rate"] >= 0.8
    assert result["at_half_required_n"]["fail_rate"] < result["at_required_n"]["fail_rate"]


def test_bootstrap_intervals_cover_the_true_delta() -> None:
    result = sim.coverage(600, seed=13)
    for design in ("uniform", "revenue_weighted"):
        for metric, rate in result[design]["delta"].items():
            assert 0.93 <= rate <= 0.97, (design, metric, rate)
    # and the weighting matters: the unweighted mean often falls outside the weighted interval
    assert result["revenue_weighted"]["unweighted_point_inside"]["ndcg@10"] < 0.8
