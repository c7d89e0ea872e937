"""The vectorised bootstrap: counts, weighted means, jackknife, BCa intervals and their p-values."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from testbed.core import bootstrap
from testbed.core.bootstrap import (
    ManyDomainMeans,
    Replicates,
    bca_interval,
    bca_p_greater,
    resample_counts,
    weighted_means,
    weighted_means_by_domain,
)


def test_counts_resample_each_group_to_its_own_size() -> None:
    groups = [np.array([0, 2, 4]), np.array([1, 3]), np.array([5])]
    counts = resample_counts(groups, 6, 500, np.random.default_rng(0))
    assert counts.shape == (500, 6)
    for g in groups:
        assert np.all(counts[:, g].sum(axis=1) == g.size)
    assert np.all(counts[:, 5] == 1)  # a one-user group always keeps its user
    assert counts[:, :5].std(axis=0).min() > 0.3  # and the others really vary


def test_counts_are_multinomial_over_one_group() -> None:
    counts = resample_counts([np.arange(50)], 50, 4000, np.random.default_rng(1))
    assert np.all(counts.sum(axis=1) == 50)
    # each user's count is Binomial(50, 1/50): mean 1, variance 0.98
    assert counts.mean() == pytest.approx(1.0)
    assert counts.var() == pytest.approx(0.98, rel=0.03)


def test_weighted_means_estimate_replicates_and_jackknife_by_hand() -> None:
    rng = np.random.default_rng(2)
    values, weights = rng.normal(size=(7, 3)), rng.uniform(1, 5, 7)
    rep = weighted_means(values, weights, None, 5, np.random.default_rng(9))
    np.testing.assert_allclose(rep.estimate, np.average(values, axis=0, weights=weights), rtol=1e-13)
    counts = resample_counts([np.arange(7)], 7, 5, np.random.default_rng(9))  # the same draws
    for b in range(5):
        np.testing.assert_allclose(rep.boot[b], np.average(values, axis=0, weights=weights * counts[b]), rtol=1e-13)
    for i in range(7):
        keep = np.arange(7) != i
        np.testing.assert_allclose(rep.jack[i], np.average(values[keep], axis=0, weights=weights[keep]), rtol=1e-12)


def test_same_seed_same_bits_and_chunking_draws_the_same_resamples(monkeypatch: pytest.MonkeyPatch) -> None:
    values = np.random.default_rng(3).normal(size=(40, 2))
    whole = weighted_means(values, np.ones(40), None, 300, np.random.default_rng(4))
    again = weighted_means(values, np.ones(40), None, 300, np.random.default_rng(4))
    np.testing.assert_array_equal(whole.boot, again.boot)
    other = weighted_means(values, np.ones(40), None, 300, np.random.default_rng(5))
    assert not np.array_equal(whole.boot, other.boot)
    monkeypatch.setattr(bootstrap, "CHUNK_CELLS", 40 * 7)  # 7 resamples per chunk: other matrix shapes
    chunked = weighted_means(values, np.ones(40), None, 300, np.random.default_rng(4))
    np.testing.assert_allclose(whole.boot, chunked.boot, rtol=1e-12)  # same draws; BLAS may sum in another order


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="weights"):
        weighted_means(np.ones((3, 1)), np.ones(2), None, 10, np.random.default_rng(0))
    with pytest.raises(ValueError, match="partition"):
        weighted_means(np.ones((3, 1)), np.ones(3), [np.array([0, 1])], 10, np.random.default_rng(0))
    with pytest.raises(ValueError, match="alpha"):
        bca_interval(weighted_means(np.ones((3, 1)), np.ones(3), None, 10, np.random.default_rng(0)), 0.5)


def test_too_few_rows_give_nan() -> None:
    rep = weighted_means(np.array([[1.0, 2.0]]), np.ones(1), None, 50, np.random.default_rng(0))
    assert rep.estimate.tolist() == [1.0, 2.0]
    lo, hi = bca_interval(rep, 0.025)
    assert np.isnan(lo).all() and np.isnan(hi).all()
    assert np.isnan(bca_p_greater(rep, 0.0)).all()


def test_bca_by_hand_on_fixed_replicates() -> None:
    """z0 and a from their definitions, then the adjusted percentile levels, on replicates we chose."""
    boot = np.linspace(-1.0, 3.0, 2001)[:, None] ** 3 / 10  # skewed, many resamples above the estimate
    jack = np.array([[0.3], [0.1], [0.2], [0.9], [0.15]])
    rep = Replicates(np.array([0.1]), boot, jack)
    share = ((boot[:, 0] < 0.1).sum() + 0.5 * (boot[:, 0] == 0.1).sum()) / boot.shape[0]
    z0 = stats.norm.ppf(share)
    d = jack[:, 0].mean() - jack[:, 0]
    a = (d ** 3).sum() / (6 * ((d ** 2).sum()) ** 1.5)
    levels = [stats.norm.cdf(z0 + (z0 + z) / (1 - a * (z0 + z))) for z in stats.norm.ppf([0.05, 0.95])]
    lo, hi = bca_interval(rep, 0.05)
    assert lo[0] == pytest.approx(np.quantile(boot[:, 0], levels[0]), rel=1e-12)
    assert hi[0] == pytest.approx(np.quantile(boot[:, 0], levels[1]), rel=1e-12)
    assert bootstrap.bias_correction(rep)[0] == pytest.approx(z0)
    assert bootstrap.acceleration(rep)[0] == pytest.approx(a)


def test_bca_agrees_with_scipy_on_a_skewed_mean() -> None:
    x = np.random.default_rng(5).exponential(1.0, 150)
    rep = weighted_means(x[:, None], np.ones(x.size), None, 40_000, np.random.default_rng(6))
    lo, hi = bca_interval(rep, 0.025)
    ref = stats.bootstrap((x,), np.mean, n_resamples=40_000, method="BCa", random_state=7).confidence_interval
    width = ref.high - ref.low
    assert lo[0] == pytest.approx(ref.low, abs=0.02 * width)
    assert hi[0] == pytest.approx(ref.high, abs=0.02 * width)
    assert hi[0] - x.mean() > x.mean() - lo[0]  # the skew shows


def test_p_value_inverts_the_interval() -> None:
    """p <= alpha exactly when the one-sided (1 - alpha) BCa bound excludes the null."""
    x = np.random.default_rng(8).gamma(2.0, 1.0, 300)
    rep = weighted_means(x[:, None], np.ones(x.size), None, 4000, np.random.default_rng(9))
    for alpha in (0.01, 0.05, 0.2):
        lo, hi = bca_interval(rep, alpha)
        assert bca_p_greater(rep, lo)[0] == pytest.approx(alpha, abs=2e-3)
        assert 1 - bca_p_greater(rep, hi)[0] == pytest.approx(alpha, abs=2e-3)
    nulls = np.linspace(x.mean() - 1.0, x.mean() + 1.0, 41)
    p = np.array([bca_p_greater(rep, v)[0] for v in nulls])
    assert np.all(np.diff(p) >= 0) and p[0] < 1e-6 and p[-1] > 1 - 1e-6


def test_p_value_beyond_every_resample_is_extrapolated() -> None:
    x = np.random.default_rng(10).normal(1.0, 1.0, 400)
    rep = weighted_means(x[:, None], np.ones(x.size), None, 2000, np.random.default_rng(11))
    se = float(rep.std_error[0])
    far = x.mean() - 6 * se  # no resample goes that low
    assert rep.boot.min() > far
    p = bca_p_greater(rep, far)[0]
    assert 0 < p < 0.5 / 2000
    assert p == pytest.approx(stats.norm.cdf(-6), rel=0.5)  # near-normal: the normal tail
    assert bca_p_greater(rep, far - se)[0] < p


def test_constant_values() -> None:
    rep = weighted_means(np.full((30, 1), 0.25), np.ones(30), None, 500, np.random.default_rng(0))
    lo, hi = bca_interval(rep, 0.025)
    assert (lo[0], hi[0]) == (0.25, 0.25)
    assert [bca_p_greater(rep, v)[0] for v in (0.2, 0.25, 0.3)] == [0.0, 0.5, 1.0]


def test_mapped_statistics_keep_their_replicates() -> None:
    values = np.random.default_rng(12).uniform(size=(50, 2))
    rep = weighted_means(values, np.ones(50), None, 200, np.random.default_rng(13))
    ratio = rep.map(lambda m: m[..., 1:] / m[..., :1])
    np.testing.assert_allclose(ratio.boot[:, 0], rep.boot[:, 1] / rep.boot[:, 0])
    np.testing.assert_allclose(ratio.jack[:, 0], rep.jack[:, 1] / rep.jack[:, 0])
    assert ratio.estimate[0] == pytest.approx(values[:, 1].mean() / values[:, 0].mean())
    assert not math.isnan(ratio.std_error[0])


def test_domains_share_the_resamples_of_all_rows() -> None:
    rng = np.random.default_rng(14)
    values, weights = rng.normal(size=(9, 2)), rng.uniform(1, 3, 9)
    domains = {"all": slice(None), "a": slice(0, 4), "b": np.array([4, 6, 8])}
    reps = bootstrap.weighted_means_by_domain(values, weights, None, domains, resamples=6,
                                              rng=np.random.default_rng(15))
    counts = resample_counts([np.arange(9)], 9, 6, np.random.default_rng(15))
    for label, where in domains.items():
        rows = np.arange(9)[where]
        for b in range(6):
            c = counts[b, rows]
            expected = np.average(values[rows], axis=0, weights=weights[rows] * c) if c.sum() else [np.nan] * 2
            np.testing.assert_allclose(reps[label].boot[b], expected, rtol=1e-12)
        np.testing.assert_allclose(reps[label].estimate, np.average(values[rows], axis=0, weights=weights[rows]))
        assert reps[label].jack.shape == (rows.size, 2)
    whole = weighted_means(values, weights, None, 6, np.random.default_rng(15))
    np.testing.assert_array_equal(whole.boot, reps["all"].boot)


def test_a_domain_that_is_a_group_keeps_its_size() -> None:
    values = np.arange(10, dtype=np.float64)[:, None]
    groups = [np.arange(0, 3), np.arange(3, 10)]
    reps = bootstrap.weighted_means_by_domain(values, np.ones(10), groups, {"low": slice(0, 3)}, resamples=400,
                                              rng=np.random.default_rng(16))
    # every resample of the first group holds 3 of its rows: the mean stays within [0, 2], mean 1 on average
    assert reps["low"].boot.min() >= 0 and reps["low"].boot.max() <= 2
    assert reps["low"].boot.mean() == pytest.approx(1.0, abs=0.05)


def test_many_domains_fed_the_same_counts_give_the_per_domain_replicates() -> None:
    """ManyDomainMeans (the worst cohorts) fed the counts weighted_means_by_domain draws gives the same replicates,
    to rounding, as that function's own per-domain path; feeding it changes nothing of the main result; a one-row
    domain stays NaN."""
    rng = np.random.default_rng(5)
    n = 300
    values, weights = rng.normal(size=(n, 2)), rng.uniform(1, 4, n)
    codes = rng.integers(0, 4, n)
    domains = {f"a{c}": np.flatnonzero(codes == c) for c in range(4)}
    domains |= {"odd": np.arange(1, n, 2), "one": np.array([7])}
    groups = [np.arange(0, 150), np.arange(150, n)]
    each = weighted_means_by_domain(values, weights, groups, domains, resamples=500, rng=np.random.default_rng(9))
    many = ManyDomainMeans(values, weights, domains, 500)
    fed = weighted_means_by_domain(values, weights, groups, {"all": slice(None)}, resamples=500,
                                   rng=np.random.default_rng(9), also=many)
    alone = weighted_means_by_domain(values, weights, groups, {"all": slice(None)}, resamples=500,
                                     rng=np.random.default_rng(9))
    assert np.array_equal(fed["all"].boot, alone["all"].boot)
    got = many.replicates()
    for label in domains:
        np.testing.assert_allclose(got[label].estimate, each[label].estimate, rtol=1e-12)
        np.testing.assert_allclose(got[label].boot, each[label].boot, rtol=1e-10, equal_nan=True)
        np.testing.assert_allclose(got[label].jack, each[label].jack, rtol=1e-12, equal_nan=True)
    assert np.isnan(got["one"].boot).all()
