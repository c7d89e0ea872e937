"""Seeded, vectorised bootstrap of weighted means, BCa intervals and the p-values that invert them.

Why a bootstrap: per-user ranking metrics are bounded, zero-inflated and skewed (revenue especially), the
users carry unequal inverse-probability weights, and gates test ratios (relative deltas) as well as
differences. Resampling users and recomputing the weighted (Hajek) means handles all of that with one
mechanism; BCa (Efron 1987; Efron & Tibshirani 1993, ch. 14) corrects the percentile interval for bias (z0)
and skew (acceleration a, from the jackknife).

How it stays fast: a resample is a row of multinomial counts over the n users, drawn as an index matrix
(rng.integers) and turned into counts with one bincount, a chunk of rows at a time (CHUNK_CELLS counts per
chunk, a constant: the same data and seed always give the same draws and the same sums, bit for bit). The
weighted sums of every column for a whole chunk are then one matrix product: counts (B x n) @ (weights *
values) (n x q). Resampling is within groups when the sample was drawn with fixed per-stratum sizes
(stratified sampling). One set of resamples serves the whole sample and every stratum (a domain: a block
of rows), so strata cost no extra draws.

Everything works on `Replicates`: a statistic on the sample, on each bootstrap resample and on each
leave-one-out (jackknife) sample. Smooth functions of the means (differences, ratios) are computed on the
replicates of the means with `Replicates.map`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from testbed.core.special import norm_cdf, norm_ppf

CHUNK_CELLS = 2_000_000  # resample counts held at once (x 8 bytes); fixed so results never depend on memory
DESIGN_CELLS = 4_000_000  # ManyDomainMeans' design matrix kept at once (x 8 bytes)


@dataclass(frozen=True)
class Replicates:
    """s statistics: `estimate` (s,) on the sample, `boot` (B, s) on resamples, `jack` (n, s) leave-one-out."""

    estimate: np.ndarray
    boot: np.ndarray
    jack: np.ndarray

    def map(self, fn: Callable[[np.ndarray], np.ndarray]) -> Replicates:
        """The same function (vectorised over leading axes) applied to every replicate."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return Replicates(fn(self.estimate), fn(self.boot), fn(self.jack))

    def widen(self, factor: np.ndarray) -> Replicates:
        """Scale every statistic's bootstrap and jackknife deviations by `factor` (>= 1): the BCa interval's
        distance from the estimate scales by it, z0 and the acceleration do not change."""
        centre = self.jack.mean(axis=0) if self.jack.shape[0] else self.estimate
        return Replicates(self.estimate, self.estimate + factor * (self.boot - self.estimate),
                          centre + factor * (self.jack - centre))

    @property
    def std_error(self) -> np.ndarray:
        """Bootstrap standard error of each statistic (NaN when undefined)."""
        if self.boot.shape[0] < 2:
            return np.full(self.estimate.shape, math.nan)
        return np.asarray(self.boot.std(axis=0, ddof=1))


def resample_counts(groups: Sequence[np.ndarray], n: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """(size, n) float64 counts: each row resamples every group (index array) with replacement to its own size."""
    if size == 0 or n == 0:
        return np.zeros((size, n))
    index = np.concatenate([g[rng.integers(0, g.size, size=(size, g.size))] for g in groups if g.size], axis=1)
    index += (np.arange(size, dtype=np.int64) * n)[:, None]
    return np.bincount(index.ravel(), minlength=size * n).reshape(size, n).astype(np.float64)


Rows = slice | np.ndarray  # the rows of one domain: a slice (a view, no copy) or an index array


def weighted_means_by_domain(values: np.ndarray, weights: np.ndarray, groups: Sequence[np.ndarray] | None,
                             domains: Mapping[str, Rows], *, resamples: int,
                             rng: np.random.Generator, also: ManyDomainMeans | None = None) -> dict[str, Replicates]:
    """Weighted means sum(w x) / sum(w) of each column of `values` (n, q) within each domain (a subset of
    rows), bootstrapped from the same resamples of all n rows, and jackknifed within the domain.

    `groups` partitions range(n) into resampling strata (None: one group). A domain that is not a group
    gets a random number of rows in each resample, as it did in the sample (domain estimation); a resample
    without any of its rows gives NaN. Domains with fewer than 2 rows are NaN throughout. `also` is fed every
    chunk of resample counts (it draws nothing, so the results here are the same with or without it).
    """
    values = np.asarray(values, dtype=np.float64)
    weights = np.asarray(weights, dtype=np.float64)
    n, q = values.shape
    if weights.shape != (n,):
        raise ValueError("weights must hold one value per row of values")
    if resamples < 1:
        raise ValueError("resamples must be >= 1")
    parts = [np.arange(n)] if groups is None else [np.asarray(g, dtype=np.int64) for g in groups]
    if sum(g.size for g in parts) != n:
        raise ValueError("groups must partition the rows")
    weighted = weights[:, None] * values
    rows = {label: (np.arange(n)[where] if isinstance(where, slice) else np.asarray(where))
            for label, where in domains.items()}
    live = [label for label in domains if rows[label].size >= 2]
    boot = {label: np.full((resamples, q), math.nan) for label in domains}
    chunk = max(1, min(resamples, CHUNK_CELLS // max(n, 1)))
    with np.errstate(divide="ignore", invalid="ignore"):
        for start in range(0, resamples, chunk) if live else ():
            size = min(chunk, resamples - start)
            counts = resample_counts(parts, n, size, rng)
            if also is not None:
                also.add(start, counts)
            for label in live:
                where = domains[label]
                c = counts[:, where]
                boot[label][start:start + size] = (c @ weighted[where]) / (c @ weights[where])[:, None]
    return {label: _with_jackknife(values, weights, weighted, rows[label], boot[label]) for label in domains}


def _with_jackknife(values: np.ndarray, weights: np.ndarray, weighted: np.ndarray, idx: np.ndarray,
                    boot: np.ndarray) -> Replicates:
    """A domain's estimate and leave-one-out values (within the domain) beside its bootstrap replicates."""
    q = values.shape[1]
    if idx.size < 2:
        estimate = values[idx[0]] if idx.size == 1 else np.full(q, math.nan)
        return Replicates(np.array(estimate, dtype=np.float64), boot, np.full((idx.size, q), math.nan))
    part, part_weights = weighted[idx], weights[idx]
    total, total_weight = part.sum(axis=0), float(part_weights.sum())
    with np.errstate(divide="ignore", invalid="ignore"):
        jack = (total[None, :] - part) / (total_weight - part_weights)[:, None]
    return Replicates(total / total_weight, boot, jack)


class ManyDomainMeans:
    """Bootstrap means of many (possibly overlapping) domains, index arrays into the rows, e.g. every cohort of
    several partitions, fed the resample counts that another estimate draws (`weighted_means_by_domain`'s
    `also`), so the cohorts cost no draws of their own; the replicates agree with that function's to rounding.

    Each live domain owns q + 1 columns of one design matrix (n x domains (q + 1)): its rows' weighted values and
    weights, zero elsewhere. A chunk's sums for every domain are then one matrix product, not one gathered copy
    of the counts per domain (5x faster on 11k users and 36 cohorts). Past DESIGN_CELLS the domains are summed
    in blocks whose designs are built per chunk, so memory stays bounded however many users there are."""

    def __init__(self, values: np.ndarray, weights: np.ndarray, domains: Mapping[str, np.ndarray], resamples: int):
        self.values = np.asarray(values, dtype=np.float64)
        self.weights = np.asarray(weights, dtype=np.float64)
        self.weighted = self.weights[:, None] * self.values
        self.rows = {label: np.asarray(idx, dtype=np.int64) for label, idx in domains.items()}
        self.live = [label for label, idx in self.rows.items() if idx.size >= 2]
        self.boot = np.full((resamples, len(self.live), self.values.shape[1]), math.nan)
        n, q = self.values.shape
        width = max(1, DESIGN_CELLS // max(n * (q + 1), 1))  # domains per block
        self.blocks = [range(start, min(start + width, len(self.live))) for start in range(0, len(self.live), width)]
        self.kept = self._design(self.blocks[0]) if len(self.blocks) == 1 else None  # else built per chunk

    def _design(self, block: range) -> np.ndarray:
        """(n, len(block) (q + 1)): per domain its rows' weighted values, then their weights."""
        n, q = self.values.shape
        design = np.zeros((n, len(block), q + 1))
        for j, d in enumerate(block):
            rows = self.rows[self.live[d]]
            design[rows, j, :q] = self.weighted[rows]
            design[rows, j, q] = self.weights[rows]
        return design.reshape(n, len(block) * (q + 1))

    def add(self, start: int, counts: np.ndarray) -> None:
        """Resamples start .. start + len(counts) (rows of counts, one column per row of `values`)."""
        size, q = counts.shape[0], self.values.shape[1]
        for block in self.blocks:
            design = self.kept if self.kept is not None else self._design(block)
            sums = (counts @ design).reshape(size, len(block), q + 1)
            with np.errstate(divide="ignore", invalid="ignore"):
                self.boot[start:start + size, block.start:block.stop] = sums[:, :, :q] / sums[:, :, q:]

    def replicates(self) -> dict[str, Replicates]:
        resamples, q = self.boot.shape[0], self.values.shape[1]
        position = {label: j for j, label in enumerate(self.live)}
        return {label: _with_jackknife(self.values, self.weights, self.weighted, idx,
                                       self.boot[:, position[label], :] if label in position
                                       else np.full((resamples, q), math.nan))
                for label, idx in self.rows.items()}


def weighted_means(values: np.ndarray, weights: np.ndarray, groups: Sequence[np.ndarray] | None,
                   resamples: int, rng: np.random.Generator) -> Replicates:
    """`weighted_means_by_domain` over one domain: all rows."""
    return weighted_means_by_domain(values, weights, groups, {"all": slice(None)}, resamples=resamples, rng=rng)["all"]


def _defined(rep: Replicates) -> np.ndarray:
    """Columns whose estimate and replicates are all finite."""
    return (np.isfinite(rep.estimate) & np.isfinite(rep.boot).all(axis=0) & np.isfinite(rep.jack).all(axis=0)
            & (rep.boot.shape[0] > 0))


def bias_correction(rep: Replicates) -> np.ndarray:
    """z0 = Phi^-1(share of resamples below the estimate), ties counted half, kept inside (0.5/B, 1 - 0.5/B)."""
    b = rep.boot.shape[0]
    below = (rep.boot < rep.estimate).sum(axis=0) + 0.5 * (rep.boot == rep.estimate).sum(axis=0)
    share = np.clip(below / max(b, 1), 0.5 / max(b, 1), 1 - 0.5 / max(b, 1))
    return np.array([norm_ppf(float(s)) for s in share])


def acceleration(rep: Replicates) -> np.ndarray:
    """a = sum(d^3) / (6 (sum d^2)^1.5), d = jackknife mean - jackknife value (0 when the jackknife is flat)."""
    d = rep.jack.mean(axis=0) - rep.jack
    num, den = (d ** 3).sum(axis=0), 6.0 * (d ** 2).sum(axis=0) ** 1.5
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / den, 0.0)


def _level(z0: float, a: float, alpha: float) -> float:
    """The BCa-adjusted percentile level for nominal level alpha."""
    z = z0 + norm_ppf(alpha)
    denom = 1.0 - a * z
    if denom <= 0:  # the transformation breaks down: the extreme resample
        return 1.0 if z > 0 else 0.0
    return norm_cdf(z0 + z / denom)


def bca_interval(rep: Replicates, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """Two-sided (1 - 2 alpha) BCa interval per statistic: each end is a one-sided (1 - alpha) bound."""
    if not 0 < alpha < 0.5:
        raise ValueError("alpha must be in (0, 0.5)")
    s = rep.estimate.shape[0]
    lo, hi = np.full(s, math.nan), np.full(s, math.nan)
    ok = _defined(rep)
    if not ok.any():
        return lo, hi
    z0, acc = bias_correction(rep), acceleration(rep)
    for j in np.flatnonzero(ok):
        levels = [_level(float(z0[j]), float(acc[j]), alpha), _level(float(z0[j]), float(acc[j]), 1 - alpha)]
        lo[j], hi[j] = np.quantile(rep.boot[:, j], levels)
    return lo, hi


class BcaTest:
    """The one-sided BCa test of one statistic with its constants (z0, acceleration, SE) computed once, so that
    p_greater at many nulls (test inversion, testbed.core.inversion) costs a binary search each. bca_p_greater
    runs through it: both give the same p-value bit for bit."""

    def __init__(self, boot: np.ndarray, estimate: float, z0: float, acceleration: float, std_error: float):
        self.sorted = np.sort(boot)
        self.estimate, self.z0, self.acceleration, self.std_error = estimate, z0, acceleration, std_error
        self.edge = norm_ppf(0.5 / boot.shape[0])

    @classmethod
    def of(cls, rep: Replicates, j: int = 0) -> BcaTest | None:
        """Statistic j's test; None when it is undefined (a non-finite replicate, no resamples)."""
        if not _defined(rep)[j]:
            return None
        z0, acc, se = bias_correction(rep), acceleration(rep), rep.std_error
        return cls(rep.boot[:, j], rep.estimate[j], z0[j], acc[j], se[j])

    def p_greater(self, theta: float) -> float:
        """p of H0: theta <= null (see bca_p_greater); NaN for a non-finite null."""
        if not math.isfinite(theta):
            return math.nan
        b = self.sorted.shape[0]
        below = int(np.searchsorted(self.sorted, theta, side="left"))
        ties = int(np.searchsorted(self.sorted, theta, side="right")) - below
        q = (float(below) + 0.5 * float(ties)) / b
        z0, acc = self.z0, self.acceleration
        if 0.0 < q < 1.0:
            w = norm_ppf(q) - z0
        elif self.std_error > 0:
            w = (theta - self.estimate) / self.std_error
            w = min(w, self.edge - z0) if q == 0.0 else max(w, -self.edge - z0)
        else:
            w = -math.inf if q == 0.0 else math.inf
        if not math.isfinite(w) or 1.0 + acc * w <= 0:
            return 0.0 if w < 0 else 1.0
        return float(norm_cdf(w / (1.0 + acc * w) - z0))


def bca_p_greater(rep: Replicates, null: np.ndarray | float) -> np.ndarray:
    """One-sided p-value of H0: theta <= null against theta > null, by inverting the BCa lower bound.

    p is the level alpha at which the (1 - alpha) BCa lower bound equals `null` (Efron & Tibshirani 1993,
    §15.4), so p <= alpha exactly when that bound lies above `null`. With q the share of resamples below
    `null` (ties half): w = Phi^-1(q) - z0 and p = Phi(w / (1 + a w) - z0); with a = z0 = 0 this is q itself.
    When `null` lies outside every resample (q = 0 or 1) the tail is extrapolated with the normal model
    behind BCa, w = (null - estimate) / se, never less extreme than the last resample. The p-value of
    H0: theta >= null (alternative "less") is 1 - p.
    """
    s = rep.estimate.shape[0]
    nulls = np.broadcast_to(np.asarray(null, dtype=np.float64), (s,))
    out = np.full(s, math.nan)
    ok = _defined(rep) & np.isfinite(nulls)
    if not ok.any():
        return out
    z0, acc, se = bias_correction(rep), acceleration(rep), rep.std_error
    for j in np.flatnonzero(ok):
        out[j] = BcaTest(rep.boot[:, j], rep.estimate[j], z0[j], acc[j], se[j]).p_greater(float(nulls[j]))
    return out
