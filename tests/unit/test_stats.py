"""Paired weighted comparisons, multiple-testing adjustment, power and the sample-ratio check."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pytest
from scipy import stats as scipy_stats

from testbed.core import stats
from testbed.core.sample_ratio import sample_ratio_test


def _per_user(control: np.ndarray, candidate: np.ndarray, users: list[str]) -> pa.Table:
    n = len(users)
    return pa.table({"model": ["candidate"] * n + ["control"] * n, "user_id": users + users,
                     "ndcg@10": np.concatenate([candidate, control]),
                     "recall@10": np.concatenate([candidate / 2, control / 2])})


def test_paired_sample_aligns_users_and_weights() -> None:
    users = ["a", "b", "c"]
    table = _per_user(np.array([0.1, 0.2, 0.3]), np.array([0.4, 0.5, 0.6]), users)
    sample = stats.paired_sample(table, {"a": "t=x", "c": "t=y"}, {"a": 0.5, "b": 0.25, "c": 1.0},
                                 ["ndcg@10", "recall@10"])
    assert sample.metrics == ("ndcg@10", "recall@10")
    assert sample.strata.tolist() == ["t=x", "all", "t=y"]
    assert sample.weights.tolist() == [2.0, 4.0, 1.0]
    np.testing.assert_array_equal(sample.control[:, 0], [0.1, 0.2, 0.3])
    np.testing.assert_array_equal(sample.candidate[:, 1], [0.2, 0.25, 0.3])
    assert sample.stratum_labels() == ["t=x", "t=y"]
    assert stats.paired_sample(table, {}, None, ["ndcg@10"]).weights.tolist() == [1.0, 1.0, 1.0]


@pytest.mark.parametrize("probabilities", [{"a": 0.5, "b": 0.5}, {"a": 0.5, "b": 0.0, "c": 0.3},
                                           {"a": 1.5, "b": 0.5, "c": 0.3}])
def test_paired_sample_needs_a_probability_in_0_1(probabilities: dict[str, float]) -> None:
    table = _per_user(np.zeros(3), np.zeros(3), ["a", "b", "c"])
    with pytest.raises(ValueError, match="inclusion_probability"):
        stats.paired_sample(table, {}, probabilities, ["ndcg@10"])


def test_paired_sample_rejects_different_users() -> None:
    table = _per_user(np.zeros(2), np.zeros(2), ["a", "b"])
    table = table.set_column(1, "user_id", pa.array(["a", "b", "a", "z"]))
    with pytest.raises(ValueError, match="different users"):
        stats.paired_sample(table, {}, None, ["ndcg@10"])


def _sample(n: int, seed: int, weights: np.ndarray | None = None, delta: float = 0.01) -> stats.PairedSample:
    rng = np.random.default_rng(seed)
    control = rng.beta(0.6, 1.5, (n, 2))
    candidate = np.clip(control + delta + rng.normal(0, 0.1, (n, 2)), 0, 1)
    labels = np.where(rng.random(n) < 0.3, "tier=gold", "tier=bronze").astype(object)
    return stats.PairedSample(("ndcg@10", "recall@10"), np.array([f"u{i}" for i in range(n)], dtype=object),
                              labels, np.ones(n) if weights is None else weights, control, candidate)


def test_unweighted_comparison_is_the_paired_mean_with_the_t_cross_check() -> None:
    sample = _sample(400, 1)
    cmp = stats.compare(sample, 2000, np.random.default_rng(0))
    d = sample.candidate[:, 0] - sample.control[:, 0]
    assert cmp.delta.estimate[0] == pytest.approx(d.mean(), abs=1e-15)
    assert cmp.relative.estimate[0] == pytest.approx(d.mean() / sample.control[:, 0].mean(), rel=1e-12)
    assert not cmp.weighted and cmp.effective_n == pytest.approx(400)
    summary = stats.delta_summaries(cmp, 0.95)["ndcg@10"]
    ref = scipy_stats.ttest_rel(sample.candidate[:, 0], sample.control[:, 0])
    ci = ref.confidence_interval(0.95)
    assert summary["t_interval"] == pytest.approx([ci.low, ci.high], abs=1e-12)
    lo, hi = summary["interval"]  # BCa and t agree closely on a near-normal mean of 400 users
    assert lo == pytest.approx(ci.low, abs=0.1 * (ci.high - ci.low))
    assert hi == pytest.approx(ci.high, abs=0.1 * (ci.high - ci.low))
    assert summary["p_value"] == pytest.approx(ref.pvalue, abs=0.01 + 0.1 * ref.pvalue)
    assert summary["std_error"] == pytest.approx(d.std(ddof=1) / 20, rel=0.1)
    assert {"n", "delta", "relative", "interval", "p_value", "control", "candidate", "std_error", "method",
            "resamples", "weighted"} <= set(summary)
    assert (summary["method"], summary["resamples"], summary["n"]) == ("bca-bootstrap", 2000, 400)


def test_weighted_comparison_is_the_hajek_mean() -> None:
    rng = np.random.default_rng(2)
    weights = 1 / rng.uniform(0.05, 1, 300)
    sample = _sample(300, 2, weights)
    cmp = stats.compare(sample, 2000, np.random.default_rng(0))
    d = sample.candidate[:, 1] - sample.control[:, 1]
    assert cmp.delta.estimate[1] == pytest.approx(np.average(d, weights=weights), abs=1e-14)
    assert cmp.control.estimate[1] == pytest.approx(np.average(sample.control[:, 1], weights=weights), abs=1e-14)
    assert cmp.weighted and cmp.effective_n == pytest.approx(weights.sum() ** 2 / (weights ** 2).sum())
    # linearised variance of the Hajek mean
    theta = np.average(d, weights=weights)
    se = math.sqrt(300 / 299 * ((weights * (d - theta)) ** 2).sum()) / weights.sum()
    assert cmp.t_std_error[1] == pytest.approx(se, rel=1e-12)
    assert float(cmp.delta.std_error[1]) == pytest.approx(se, rel=0.1)  # the bootstrap agrees


def test_strata_are_compared_on_their_own_with_reproducible_streams() -> None:
    sample = _sample(500, 3)
    one = stats.compare_strata(sample, 2000, seed=7, fixed_stratum_sizes=True)
    two = stats.compare_strata(sample, 2000, seed=7, fixed_stratum_sizes=True)
    assert list(one) == ["all", "tier=bronze", "tier=gold"]
    for key in one:
        np.testing.assert_array_equal(one[key].delta.boot, two[key].delta.boot)
    gold = sample.strata == "tier=gold"
    assert one["tier=gold"].n == int(gold.sum())
    assert one["tier=gold"].delta.estimate[0] == pytest.approx(
        (sample.candidate[gold, 0] - sample.control[gold, 0]).mean())
    other = stats.compare_strata(sample, 2000, seed=8, fixed_stratum_sizes=True)
    assert not np.array_equal(one["all"].delta.boot, other["all"].delta.boot)


def test_empty_and_single_user_groups_summarise_to_none() -> None:
    for n in (0, 1):
        sample = _sample(n, 4)
        summary = stats.delta_summaries(stats.compare(sample, 2000, np.random.default_rng(0)), 0.95)["ndcg@10"]
        assert summary["interval"] == [None, None] and summary["p_value"] is None and summary["n"] == n


def test_holm_and_bonferroni_by_hand() -> None:
    p = [0.01, 0.04, 0.03, 0.005]
    # sorted 0.005, 0.01, 0.03, 0.04 -> 4*0.005, 3*0.01, 2*0.03, 1*0.04 -> running max 0.02, 0.03, 0.06, 0.06
    assert stats.adjust_p_values(p, "holm") == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert stats.adjust_p_values(p, "bonferroni") == pytest.approx([0.04, 0.16, 0.12, 0.02])
    assert stats.adjust_p_values(p, "none") == p
    assert stats.adjust_p_values([0.5, 0.9], "holm") == [1.0, 1.0]
    assert stats.adjust_p_values([], "holm") == []


def test_mde_and_required_users_by_hand() -> None:
    z = scipy_stats.norm.ppf(0.95) + scipy_stats.norm.ppf(0.8)
    assert stats.minimum_detectable_effect(0.01, 0.05, 0.8) == pytest.approx(z * 0.01)
    assert stats.required_users(100, 0.01, 0.0124, 0.05, 0.8) == math.ceil(100 * (z * 0.01 / 0.0124) ** 2)
    assert stats.required_users(100, 0.01, -0.05, 0.05, 0.8) == math.ceil(100 * (z * 0.01 / 0.05) ** 2)
    assert stats.required_users(100, 0.01, 0.0, 0.05, 0.8) is None
    assert stats.required_users(1, 0.01, 0.1, 0.05, 0.8) is None
    assert stats.per_test_alpha(0.05, 4, "holm") == 0.0125 and stats.per_test_alpha(0.05, 4, "none") == 0.05


def test_sample_ratio_by_hand() -> None:
    ok = sample_ratio_test({"a": {"users": 110, "expected_users": 100.0, "eligible_users": 200},
                            "b": {"users": 90, "expected_users": 100.0, "eligible_users": 200}})
    assert (ok.statistic, ok.dof) == (2.0, 2)
    assert ok.p_value == pytest.approx(math.exp(-1))  # chi2 with 2 dof: sf(x) = exp(-x / 2)
    assert ok.passed and ok.as_dict()["outcome"] == "pass"
    bad = sample_ratio_test({"a": {"users": 150, "expected_users": 100.0},
                             "b": {"users": 100, "expected_users": 100.0}})
    assert bad.statistic == 25.0 and bad.p_value == pytest.approx(scipy_stats.chi2.sf(25, 2))
    assert not bad.passed and bad.worst() == "a"
    impossible = sample_ratio_test({"a": {"users": 3, "expected_users": 0.0}, "b": {"users": 5, "expected_users": 5}})
    assert impossible.p_value == 0.0 and impossible.as_dict()["statistic"] is None
    exact = sample_ratio_test({"all": {"users": 600, "expected_users": 600.0}})
    assert (exact.statistic, exact.p_value) == (0.0, 1.0)


def test_effective_df_and_the_small_sample_factor() -> None:
    rng = np.random.default_rng(5)
    normal = rng.normal(size=(20_000, 1))
    assert stats.effective_df(np.ones(20_000), normal)[0] == pytest.approx(20_000, rel=0.05)
    one_big = np.zeros((500, 1))
    one_big[0] = 10.0
    assert stats.effective_df(np.ones(500), one_big - one_big.mean())[0] == pytest.approx(2.0, rel=0.01)
    # a heavy weight on a few users lowers the degrees of freedom as much as extreme values do
    weights = np.where(np.arange(1000) < 10, 50.0, 1.0)
    assert stats.effective_df(weights, rng.normal(size=(1000, 1)))[0] < 60
    assert stats.effective_df(np.ones(4), np.array([[1.0], [-1.0], [1.0], [-1.0]]))[0] == math.inf
    factor = stats.small_sample_factor(np.array([4.0, 30.0, math.inf]))
    assert factor == pytest.approx([scipy_stats.t.ppf(0.975, 4) / scipy_stats.norm.ppf(0.975),
                                    scipy_stats.t.ppf(0.975, 30) / scipy_stats.norm.ppf(0.975), 1.0])


def test_widening_scales_the_interval_about_the_estimate() -> None:
    from testbed.core.bootstrap import bca_interval, weighted_means

    x = np.random.default_rng(6).exponential(size=(60, 1))
    rep = weighted_means(x, np.ones(60), None, 2000, np.random.default_rng(7))
    wide = rep.widen(np.array([1.3]))
    lo, hi = bca_interval(rep, 0.025)
    wlo, whi = bca_interval(wide, 0.025)
    est = rep.estimate[0]
    assert wlo[0] == pytest.approx(est + 1.3 * (lo[0] - est)) and whi[0] == pytest.approx(est + 1.3 * (hi[0] - est))
    assert wide.std_error[0] == pytest.approx(1.3 * rep.std_error[0])


def test_comparisons_widen_small_heavy_weighted_samples() -> None:
    rng = np.random.default_rng(8)
    n = 300
    weights = np.where(rng.random(n) < 0.03, 33.0, 1.0)  # a few users stand for many, as on revenue_weighted
    sample = _sample(n, 9, weights)
    cmp = stats.compare(sample, 2000, np.random.default_rng(0))
    assert cmp.df["delta"][0] < 40 and cmp.widening["delta"][0] > 1.02
    summary = stats.delta_summaries(cmp, 0.95)["ndcg@10"]
    assert summary["df"] == pytest.approx(cmp.df["delta"][0])
    assert summary["small_sample_factor"] == pytest.approx(cmp.widening["delta"][0])
