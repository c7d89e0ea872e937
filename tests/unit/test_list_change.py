"""List changes between control and candidate: hand-computed cases, the reversed-lists acceptance case, and a
brute force of RBO_ext written from Webber et al. 2010 (eq. 32). The `rbo` package (0.1.3) is not the reference:
it pins numpy < 2 while the project runs numpy 2."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from testbed.core import list_change


def _rankings(control: dict[str, list[str]], candidate: dict[str, list[str]]) -> pa.Table:
    rows = [(u, model, r, i) for model, lists in (("control", control), ("candidate", candidate))
            for u, items in lists.items() for r, i in enumerate(items, start=1)]
    return pa.table({"user_id": [r[0] for r in rows], "model": [r[1] for r in rows],
                     "rank": pa.array([r[2] for r in rows], pa.int64()), "item_id": [r[3] for r in rows]})


def _brute_rbo_ext(a: list[str], b: list[str], p: float) -> float:
    short, long = (a, b) if len(a) <= len(b) else (b, a)
    s, n = len(short), len(long)
    if not s:
        return 0.0
    x = [len(set(short[:d]) & set(long[:d])) for d in range(1, n + 1)]
    head = sum(x[d - 1] / d * p**d for d in range(1, n + 1))
    tail = sum(x[s - 1] * (d - s) / (s * d) * p**d for d in range(s + 1, n + 1))
    return (1 - p) / p * (head + tail) + ((x[n - 1] - x[s - 1]) / n + x[s - 1] / s) * p**n


def test_reversed_lists_keep_the_sets_but_not_the_order() -> None:
    control = {f"u{n}": [f"i{n}_{r}" for r in range(10)] for n in range(5)}
    reversed_lists = {u: items[::-1] for u, items in control.items()}
    change = list_change.per_user_change(_rankings(control, reversed_lists), 10)
    assert change.jaccard.tolist() == [1.0] * 5  # 0 % of the sets changed
    assert np.all(change.rbo < 1.0)
    assert change.changed_slots.tolist() == [1.0] * 5  # every slot of an even-length list moves
    summary = list_change.summarise(change, 10)["strata"]["all"]
    assert summary["new_list_share"] == 0.0 and summary["mean_jaccard"] == 1.0
    assert summary["mean_rbo"] < 1.0 and summary["changed_slot_share"] == 1.0


def test_by_hand() -> None:
    control = {"u1": ["a", "b"], "u2": ["a", "b", "c"], "u3": ["a", "b"], "u4": ["a"]}
    candidate = {"u1": ["b", "a"], "u2": ["a", "x", "y"], "u3": ["a", "b"], "u5": ["z"]}
    change = list_change.per_user_change(_rankings(control, candidate), 3)
    assert change.user_id == ["u1", "u2", "u3", "u4", "u5"]
    # u1: X_1 = 0, X_2 = 2: RBO = (0.1 / 0.9)(2/2 * 0.81) + (2/2) 0.81 = 0.9; both slots changed
    # u2: {a} of {a, b, c, x, y}: Jaccard 1/5; X = 1, 1, 1: RBO = (1/9)(0.9 + 0.81/2 + 0.729/3) + (1/3) 0.729
    # u3: identical: 1, 1, no slot changed;  u4, u5: one list is empty: 0, 0, every slot changed
    assert change.jaccard.tolist() == pytest.approx([1.0, 0.2, 1.0, 0.0, 0.0])
    u2 = (0.9 + 0.81 / 2 + 0.729 / 3) / 9 + 0.729 / 3
    assert change.rbo.tolist() == pytest.approx([0.9, u2, 1.0, 0.0, 0.0])
    assert change.changed_slots.tolist() == pytest.approx([1.0, 2 / 3, 0.0, 1.0, 1.0])

    out = list_change.summarise(change, 3, strata={"u1": "s=a", "u2": "s=a", "u3": "s=b"})
    assert out["k"] == 3 and out["rbo_persistence"] == 0.9 and len(out["jaccard_edges"]) == 11
    assert list(out["strata"]) == ["all", "s=a", "s=b"]
    everyone = out["strata"]["all"]
    assert everyone["users"] == 5 and everyone["new_list_share"] == pytest.approx(0.4)
    assert everyone["mean_jaccard"] == pytest.approx(2.2 / 5)
    assert everyone["jaccard_counts"] == [2, 0, 1, 0, 0, 0, 0, 0, 0, 2]  # 1.0 falls in the last, closed bin
    assert out["strata"]["s=a"]["changed_slot_share"] == pytest.approx((1 + 2 / 3) / 2)


def test_only_the_top_k_is_compared() -> None:
    change = list_change.per_user_change(_rankings({"u": ["a", "b", "c"]}, {"u": ["a", "b", "d"]}), 2)
    assert change.jaccard.tolist() == [1.0] and change.rbo.tolist() == pytest.approx([1.0])


lists = st.lists(st.sampled_from("abcdefgh"), max_size=6, unique=True)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(lists, lists), min_size=1, max_size=6), st.sampled_from([0.5, 0.9, 0.98]))
def test_rbo_matches_the_papers_formula(pairs: list[tuple[list[str], list[str]]], p: float) -> None:
    control = {f"u{n}": a for n, (a, _) in enumerate(pairs) if a}
    candidate = {f"u{n}": b for n, (_, b) in enumerate(pairs) if b}
    change = list_change.per_user_change(_rankings(control, candidate), 6, p=p)
    for user, rbo, jaccard in zip(change.user_id, change.rbo, change.jaccard, strict=True):
        a, b = control.get(user, []), candidate.get(user, [])
        assert rbo == pytest.approx(_brute_rbo_ext(a, b, p))
        assert jaccard == pytest.approx(len(set(a) & set(b)) / len(set(a) | set(b)))
        assert 0.0 <= rbo <= 1.0 + 1e-12
        if len(a) == len(b):  # (RBO_ext extrapolates a shorter list as agreeing: a prefix scores 1)
            assert (rbo == pytest.approx(1.0)) == (a == b)


def test_persistence_weight_of_the_top_ten() -> None:
    # the docstring's claim, from Webber et al.'s eq. 21: the weight of ranks 1..d is
    # 1 - p^(d-1) + (1-p)/p * d * (ln(1 / (1-p)) - sum_{i<d} p^i / i)
    p, d = list_change.PERSISTENCE, 10
    weight = 1 - p ** (d - 1) + (1 - p) / p * d * (math.log(1 / (1 - p)) - sum(p**i / i for i in range(1, d)))
    assert weight == pytest.approx(0.86, abs=0.005)
