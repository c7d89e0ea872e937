"""Student's t distribution without scipy: CDF from the regularized incomplete beta function (Lentz's continued
fraction), quantile by safeguarded Newton. Standard library only."""

from __future__ import annotations

import math
from statistics import NormalDist

_TINY = 1e-300
_EPS = 1e-16
_MAX_TERMS = 100_000


def _beta_fraction(a: float, b: float, x: float) -> float:
    """Continued fraction of I_x(a, b) (modified Lentz); converges fast for x < (a + 1) / (a + b + 2)."""
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > _TINY else _TINY)
    h = d
    for m in range(1, _MAX_TERMS):
        for num in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                    -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):
            d = 1.0 + num * d
            d = 1.0 / (d if abs(d) > _TINY else _TINY)
            c = 1.0 + num / c
            c = c if abs(c) > _TINY else _TINY
            h *= d * c
        if abs(d * c - 1.0) < _EPS:
            return h
    raise ArithmeticError("incomplete beta did not converge")


def _stirling_tail(z: float) -> float:
    """lgamma(z) - ((z - 1/2) log z - z + log(2 pi) / 2): the Stirling series, accurate to 1e-17 for z >= 50."""
    z2 = z * z
    return (1 / 12 - (1 / 360 - (1 / 1260 - 1 / (1680 * z2)) / z2) / z2) / z


def _log_gamma_half_ratio(z: float) -> float:
    """log(Gamma(z + 1/2) / Gamma(z)) without the cancellation of two large lgamma values."""
    if z < 50.0:
        return math.lgamma(z + 0.5) - math.lgamma(z)
    return z * math.log1p(0.5 / z) + 0.5 * math.log(z) - 0.5 + _stirling_tail(z + 0.5) - _stirling_tail(z)


def _betainc(a: float, b: float, x: float, y: float) -> float:
    """Regularized incomplete beta I_x(a, b) for b == 1/2 or a == 1/2, with y = 1 - x passed in exactly."""
    if x <= 0.0:
        return 0.0
    if y <= 0.0:
        return 1.0
    log_x = math.log1p(-y) if x > 0.5 else math.log(x)
    log_y = math.log1p(-x) if y > 0.5 else math.log(y)
    other = a if b == 0.5 else b
    log_beta = math.lgamma(0.5) - _log_gamma_half_ratio(other)  # log B(other, 1/2)
    front = math.exp(a * log_x + b * log_y - log_beta)
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _beta_fraction(a, b, x) / a
    return 1.0 - front * _beta_fraction(b, a, y) / b


def t_cdf(t: float, df: float) -> float:
    if math.isnan(t):
        return math.nan
    if math.isinf(t):
        return 1.0 if t > 0 else 0.0
    tail = 0.5 * _betainc(df / 2.0, 0.5, df / (df + t * t), t * t / (df + t * t))  # P(T < -|t|)
    return 1.0 - tail if t > 0 else tail


def t_pdf(t: float, df: float) -> float:
    return math.exp(math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)
                    - (df + 1) / 2 * math.log1p(t * t / df))


def t_ppf(q: float, df: float) -> float:
    """The q-quantile. Symmetric: solved for the upper half, Newton steps kept inside a bracket."""
    if not 0.0 < q < 1.0:
        return {0.0: -math.inf, 1.0: math.inf}.get(q, math.nan)
    if q < 0.5:
        return -t_ppf(1.0 - q, df)
    if q == 0.5:
        return 0.0
    lo, hi = 0.0, max(1.0, NormalDist().inv_cdf(q))
    while t_cdf(hi, df) < q:
        lo, hi = hi, hi * 2.0
    x = min(max(NormalDist().inv_cdf(q), lo), hi)
    for _ in range(200):
        f = t_cdf(x, df) - q
        if f > 0:
            hi = x
        else:
            lo = x
        step = f / t_pdf(x, df)
        new = x - step
        if not lo < new < hi:
            new = (lo + hi) / 2.0
        if abs(new - x) <= 1e-15 * max(1.0, abs(x)):
            return new
        x = new
    return x
