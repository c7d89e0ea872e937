"""Normal, chi-squared and binomial distribution functions without scipy.

The Lambda layers cannot hold scipy (FIELD-NOTES: 112 MB), and the gate step needs only a handful of
distribution functions, so they are written here from the standard library and numpy:
- the normal CDF is erfc, the quantile `statistics.NormalDist.inv_cdf` (Wichura's AS241, ~1e-16);
- the chi-squared survival function is the regularized upper incomplete gamma Q(k/2, x/2), by its power
  series below x < a + 1 and by Lentz's continued fraction above (Numerical Recipes §6.2), so small tail
  probabilities keep their relative accuracy;
- the binomial CDF sums the probability mass function in log space (fine for the n <= 10^4 latency samples).
tests/unit/test_special.py checks every function against scipy.
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np

_NORMAL = NormalDist()
_EPS = 1e-16
_TINY = 1e-300
_MAX_TERMS = 10_000


def norm_cdf(x: float) -> float:
    """Phi(x) = erfc(-x / sqrt 2) / 2: erfc keeps the relative accuracy of the lower tail."""
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


def norm_ppf(q: float) -> float:
    """The q-quantile of the standard normal; -inf / inf at 0 / 1."""
    if math.isnan(q) or not 0.0 <= q <= 1.0:
        return math.nan
    if q == 0.0:
        return -math.inf
    if q == 1.0:
        return math.inf
    return _NORMAL.inv_cdf(q)


def _lower_gamma_series(a: float, x: float) -> float:
    """P(a, x) by its power series; converges quickly for x < a + 1."""
    term = total = 1.0 / a
    denom = a
    for _ in range(_MAX_TERMS):
        denom += 1.0
        term *= x / denom
        total += term
        if abs(term) < abs(total) * _EPS:
            return total * math.exp(-x + a * math.log(x) - math.lgamma(a))
    raise ArithmeticError("incomplete gamma series did not converge")


def _upper_gamma_fraction(a: float, x: float) -> float:
    """Q(a, x) by its continued fraction (modified Lentz); converges quickly for x >= a + 1."""
    b = x + 1.0 - a
    c = 1.0 / _TINY
    d = 1.0 / b
    h = d
    for i in range(1, _MAX_TERMS):
        an = -i * (i - a)
        b += 2.0
        d = an * d + b
        d = 1.0 / (d if abs(d) > _TINY else _TINY)
        c = b + an / c
        c = c if abs(c) > _TINY else _TINY
        step = d * c
        h *= step
        if abs(step - 1.0) < _EPS:
            return h * math.exp(-x + a * math.log(x) - math.lgamma(a))
    raise ArithmeticError("incomplete gamma fraction did not converge")


def gamma_q(a: float, x: float) -> float:
    """Regularized upper incomplete gamma Q(a, x) = Gamma(a, x) / Gamma(a), a > 0."""
    if math.isnan(x) or a <= 0:
        return math.nan
    if x <= 0.0:
        return 1.0
    if math.isinf(x):
        return 0.0
    if x < a + 1.0:
        return 1.0 - _lower_gamma_series(a, x)
    return _upper_gamma_fraction(a, x)


def chi2_sf(x: float, dof: int) -> float:
    """P(X >= x) for X ~ chi-squared with `dof` degrees of freedom; dof 0 is the point mass at 0."""
    if dof < 0:
        raise ValueError("dof must be >= 0")
    if dof == 0:
        return 1.0 if x <= 0 else 0.0
    return gamma_q(dof / 2.0, x / 2.0)


def binom_cdf(k: np.ndarray | int, n: int, p: float) -> np.ndarray:
    """P(X <= k) for X ~ Binomial(n, p), element-wise over integer k."""
    ks = np.asarray(k, dtype=np.int64)
    if n < 0 or not 0.0 <= p <= 1.0:
        raise ValueError("need n >= 0 and 0 <= p <= 1")
    support = np.arange(n + 1)
    if p in (0.0, 1.0):
        pmf = (support == (0 if p == 0.0 else n)).astype(np.float64)
    else:
        log_fact = np.concatenate([[0.0], np.cumsum(np.log(np.arange(1, n + 1, dtype=np.float64)))])
        log_pmf = log_fact[n] - log_fact - log_fact[::-1] + support * math.log(p) + (n - support) * math.log1p(-p)
        pmf = np.exp(log_pmf)
    cdf = np.minimum(np.cumsum(pmf), 1.0)
    return np.where(ks < 0, 0.0, np.where(ks >= n, 1.0, cdf[np.clip(ks, 0, n)]))
