"""Offline ranking and business metrics, following the trec_eval conventions.

Layout follows ranx's ``metrics`` package: one plain function per metric with its formula in the
docstring, and an explicit, ordered registry (:data:`METRICS`) of metric specs. The registered functions
are the production code: :func:`per_user_metrics` computes the shared per-(model, user) sums once
(:class:`RankingSums`) and calls each per-user metric's function on them; :func:`aggregate` walks the
registry for the group values. Nothing registers itself at import time. Pure code: no I/O, no AWS.

Conventions (per user, ``K`` = cut-off, ``rel(d)`` = label grade of item ``d``, 0 when absent):

* An item is *relevant* iff ``rel >= 1`` (trec_eval ``relevance_level`` 1).
  ``R`` = number of relevant label items of the user.
* ``rel_i`` is the grade of the item ranked at position ``i`` (1-based). Only the first ``K``
  ranked items are looked at; lists shorter than ``K`` are fine.
* nDCG uses the *linear* gain ``rel_i`` (trec_eval ``ndcg_cut``), not ``2**rel - 1``.
* Users with ``R = 0`` get no per-user values and are excluded from every average (including
  ``revenue@K`` and ``coverage@K``); they are counted separately (see :func:`aggregate`). So the
  denominators ``R`` and ``IDCG@K`` of the per-user metrics are always positive.
* A user with ``R >= 1`` whom a model did not rank at all is a miss: every metric is 0.0.
* The candidate-stage metrics (``candidate_recall@N``, ``candidate_hit_rate@N``) are at ``N`` =
  ``evaluation.candidates_per_user``, not ``K``: they look at every (user, item) pair the model scored (its
  candidate set, :class:`CandidateSets`), the ceiling of what any ranking of it can reach. They follow the same
  ``R >= 1`` rule; a model without a candidate stage (a rankings file) gets NaN for them: not applicable.
* Business KPIs (conversion, AOV, click-through) read two per-(user, item) label flags: ``bought(d)``, a
  label-window conversion line of ``d`` with quantity above 0 (a null quantity counts as 1; the lines that
  grade their conversion type and carry revenue), and ``clicked(d)``, a label-window event of a click type.
  Conversion and click types are the manifest's declared event types (testbed.core.event_types; by default
  ``purchase`` and ``view``). They are averaged over the same evaluated users (``R >= 1``) as every other metric.

Ranks are taken as given. No tie-breaking happens here: the scorer already wrote the ``rank``
column and breaks score ties by ``item_id`` ascending. (trec_eval itself ignores the ranks and
re-sorts by score, breaking ties by docno *descending*; feed it strictly decreasing scores when
comparing.)
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from testbed.core import beyond_accuracy
from testbed.core.arrays import group_starts
from testbed.core.beyond_accuracy import ItemStats, RecommendedItems

__all__ = [
    "ALIASES",
    "CANDIDATE_STAGE",
    "COVERAGE",
    "METRICS",
    "METRIC_NAMES",
    "PER_USER_METRICS",
    "PRIMARY",
    "ListMetric",
    "Metric",
    "PerUserMetric",
    "RATIO_METRICS",
    "RankingSums",
    "RatioMetric",
    "TopKLists",
    "CandidateSets",
    "CutOff",
    "aggregate",
    "canonical_name",
    "metric_named",
    "per_user_metrics",
]


def _check_k(k: int) -> None:
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise ValueError(f"cut-off k must be a positive integer, got {k!r}")


# --------------------------------------------------------------------------------------------------
# what the metric functions read


@dataclass(frozen=True)
class RankingSums:
    """Per (model, evaluated user) cell, one array entry each: the sums every per-user metric is built from.

    ``n_relevant`` = ``R`` (int64); ``idcg`` = ``IDCG@K``; ``dcg`` = ``DCG@K``;
    ``hits`` = ``|{i <= K : rel_i >= 1}|``; ``ap_sum`` = ``sum_{i <= K, rel_i >= 1} P@i``;
    ``rr`` = ``1 / min{i <= K : rel_i >= 1}`` (0.0 without a hit); ``revenue`` = ``sum_{i <= K} revenue(d_i)``;
    ``bought`` = ``|{i <= K : bought(d_i)}|``; ``clicked`` = ``|{i <= K : clicked(d_i)}|``.
    """

    k: int
    n_relevant: np.ndarray
    idcg: np.ndarray
    dcg: np.ndarray
    hits: np.ndarray
    ap_sum: np.ndarray
    rr: np.ndarray
    revenue: np.ndarray
    bought: np.ndarray
    clicked: np.ndarray
    recommended: RecommendedItems | None = None  # the cells' top-K rows; None without item stats
    in_candidates: np.ndarray | None = None
    """``|{d in C_u : rel(d) >= 1}|`` with ``C_u`` the user's candidate set; NaN for a model without a candidate
    stage; None without candidate sets."""


@dataclass(frozen=True)
class CandidateSets:
    """The (user, item) pairs each model scored: its candidate stage's output, the score step's candidates."""

    pairs: pa.Table  # model, user_id, item_id
    per_user: int  # N = evaluation.candidates_per_user, the candidate metrics' cut-off
    staged: tuple[str, ...]  # the models that have a candidate stage (the others: not applicable)


@dataclass(frozen=True)
class TopKLists:
    """The top-``K`` lists of a group of evaluated users, taken together."""

    distinct_items: int
    catalogue_size: int
    user: np.ndarray  # one entry per top-K row of the group's evaluated users: a code of its user ...
    item: np.ndarray  # ... and of its item


# --------------------------------------------------------------------------------------------------
# per-user metrics


def ndcg_at_k(s: RankingSums) -> np.ndarray:
    """Normalised discounted cumulative gain at ``k`` (trec_eval ``ndcg_cut``, linear gain).

    ``DCG@K  = sum_{i=1..min(n,K)} rel_i / log2(i + 1)``

    ``IDCG@K = sum_{j=1..K} g_j / log2(j + 1)`` with ``g_1 >= g_2 >= ...`` ALL of the user's label
    grades sorted descending (not only the ranked ones).

    ``nDCG@K = DCG@K / IDCG@K`` (``IDCG@K > 0`` since ``R >= 1``).
    """
    return s.dcg / s.idcg


def precision_at_k(s: RankingSums) -> np.ndarray:
    """Precision at ``k`` (trec_eval ``P_K``).

    ``P@K = |{i <= K : rel_i >= 1}| / K``. The denominator is ``K`` even when fewer than ``K``
    items are ranked.
    """
    return s.hits / s.k


def recall_at_k(s: RankingSums) -> np.ndarray:
    """Recall at ``k`` (trec_eval ``recall_K``).

    ``Recall@K = |{i <= K : rel_i >= 1}| / R``.
    """
    return s.hits / s.n_relevant


def mrr_at_k(s: RankingSums) -> np.ndarray:
    """Reciprocal rank of the first relevant item within the top ``k``.

    ``RR@K = 1 / min{i <= K : rel_i >= 1}``, 0.0 when no relevant item is in the top ``K``.
    (Equals trec_eval ``recip_rank`` on a run truncated at ``K``.)
    """
    return s.rr


def hit_rate_at_k(s: RankingSums) -> np.ndarray:
    """Hit rate at ``k``.

    ``HR@K = 1`` if ``exists i <= K : rel_i >= 1`` else ``0``.
    """
    return (s.hits > 0).astype(np.float64)


def map_at_k(s: RankingSums) -> np.ndarray:
    """Average precision at ``k`` (trec_eval ``map_cut_K``).

    ``AP@K = (sum_{i <= K, rel_i >= 1} P@i) / R`` with ``P@i = |{j <= i : rel_j >= 1}| / i``.
    The denominator is ``R`` (all relevant label items), not ``min(R, K)``.
    """
    return s.ap_sum / s.n_relevant


def revenue_at_k(s: RankingSums) -> np.ndarray:
    """Label-window conversion revenue (purchases by default) captured by the top ``k``.

    ``Revenue@K = sum_{i <= K} revenue(d_i)`` where ``revenue(d)`` is the user's label-window conversion
    revenue (price x quantity) for item ``d`` (0 when absent), whatever the item's grade.
    """
    return s.revenue


# --------------------------------------------------------------------------------------------------
# business KPIs (the offline stand-ins for a canary's conversion, average order value and click-through)


def conversion_at_k(s: RankingSums) -> np.ndarray:
    """Conversion at ``k``: whether the user bought at least one recommended item in the label window.

    ``Conversion@K = 1`` if ``exists i <= K : bought(d_i)`` else ``0``, ``bought(d)`` = a label-window conversion
    line of ``d`` with quantity above 0 (a purchase by default). A group's value is the share of its users who
    converted.
    """
    return (s.bought > 0).astype(np.float64)


def click_through_at_k(s: RankingSums) -> np.ndarray:
    """Click-through at ``k``: whether the user clicked or viewed at least one recommended item in the label window.

    ``CTR@K = 1`` if ``exists i <= K : clicked(d_i)`` else ``0``, ``clicked(d)`` = a label-window event of a click
    type on ``d``. A group's value is the share of its users who clicked.
    """
    return (s.clicked > 0).astype(np.float64)


def aov_at_k(revenue: np.ndarray, converted: np.ndarray, weights: np.ndarray | None = None) -> float:
    """Average order value at ``k``: label-window revenue from recommended items per converting user.

    ``AOV@K = sum_u w_u Revenue@K_u / sum_u w_u Conversion@K_u`` over the group's users (``w_u`` = 1 /
    inclusion probability; 1 when ``weights`` is None). A ratio of sums, not a mean of per-user ratios:
    non-converting users carry no revenue from recommended items, so it is their mean revenue over the
    converting users. Undefined (NaN) when no user of the group converted.
    """
    w = np.ones(revenue.shape) if weights is None else weights
    converting = float(np.sum(w * converted))
    return float(np.sum(w * revenue)) / converting if converting > 0 else math.nan


# --------------------------------------------------------------------------------------------------
# candidate-stage metrics (the ranker's ceiling: what no ordering of the candidates can exceed)


def _scored_candidates(s: RankingSums) -> np.ndarray:
    if s.in_candidates is None:
        raise ValueError("candidate-stage metrics need the candidate sets (per_user_metrics candidates=)")
    return s.in_candidates


def candidate_recall_at_n(s: RankingSums) -> np.ndarray:
    """Recall of the candidate stage at ``N`` = ``evaluation.candidates_per_user``.

    ``CandidateRecall@N = |{d in C_u : rel(d) >= 1}| / R`` with ``C_u`` the (at most ``N``) candidates the model
    scored for the user. No ranking of those candidates has ``recall@K`` above it. NaN: no candidate stage.
    """
    return _scored_candidates(s) / s.n_relevant


def candidate_hit_rate_at_n(s: RankingSums) -> np.ndarray:
    """Hit rate of the candidate stage at ``N``: whether any of the user's label items is a candidate.

    ``CandidateHR@N = 1`` if ``exists d in C_u : rel(d) >= 1`` else ``0``; ``1 - CandidateHR@N`` over a group is the
    share of its users with no label item among their candidates. NaN: no candidate stage.
    """
    found = _scored_candidates(s)
    return np.where(np.isnan(found), math.nan, found > 0)


# --------------------------------------------------------------------------------------------------
# list-level metrics


def coverage_at_k(lists: TopKLists) -> float:
    """Catalogue coverage at ``k`` of a group of users (an aggregate, not a per-user metric).

    ``Coverage@K = |union_u {d_{u,1}, ..., d_{u,K}}| / catalogue_size``.
    """
    return lists.distinct_items / lists.catalogue_size


# --------------------------------------------------------------------------------------------------
# the registry


CutOff = Literal["k", "candidates_per_user"]


@dataclass(frozen=True)
class _Named:
    name: str
    bounds: tuple[float, float] = field(default=(0.0, 1.0), kw_only=True)
    """The smallest and largest value the metric can take (gates refuse thresholds and margins outside)."""
    higher_is_better: bool = field(default=True, kw_only=True)
    """Every gate reads a higher value as better; a metric where higher is worse cannot be gated (the manifest
    says which metric to gate instead), only reported."""
    gate_instead: str | None = field(default=None, kw_only=True)
    cut_off: CutOff = field(default="k", kw_only=True)
    """The evaluation field its cut-off is (the candidate-stage metrics are at ``candidates_per_user``)."""

    def at(self, k: int) -> str:
        """The metric's name at cut-off ``k``, as in the per-user columns, metrics.json and the gates."""
        return f"{self.name}@{k}"

    def named(self, k: int, candidates_per_user: int) -> str:
        """The metric's name at its own cut-off: ``k`` or ``candidates_per_user`` (:attr:`cut_off`)."""
        return self.at(candidates_per_user if self.cut_off == "candidates_per_user" else k)


@dataclass(frozen=True)
class PerUserMetric(_Named):
    """One value per (model, evaluated user); a group's value is the users' mean, deltas are paired."""

    column: Callable[[RankingSums], np.ndarray]
    needs_items: bool = field(default=False, kw_only=True)
    """Reads the items' population statistics: computed only when per_user_metrics is given them."""
    needs_candidates: bool = field(default=False, kw_only=True)
    """Reads the candidate sets: computed only when per_user_metrics is given them."""
    has_per_user_values: ClassVar[bool] = True
    paired: ClassVar[bool] = True  # compared user by user with the paired bootstrap (else on point values)


@dataclass(frozen=True)
class ListMetric(_Named):
    """One value per group of users, from their lists taken together: compared on point values."""

    value: Callable[[TopKLists], float]
    has_per_user_values: ClassVar[bool] = False
    paired: ClassVar[bool] = False


@dataclass(frozen=True)
class RatioMetric(_Named):
    """A ratio of two per-user metrics' sums over a group's users (``value``'s docstring has the formula). No
    per-user values of its own: its delta and interval come from resampling users and recomputing the ratio of
    sums of both models in each resample (testbed.core.stats), so it is compared and gated like a per-user metric."""

    numerator: PerUserMetric
    denominator: PerUserMetric
    value: Callable[[np.ndarray, np.ndarray, np.ndarray | None], float]
    has_per_user_values: ClassVar[bool] = False
    paired: ClassVar[bool] = True


Metric = PerUserMetric | ListMetric | RatioMetric

NDCG = PerUserMetric("ndcg", ndcg_at_k)
PRECISION = PerUserMetric("precision", precision_at_k)
RECALL = PerUserMetric("recall", recall_at_k)
MRR = PerUserMetric("mrr", mrr_at_k)
HIT_RATE = PerUserMetric("hit_rate", hit_rate_at_k)
MAP = PerUserMetric("map", map_at_k)
REVENUE = PerUserMetric("revenue", revenue_at_k, bounds=(0.0, math.inf))
COVERAGE = ListMetric("coverage", coverage_at_k)

# business KPIs
CONVERSION = PerUserMetric("conversion", conversion_at_k)
AOV = RatioMetric("aov", REVENUE, CONVERSION, aov_at_k, bounds=(0.0, math.inf))
CLICK_THROUGH = PerUserMetric("click_through", click_through_at_k)

# the candidate stage's ceiling, at N = evaluation.candidates_per_user
CANDIDATE_RECALL = PerUserMetric("candidate_recall", candidate_recall_at_n, needs_candidates=True,
                                 cut_off="candidates_per_user")
CANDIDATE_HIT_RATE = PerUserMetric("candidate_hit_rate", candidate_hit_rate_at_n, needs_candidates=True,
                                   cut_off="candidates_per_user")
CANDIDATE_STAGE: tuple[PerUserMetric, ...] = (CANDIDATE_RECALL, CANDIDATE_HIT_RATE)
ALIASES: Mapping[str, Metric] = {"revenue_per_user": REVENUE}
"""Other names a manifest may use for a metric. metrics.json and gates.json carry the registered name
(``revenue@K``: SPEC §4 lists it, and the records of earlier runs carry it)."""

# beyond-accuracy metrics (formulas in testbed.core.beyond_accuracy); gates read higher as better, and for
# arp and exposure_gini higher means more popularity bias: they are reported, and the manifest refuses gates on them
NOVELTY = PerUserMetric("novelty", beyond_accuracy.novelty_at_k, bounds=(0.0, math.inf), needs_items=True)
DIVERSITY = PerUserMetric("intra_list_diversity", beyond_accuracy.intra_list_diversity_at_k, needs_items=True)
ARP = PerUserMetric("arp", beyond_accuracy.arp_at_k, needs_items=True, higher_is_better=False,
                    gate_instead="novelty")
EXPOSURE_GINI = ListMetric("exposure_gini", beyond_accuracy.exposure_gini_at_k, higher_is_better=False,
                           gate_instead="exposure_entropy")
EXPOSURE_ENTROPY = ListMetric("exposure_entropy", beyond_accuracy.exposure_entropy_at_k)
PERSONALISATION = ListMetric("personalisation", beyond_accuracy.personalisation_at_k)
BEYOND_ACCURACY: tuple[Metric, ...] = (NOVELTY, DIVERSITY, ARP, EXPOSURE_GINI, EXPOSURE_ENTROPY, PERSONALISATION)

METRICS: tuple[Metric, ...] = (NDCG, PRECISION, RECALL, MRR, HIT_RATE, MAP, REVENUE, COVERAGE,
                               CONVERSION, AOV, CLICK_THROUGH, *BEYOND_ACCURACY, *CANDIDATE_STAGE)
"""Every metric, in the order of the per-user columns and of each group's values in metrics.json."""

METRIC_NAMES: tuple[str, ...] = tuple(m.name for m in METRICS)
PER_USER_METRICS: tuple[PerUserMetric, ...] = tuple(m for m in METRICS if isinstance(m, PerUserMetric))
RATIO_METRICS: tuple[RatioMetric, ...] = tuple(m for m in METRICS if isinstance(m, RatioMetric))
PRIMARY: PerUserMetric = NDCG
"""The metric a run is summarised by when one number has to do (the what-if scenarios)."""


def metric_named(name: str) -> Metric:
    """The registered metric of ``name`` or of an alias (:data:`ALIASES`), with or without its cut-off
    (``"ndcg@10"`` or ``"ndcg"``; ``"revenue_per_user@10"`` is ``revenue@10``)."""
    base = name.partition("@")[0]
    for metric in METRICS:
        if metric.name == base:
            return metric
    if base in ALIASES:
        return ALIASES[base]
    raise ValueError(f"unknown metric {name!r}; known: {', '.join(METRIC_NAMES + tuple(ALIASES))}")


def canonical_name(name: str) -> str:
    """``name`` (``metric@k``) under its registered metric's name: an alias resolved, anything else unchanged."""
    base, at, k = name.partition("@")
    return f"{metric_named(base).name}{at}{k}" if base in ALIASES else name


# --------------------------------------------------------------------------------------------------
# table-level computation

_RANKING_COLUMNS = ("user_id", "model", "rank", "item_id")
_LABEL_COLUMNS = ("user_id", "item_id", "relevance", "revenue")
_LABEL_FLAGS = ("purchased", "clicked")  # bought(d), clicked(d); optional: a table without them has neither


def _require_columns(table: pa.Table, columns: Sequence[str], what: str) -> None:
    missing = [c for c in columns if c not in table.column_names]
    if missing:
        raise ValueError(f"{what} table is missing columns {missing}")
    with_nulls = [c for c in columns if table.column(c).null_count > 0]
    if with_nulls:
        raise ValueError(f"{what} table has nulls in columns {with_nulls}")


def _as_str(column: pa.ChunkedArray) -> pa.ChunkedArray:
    return column if pa.types.is_string(column.type) else column.cast(pa.string())


def _sorted_vocab(*columns: pa.ChunkedArray) -> pa.Array:
    """Distinct values of the string columns, sorted (UTF-8 byte order == code point order)."""
    chunks = [chunk for col in columns for chunk in _as_str(col).chunks]
    if not chunks:
        return pa.array([], type=pa.string())
    uniq = pc.unique(pa.chunked_array(chunks, type=pa.string()))
    return uniq.take(pc.sort_indices(uniq))


def _codes(column: pa.ChunkedArray, vocab: pa.Array) -> np.ndarray:
    """Integer position of each value of ``column`` in ``vocab`` (every value must be in it)."""
    idx = pc.index_in(_as_str(column), value_set=vocab)
    return np.asarray(idx.to_numpy(zero_copy_only=False), dtype=np.int64)


def _label_stats(
    user_codes: np.ndarray, grades: np.ndarray, n_users: int, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per user code: ``R`` (int64) and ``IDCG@k`` (float64) from all of the user's label grades."""
    n_rel = np.bincount(user_codes, weights=(grades >= 1), minlength=n_users).astype(np.int64)
    order = np.lexsort((-grades, user_codes))  # by user, grade descending
    u_sorted = user_codes[order]
    g_sorted = grades[order].astype(np.float64)
    starts = group_starts(u_sorted)[:-1]
    run_len = np.diff(np.r_[starts, u_sorted.size])
    pos = np.arange(u_sorted.size) - np.repeat(starts, run_len)  # 0-based position within user
    keep = pos < k
    gains = g_sorted[keep] / np.log2(pos[keep] + 2.0)
    idcg = np.bincount(u_sorted[keep], weights=gains, minlength=n_users)
    return n_rel, idcg


def _computed(with_items: bool, with_candidates: bool = False) -> tuple[PerUserMetric, ...]:
    return tuple(m for m in PER_USER_METRICS
                 if (with_items or not m.needs_items) and (with_candidates or not m.needs_candidates))


def _empty_per_user(k: int, with_items: bool, candidates: CandidateSets | None) -> pa.Table:
    n = candidates.per_user if candidates is not None else k
    fields = [
        pa.field("model", pa.string()),
        pa.field("user_id", pa.string()),
        pa.field("n_relevant", pa.int64()),
    ] + [pa.field(metric.named(k, n), pa.float64()) for metric in _computed(with_items, candidates is not None)]
    return pa.schema(fields).empty_table()


def _lookup(column: pa.ChunkedArray, vocab: pa.Array) -> pa.ChunkedArray:
    """``pc.index_in`` of each value of ``column`` in ``vocab`` (null: not in it). A dictionary-encoded chunk (the
    candidate sets are read so: millions of rows, a few thousand distinct ids) looks up its dictionary once."""
    return pa.chunked_array([pc.index_in(chunk.dictionary.cast(pa.string()), value_set=vocab).take(chunk.indices)
                             if pa.types.is_dictionary(chunk.type) else pc.index_in(_as_str(chunk), value_set=vocab)
                             for chunk in column.chunks], type=pa.int32())


def _in_candidates(candidates: CandidateSets, vocabs: tuple[pa.Array, pa.Array, pa.Array],
                   relevant_keys: np.ndarray, eval_index: np.ndarray) -> np.ndarray:
    """Per (model, evaluated user) cell: how many of the user's relevant label items (``relevant_keys``, sorted
    user * n_items + item codes) the model's candidate set holds; NaN in the cells of a model without a stage."""
    model_vocab, user_vocab, item_vocab = vocabs
    n_eval = int(eval_index.max()) + 1 if eval_index.size else 0
    pairs = candidates.pairs
    _require_columns(pairs, ("model", "user_id", "item_id"), "candidates")
    codes = [_lookup(pairs.column(c), v)
             for c, v in (("model", model_vocab), ("user_id", user_vocab), ("item_id", item_vocab))]
    known = pc.and_(pc.and_(pc.is_valid(codes[0]), pc.is_valid(codes[1])), pc.is_valid(codes[2]))
    model, user, item = (np.asarray(c.filter(known).to_numpy(zero_copy_only=False), dtype=np.int64) for c in codes)
    relevant_item = np.zeros(len(item_vocab), dtype=bool)
    relevant_item[relevant_keys % max(len(item_vocab), 1)] = True
    keep = relevant_item[item]  # only a pair of some user's relevant item can count: search those alone
    model, user, item = model[keep], user[keep], item[keep]
    key = user * len(item_vocab) + item
    pos = np.minimum(np.searchsorted(relevant_keys, key), max(relevant_keys.size - 1, 0))
    labelled = relevant_keys[pos] == key if relevant_keys.size else np.zeros(key.size, dtype=bool)
    hit = labelled & (eval_index[user] >= 0)
    cell_key = np.unique((model[hit] * n_eval + eval_index[user[hit]]) * len(item_vocab) + item[hit])  # distinct pairs
    found = np.bincount(cell_key // len(item_vocab), minlength=len(model_vocab) * n_eval).astype(np.float64)
    for index, name in enumerate(model_vocab.to_pylist()):
        if name not in candidates.staged:
            found[index * n_eval:(index + 1) * n_eval] = math.nan
    return found


def _recommended(cells: np.ndarray, item_codes: np.ndarray, item_vocab: pa.Array, n_cells: int,
                 items: ItemStats) -> RecommendedItems:
    share, category = items.share_and_category(item_vocab)  # once per distinct item, then by code
    return RecommendedItems(cells, share[item_codes], category[item_codes], n_cells,
                            floor=1.0 / (items.total_events + 1))


def per_user_metrics(rankings: pa.Table, labels: pa.Table, k: int, items: ItemStats | None = None,
                     candidates: CandidateSets | None = None) -> pa.Table:
    """Per-(model, user) metrics at cut-off ``k``, vectorised with numpy / pyarrow.

    ``rankings``: ``user_id``, ``model``, ``rank`` (1-based, already tie-broken), ``item_id`` (a
    ``score`` column may be present and is ignored). Rows with ``rank > k`` are ignored; within each
    (model, user) the ranks kept must be exactly ``1..n`` and the items distinct.

    ``labels``: ``user_id``, ``item_id``, ``relevance`` (int >= 0), ``revenue`` (double), and optionally the
    flags ``purchased`` and ``clicked`` (bool; absent: no item was bought or clicked); at most one row per
    (user, item).

    Returns one row per (model, user) for every model present in ``rankings`` and every user with
    ``R >= 1`` in ``labels`` (a user the model did not rank gets 0.0 everywhere). Users with ``R = 0``
    are dropped. Columns: ``model``, ``user_id``, ``n_relevant`` (int64) and one float64 column
    per metric in :data:`PER_USER_METRICS`, named ``metric.at(k)``, computed by the metric's function from
    the shared :class:`RankingSums`. Sorted by (model, user_id). The metrics that read the items' population
    statistics (``needs_items``) are computed only when ``items`` is given, the candidate-stage ones (named at
    ``candidates.per_user``) only when ``candidates`` is.
    """
    _check_k(k)
    _require_columns(rankings, _RANKING_COLUMNS, "rankings")
    _require_columns(labels, _LABEL_COLUMNS, "labels")

    user_vocab = _sorted_vocab(labels.column("user_id"), rankings.column("user_id"))
    item_vocab = _sorted_vocab(labels.column("item_id"), rankings.column("item_id"))
    model_vocab = _sorted_vocab(rankings.column("model"))
    n_users, n_items, n_models = len(user_vocab), len(item_vocab), len(model_vocab)

    # ---- labels: per-user R and IDCG, sorted (user, item) keys for the lookup below
    l_user = _codes(labels.column("user_id"), user_vocab)
    l_item = _codes(labels.column("item_id"), item_vocab)
    l_grade = np.asarray(labels.column("relevance").to_numpy(), dtype=np.int64)
    l_rev = np.asarray(labels.column("revenue").to_numpy(), dtype=np.float64)
    _require_columns(labels, [f for f in _LABEL_FLAGS if f in labels.column_names], "labels")
    l_flags = {f: (np.asarray(labels.column(f).to_numpy(zero_copy_only=False), dtype=bool)
                   if f in labels.column_names else np.zeros(labels.num_rows, dtype=bool)) for f in _LABEL_FLAGS}
    if l_grade.size and l_grade.min() < 0:
        raise ValueError("labels.relevance must be >= 0")
    n_rel, idcg = _label_stats(l_user, l_grade, n_users, k)

    l_key = l_user * n_items + l_item
    l_order = np.argsort(l_key, kind="stable")
    l_key = l_key[l_order]
    if l_key.size > 1 and bool(np.any(l_key[1:] == l_key[:-1])):
        raise ValueError("labels has more than one row for some (user_id, item_id)")
    l_grade = l_grade[l_order]
    l_rev = l_rev[l_order]
    l_flags = {f: flag[l_order] for f, flag in l_flags.items()}

    # evaluated users (R >= 1), in user_id order; their row index in the output block of a model
    eval_users = np.flatnonzero(n_rel >= 1)
    n_eval = eval_users.size
    eval_index = np.full(n_users, -1, dtype=np.int64)
    eval_index[eval_users] = np.arange(n_eval)
    if n_models == 0 or n_eval == 0:
        return _empty_per_user(k, items is not None, candidates)

    # ---- rankings: keep rank <= k, sort by (model, user, rank), validate ranks 1..n
    rank_all = np.asarray(rankings.column("rank").to_numpy(), dtype=np.int64)
    keep = rank_all <= k
    r_rank = rank_all[keep]
    r_model = _codes(rankings.column("model"), model_vocab)[keep]
    r_user = _codes(rankings.column("user_id"), user_vocab)[keep]
    r_item = _codes(rankings.column("item_id"), item_vocab)[keep]

    order = np.lexsort((r_rank, r_user, r_model))
    r_rank, r_model, r_user, r_item = r_rank[order], r_model[order], r_user[order], r_item[order]
    group = r_model * n_users + r_user
    starts = group_starts(group)[:-1]
    run_len = np.diff(np.r_[starts, group.size])
    position = np.arange(group.size) - np.repeat(starts, run_len) + 1
    if not np.array_equal(position, r_rank):
        raise ValueError("rankings: ranks within each (model, user_id) must be exactly 1..n (up to k)")
    pair = np.sort(group * n_items + r_item)
    if pair.size > 1 and bool(np.any(pair[1:] == pair[:-1])):
        raise ValueError("rankings: an item appears twice in the list of some (model, user_id)")

    # ---- join each ranked row with its label (grade and revenue; 0 when absent); l_key is non-empty
    r_key = r_user * n_items + r_item
    pos = np.minimum(np.searchsorted(l_key, r_key), l_key.size - 1)
    found = l_key[pos] == r_key
    grade = np.where(found, l_grade[pos], 0).astype(np.float64)
    row_revenue = np.where(found, l_rev[pos], 0.0)
    row_bought, row_clicked = (np.where(found, l_flags[f][pos], False).astype(np.float64) for f in _LABEL_FLAGS)

    # ---- per-row contributions
    is_rel = grade >= 1
    rank_f = r_rank.astype(np.float64)
    cum_rel = np.cumsum(is_rel)
    hits_before_group = np.repeat(cum_rel[starts] - is_rel[starts], run_len)
    gain = grade / np.log2(rank_f + 1.0)
    ap_term = np.where(is_rel, (cum_rel - hits_before_group) / rank_f, 0.0)
    rr_term = np.where(is_rel, 1.0 / rank_f, 0.0)

    # ---- per-group reductions, scattered into a dense (model, evaluated user) grid
    size = n_models * n_eval
    dcg, hits, ap_sum, rr, rev, bought, clicked = (np.zeros(size) for _ in range(7))
    row_cell = r_model * n_eval + eval_index[r_user]
    in_cell = eval_index[r_user] >= 0
    recommended = None if items is None else _recommended(row_cell[in_cell], r_item[in_cell], item_vocab, size, items)
    if group.size:
        row = eval_index[r_user[starts]]
        evaluated = row >= 0  # groups of users with R = 0 are dropped
        cell = (r_model[starts] * n_eval + row)[evaluated]
        dcg[cell] = np.add.reduceat(gain, starts)[evaluated]
        hits[cell] = np.add.reduceat(is_rel.astype(np.float64), starts)[evaluated]
        ap_sum[cell] = np.add.reduceat(ap_term, starts)[evaluated]
        rr[cell] = np.maximum.reduceat(rr_term, starts)[evaluated]
        rev[cell] = np.add.reduceat(row_revenue, starts)[evaluated]
        bought[cell] = np.add.reduceat(row_bought, starts)[evaluated]
        clicked[cell] = np.add.reduceat(row_clicked, starts)[evaluated]

    user_r = np.tile(n_rel[eval_users], n_models)
    in_candidates = None if candidates is None else _in_candidates(
        candidates, (model_vocab, user_vocab, item_vocab), l_key[l_grade >= 1], eval_index)
    sums = RankingSums(k=k, n_relevant=user_r, idcg=np.tile(idcg[eval_users], n_models), dcg=dcg, hits=hits,
                       ap_sum=ap_sum, rr=rr, revenue=rev, bought=bought, clicked=clicked, recommended=recommended,
                       in_candidates=in_candidates)
    model_col = model_vocab.take(pa.array(np.repeat(np.arange(n_models), n_eval)))
    user_col = user_vocab.take(pa.array(np.tile(eval_users, n_models)))
    arrays: list[Any] = [model_col, user_col, pa.array(user_r, type=pa.int64())]
    computed = _computed(items is not None, candidates is not None)
    arrays += [pa.array(metric.column(sums), type=pa.float64()) for metric in computed]
    return pa.Table.from_arrays(arrays, schema=_empty_per_user(k, items is not None, candidates).schema)


def _group_summary(
    metric_values: Mapping[str, np.ndarray],
    mask: np.ndarray,
    lists: TopKLists,
    column_of: Mapping[str, str],
) -> dict[str, float | int]:
    n = int(mask.sum())
    out: dict[str, float | int] = {}
    for metric in METRICS:
        if isinstance(metric, PerUserMetric) and metric.name not in metric_values:
            continue
        name = column_of[metric.name]
        if not n:
            out[name] = math.nan
        elif isinstance(metric, PerUserMetric):
            out[name] = float(np.mean(metric_values[metric.name][mask]))
        elif isinstance(metric, RatioMetric):
            out[name] = metric.value(metric_values[metric.numerator.name][mask],
                                     metric_values[metric.denominator.name][mask], None)
        else:
            out[name] = metric.value(lists)
    out["users"] = n
    return out


def aggregate(
    per_user: pa.Table,
    rankings: pa.Table,
    k: int,
    catalogue_size: int,
    strata: Mapping[str, str] | None = None,
    *,
    candidates_per_user: int | None = None,
) -> dict[str, Any]:
    """Every registered metric (means of the per-user ones) and excluded-user counts, per model and stratum.

    ``per_user`` is the output of :func:`per_user_metrics` for the same ``k`` (evaluated users only,
    i.e. ``R >= 1``); ``rankings`` is the table it was computed from (used for coverage and for the
    excluded users). ``strata`` maps ``user_id`` -> stratum label (e.g. ``"loyalty_tier=gold"``);
    users absent from it count only in ``"all"``. ``None`` means only ``"all"``. ``candidates_per_user`` is the
    ``N`` the candidate-stage columns of ``per_user`` are named at (None: it has none).

    Returns::

        {"models": {model: {"all": {"ndcg@k": mean, ..., "revenue@k": mean, "coverage@k": c,
                                    ..., "aov@k": ratio, ..., "users": n_evaluated},
                            "<stratum>": {...}, ...}},
         "excluded_users": {model: {"all": n, "<stratum>": n, ...}}}

    * Means are plain arithmetic means over the evaluated users of the group (python floats); a ratio metric
      (``aov@k``, see :func:`aov_at_k`) is the ratio of the group's plain sums, NaN when its denominator is 0.
    * List metrics (``coverage@k``, see :func:`coverage_at_k`) read the distinct items in the top-``k``
      lists of the group's evaluated users and ``catalogue_size``.
    * Excluded users are the users present in a model's rankings but not evaluated (``R = 0``).
    * A per-user metric whose values are all NaN for a model's evaluated users is not applicable to it (the
      candidate-stage metrics of a model without a candidate stage): it is left out of that model's groups.
    * Models are sorted; within a model ``"all"`` comes first, then strata sorted. Under ``"models"`` a
      stratum appears when it has at least one evaluated user; under ``"excluded_users"`` every stratum
      with an evaluated or an excluded user of that model appears (possibly with 0). ``"all"`` is always
      present; with no evaluated user its means and coverage are NaN and ``users`` is 0.
    """
    _check_k(k)
    if catalogue_size <= 0:
        raise ValueError(f"catalogue_size must be positive, got {catalogue_size!r}")
    column_of = {m.name: m.named(k, candidates_per_user or k) for m in METRICS}
    present = _computed(all(m.at(k) in per_user.column_names for m in PER_USER_METRICS if m.needs_items),
                        candidates_per_user is not None)
    _require_columns(per_user, ["model", "user_id", *(column_of[metric.name] for metric in present)], "per_user")
    _require_columns(rankings, _RANKING_COLUMNS, "rankings")

    pu_model = np.asarray(_as_str(per_user.column("model")).to_pylist(), dtype=object)
    pu_user = np.asarray(_as_str(per_user.column("user_id")).to_pylist(), dtype=object)
    pu_values = {
        metric.name: np.asarray(per_user.column(column_of[metric.name]).to_numpy(), dtype=np.float64)
        for metric in present
    }
    r_model = _as_str(rankings.column("model"))
    r_top = pc.less_equal(rankings.column("rank"), k)
    models = sorted(set(pu_model.tolist()) | set(r_model.unique().to_pylist()))
    stratum_of: Mapping[str, str] = strata if strata is not None else {}

    result_models: dict[str, dict[str, dict[str, float | int]]] = {}
    result_excluded: dict[str, dict[str, int]] = {}
    for model in models:
        rows = pu_model == model
        users = pu_user[rows]
        evaluated = set(users.tolist())
        values = {name: col[rows] for name, col in pu_values.items()
                  if not (rows.any() and np.isnan(col[rows]).all())}  # all NaN: not applicable to the model
        user_strata = np.asarray([stratum_of.get(u) for u in users], dtype=object)
        eval_strata = sorted({s for s in user_strata.tolist() if s is not None})

        # the model's top-k rows of evaluated users (list metrics), and its users not evaluated
        in_model = pc.equal(r_model, model)
        model_rows = rankings.filter(in_model)
        top_rows = rankings.filter(pc.and_(in_model, r_top))
        user_index = pc.index_in(_as_str(top_rows.column("user_id")), value_set=pa.array(users.tolist(), pa.string()))
        of_evaluated = pc.is_valid(user_index)
        row_user = np.asarray(user_index.filter(of_evaluated).to_numpy(zero_copy_only=False), dtype=np.int64)
        top_items = _as_str(top_rows.column("item_id")).filter(of_evaluated).combine_chunks()
        row_item = np.asarray(pc.dictionary_encode(top_items).indices.to_numpy(zero_copy_only=False), dtype=np.int64)
        excluded = set(_as_str(model_rows.column("user_id")).to_pylist()) - evaluated

        groups: dict[str, dict[str, float | int]] = {}
        for label in ["all", *eval_strata]:
            mask = np.ones(users.size, dtype=bool) if label == "all" else user_strata == label
            in_group = mask[row_user]
            item = row_item[in_group]
            lists = TopKLists(int(np.unique(item).size), catalogue_size, row_user[in_group], item)
            groups[label] = _group_summary(values, mask, lists, column_of)
        result_models[model] = groups

        excluded_strata = Counter(stratum_of[u] for u in excluded if u in stratum_of)
        counts: dict[str, int] = {"all": len(excluded)}
        for label in sorted(set(eval_strata) | set(excluded_strata)):
            counts[label] = excluded_strata.get(label, 0)
        result_excluded[model] = counts

    return {"models": result_models, "excluded_users": result_excluded}
