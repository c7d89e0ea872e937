"""Beyond-accuracy metrics: novelty, intra-list diversity, popularity bias, exposure spread, personalisation.

The formulas live here; testbed.core.metrics registers them (their own block of the registry). Pure code.

Item popularity is the pre-cutoff population's: ``p(i)`` = the share of the population extract's events in the
``POPULARITY_DAYS`` before the cutoff (the window the candidates' popularity counts) that are on item ``i``. The
extract carries no user_id by design, so ``p(i)`` is a share of interactions, not of users (Zhou et al. 2010 use
the share of users; both are the item's degree over the population's size). An item the population never
touched gets the floor ``p = 1 / (N + 1)`` for novelty, ``N`` the extract's events in the window: less than any
touched item's ``1 / N``, so an unseen item is the most novel. Popularity bias (ARP) uses the raw ``p(i)``
(0 for an unseen item).

Per-user metrics follow testbed.core.metrics' conventions: one value per (model, evaluated user) from the
user's top ``K``; a user the model did not rank gets 0.0. List metrics take a group's top-``K`` lists together.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from testbed.core.ranking_data import POPULARITY_DAYS

__all__ = [
    "ItemStats",
    "ListRows",
    "RecommendedItems",
    "WithRecommended",
    "arp_at_k",
    "exposure_entropy_at_k",
    "exposure_gini_at_k",
    "intra_list_diversity_at_k",
    "item_popularity",
    "novelty_at_k",
    "personalisation_at_k",
]

UNKNOWN_CATEGORY = -1  # items outside the catalogue or without a category share this one code


def _str(column: pa.Array | pa.ChunkedArray) -> pa.Array:
    values = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    return values if pa.types.is_string(values.type) else values.cast(pa.string())


def item_popularity(population_events: pa.Table, cutoff: datetime) -> pa.Table:
    """(item_id, events) sorted by item_id: the extract's events on each item in [cutoff - POPULARITY_DAYS,
    cutoff). The slice step writes it, so the metrics never read the whole extract for a few thousand counts."""
    times = population_events.column("event_time")
    since = pa.scalar(cutoff - timedelta(days=POPULARITY_DAYS), type=times.type)
    in_window = pc.and_(pc.greater_equal(times, since), pc.less(times, pa.scalar(cutoff, type=times.type)))
    counted = pc.value_counts(_str(population_events.column("item_id").filter(in_window)))
    table = pa.table({"item_id": counted.field("values"), "events": pc.cast(counted.field("counts"), pa.int64())})
    return table.take(pc.sort_indices(table.column("item_id")))


@dataclass(frozen=True)
class ItemStats:
    """What the per-user beyond-accuracy metrics know of each item: its population events and its category."""

    item_ids: pa.Array  # distinct, sorted strings: the items with population events or a catalogue row
    events: np.ndarray  # int64, population events on each item in the popularity window
    category: np.ndarray  # int64 category code of each item (UNKNOWN_CATEGORY: none)
    total_events: int  # N: the population events in the window

    @classmethod
    def from_popularity(cls, popularity: pa.Table, items: pa.Table) -> ItemStats:
        """`popularity` (item_id, events): `item_popularity` of the extract; `items` (item_id, category)."""
        popular = _str(popularity.column("item_id"))
        counts = np.asarray(popularity.column("events"), dtype=np.int64)
        catalogue = _str(items.column("item_id"))
        ids = pc.unique(pa.concat_arrays([popular, catalogue]))
        ids = ids.take(pc.sort_indices(ids))
        events = np.zeros(len(ids), dtype=np.int64)
        events[np.asarray(pc.index_in(popular, value_set=ids), dtype=np.int64)] = counts
        categories = items.column("category").combine_chunks()
        codes = np.asarray(pc.fill_null(pc.dictionary_encode(categories).indices, UNKNOWN_CATEGORY), dtype=np.int64)
        category = np.full(len(ids), UNKNOWN_CATEGORY, dtype=np.int64)
        category[np.asarray(pc.index_in(catalogue, value_set=ids))] = codes
        return cls(ids, events, category, int(counts.sum()))

    def share_and_category(self, item_ids: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
        """``p(i)`` (0.0 for an item without population events) and the category code of each given item."""
        index = pc.index_in(_str(item_ids), value_set=self.item_ids)
        if not len(self.item_ids):
            return np.zeros(len(index)), np.full(len(index), UNKNOWN_CATEGORY, dtype=np.int64)
        known = np.asarray(pc.is_valid(index))
        pos = np.asarray(pc.fill_null(index, 0), dtype=np.int64)
        share = np.where(known, self.events[pos] / max(self.total_events, 1), 0.0)
        return share, np.where(known, self.category[pos], UNKNOWN_CATEGORY).astype(np.int64)


@dataclass(frozen=True)
class RecommendedItems:
    """The top-``K`` rows of every (model, evaluated user) cell: one entry per row, cells numbered 0..n-1."""

    cell: np.ndarray  # int64 cell of each row
    share: np.ndarray  # p(i) of the row's item
    category: np.ndarray  # category code of the row's item
    n_cells: int
    floor: float  # novelty's p for an item the population never touched: 1 / (N + 1)


class WithRecommended(Protocol):
    """What the per-user metrics read (testbed.core.metrics.RankingSums): the top-K rows, when item stats exist."""

    @property
    def recommended(self) -> RecommendedItems | None: ...


def _rows(s: WithRecommended) -> RecommendedItems:
    if s.recommended is None:
        raise ValueError("beyond-accuracy per-user metrics need the items' population statistics (ItemStats)")
    return s.recommended


def _per_cell_mean(rows: RecommendedItems, values: np.ndarray) -> np.ndarray:
    length = np.bincount(rows.cell, minlength=rows.n_cells)
    total = np.bincount(rows.cell, weights=values, minlength=rows.n_cells)
    return np.divide(total, length, out=np.zeros(rows.n_cells), where=length > 0)


def novelty_at_k(s: WithRecommended) -> np.ndarray:
    """Mean self-information of the recommended items (Zhou et al. 2010; Vargas & Castells 2011).

    ``Novelty@K = (1 / n) sum_{i <= n} -log2 max(p(d_i), 1 / (N + 1))``, ``n = min(K, list length)``; in bits,
    at least 0 and at most ``log2(N + 1)``. Higher: less popular items.
    """
    rows = _rows(s)
    return _per_cell_mean(rows, -np.log2(np.maximum(rows.share, rows.floor)))


def arp_at_k(s: WithRecommended) -> np.ndarray:
    """Average recommendation popularity (Abdollahpouri et al. 2019), popularity as a share of the population.

    ``ARP@K = (1 / n) sum_{i <= n} p(d_i)``, ``n = min(K, list length)``; in [0, 1]. Higher: more popularity bias.
    """
    rows = _rows(s)
    return _per_cell_mean(rows, rows.share)


def intra_list_diversity_at_k(s: WithRecommended) -> np.ndarray:
    """Category diversity of the list: distinct categories in the top ``K`` over the list's length.

    ``ILD@K = |{category(d_i) : i <= n}| / n``, ``n = min(K, list length)``: 1 when every item is from another
    category, ``1 / n`` when all share one. The denominator is the list's length, not ``K``, so a short list is
    not called narrow for being short. Items without a category count as one shared "unknown" category.
    """
    rows = _rows(s)
    length = np.bincount(rows.cell, minlength=rows.n_cells)
    n_codes = int(rows.category.max(initial=UNKNOWN_CATEGORY)) + 2
    pairs = np.sort(rows.cell * n_codes + (rows.category - UNKNOWN_CATEGORY))  # sorting beats np.unique's hash
    first = np.r_[True, pairs[1:] != pairs[:-1]] if pairs.size else np.zeros(0, dtype=bool)
    distinct = np.bincount(pairs[first] // n_codes, minlength=rows.n_cells)
    return np.divide(distinct, length, out=np.zeros(rows.n_cells), where=length > 0)


class ListRows(Protocol):
    """What the list metrics read (testbed.core.metrics.TopKLists): the top-``K`` rows of a group's evaluated
    users, one entry per row, and the catalogue's size."""

    @property
    def user(self) -> np.ndarray: ...  # int64, any code per user

    @property
    def item(self) -> np.ndarray: ...  # int64, any code per item

    @property
    def catalogue_size(self) -> int: ...


def _exposure(lists: ListRows) -> tuple[np.ndarray, int]:
    """(lists that hold each recommended item, catalogue size counting recommended items beyond it)."""
    _, counts = np.unique(lists.item, return_counts=True)
    return counts, max(lists.catalogue_size, counts.size)


def exposure_gini_at_k(lists: ListRows) -> float:
    """Gini coefficient of item exposure across the catalogue (Fleder & Hosanagar 2009).

    ``e_(1) <= ... <= e_(n)`` = the number of the group's top-``K`` lists holding each of the ``n`` catalogue
    items, never-recommended items included as 0: ``Gini = sum_j (2j - n - 1) e_(j) / (n sum_j e_j)``; 0 when
    every item is equally exposed, ``1 - 1/n`` when one item takes all. NaN without any recommended item.
    Higher: exposure concentrated on fewer items.
    """
    counts, n = _exposure(lists)
    if not counts.size:
        return float("nan")
    ranks = np.arange(n - counts.size + 1, n + 1, dtype=np.float64)  # the zeros take ranks 1..n - |counts|
    return float(np.sum((2 * ranks - n - 1) * np.sort(counts)) / (n * counts.sum()))


def exposure_entropy_at_k(lists: ListRows) -> float:
    """Shannon entropy of item exposure, normalised by its maximum (distributional coverage, Shani &
    Gunawardana 2011, over ``log2 n``).

    ``s_j = e_j / sum e``: ``H = -sum_{s_j > 0} s_j log2 s_j / log2 n`` with ``n`` the catalogue size; 1 when
    every catalogue item is equally exposed, 0 when one item takes all (and for a one-item catalogue). NaN
    without any recommended item. Higher: exposure spread more evenly.
    """
    counts, n = _exposure(lists)
    if not counts.size:
        return float("nan")
    if n < 2:
        return 0.0
    share = counts / counts.sum()
    return float(-np.sum(share * np.log2(share)) / np.log2(n))


def personalisation_at_k(lists: ListRows) -> float:
    """One minus the mean pairwise overlap of users' top-``K`` sets (Evidently's and recmetrics' personalisation).

    ``overlap(A, B) = |A ∩ B| / sqrt(|A| |B|)`` (the cosine of the 0/1 item vectors; ``|A ∩ B| / K`` for two
    full lists), averaged over the ``m (m - 1) / 2`` pairs of the ``m`` users with a non-empty list. Exact in
    O(rows): with ``S_d = sum_{u : d in L_u} |L_u|^(-1/2)`` and ``Q_d = sum_{u : d in L_u} 1 / |L_u|``, the sum of
    overlaps over pairs is ``sum_d (S_d^2 - Q_d) / 2``. (Jaccard, ``|A ∩ B| / |A ∪ B|``, has no such form: the
    same item counts allow different means, so it would need every pair.) NaN with fewer than two lists.
    Higher: more personal lists.
    """
    users, user_of_row, length = np.unique(lists.user, return_inverse=True, return_counts=True)
    m = users.size
    if m < 2:
        return float("nan")
    _, item_of_row = np.unique(lists.item, return_inverse=True)
    row_length = length[user_of_row].astype(np.float64)
    s = np.bincount(item_of_row, weights=row_length ** -0.5)
    q = np.bincount(item_of_row, weights=1.0 / row_length)
    mean_overlap = float(np.sum(s * s - q) / 2) / (m * (m - 1) / 2)
    return 1.0 - mean_overlap
