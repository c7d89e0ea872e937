"""Feature drift against a baseline: which test, which verdict, which features and strata moved most, and when.

Method (evidently's size-aware defaults): when a side is small (effective size <= `small_sample_rows`,
1000), numeric features use Kolmogorov-Smirnov and categorical ones a chi-square test of homogeneity, both
with p-values; above that, numeric features use the Wasserstein distance normalised by the baseline's
standard deviation and categorical ones the Jensen-Shannon distance. Every feature also gets a PSI on the
baseline's decile bins. Two departures from evidently, which looks at the reference's row count alone:
the smaller side decides (a small slice stratum judged by an effect size is mostly noise, a p-value
accounts for both sizes), and sizes are effective sizes — Kish's (Σw)²/Σw² for weighted rows, capped at
the number of distinct users for tables with several rows per user (a user's events are not independent,
and counting them as such made a slice look drifted from the very population it was drawn from).

Verdict: a feature drifts when its method says so (p < 0.05; W/σ >= 0.1; JS >= 0.1) or, when both sides
are large, its PSI reaches the PSI threshold (0.2, "significant"; 0.1 is reported as `psi_warning`): on
small samples PSI's own sampling noise, about bins/n, nears the threshold. Thresholds can be set per
feature (the p-value threshold is shared by KS and chi-square).

Ranking: drifted features first, then by PSI (the one statistic every feature has, on one scale), then by
the method's statistic.

Per stratum (and, for event fields, per item category), the slice's rows of a group are compared with the
baseline's rows of the same group when the baseline has enough of them, else with the whole baseline;
p-values are Bonferroni-corrected over the feature's groups.

Daily series: for a feature's underlying event field (e.g. purchase revenue for the revenue features), each
day's values in the slice against the baseline's values of that field, or each week's (7-day blocks from the
first day) when the median day is too sparse for the field's bins (see `choose_period`). The PSI of a small
sample against a large one is biased upward by about (bins - 1) / n, so a flat threshold flags every small
day of a field with thousands of categories; instead each period's PSI is compared with PSI's null at that
period's size, drawn (seeded) from the baseline's shares: the period shifted when its PSI reaches the null's
99th percentile and the null's median (the bias) plus the PSI threshold (see `daily_drift`). The suggested
retraining date is the start of the strongest lasting run of shifted periods (see `retrain_after`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from testbed.core import drift_stats

NUMERIC, CATEGORICAL = "numeric", "categorical"
KS, WASSERSTEIN, JENSEN_SHANNON, CHI_SQUARE = "ks", "wasserstein", "jensen_shannon", "chi_square"
P_VALUE_METHODS = (KS, CHI_SQUARE)
DAY, WEEK = "day", "week"
PERIOD_DAYS = {DAY: 1, WEEK: 7}
MIN_ROWS_PER_BIN = 5  # the classic floor of expected counts per cell for a chi-square-like comparison
NULL_DRAWS = 500
NULL_QUANTILE = 0.99
NULL_SIZE_STEP = 1.1  # periods whose sizes are within 10 % share one null
NULL_SEED = 16

# event-level fields of table `event`: name -> (type, whether its rows are the conversions' alone)
EVENT_FIELDS: dict[str, tuple[str, bool]] = {
    "price": (NUMERIC, False),  # unit price paid
    "price_index": (NUMERIC, False),  # unit price paid / the item's catalogue price
    "quantity": (NUMERIC, True),
    "revenue": (NUMERIC, True),  # price x quantity of a conversion (a purchase by default)
    "event_type": (CATEGORICAL, False),
    "category": (CATEGORICAL, False),
}


@dataclass(frozen=True)
class DriftConfig:
    ks_p_value: float = 0.05
    wasserstein: float = 0.1
    jensen_shannon: float = 0.1
    psi: float = 0.2
    psi_warning: float = 0.1
    small_sample_rows: int = 1000
    bins: int = drift_stats.DEFAULT_BINS
    min_rows: int = 10  # fewer rows on either side: no statistic, no verdict
    min_stratum_rows: int = 50
    overrides: Mapping[str, tuple[float | None, float | None]] = field(default_factory=dict)

    def threshold(self, feature: str, method: str) -> float:
        custom = self.overrides.get(feature, (None, None))[0]
        if custom is not None:
            return custom
        return {KS: self.ks_p_value, CHI_SQUARE: self.ks_p_value, WASSERSTEIN: self.wasserstein,
                JENSEN_SHANNON: self.jensen_shannon}[method]

    def psi_threshold(self, feature: str) -> float:
        custom = self.overrides.get(feature, (None, None))[1]
        return custom if custom is not None else self.psi


@dataclass(frozen=True)
class Sample:
    """One side of a comparison: values (NaN or None = missing), optional row weights, group labels (strata
    or categories) and clusters (the user of each row: rows of one user are not independent)."""

    values: np.ndarray
    weights: np.ndarray | None = None
    strata: np.ndarray | None = None
    clusters: np.ndarray | None = None

    def rows(self) -> int:
        return int(len(self.values))

    def present(self) -> np.ndarray:
        """Mask of the non-missing rows."""
        if self.values.dtype.kind == "U":
            return np.ones(len(self.values), dtype=bool)
        if self.values.dtype == object:
            return np.array([v is not None for v in self.values], dtype=bool)
        return ~np.isnan(np.asarray(self.values, dtype=np.float64))

    def effective_size(self) -> float:
        """Kish's size of the non-missing rows' weights, capped by their number of distinct clusters."""
        present = self.present()
        weights = np.ones(int(present.sum())) if self.weights is None else np.asarray(self.weights)[present]
        size = drift_stats.effective_size(weights) if len(weights) else 0.0
        if self.clusters is not None and len(weights):
            size = min(size, float(len(np.unique(self.clusters[present]))))
        return size

    def where(self, mask: np.ndarray) -> Sample:
        def pick(array: np.ndarray | None) -> np.ndarray | None:
            return None if array is None else array[mask]

        return Sample(self.values[mask], pick(self.weights), pick(self.strata), pick(self.clusters))


@dataclass(frozen=True)
class Verdict:
    method: str
    statistic: float | None
    threshold: float
    p_value: float | None
    psi: float | None
    psi_threshold: float
    drifted: bool

    def as_dict(self) -> dict[str, Any]:
        return {"method": self.method, "statistic": self.statistic, "threshold": self.threshold,
                "p_value": self.p_value, "psi": self.psi, "psi_threshold": self.psi_threshold,
                "drifted": self.drifted}


def choose_method(kind: str, effective_rows: float, small_sample_rows: int) -> str:
    """`effective_rows`: the smaller side's effective size."""
    small = effective_rows <= small_sample_rows
    if kind == CATEGORICAL:
        return CHI_SQUARE if small else JENSEN_SHANNON
    return KS if small else WASSERSTEIN


def compare(feature: str, kind: str, baseline: Sample, current: Sample, config: DriftConfig, *,
            family: int = 1) -> Verdict:
    """One feature's statistic, PSI and verdict; no statistic (and no drift) when either side is too small.

    `family`: how many comparisons of the same feature are made together (its groups); a p-value must then
    clear threshold / family (Bonferroni), so 24 categories do not give a false alarm one time in three.
    """
    n_base, n_cur = baseline.effective_size(), current.effective_size()
    method = choose_method(kind, min(n_base, n_cur), config.small_sample_rows)
    threshold, psi_threshold = config.threshold(feature, method), config.psi_threshold(feature)
    if min(int(baseline.present().sum()), int(current.present().sum())) < config.min_rows:
        return Verdict(method, None, threshold, None, None, psi_threshold, False)
    p_value = None
    if kind == CATEGORICAL:
        labels = drift_stats.categories_of(baseline.values, current.values)
        p = drift_stats.category_shares(baseline.values, baseline.weights, labels)
        q = drift_stats.category_shares(current.values, current.weights, labels)
        psi = drift_stats.psi_from_shares(p, q)
        if method == CHI_SQUARE:
            statistic, p_value = drift_stats.chi_square_test(p, q, n_base, n_cur)
        else:
            statistic = drift_stats.jensen_shannon(p, q)
    else:
        ref = np.asarray(baseline.values, dtype=np.float64)
        cur = np.asarray(current.values, dtype=np.float64)
        psi = drift_stats.psi(ref, cur, baseline.weights, current.weights, config.bins)
        if method == KS:
            statistic, p_value = drift_stats.ks_test(ref, cur, baseline.weights, current.weights,
                                                     n_ref=n_base, n_cur=n_cur)
        else:
            statistic = drift_stats.normalised_wasserstein(ref, cur, baseline.weights, current.weights)
    method_drift = p_value < threshold / max(family, 1) if p_value is not None else statistic >= threshold
    psi_drift = min(n_base, n_cur) > config.small_sample_rows and psi >= psi_threshold  # else mostly noise
    return Verdict(method, round(statistic, 6), threshold, None if p_value is None else round(p_value, 6),
                   round(psi, 6), psi_threshold, bool(method_drift or psi_drift))


def group_verdicts(feature: str, kind: str, baseline: Sample, current: Sample, config: DriftConfig, *,
                   label: str = "stratum") -> list[dict[str, Any]]:
    """Each group of the slice (by `Sample.strata`, with enough rows) against the baseline's same group when it
    has enough rows, else against the whole baseline (`vs` says which). Groups are strata or categories."""
    if current.strata is None:
        return []
    out = []
    labels, inverse, counts = np.unique(current.strata.astype(str, copy=False), return_inverse=True,
                                        return_counts=True)
    baseline_labels = None if baseline.strata is None else baseline.strata.astype(str, copy=False)
    if len(labels) == 1:  # one group (an unstratified slice): the same as the feature's own comparison
        return []
    family = int(np.count_nonzero(counts >= config.min_stratum_rows))
    for code, (group, count) in enumerate(zip(labels.tolist(), counts.tolist(), strict=True)):
        if count < config.min_stratum_rows:
            continue
        reference, vs = baseline, "all"
        if baseline_labels is not None:
            same = baseline_labels == group
            if int(same.sum()) >= config.min_stratum_rows:
                reference, vs = baseline.where(same), label
        verdict = compare(feature, kind, reference, current.where(inverse == code), config, family=family)
        out.append({label: group, "statistic": verdict.statistic, "psi": verdict.psi,
                    "drifted": verdict.drifted, "method": verdict.method, "p_value": verdict.p_value,
                    "vs": vs, "rows": int(count)})
    return out


def feature_report(feature: str, table: str, kind: str, *, baseline: Sample, current: Sample,
                   config: DriftConfig) -> dict[str, Any]:
    """The drift.json entry of one feature (rank filled in by `rank_features`)."""
    verdict = compare(feature, kind, baseline, current, config)
    return {"feature": feature, "table": table, "type": kind, **verdict.as_dict(),
            "psi_warning": bool(verdict.psi is not None and verdict.psi >= config.psi_warning),
            "rows": {"baseline": baseline.rows(), "slice": current.rows()},
            "strata": group_verdicts(feature, kind, baseline, current, config)}


def _shift_key(row: dict[str, Any]) -> tuple[int, float, float]:
    psi = row["psi"] if row["psi"] is not None else -1.0
    statistic = row["statistic"] if row["statistic"] is not None else -1.0
    if row["method"] in P_VALUE_METHODS and row["p_value"] is not None:
        statistic = 1.0 - row["p_value"]
    return (0 if row["drifted"] else 1, -psi, -statistic)


def rank_features(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Most shifted first (drifted, then PSI, then statistic; ties by name); `rank` is 1-based."""
    ordered = sorted(rows, key=lambda r: (*_shift_key(r), r["table"], r["feature"]))
    return [{**row, "rank": i} for i, row in enumerate(ordered, start=1)]


def top_groups(rows: list[dict[str, Any]], key: str = "strata", label: str = "stratum") -> list[dict[str, Any]]:
    """Groups (strata, or categories with key="categories") by number of drifted features, then largest PSI."""
    summary: dict[str, dict[str, Any]] = {}
    for row in rows:
        for entry in row.get(key, []):
            item = summary.setdefault(entry[label], {label: entry[label], "drifted_features": 0,
                                                     "max_psi": 0.0, "features": []})
            if entry["drifted"]:
                item["drifted_features"] += 1
                item["features"].append(row["feature"])
            if entry["psi"] is not None:
                item["max_psi"] = max(item["max_psi"], entry["psi"])
    return sorted(summary.values(), key=lambda s: (-s["drifted_features"], -s["max_psi"], s[label]))


@dataclass(frozen=True)
class PeriodSeries:
    """One event field's size-aware series: per period (a day or a week, labelled by its first day) the slice's
    rows, the effective size the null is drawn at, the PSI against the baseline, the null's median PSI at that
    size (PSI's small-sample bias), the period's threshold, the p-value and whether the period shifted. Periods
    with too few rows hold None (and are not shifted)."""

    period: str
    dates: list[str]
    rows: list[int]
    effective_rows: list[int]
    psi: list[float | None]
    bias: list[float | None]
    period_threshold: list[float | None]
    p_value: list[float | None]
    shifted: list[bool]

    @property
    def days(self) -> int:
        return PERIOD_DAYS[self.period]

    def as_dict(self) -> dict[str, Any]:
        return {"period": self.period, "dates": self.dates, "rows": self.rows,
                "effective_rows": self.effective_rows, "psi": self.psi, "bias": self.bias,
                "period_threshold": self.period_threshold, "p_value": self.p_value, "shifted": self.shifted}


def choose_period(rows_per_day: np.ndarray, size_per_day: np.ndarray, bins: int, min_rows: int) -> str:
    """`week` when the median day (of those with rows) has fewer than `min_rows` rows, or an effective size
    below MIN_ROWS_PER_BIN per bin of the baseline; else `day`."""
    busy = rows_per_day > 0
    if not busy.any():
        return DAY
    sparse = float(np.median(rows_per_day[busy])) < min_rows
    return WEEK if sparse or float(np.median(size_per_day[busy])) < MIN_ROWS_PER_BIN * bins else DAY


def null_size(size: int) -> int:
    """The size a period's null is drawn at: the largest power of NULL_SIZE_STEP (floored) not above its own.
    Periods of similar size share one null; a smaller size has the larger null, so this errs towards
    flagging less."""
    return max(1, math.floor(NULL_SIZE_STEP ** math.floor(math.log(size) / math.log(NULL_SIZE_STEP) + 1e-9)))


def _period_shares(codes: np.ndarray, periods: int, bins: np.ndarray, k: int,
                   current: Sample) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows, (weighted) bin shares and effective size of each period.

    The effective size is the rows' count divided by the design effect of the shares: Σ_b p_b(1 - p_b) M² /
    Σ_u Σ_b (y_ub - p_b m_u)², with y_ub user u's weight in bin b, m_u their weight in the period and M the
    period's total (the linearised variance of a ratio under cluster sampling). Independent rows give their
    count (Kish's size with weights); a user whose events all share a bin counts about once. Without users
    (or when a period's rows all share one bin) it is Kish's size of the rows.
    """
    rows = np.bincount(codes, minlength=periods)
    w = np.ones(len(codes)) if current.weights is None else np.asarray(current.weights, dtype=np.float64)
    counts = np.bincount(codes * k + bins, weights=w, minlength=periods * k).reshape(periods, k)
    totals = counts.sum(axis=1)
    shares = np.divide(counts, totals[:, None], out=np.zeros_like(counts), where=totals[:, None] > 0)
    squares = np.bincount(codes, w * w, periods)
    size = np.divide(totals * totals, squares, out=np.zeros(periods), where=squares > 0)  # Kish's
    if current.clusters is not None and len(codes):
        users = np.asarray(current.clusters, dtype=np.int64)
        span = int(users.max()) + 1
        pairs, pair_of_row = np.unique(codes.astype(np.int64) * span + users, return_inverse=True)
        cells, cell_of_row = np.unique(pair_of_row * k + bins, return_inverse=True)
        y = np.bincount(cell_of_row, weights=w, minlength=len(cells))  # a user's weight in one bin
        pair_of_cell, bin_of_cell = cells // k, cells % k
        period_of_pair = pairs // span
        m = np.bincount(pair_of_row, weights=w, minlength=len(pairs))
        p_cell = shares[period_of_pair[pair_of_cell], bin_of_cell]
        own = np.bincount(pair_of_cell, y * y, len(pairs))  # Σ_b y_ub²
        cross = np.bincount(pair_of_cell, y * p_cell, len(pairs))  # Σ_b p_b y_ub
        spread = own - 2 * m * cross + m * m * np.square(shares).sum(axis=1)[period_of_pair]
        variance = np.bincount(period_of_pair, spread, periods)
        spread_srs = (1.0 - np.square(shares).sum(axis=1)) * totals * totals
        clustered = np.divide(spread_srs, variance, out=np.zeros(periods), where=variance > 1e-12 * totals ** 2)
        size = np.where(clustered > 0, np.minimum(size, clustered), size)
    return rows, shares, np.floor(size + 1e-9).astype(np.int64)


def daily_drift(kind: str, baseline: Sample, current: Sample, days: np.ndarray, *, config: DriftConfig,
                min_rows: int, threshold: float) -> PeriodSeries:
    """Each period's slice values against the baseline, judged against PSI's null at the period's size.

    Per period: PSI of its (weighted) shares against the baseline's, on the baseline's bins (categories for a
    categorical field, the PSI decile bins for a numeric one). Its null is NULL_DRAWS samples of the period's
    effective size drawn from the baseline's shares (seeded by the size: deterministic). The period shifted
    when its PSI is at or above `period_threshold` = max(the null's NULL_QUANTILE quantile, its median +
    `threshold`): unlikely at that size when nothing moved, and a practical shift once the small-sample bias
    is taken off. Periods with fewer than `min_rows` rows (or a baseline below `config.min_rows`) get None.
    """
    if len(days) == 0:
        return PeriodSeries(DAY, [], [], [], [], [], [], [], [])
    if kind == CATEGORICAL:
        categories = drift_stats.categories_of(baseline.values, current.values)
        expected = drift_stats.category_shares(baseline.values, baseline.weights, categories)
        bins = np.searchsorted(categories, drift_stats.labels_of(current.values))
    else:
        reference = np.asarray(baseline.values, dtype=np.float64)
        edges = drift_stats.psi_edges(reference, baseline.weights, config.bins)
        expected = drift_stats.bin_shares(reference, baseline.weights, edges)
        bins = drift_stats.bin_index(np.asarray(current.values, dtype=np.float64), edges)
    k = len(expected)
    labels, day_codes = np.unique(np.asarray(days).astype(str, copy=False), return_inverse=True)
    day_numbers = labels.astype("datetime64[D]").astype(np.int64)[day_codes]  # parse each distinct day once
    first = int(day_numbers.min())
    offsets = day_numbers - first
    day_rows, _, day_sizes = _period_shares(offsets, int(offsets.max()) + 1, bins, k, current)
    period = choose_period(day_rows, day_sizes, int(np.count_nonzero(expected > 0)), min_rows)
    blocks, codes = np.unique(offsets // PERIOD_DAYS[period], return_inverse=True)
    periods = len(blocks)
    rows, shares, sizes = _period_shares(codes, periods, bins, k, current)
    psi = drift_stats.psi_rows(expected, shares)
    evaluated = (rows >= min_rows) & (sizes >= 1) & (int(baseline.present().sum()) >= config.min_rows)
    bias, limit, p_value = (np.full(periods, np.nan) for _ in range(3))
    null_of = np.array([null_size(int(n)) if ok else 0 for n, ok in zip(sizes, evaluated, strict=True)])
    for size in np.unique(null_of[evaluated]).tolist():
        nulls = np.sort(drift_stats.null_psi(expected, size, NULL_DRAWS, np.random.default_rng([NULL_SEED, size])))
        members = null_of == size
        bias[members] = np.median(nulls)
        limit[members] = max(float(np.quantile(nulls, NULL_QUANTILE)), float(np.median(nulls)) + threshold)
        exceeding = NULL_DRAWS - np.searchsorted(nulls, psi[members], side="left")  # draws at or above the PSI
        p_value[members] = (1 + exceeding) / (1 + NULL_DRAWS)
    shifted = evaluated & (psi >= np.where(evaluated, limit, np.inf))

    def values(array: np.ndarray) -> list[float | None]:
        return [round(float(v), 6) if ok else None for v, ok in zip(array, evaluated, strict=True)]

    dates = (first + blocks * PERIOD_DAYS[period]).astype("datetime64[D]").astype(str).tolist()
    return PeriodSeries(period, dates, rows.tolist(), sizes.tolist(), values(psi), values(bias), values(limit),
                        values(p_value), shifted.tolist())


def retrain_after(series: PeriodSeries, min_days: int) -> str | None:
    """The first day of the strongest lasting shift, or None.

    Over the evaluated periods (those without a value are skipped), the shift is the stretch from a shifted
    period to a shifted period in which shifted periods most outnumber quiet ones (the maximum-sum stretch of
    +1 per shifted, -1 per quiet period): it absorbs single noisy periods inside a shift and leaves out
    isolated flags around it. It lasts when that margin, in days, is at least `min_days`, and it needs at
    least `min_days` days of evaluated periods before it: a shift that starts with the series predates it.
    Ties go to the latest stretch (retraining follows the most recent change), then the longest.
    """
    if min_days < 1:
        raise ValueError("min_days must be at least 1")
    points = [(d, s) for d, s, v in zip(series.dates, series.shifted, series.psi, strict=True) if v is not None]
    before = 0  # shifted minus quiet periods before the current one
    low: tuple[int, int] | None = None  # the lowest `before` at a shifted period so far, and that period
    best: tuple[int, int] | None = None  # (margin, first period) of the strongest stretch so far
    for i, (_, shifted) in enumerate(points):
        if shifted:
            if low is None or before < low[0]:
                low = (before, i)
            margin = before + 1 - low[0]
            if best is None or margin >= best[0]:
                best = (margin, low[1])
        before += 1 if shifted else -1
    if best is None or best[0] * series.days < min_days or best[1] * series.days < min_days:
        return None
    return points[best[1]][0]
