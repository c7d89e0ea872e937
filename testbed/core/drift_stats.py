"""Two-sample drift statistics in numpy alone (Lambda layers hold no scipy), with optional row weights.

Weights let a sampled slice stand for its population: a row of a user kept with inclusion probability π
weighs 1/π (Horvitz-Thompson), so a revenue-weighted slice is not reported as "drifted" merely for being
revenue-weighted. Without weights every row counts once and the results equal the textbook (and scipy's)
unweighted statistics; tests/unit/test_drift.py checks them against scipy.

Definitions (F = weighted empirical CDF, p/q = weighted proportions; `ref` is the baseline):
- Kolmogorov-Smirnov: D = sup_x |F_ref(x) - F_cur(x)|; p = Q_KS(sqrt(n m / (n + m)) D), the asymptotic
  Kolmogorov survival function, with n, m Kish's effective sizes (Σw)² / Σw² (the counts when unweighted),
  optionally capped by the caller (rows that cluster by user are not independent).
- Wasserstein-1: W = ∫ |F_ref(x) - F_cur(x)| dx; normalised by the reference standard deviation (floored at
  0.001), as evidently does, so the 0.1 threshold means "a tenth of a standard deviation of mass moved".
- PSI: Σ_i (q_i - p_i) ln(q_i / p_i) over bins cut at the reference's deciles, plus one bin for values
  below the reference minimum, one above its maximum and one for missing values; empty bins count 0.0001
  (evidently's floor), so values never seen in the reference weigh heavily.
- PSI's null at sample size n (`null_psi`): the PSI of n rows drawn from the reference's bin shares (a
  bootstrap of the reference, binned), repeated; its median is PSI's small-sample bias, about (bins - 1) / n
  while cells are well filled, and larger with many sparse categories, where empty cells weigh the floor.
- Jensen-Shannon distance: sqrt(½ KL(p‖m) + ½ KL(q‖m)), m = ½ (p + q), natural log (scipy's default), in
  [0, sqrt(ln 2)].
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from testbed.core.special import chi2_sf

FloatArray = npt.NDArray[np.float64]

PSI_FLOOR = 1e-4
STD_FLOOR = 1e-3
DEFAULT_BINS = 10
NULL_CELLS = 1 << 21  # shares held at once while drawing a null distribution


def _weights(values: np.ndarray, weights: np.ndarray | None) -> FloatArray:
    if weights is None:
        return np.ones(len(values), dtype=np.float64)
    out = np.asarray(weights, dtype=np.float64)
    if out.shape != (len(values),):
        raise ValueError("weights must have one entry per value")
    if np.any(~np.isfinite(out)) or np.any(out < 0):
        raise ValueError("weights must be finite and non-negative")
    return out


def _finite(values: np.ndarray, weights: np.ndarray | None) -> tuple[FloatArray, FloatArray]:
    """Non-missing values and their weights (NaN marks missing)."""
    x = np.asarray(values, dtype=np.float64)
    w = _weights(x, weights)
    keep = ~np.isnan(x)
    return x[keep], w[keep]


def effective_size(weights: np.ndarray) -> float:
    """Kish's effective sample size (Σw)² / Σw²; the count when all weights are equal."""
    total = float(weights.sum())
    squares = float(np.square(weights).sum())
    return total * total / squares if squares > 0 else 0.0


def _cdfs(ref: FloatArray, w_ref: FloatArray, cur: FloatArray, w_cur: FloatArray) -> tuple[FloatArray, ...]:
    """Both weighted ECDFs evaluated at every distinct pooled value (sorted)."""
    grid = np.unique(np.concatenate([ref, cur]))
    out = [grid]
    for x, w in ((ref, w_ref), (cur, w_cur)):
        order = np.argsort(x, kind="stable")
        cumulative = np.concatenate([[0.0], np.cumsum(w[order])]) / w.sum()
        out.append(cumulative[np.searchsorted(x[order], grid, side="right")])
    return tuple(out)


def kolmogorov_sf(x: float) -> float:
    """P(K > x) for the Kolmogorov distribution (limit of sqrt(n) D_n), both classic series.

    x >= 1: 2 Σ_k (-1)^(k-1) exp(-2 k² x²); x < 1: 1 - sqrt(2π)/x Σ_k exp(-(2k-1)² π² / (8 x²)).
    Each converges to double precision within a dozen terms on its side.
    """
    if not x > 0:
        return 1.0
    if x >= 1.0:
        k = np.arange(1, 20, dtype=np.float64)
        total = 2.0 * float(np.sum((-1.0) ** (k - 1) * np.exp(-2.0 * k * k * x * x)))
        return min(1.0, max(0.0, total))
    k = np.arange(1, 20, dtype=np.float64)
    cdf = math.sqrt(2.0 * math.pi) / x * float(np.sum(np.exp(-((2 * k - 1) ** 2) * math.pi**2 / (8.0 * x * x))))
    return min(1.0, max(0.0, 1.0 - cdf))


def ks_test(ref: np.ndarray, cur: np.ndarray, w_ref: np.ndarray | None = None, w_cur: np.ndarray | None = None,
            *, n_ref: float | None = None, n_cur: float | None = None) -> tuple[float, float]:
    """(D, asymptotic two-sided p-value) of the two-sample Kolmogorov-Smirnov test; NaNs are dropped.

    `n_ref` / `n_cur` cap the effective sizes (e.g. at the number of users when rows cluster by user).
    """
    r, wr = _finite(ref, w_ref)
    c, wc = _finite(cur, w_cur)
    if wr.sum() <= 0 or wc.sum() <= 0:
        raise ValueError("both samples need at least one non-missing value with positive weight")
    _, f_ref, f_cur = _cdfs(r, wr, c, wc)
    d = float(np.max(np.abs(f_ref - f_cur)))
    n, m = effective_size(wr), effective_size(wc)
    n, m = min(n, n_ref) if n_ref else n, min(m, n_cur) if n_cur else m
    return d, kolmogorov_sf(math.sqrt(n * m / (n + m)) * d)


def weighted_std(values: np.ndarray, weights: np.ndarray | None = None) -> float:
    x, w = _finite(values, weights)
    if w.sum() <= 0:
        return 0.0
    mean = float(np.average(x, weights=w))
    return math.sqrt(float(np.average(np.square(x - mean), weights=w)))


def wasserstein(ref: np.ndarray, cur: np.ndarray, w_ref: np.ndarray | None = None,
                w_cur: np.ndarray | None = None) -> float:
    """Wasserstein-1 distance ∫|F_ref - F_cur| dx between the two (weighted) samples; NaNs are dropped."""
    r, wr = _finite(ref, w_ref)
    c, wc = _finite(cur, w_cur)
    if wr.sum() <= 0 or wc.sum() <= 0:
        raise ValueError("both samples need at least one non-missing value with positive weight")
    grid, f_ref, f_cur = _cdfs(r, wr, c, wc)
    return float(np.sum(np.abs(f_ref - f_cur)[:-1] * np.diff(grid)))


def normalised_wasserstein(ref: np.ndarray, cur: np.ndarray, w_ref: np.ndarray | None = None,
                           w_cur: np.ndarray | None = None) -> float:
    """W / max(std_ref, 0.001) (evidently's `wasserstein` stat test)."""
    return wasserstein(ref, cur, w_ref, w_cur) / max(weighted_std(ref, w_ref), STD_FLOOR)


def weighted_quantiles(values: FloatArray, weights: FloatArray, qs: Sequence[float]) -> FloatArray:
    """For each q the smallest x with F(x) > q (weighted ECDF F): the first value of the upper part, so that
    bins [edge_i, edge_i+1) hold the reference's deciles exactly when there are no ties."""
    order = np.argsort(values, kind="stable")
    x, cumulative = values[order], np.cumsum(weights[order])
    cumulative /= cumulative[-1]
    index = np.searchsorted(cumulative, np.asarray(qs, dtype=np.float64) + 1e-12, side="right")
    result: FloatArray = x[np.minimum(index, len(x) - 1)]
    return result


def psi_edges(ref: np.ndarray, w_ref: np.ndarray | None = None, bins: int = DEFAULT_BINS) -> FloatArray:
    """Bin edges from the reference: [min, distinct interior quantiles..., max] (ties collapse bins)."""
    r, wr = _finite(ref, w_ref)
    if wr.sum() <= 0:
        return np.empty(0)
    interior = weighted_quantiles(r, wr, [i / bins for i in range(1, bins)])
    lo, hi = float(r.min()), float(r.max())
    return np.unique(np.concatenate([[lo], interior[(interior > lo) & (interior < hi)], [hi]]))


def bin_index(values: np.ndarray, edges: FloatArray) -> npt.NDArray[np.int64]:
    """Each value's bin: 0 missing, 1 below the minimum, 2.. the in-range bins, last above the maximum."""
    x = np.asarray(values, dtype=np.float64)
    in_range = max(len(edges) - 1, 1)  # a constant reference has one in-range bin
    if len(edges) == 0:
        index = np.full(len(x), 2, dtype=np.int64)
    else:
        inner = np.searchsorted(edges[1:-1], x, side="right") + 2  # the maximum joins the last in-range bin
        index = np.where(x < edges[0], 1, np.where(x > edges[-1], in_range + 2, inner))
    return np.where(np.isnan(x), 0, index).astype(np.int64)


def bin_count(edges: FloatArray) -> int:
    """How many bins `bin_index` uses for these edges."""
    return max(len(edges) - 1, 1) + 3


def bin_shares(values: np.ndarray, weights: np.ndarray | None, edges: FloatArray) -> FloatArray:
    """Weighted share per bin: [missing, < min, [e0, e1), ..., [e_last-1, max], > max]."""
    x = np.asarray(values, dtype=np.float64)
    w = _weights(x, weights)
    counts = np.bincount(bin_index(x, edges), weights=w, minlength=bin_count(edges)).astype(np.float64)
    total = counts.sum()
    shares: FloatArray = counts / total if total > 0 else counts
    return shares


def psi_from_shares(expected: np.ndarray, actual: np.ndarray) -> float:
    """Σ (a - e) ln(a / e), both floored at 0.0001 (empty bins would make the sum infinite)."""
    e = np.where(expected > 0, expected, PSI_FLOOR)
    a = np.where(actual > 0, actual, PSI_FLOOR)
    return float(np.sum((a - e) * np.log(a / e)))


def psi_rows(expected: np.ndarray, actual: np.ndarray) -> FloatArray:
    """`psi_from_shares` of each row of `actual` (periods or draws x bins) against `expected`.

    Computed as the PSI of an empty row plus each non-empty cell's difference from its empty term: a small
    sample of many categories leaves most cells empty, and only the others are visited.
    """
    e = np.where(expected > 0, expected, PSI_FLOOR)
    empty = (PSI_FLOOR - e) * np.log(PSI_FLOOR / e)  # a bin's term when the row has nothing in it
    rows, cols = np.nonzero(actual > 0)
    a, e_cells = actual[rows, cols], e[cols]
    differences = (a - e_cells) * np.log(a / e_cells) - empty[cols]
    result: FloatArray = np.bincount(rows, weights=differences, minlength=actual.shape[0]).astype(np.float64)
    return result + float(empty.sum())


def null_psi(expected: np.ndarray, size: int, draws: int, rng: np.random.Generator) -> FloatArray:
    """PSI against `expected` of `draws` samples of `size` rows drawn from it: PSI's distribution at that
    sample size when nothing moved (a bootstrap of the baseline, binned). Drawn in chunks of at most
    NULL_CELLS shares, so memory stays bounded for thousands of categories."""
    p = np.asarray(expected, dtype=np.float64)
    p = p / p.sum()
    k = len(p)
    cumulative = np.cumsum(p)
    out = np.empty(draws, dtype=np.float64)
    chunk = max(1, NULL_CELLS // k)
    for start in range(0, draws, chunk):
        m = min(chunk, draws - start)
        if size < k:  # fewer rows than bins: draw the rows (m x size) rather than m x k binomials
            rows = np.minimum(np.searchsorted(cumulative, rng.random((m, size)), side="right"), k - 1)
            cells = (np.arange(m)[:, None] * k + rows).ravel()
            counts = np.bincount(cells, minlength=m * k).reshape(m, k)
        else:
            counts = rng.multinomial(size, p, size=m)
        out[start:start + m] = psi_rows(p, counts / size)
    return out


def psi(ref: np.ndarray, cur: np.ndarray, w_ref: np.ndarray | None = None, w_cur: np.ndarray | None = None,
        bins: int = DEFAULT_BINS) -> float:
    """Population stability index of `cur` against `ref`, on the reference's quantile bins."""
    edges = psi_edges(ref, w_ref, bins)
    return psi_from_shares(bin_shares(ref, w_ref, edges), bin_shares(cur, w_cur, edges))


def labels_of(values: np.ndarray) -> np.ndarray:
    """Category labels as a numpy string array; None → '<null>' (string arrays pass through uncopied)."""
    x = np.asarray(values)
    if x.dtype.kind == "U":
        return x
    return np.array(["<null>" if v is None else str(v) for v in x.astype(object)], dtype=str)


def category_shares(values: np.ndarray, weights: np.ndarray | None,
                    categories: np.ndarray) -> FloatArray:
    """Weighted share of each of `categories` (sorted, unique) among `values` (strings; None → '<null>')."""
    x = labels_of(values)
    w = _weights(x, weights)
    index = np.searchsorted(categories, x)
    counts = np.bincount(index, weights=w, minlength=len(categories)).astype(np.float64)
    total = counts.sum()
    shares: FloatArray = counts / total if total > 0 else counts
    return shares


def categories_of(*samples: np.ndarray) -> np.ndarray:
    """The sorted distinct labels of all samples."""
    labels = [np.unique(labels_of(s)) for s in samples]
    return np.unique(np.concatenate(labels)) if labels else np.empty(0, dtype=str)


def jensen_shannon(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen-Shannon distance (natural log) between two discrete distributions (normalised here)."""
    p = np.asarray(p, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    if p.sum() <= 0 or q.sum() <= 0:
        raise ValueError("both distributions need positive mass")
    p, q = p / p.sum(), q / q.sum()
    m = 0.5 * (p + q)

    def kl(a: FloatArray, b: FloatArray) -> float:
        keep = a > 0
        return float(np.sum(a[keep] * np.log(a[keep] / b[keep])))

    return math.sqrt(max(0.0, 0.5 * kl(p, m) + 0.5 * kl(q, m)))


def chi_square_test(p: np.ndarray, q: np.ndarray, n_ref: float, n_cur: float) -> tuple[float, float]:
    """(X², p-value) of the chi-square test of homogeneity of two category distributions.

    `p`, `q` are shares (or counts) over the same categories, scaled to the effective sizes `n_ref`,
    `n_cur` (weights and user clustering shrink them below the row counts); categories empty on both sides
    are dropped; df = categories - 1. With integer counts and their totals it equals scipy's
    chi2_contingency(correction=False).
    """
    p = np.asarray(p, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    if p.sum() <= 0 or q.sum() <= 0 or n_ref <= 0 or n_cur <= 0:
        raise ValueError("both distributions need positive mass and size")
    keep = (p > 0) | (q > 0)
    observed = np.vstack([p[keep] / p.sum() * n_ref, q[keep] / q.sum() * n_cur])
    if observed.shape[1] < 2:
        return 0.0, 1.0
    expected = observed.sum(axis=1, keepdims=True) * observed.sum(axis=0, keepdims=True) / observed.sum()
    statistic = float(np.sum(np.square(observed - expected) / expected))
    return statistic, chi2_sf(statistic, observed.shape[1] - 1)
