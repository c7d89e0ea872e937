"""Drift statistics (numpy-only) against scipy and hand-computed cases; verdicts, ranking, groups, daily series."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon

from testbed.core import drift, drift_stats
from testbed.core.drift import DriftConfig, Sample


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


# --- statistics against scipy ---------------------------------------------------------------------


@pytest.mark.parametrize("x", [0.05, 0.3, 0.6, 0.9, 1.0, 1.2, 1.36, 2.0, 3.0])
def test_kolmogorov_survival_matches_scipy(x: float) -> None:
    assert drift_stats.kolmogorov_sf(x) == pytest.approx(stats.kstwobign.sf(x), abs=1e-12)


@pytest.mark.parametrize(("n", "m", "shift"), [(40, 60, 0.0), (300, 200, 0.3), (1000, 900, 0.1), (50, 5000, 0.5)])
def test_ks_matches_scipy(n: int, m: int, shift: float) -> None:
    g = rng(n)
    a, b = g.normal(size=n), g.normal(shift, 1.0, size=m)
    d, p = drift_stats.ks_test(a, b)
    reference = stats.ks_2samp(a, b, method="asymp")
    assert d == pytest.approx(reference.statistic, abs=1e-15)
    assert p == pytest.approx(stats.kstwobign.sf(math.sqrt(n * m / (n + m)) * d), rel=1e-9, abs=1e-15)
    if n * m / (n + m) >= 100:  # scipy's asymptotic mode uses the finite-n distribution at round(nm/(n+m))
        assert p == pytest.approx(reference.pvalue, abs=0.02)


def test_ks_with_ties_and_integer_weights_equals_replicated_rows() -> None:
    a = np.array([0, 0, 1, 1, 2, 5, 5, 5], dtype=float)
    b = np.array([0, 1, 1, 3, 3, 5], dtype=float)
    weights = np.array([1, 2, 1, 3, 1, 1])
    d, _ = drift_stats.ks_test(a, b, None, weights.astype(float))
    assert d == pytest.approx(stats.ks_2samp(a, np.repeat(b, weights)).statistic, abs=1e-15)


def test_ks_drops_missing_values_and_caps_effective_sizes() -> None:
    a = np.array([1.0, 2.0, np.nan, 3.0, 4.0] * 20)
    b = np.array([2.0, 3.0, 4.0, 5.0, np.nan] * 20)
    d, p = drift_stats.ks_test(a, b)
    assert d == pytest.approx(0.25)
    assert p == pytest.approx(stats.kstwobign.sf(math.sqrt(80 * 80 / 160) * 0.25))
    _, capped = drift_stats.ks_test(a, b, n_ref=4, n_cur=4)
    assert capped == pytest.approx(stats.kstwobign.sf(math.sqrt(2.0) * 0.25))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_wasserstein_matches_scipy_with_and_without_weights(seed: int) -> None:
    g = rng(seed)
    a, b = g.lognormal(size=300), g.lognormal(0.2, 1.1, size=500)
    wa, wb = g.uniform(0.5, 3.0, size=300), g.uniform(0.5, 3.0, size=500)
    assert drift_stats.wasserstein(a, b) == pytest.approx(stats.wasserstein_distance(a, b), rel=1e-12)
    assert drift_stats.wasserstein(a, b, wa, wb) == pytest.approx(stats.wasserstein_distance(a, b, wa, wb),
                                                                  rel=1e-12)


def test_normalised_wasserstein_by_hand() -> None:
    ref = np.array([0.0, 2.0])  # std 1
    cur = np.array([1.0, 3.0])  # moved by 1: W = 1
    assert drift_stats.normalised_wasserstein(ref, cur) == pytest.approx(1.0)
    constant = np.zeros(10)  # std 0 is floored at 0.001
    assert drift_stats.normalised_wasserstein(constant, constant + 0.01) == pytest.approx(10.0)


def test_jensen_shannon_matches_scipy() -> None:
    p, q = np.array([0.5, 0.3, 0.2, 0.0]), np.array([0.1, 0.3, 0.3, 0.3])
    assert drift_stats.jensen_shannon(p, q) == pytest.approx(jensenshannon(p, q), rel=1e-12)
    assert drift_stats.jensen_shannon(p, p) == 0.0
    assert drift_stats.jensen_shannon([1, 0], [0, 1]) == pytest.approx(math.sqrt(math.log(2)))


def test_chi_square_test_matches_scipy_contingency() -> None:
    ref, cur = np.array([30, 50, 20, 0]), np.array([45, 40, 10, 0])
    statistic, p = drift_stats.chi_square_test(ref, cur, ref.sum(), cur.sum())
    expected = stats.chi2_contingency(np.vstack([ref[:3], cur[:3]]), correction=False)
    assert statistic == pytest.approx(expected.statistic, rel=1e-12)
    assert p == pytest.approx(expected.pvalue, rel=1e-9)


def test_psi_by_hand() -> None:
    ref = np.arange(100, dtype=float)  # deciles cut at 10, 20, ..., 90: ten bins of 10%
    cur = np.concatenate([np.arange(50, dtype=float), np.full(50, 150.0)])  # half above the reference max
    edges = drift_stats.psi_edges(ref)
    assert edges.tolist() == [0.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0, 99.0]
    shares = drift_stats.bin_shares(cur, None, edges)
    assert shares.tolist() == pytest.approx([0, 0, .1, .1, .1, .1, .1, 0, 0, 0, 0, 0, .5])
    expected = 5 * (0.1 - 0.1) * 0 + 5 * (1e-4 - 0.1) * math.log(1e-4 / 0.1) + (0.5 - 1e-4) * math.log(0.5 / 1e-4)
    assert drift_stats.psi(ref, cur) == pytest.approx(expected)
    assert drift_stats.psi(ref, ref) == 0.0


def test_psi_bins_hold_ties_and_missing_values() -> None:
    ref = np.array([1.0] * 95 + [0.8] * 5)  # one dominant value: quantile bins collapse
    edges = drift_stats.psi_edges(ref)
    assert edges.tolist() == [0.8, 1.0]
    shares = drift_stats.bin_shares(np.array([np.nan, 0.5, 0.8, 1.0, 1.2]), None, edges)
    assert shares.tolist() == pytest.approx([0.2, 0.2, 0.4, 0.2])  # missing, below, [0.8, 1.0], above


def test_weighted_quantiles_and_effective_size() -> None:
    values, weights = np.array([1.0, 2.0, 3.0]), np.array([1.0, 1.0, 2.0])
    assert drift_stats.weighted_quantiles(values, weights, [0.2, 0.25, 0.5, 0.51]).tolist() == [1.0, 2.0, 3.0, 3.0]
    assert drift_stats.effective_size(np.ones(7)) == pytest.approx(7.0)
    assert drift_stats.effective_size(np.array([1.0, 3.0])) == pytest.approx(16 / 10)


def test_bad_inputs_raise_value_errors() -> None:
    with pytest.raises(ValueError, match="one entry per value"):
        drift_stats.ks_test(np.ones(3), np.ones(3), np.ones(2))
    with pytest.raises(ValueError, match="non-missing"):
        drift_stats.wasserstein(np.array([np.nan]), np.ones(3))


# --- verdicts ------------------------------------------------------------------------------------


def test_method_follows_the_smaller_effective_size() -> None:
    config = DriftConfig()
    g = rng(5)
    small = drift.compare("f", drift.NUMERIC, Sample(g.normal(size=5000)), Sample(g.normal(size=800)), config)
    large = drift.compare("f", drift.NUMERIC, Sample(g.normal(size=5000)), Sample(g.normal(size=3000)), config)
    assert (small.method, large.method) == ("ks", "wasserstein")
    assert small.p_value is not None and large.p_value is None
    labels = np.array(["a", "b", "c"])
    cat_small = drift.compare("c", drift.CATEGORICAL, Sample(g.choice(labels, 900)), Sample(g.choice(labels, 900)),
                              config)
    cat_large = drift.compare("c", drift.CATEGORICAL, Sample(g.choice(labels, 5000)),
                              Sample(g.choice(labels, 5000)), config)
    assert (cat_small.method, cat_large.method) == ("chi_square", "jensen_shannon")
    assert not cat_small.drifted and not cat_large.drifted


def test_shift_is_flagged_and_same_distribution_is_not() -> None:
    config, g = DriftConfig(), rng(7)
    same = drift.compare("f", drift.NUMERIC, Sample(g.normal(size=4000)), Sample(g.normal(size=3000)), config)
    moved = drift.compare("f", drift.NUMERIC, Sample(g.normal(size=4000)), Sample(g.normal(0.5, size=3000)), config)
    assert not same.drifted and same.statistic is not None and same.statistic < 0.1
    assert moved.drifted and moved.statistic == pytest.approx(0.5, abs=0.08) and moved.psi is not None
    assert moved.psi > 0.2


def test_user_clustered_rows_are_not_counted_as_independent() -> None:
    g = rng(11)
    base = np.repeat(g.normal(size=60), 40)  # 60 users with 40 identical events each, no shift between sides
    cur = np.repeat(g.normal(size=60), 40)
    clusters = np.repeat(np.arange(60), 40)
    config = DriftConfig()
    naive = drift.compare("f", drift.NUMERIC, Sample(base), Sample(cur), config)
    honest = drift.compare("f", drift.NUMERIC, Sample(base, clusters=clusters), Sample(cur, clusters=clusters),
                           config)
    assert naive.method == "wasserstein" and naive.drifted  # 2400 "independent" rows: a false alarm
    assert honest.method == "ks" and honest.p_value is not None and honest.p_value > 0.05
    assert not honest.drifted
    d, p = drift_stats.ks_test(base, cur, n_ref=60, n_cur=60)
    assert (honest.statistic, honest.p_value) == (round(d, 6), round(p, 6))


def test_inverse_probability_weights_undo_a_biased_sample() -> None:
    g = rng(3)
    population = g.lognormal(size=20000)
    probability = np.clip(population / population.max() * 4, 0.05, 1.0)  # heavy values sampled more
    kept = g.random(population.size) < probability
    sample, weights = population[kept], 1.0 / probability[kept]
    config = DriftConfig()
    biased = drift.compare("f", drift.NUMERIC, Sample(population), Sample(sample), config)
    reweighted = drift.compare("f", drift.NUMERIC, Sample(population), Sample(sample, weights), config)
    assert biased.drifted
    assert not reweighted.drifted


def test_small_samples_are_not_flagged_on_psi_alone() -> None:
    config = DriftConfig()
    base, cur = Sample(np.arange(200, dtype=float)), Sample(np.arange(200, dtype=float)[::2] + 0.5)
    verdict = drift.compare("f", drift.NUMERIC, base, cur, config)
    assert verdict.method == "ks" and verdict.p_value is not None and verdict.p_value > 0.05
    assert not verdict.drifted


def test_too_few_rows_give_no_statistic() -> None:
    verdict = drift.compare("f", drift.NUMERIC, Sample(np.ones(5)), Sample(np.ones(500)), DriftConfig())
    assert verdict.statistic is None and verdict.psi is None and not verdict.drifted


def test_per_feature_thresholds_override_defaults() -> None:
    config = DriftConfig(overrides={"tight": (0.01, 0.05)})
    assert config.threshold("tight", "wasserstein") == 0.01 and config.psi_threshold("tight") == 0.05
    assert config.threshold("other", "wasserstein") == 0.1 and config.threshold("other", "ks") == 0.05
    g = rng(2)
    base, cur = Sample(g.normal(size=20000)), Sample(g.normal(0.05, size=20000))
    assert drift.compare("tight", drift.NUMERIC, base, cur, config).drifted
    assert not drift.compare("other", drift.NUMERIC, base, cur, config).drifted


# --- groups, ranking, daily series ---------------------------------------------------------------


def test_groups_compare_like_with_like_and_name_the_most_affected() -> None:
    g = rng(9)
    labels = np.array(["tier=a"] * 2000 + ["tier=b"] * 2000 + ["tier=c"] * 30)
    base = Sample(np.concatenate([g.normal(0, size=2000), g.normal(3, size=2000), g.normal(size=30)]),
                  strata=labels)
    cur_values = np.concatenate([g.normal(0, size=2000), g.normal(3.8, size=2000), g.normal(size=30)])
    cur = Sample(cur_values, strata=labels)
    config = DriftConfig()
    groups = {gr["stratum"]: gr for gr in drift.group_verdicts("f", drift.NUMERIC, base, cur, config)}
    assert set(groups) == {"tier=a", "tier=b"}  # tier=c has fewer than min_stratum_rows
    assert groups["tier=a"]["vs"] == "stratum" and not groups["tier=a"]["drifted"]
    assert groups["tier=b"]["drifted"]
    row = drift.feature_report("f", "user", drift.NUMERIC, baseline=base, current=cur, config=config)
    top = drift.top_groups([row])
    assert top[0]["stratum"] == "tier=b" and top[0]["drifted_features"] == 1 and top[0]["features"] == ["f"]


def test_ranking_puts_drifted_then_larger_psi_first() -> None:
    rows = [
        {"feature": "a", "table": "user", "drifted": False, "psi": 0.15, "statistic": 0.05, "method": "wasserstein",
         "p_value": None},
        {"feature": "b", "table": "user", "drifted": True, "psi": 0.05, "statistic": 0.2, "method": "wasserstein",
         "p_value": None},
        {"feature": "c", "table": "event", "drifted": False, "psi": None, "statistic": None, "method": "ks",
         "p_value": None},
        {"feature": "d", "table": "user", "drifted": False, "psi": 0.15, "statistic": 0.1, "method": "ks",
         "p_value": 0.5},
    ]
    ranked = drift.rank_features(rows)
    assert [(r["feature"], r["rank"]) for r in ranked] == [("b", 1), ("d", 2), ("a", 3), ("c", 4)]


def test_daily_psi_by_day_against_the_baseline() -> None:
    base = Sample(np.arange(100, dtype=float))
    days = np.array(["2026-01-01"] * 100 + ["2026-01-02"] * 100 + ["2026-01-03"] * 5)
    values = np.concatenate([np.arange(100, dtype=float), np.full(100, 500.0), np.zeros(5)])
    series = drift.daily_drift(drift.NUMERIC, base, Sample(values), days, config=DriftConfig(), min_rows=50,
                               threshold=0.2)
    assert series.period == "day" and series.dates == ["2026-01-01", "2026-01-02", "2026-01-03"]
    assert series.rows == [100, 100, 5] and series.effective_rows == [100, 100, 5]
    assert series.psi[0] == 0.0
    assert series.psi[1] == pytest.approx(10 * (1e-4 - 0.1) * math.log(1e-4 / 0.1) + (1 - 1e-4) * math.log(1 / 1e-4),
                                          abs=1e-6)
    assert series.psi[2] is None and series.period_threshold[2] is None  # fewer than min_rows
    assert series.shifted == [False, True, False]
    bias, limit = series.bias[0], series.period_threshold[0]
    assert bias is not None and limit is not None and 0 < bias < limit and limit >= bias + 0.2


def test_psi_rows_equal_psi_from_shares() -> None:
    expected = drift_stats.category_shares(np.array(list("aabbbcd")), None, np.array(list("abcde")))
    actual = rng(4).dirichlet(np.ones(5), size=6) * (rng(5).random((6, 5)) > 0.4)
    rows = drift_stats.psi_rows(expected, actual)
    assert rows == pytest.approx([drift_stats.psi_from_shares(expected, a) for a in actual], abs=1e-12)


def test_the_null_psi_is_psi_of_samples_drawn_from_the_baseline() -> None:
    shares = np.array([0.5, 0.3, 0.2, 0.0])
    for size in (2, 400):  # fewer rows than bins (rows drawn) and more (multinomial)
        nulls = drift_stats.null_psi(shares, size, 300, rng(size))
        again = drift_stats.null_psi(shares, size, 300, rng(size))
        assert np.array_equal(nulls, again) and (nulls >= 0).all()
    # bias ~ (bins - 1) / n: three bins with mass, PSI ~ chi-square(2) / n on average
    assert float(np.mean(drift_stats.null_psi(shares, 400, 2000, rng(1)))) == pytest.approx(2 / 400, rel=0.15)


def series_of(shifted: list[bool | None], period: str = "day") -> drift.PeriodSeries:
    """A series with these verdicts (None: a period without a value), dated d1, d2... as days of January."""
    n = len(shifted)
    value = [None if s is None else 1.0 for s in shifted]
    return drift.PeriodSeries(period, [f"2026-01-{i + 1:02d}" for i in range(n)], [0] * n, [0] * n, value, value,
                              value, value, [bool(s) for s in shifted])


@pytest.mark.parametrize(("shifted", "expected"), [
    ([False, False, False, True, True, False, True, True, True], "2026-01-04"),  # one quiet day inside: one shift
    ([False, False, False, True, True, True, False, False, False, False], "2026-01-04"),  # a shift that ended
    ([False, False, False, True, False, False, False, True, False], None),  # isolated flags
    ([True, True, True, True, False, False], None),  # shifted from the start: predates the series
    ([False, None, False, False, True, None, True, True], "2026-01-05"),  # periods without a value are skipped
    ([False, False, False, False, False, True, True], None),  # too short
    ([False, False, False, True, True, True, False, False, False, False, True, True, True, True, True], "2026-01-11"),
])
def test_retrain_after_finds_the_strongest_lasting_shift(shifted: list[bool | None], expected: str | None) -> None:
    assert drift.retrain_after(series_of(shifted), 3) == expected


def test_one_shifted_week_lasts_three_days() -> None:
    assert drift.retrain_after(series_of([False, True, False, False], "week"), 3) == "2026-01-02"
    assert drift.retrain_after(series_of([True, False, False], "week"), 3) is None


def test_group_p_values_are_bonferroni_corrected() -> None:
    base, cur = Sample(np.arange(200, dtype=float)), Sample(np.arange(200, dtype=float) + 30)  # D = 0.15
    verdicts = [drift.compare("f", drift.NUMERIC, base, cur, DriftConfig(), family=n) for n in (1, 2, 3)]
    assert verdicts[0].p_value == pytest.approx(stats.kstwobign.sf(1.5), abs=1e-6)  # 0.0222
    assert [v.drifted for v in verdicts] == [True, True, False]  # 0.05, 0.025, 0.0167
