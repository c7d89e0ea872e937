"""The scipy-free Student-t (Lambda size budget: scipy.stats does not fit) agrees with scipy."""

from __future__ import annotations

import math

import pytest
from scipy import stats

from testbed.core.student_t import t_cdf, t_ppf

DFS = [1, 2, 3, 5, 9, 29, 30, 99, 1000, 99_999, 5_000_000]


@pytest.mark.parametrize("df", DFS)
def test_cdf_and_sf_match_scipy(df: int) -> None:
    for t in (-40.0, -5.0, -2.0, -0.5, 0.0, 0.3, 1.96, 3.0, 12.0):
        assert t_cdf(t, df) == pytest.approx(stats.t.cdf(t, df), rel=1e-9, abs=1e-300)
        assert t_cdf(-t, df) == pytest.approx(stats.t.sf(t, df), rel=1e-9, abs=1e-300)  # the upper tail


@pytest.mark.parametrize("df", DFS)
def test_ppf_matches_scipy(df: int) -> None:
    for q in (0.001, 0.025, 0.05, 0.3, 0.5, 0.9, 0.95, 0.975, 0.999):
        assert t_ppf(q, df) == pytest.approx(stats.t.ppf(q, df), rel=1e-9, abs=1e-12)


def test_edges() -> None:
    assert t_cdf(math.inf, 5) == 1.0 and t_cdf(-math.inf, 5) == 0.0
    assert math.isnan(t_cdf(math.nan, 5))
    assert t_ppf(0.0, 5) == -math.inf and t_ppf(1.0, 5) == math.inf
