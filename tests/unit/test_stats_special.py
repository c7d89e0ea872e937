"""The scipy-free distribution functions (Lambda layers cannot hold scipy) agree with scipy."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from testbed.core.special import binom_cdf, chi2_sf, gamma_q, norm_cdf, norm_ppf


@pytest.mark.parametrize("dof", [1, 2, 3, 4, 7, 10, 29, 100, 1000])
def test_chi2_sf_matches_scipy_including_far_tails(dof: int) -> None:
    for x in (0.0, 1e-6, 0.1, 0.5, 1.0, 2.0, dof * 0.5, float(dof), dof + 1.0, dof * 2.0, dof * 4.0 + 40, 300.0):
        assert chi2_sf(x, dof) == pytest.approx(stats.chi2.sf(x, dof), rel=1e-9, abs=1e-300)


def test_chi2_sf_edges() -> None:
    assert chi2_sf(0.0, 0) == 1.0 and chi2_sf(0.5, 0) == 0.0
    assert chi2_sf(math.inf, 3) == 0.0 and chi2_sf(-1.0, 3) == 1.0
    assert math.isnan(gamma_q(0.0, 1.0))
    with pytest.raises(ValueError):
        chi2_sf(1.0, -1)


def test_normal_matches_scipy() -> None:
    for x in (-8.0, -3.0, -1.0, 0.0, 0.5, 1.96, 6.0):
        assert norm_cdf(x) == pytest.approx(stats.norm.cdf(x), rel=1e-12, abs=1e-300)
    for q in (1e-10, 0.001, 0.025, 0.5, 0.8, 0.975, 1 - 1e-10):
        assert norm_ppf(q) == pytest.approx(stats.norm.ppf(q), rel=1e-12)
    assert norm_ppf(0.0) == -math.inf and norm_ppf(1.0) == math.inf and math.isnan(norm_ppf(1.5))


@pytest.mark.parametrize(("n", "p"), [(20, 0.95), (200, 0.99), (1000, 0.5), (7, 0.0), (7, 1.0)])
def test_binom_cdf_matches_scipy(n: int, p: float) -> None:
    k = np.arange(-1, n + 2)
    # scipy flushes values near 1e-290 to 0
    np.testing.assert_allclose(binom_cdf(k, n, p), stats.binom.cdf(k, n, p), rtol=1e-9, atol=1e-250)
