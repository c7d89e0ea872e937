"""Beyond-accuracy metrics: hand-computed cases, and plain-python brute force written from the papers' formulas.

Microsoft Recommenders' python_evaluation (novelty, diversity, distributional coverage) is not the reference:
recommenders 1.2.1 requires pandas, scikit-learn, cornac, transformers, nltk and more (too heavy for the dev
requirements), so each metric is checked here against an independent O(n^2) or per-definition implementation.
"""

from __future__ import annotations

import itertools
import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from testbed.core import beyond_accuracy
from testbed.core.beyond_accuracy import ItemStats, item_popularity
from testbed.core.metrics import TopKLists, aggregate, per_user_metrics

CUTOFF = datetime(2024, 3, 1, tzinfo=UTC)


def _population(counts: dict[str, int], old: dict[str, int] | None = None) -> pa.Table:
    """`counts[i]` events on item i in the popularity window; `old[i]` more, too old to count."""
    rows = [(i, CUTOFF - timedelta(days=1)) for i, n in counts.items() for _ in range(n)]
    rows += [(i, CUTOFF - timedelta(days=45)) for i, n in (old or {}).items() for _ in range(n)]
    return pa.table({"item_id": pa.array([r[0] for r in rows], pa.string()),
                     "event_time": pa.array([r[1] for r in rows], pa.timestamp("us", tz="UTC")),
                     "event_type": pa.array(["view"] * len(rows), pa.string())})


def _items(categories: dict[str, str | None]) -> pa.Table:
    return pa.table({"item_id": list(categories), "category": pa.array(list(categories.values()), pa.string())})


def _rankings(lists: dict[str, list[str]], model: str = "m") -> pa.Table:
    rows = [(u, model, r, i) for u, items in lists.items() for r, i in enumerate(items, start=1)]
    return pa.table({"user_id": [r[0] for r in rows], "model": [r[1] for r in rows],
                     "rank": pa.array([r[2] for r in rows], pa.int64()), "item_id": [r[3] for r in rows]})


def _labels(users: list[str]) -> pa.Table:
    """Every user relevant on an item no list holds: evaluated, and beyond-accuracy values unaffected."""
    return pa.table({"user_id": users, "item_id": ["zz"] * len(users),
                     "relevance": pa.array([1] * len(users), pa.int64()),
                     "revenue": pa.array([0.0] * len(users))})


def _by_user(table: pa.Table, column: str) -> dict[str, float]:
    return dict(zip(table.column("user_id").to_pylist(), table.column(column).to_pylist(), strict=True))


# ---- item statistics


def test_item_stats_count_the_popularity_window_and_the_catalogue() -> None:
    stats = ItemStats.from_popularity(item_popularity(_population({"a": 3, "b": 1}, old={"a": 5, "c": 2}), CUTOFF),
                                      _items({"a": "x", "b": None, "d": "y"}))
    assert stats.total_events == 4  # the 45-day-old events are outside POPULARITY_DAYS (30)
    share, category = stats.share_and_category(pa.array(["a", "b", "c", "d", "e"]))
    assert share.tolist() == [0.75, 0.25, 0.0, 0.0, 0.0]
    unknown = beyond_accuracy.UNKNOWN_CATEGORY
    assert category[1] == category[2] == category[4] == unknown  # null category, not in the catalogue
    assert category[0] != category[3] and unknown not in (category[0], category[3])


# ---- per-user metrics, by hand

POPULATION = {"a": 4, "b": 2, "c": 1, "d": 1}  # N = 8: p(a) = 1/2, p(b) = 1/4, p(c) = p(d) = 1/8
CATEGORIES = {"a": "x", "b": "x", "c": "y", "d": "z", "e": "y"}  # e: in the catalogue, never touched
LISTS = {"u1": ["a", "b", "c"], "u2": ["e", "a", "a2"], "u3": ["d"]}  # a2: outside catalogue and population


def _hand_table() -> pa.Table:
    stats = ItemStats.from_popularity(item_popularity(_population(POPULATION), CUTOFF), _items(CATEGORIES))
    return per_user_metrics(_rankings(LISTS), _labels([*LISTS, "u4"]), 3, stats)


def test_novelty_by_hand() -> None:
    # u1: (-log2 1/2 - log2 1/4 - log2 1/8) / 3 = (1 + 2 + 3) / 3 = 2
    # u2: e and a2 never touched -> floor 1 / (8 + 1): (log2 9 + 1 + log2 9) / 3;  u3: 3;  u4 unranked: 0
    novelty = _by_user(_hand_table(), "novelty@3")
    assert novelty == pytest.approx({"u1": 2.0, "u2": (2 * math.log2(9) + 1) / 3, "u3": 3.0, "u4": 0.0})


def test_arp_by_hand() -> None:
    # u1: (1/2 + 1/4 + 1/8) / 3 = 7/24;  u2: (0 + 1/2 + 0) / 3 = 1/6;  u3: 1/8;  u4: 0
    assert _by_user(_hand_table(), "arp@3") == pytest.approx({"u1": 7 / 24, "u2": 1 / 6, "u3": 1 / 8, "u4": 0.0})


def test_intra_list_diversity_by_hand() -> None:
    # u1: categories x, x, y -> 2/3;  u2: y, x, unknown -> 3/3;  u3: one item -> 1/1;  u4: no list -> 0
    diversity = _by_user(_hand_table(), "intra_list_diversity@3")
    assert diversity == pytest.approx({"u1": 2 / 3, "u2": 1.0, "u3": 1.0, "u4": 0.0})


def test_unknown_items_share_one_category() -> None:
    stats = ItemStats.from_popularity(item_popularity(_population({}), CUTOFF), _items({"a": None}))
    table = per_user_metrics(_rankings({"u1": ["a", "q", "r"]}), _labels(["u1"]), 3, stats)
    assert _by_user(table, "intra_list_diversity@3") == {"u1": pytest.approx(1 / 3)}
    assert _by_user(table, "novelty@3") == {"u1": 0.0}  # N = 0: floor 1, nothing is news to nobody


def test_without_item_stats_the_metrics_that_read_them_are_left_out() -> None:
    table = per_user_metrics(_rankings(LISTS), _labels(list(LISTS)), 3)
    assert not {"novelty@3", "arp@3", "intra_list_diversity@3"} & set(table.column_names)
    summary = aggregate(table, _rankings(LISTS), 3, catalogue_size=10)["models"]["m"]["all"]
    assert "novelty@3" not in summary and "personalisation@3" in summary


# ---- list metrics, by hand


def _lists(lists: dict[str, list[str]], catalogue_size: int) -> TopKLists:
    users = [u for u, items in lists.items() for _ in items]
    items = [i for row in lists.values() for i in row]
    user_codes = np.unique(users, return_inverse=True)[1].astype(np.int64)
    item_codes = np.unique(items, return_inverse=True)[1].astype(np.int64)
    return TopKLists(len(set(items)), catalogue_size, user_codes, item_codes)


def test_exposure_gini_and_entropy_by_hand() -> None:
    # exposure a 2, b 1, c 1, and one never-recommended item: sorted 0, 1, 1, 2 (n = 4)
    # Gini = ((2-5)*0 + (4-5)*1 + (6-5)*1 + (8-5)*2) / (4 * 4) = 6/16
    # entropy: shares 1/2, 1/4, 1/4 -> 1.5 bits, over log2 4 = 2 -> 0.75
    lists = _lists({"u1": ["a", "b"], "u2": ["a", "c"]}, catalogue_size=4)
    assert beyond_accuracy.exposure_gini_at_k(lists) == pytest.approx(6 / 16)
    assert beyond_accuracy.exposure_entropy_at_k(lists) == pytest.approx(0.75)
    even = _lists({"u1": ["a", "b"], "u2": ["c", "d"]}, catalogue_size=4)
    assert beyond_accuracy.exposure_gini_at_k(even) == pytest.approx(0.0)
    assert beyond_accuracy.exposure_entropy_at_k(even) == pytest.approx(1.0)
    one = _lists({"u1": ["a"], "u2": ["a"]}, catalogue_size=4)
    assert beyond_accuracy.exposure_gini_at_k(one) == pytest.approx(1 - 1 / 4)
    assert beyond_accuracy.exposure_entropy_at_k(one) == 0.0
    assert math.isnan(beyond_accuracy.exposure_gini_at_k(_lists({}, catalogue_size=4)))


def test_personalisation_by_hand() -> None:
    # u1 {a, b}, u2 {a, c}, u3 {d, e}: overlaps 1/2, 0, 0 -> mean 1/6 -> personalisation 5/6
    lists = _lists({"u1": ["a", "b"], "u2": ["a", "c"], "u3": ["d", "e"]}, catalogue_size=10)
    assert beyond_accuracy.personalisation_at_k(lists) == pytest.approx(5 / 6)
    # unequal lengths: {a} and {a, b}: 1 / sqrt(1 * 2)
    assert beyond_accuracy.personalisation_at_k(_lists({"u1": ["a"], "u2": ["a", "b"]}, 10)) == \
        pytest.approx(1 - 1 / math.sqrt(2))
    assert beyond_accuracy.personalisation_at_k(_lists({"u1": ["a"], "u2": ["a"]}, 10)) == pytest.approx(0.0)
    assert math.isnan(beyond_accuracy.personalisation_at_k(_lists({"u1": ["a"]}, 10)))


# ---- brute force from the papers' formulas, against the registered code

ITEMS = [f"i{n}" for n in range(8)]
lists_strategy = st.dictionaries(st.sampled_from([f"u{n}" for n in range(9)]),
                                 st.lists(st.sampled_from(ITEMS), min_size=1, max_size=4, unique=True),
                                 min_size=0, max_size=9)


def _brute_personalisation(lists: dict[str, list[str]]) -> float:
    pairs = list(itertools.combinations(lists.values(), 2))
    if not pairs:
        return math.nan
    return 1 - sum(len(set(a) & set(b)) / math.sqrt(len(a) * len(b)) for a, b in pairs) / len(pairs)


def _brute_gini(exposure: list[int]) -> float:
    """Gini as the relative mean absolute difference: sum_ij |x_i - x_j| / (2 n^2 mean)."""
    n, total = len(exposure), sum(exposure)
    return sum(abs(a - b) for a in exposure for b in exposure) / (2 * n * total) if total else math.nan


def _brute_entropy(exposure: list[int]) -> float:
    total = sum(exposure)
    if not total:
        return math.nan
    bits = -sum(e / total * math.log2(e / total) for e in exposure if e)
    return bits / math.log2(len(exposure)) if len(exposure) > 1 else 0.0


@settings(max_examples=40, deadline=None)
@given(lists_strategy, st.integers(min_value=0, max_value=4))
def test_list_metrics_match_brute_force(lists: dict[str, list[str]], extra_catalogue: int) -> None:
    catalogue = len(ITEMS) + extra_catalogue
    exposure = [sum(item in row for row in lists.values()) for item in ITEMS] + [0] * extra_catalogue
    top = _lists(lists, catalogue)
    assert beyond_accuracy.personalisation_at_k(top) == pytest.approx(_brute_personalisation(lists), nan_ok=True)
    assert beyond_accuracy.exposure_gini_at_k(top) == pytest.approx(_brute_gini(exposure), nan_ok=True)
    assert beyond_accuracy.exposure_entropy_at_k(top) == pytest.approx(_brute_entropy(exposure), nan_ok=True)


@settings(max_examples=25, deadline=None)
@given(lists_strategy.filter(bool), st.lists(st.integers(min_value=0, max_value=5), min_size=8, max_size=8),
       st.lists(st.sampled_from(["x", "y", "z", None]), min_size=8, max_size=8), st.integers(min_value=1, max_value=4))
def test_per_user_metrics_match_brute_force(lists: dict[str, list[str]], counts: list[int],
                                            categories: list[str | None], k: int) -> None:
    population = dict(zip(ITEMS, counts, strict=True))
    category = dict(zip(ITEMS, categories, strict=True))
    stats = ItemStats.from_popularity(item_popularity(_population(population), CUTOFF), _items(category))
    table = per_user_metrics(_rankings(lists), _labels(list(lists)), k, stats)
    total = sum(counts)
    for user, items in lists.items():
        top = items[:k]
        p = [population[i] / total if total else 0.0 for i in top]
        novelty = sum(-math.log2(max(x, 1 / (total + 1))) for x in p) / len(top)
        assert _by_user(table, f"novelty@{k}")[user] == pytest.approx(novelty)
        assert _by_user(table, f"arp@{k}")[user] == pytest.approx(sum(p) / len(top))
        distinct = len({category[i] for i in top})
        assert _by_user(table, f"intra_list_diversity@{k}")[user] == pytest.approx(distinct / len(top))
