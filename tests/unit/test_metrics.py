"""Tests for testbed.core.metrics: hand-computed values, pytrec_eval agreement, table API.

Every value is computed by the production path (:func:`per_user_metrics` / :func:`aggregate`): the
hand-computed cases go through one-user tables (:func:`_one_user`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pytest
import pytrec_eval
from hypothesis import given, settings
from hypothesis import strategies as st

from testbed.core import metrics
from testbed.core.metrics import (
    COVERAGE,
    METRIC_NAMES,
    METRICS,
    PER_USER_METRICS,
    PRIMARY,
    ListMetric,
    PerUserMetric,
    aggregate,
    metric_named,
    per_user_metrics,
)
from testbed.manifest import Gate
from tests.ranx_reference import RANX, SKIP_REASON, ranx_scores

L2 = math.log2
PER_USER_NAMES = tuple(m.name for m in PER_USER_METRICS  # computed without item stats and candidate sets
                       if not (m.needs_items or m.needs_candidates))
LIST_NAMES_AFTER_COVERAGE = ("exposure_gini", "exposure_entropy", "personalisation")


@dataclass(frozen=True)
class UserRanking:
    """One user's ranked list (rank 1 first) plus the user's label grades and revenues (absent: 0)."""

    items: tuple[str, ...]
    relevance: Mapping[str, int]
    revenue: Mapping[str, float] = field(default_factory=dict)


def _one_user_tables(u: UserRanking) -> tuple[pa.Table, pa.Table]:
    # a model without rows would be absent: one that does not rank the user ranks an unlabelled user instead
    rankings = _rankings_table({"m": {"u": list(u.items)} if u.items else {"other": ["zz"]}})
    items = dict.fromkeys([*u.relevance, *u.revenue])
    labels = _labels_table({"u": {i: (u.relevance.get(i, 0), u.revenue.get(i, 0.0)) for i in items}})
    return rankings, labels


def _one_user(u: UserRanking, k: int) -> dict[str, float] | None:
    """The user's per-user metrics at ``k`` from :func:`per_user_metrics`; None when it gives no row (R = 0)."""
    rows = per_user_metrics(*_one_user_tables(u), k).to_pylist()
    assert len(rows) <= 1
    return {name: rows[0][f"{name}@{k}"] for name in PER_USER_NAMES} if rows else None


def _value(u: UserRanking, k: int, name: str) -> float:
    values = _one_user(u, k)
    assert values is not None, "user has no per-user values"
    return values[name]

# --------------------------------------------------------------------------------------------------
# hand-computed cases

# GRADED: grades a=3, b=0, c=1, d=2, e=1 -> relevant = {a, c, d, e}, R = 4 (b has grade 0: not relevant).
# Ranked b, a, x, e, c: in the top 3 only a (rank 2) is relevant; e (rank 4) and c (rank 5) are below K=3.
# b earns revenue although it is not relevant; e's revenue is below K=3.
GRADED = UserRanking(
    items=("b", "a", "x", "e", "c"),
    relevance={"a": 3, "b": 0, "c": 1, "d": 2, "e": 1},
    revenue={"a": 10.0, "b": 5.5, "e": 100.0},
)
# R_GT_K: five relevant items, K = 2, only a (rank 1) retrieved in the top 2.
R_GT_K = UserRanking(items=("a", "z", "b"), relevance=dict.fromkeys("abcde", 1), revenue={})
# SHORT: two ranked items for K = 10; R = 2 (a grade 1, q grade 2, q not ranked).
SHORT = UserRanking(items=("a", "b"), relevance={"a": 1, "q": 2}, revenue={"b": 2.25})
# MISS: the only relevant item (a, grade 2) is ranked 4th.
MISS = UserRanking(items=("x", "y", "z", "a"), relevance={"a": 2}, revenue={"x": 1.0, "a": 9.0})
# NO_REL: R = 0 (a has grade 0).
NO_REL = UserRanking(items=("a", "b"), relevance={"a": 0}, revenue={"a": 7.0})

HAND_CASES: list[tuple[str, UserRanking, int, str, float]] = [
    # --- GRADED, K = 3: top 3 = b(0), a(3), x(0)
    # DCG = 0/log2(2) + 3/log2(3) + 0/log2(4); IDCG from all grades sorted [3, 2, 1, 1, 0] cut at 3
    # = 3/log2(2) + 2/log2(3) + 1/log2(4) = 3 + 1.2619 + 0.5  ->  1.8928 / 4.7619 = 0.39749
    ("graded", GRADED, 3, "ndcg", (3 / L2(3)) / (3 + 2 / L2(3) + 1 / 2)),
    ("graded", GRADED, 3, "precision", 1 / 3),  # 1 relevant (a) / K=3
    ("graded", GRADED, 3, "recall", 1 / 4),  # 1 relevant / R=4
    ("graded", GRADED, 3, "mrr", 1 / 2),  # first relevant at rank 2
    ("graded", GRADED, 3, "hit_rate", 1.0),
    ("graded", GRADED, 3, "map", (1 / 2) / 4),  # P@2 = 1/2 at the single hit, / R=4
    ("graded", GRADED, 3, "revenue", 5.5 + 10.0 + 0.0),  # b + a + x (x absent -> 0); e is below K
    # --- GRADED, K = 5: top 5 = b(0), a(3), x(0), e(1), c(1)
    # DCG = 3/log2(3) + 1/log2(5) + 1/log2(6); IDCG@5 = 3 + 2/log2(3) + 1/log2(4) + 1/log2(5) + 0/log2(6)
    ("graded", GRADED, 5, "ndcg", (3 / L2(3) + 1 / L2(5) + 1 / L2(6)) / (3 + 2 / L2(3) + 1 / 2 + 1 / L2(5))),
    ("graded", GRADED, 5, "precision", 3 / 5),  # a, e, c
    ("graded", GRADED, 5, "recall", 3 / 4),  # d never ranked
    ("graded", GRADED, 5, "map", (1 / 2 + 2 / 4 + 3 / 5) / 4),  # P@2 + P@4 + P@5 = 1.6, / R=4 -> 0.4
    ("graded", GRADED, 5, "revenue", 5.5 + 10.0 + 100.0),  # b + a + e
    # --- R > K: R = 5, K = 2, top 2 = a(1), z(0)
    ("r_gt_k", R_GT_K, 2, "precision", 1 / 2),
    ("r_gt_k", R_GT_K, 2, "recall", 1 / 5),  # denominator R = 5, not K
    ("r_gt_k", R_GT_K, 2, "map", 1 / 5),  # (P@1 = 1) / R=5 = 0.2, not / min(R, K) = 0.5
    ("r_gt_k", R_GT_K, 2, "ndcg", 1 / (1 + 1 / L2(3))),  # DCG = 1; IDCG@2 = 1 + 1/log2(3)
    ("r_gt_k", R_GT_K, 2, "mrr", 1.0),
    # --- fewer than K ranked: 2 items, K = 10
    ("short", SHORT, 10, "precision", 1 / 10),  # denominator K=10, not 2
    ("short", SHORT, 10, "recall", 1 / 2),
    ("short", SHORT, 10, "map", (1 / 1) / 2),
    ("short", SHORT, 10, "ndcg", 1 / (2 + 1 / L2(3))),  # DCG = 1/log2(2); IDCG = 2/log2(2) + 1/log2(3)
    ("short", SHORT, 10, "hit_rate", 1.0),
    ("short", SHORT, 10, "revenue", 2.25),
    # --- no relevant item in the top K=3 (a is at rank 4)
    ("miss", MISS, 3, "mrr", 0.0),
    ("miss", MISS, 3, "hit_rate", 0.0),
    ("miss", MISS, 3, "precision", 0.0),
    ("miss", MISS, 3, "recall", 0.0),
    ("miss", MISS, 3, "map", 0.0),
    ("miss", MISS, 3, "ndcg", 0.0),
    ("miss", MISS, 3, "revenue", 1.0),  # x only
    # --- same user, K = 4: a enters at rank 4
    ("miss", MISS, 4, "mrr", 1 / 4),
    ("miss", MISS, 4, "ndcg", (2 / L2(5)) / 2),  # DCG = 2/log2(5); IDCG = 2/log2(2)
    ("miss", MISS, 4, "map", (1 / 4) / 1),
    ("miss", MISS, 4, "revenue", 1.0 + 9.0),
]


@pytest.mark.parametrize(
    ("case", "user", "k", "name", "expected"),
    HAND_CASES,
    ids=[f"{c}-k{k}-{n}" for c, _, k, n, _ in HAND_CASES],
)
def test_hand_computed(case: str, user: UserRanking, k: int, name: str, expected: float) -> None:
    assert _value(user, k, name) == pytest.approx(expected, abs=1e-12)


def test_user_without_relevant_item_gets_no_values() -> None:
    # R = 0: recall, map and ndcg would divide by 0; the user has no per-user row, is in no average and is
    # counted as excluded instead
    assert _one_user(NO_REL, 2) is None
    rankings, labels = _one_user_tables(NO_REL)
    out = aggregate(per_user_metrics(rankings, labels, 2), rankings, 2, catalogue_size=10)
    assert out["models"]["m"]["all"]["users"] == 0
    assert out["excluded_users"] == {"m": {"all": 1}}


def test_graded_ndcg_numeric_value() -> None:
    # Guard against a typo in the symbolic expression above: 1.892789 / 4.761860 = 0.397489...
    assert _value(GRADED, 3, "ndcg") == pytest.approx(0.3974893, abs=1e-6)


def test_ndcg_uses_linear_gain_not_exponential() -> None:
    # grades a=3 (ranked 2nd), b=1 (ranked 1st). Linear: (1 + 3/log2 3) / (3 + 1/log2 3) = 0.79671.
    # With gain 2^rel - 1 it would be (1 + 7/log2 3) / (7 + 1/log2 3) = 0.70981.
    u = UserRanking(items=("b", "a"), relevance={"a": 3, "b": 1}, revenue={})
    assert _value(u, 2, "ndcg") == pytest.approx((1 + 3 / L2(3)) / (3 + 1 / L2(3)), abs=1e-12)
    assert _value(u, 2, "ndcg") == pytest.approx(0.796708, abs=1e-6)


def _coverage(lists: Mapping[str, list[str]], k: int, catalogue_size: int) -> float:
    """coverage@k from :func:`aggregate` of one model's lists; u0..u2 each have a relevant label item."""
    labels = _labels_table({f"u{i}": {"q": (1, 0.0)} for i in range(3)})
    rankings = _rankings_table({"m": dict(lists)})
    out = aggregate(per_user_metrics(rankings, labels, k), rankings, k, catalogue_size=catalogue_size)
    return out["models"]["m"]["all"][f"coverage@{k}"]


def test_coverage_hand_computed() -> None:
    lists = {"u0": ["a", "b", "c"], "u1": ["b", "d"], "u2": ["e", "f", "g"]}
    # top 2: {a, b} | {b, d} | {e, f} = {a, b, d, e, f} -> 5 / 10
    assert _coverage(lists, 2, catalogue_size=10) == 0.5
    # top 3: + c, g -> 7 / 10
    assert _coverage(lists, 3, catalogue_size=10) == 0.7
    # no evaluated user has a list (the model ranked only an unlabelled user)
    assert _coverage({"nobody": ["a"]}, 3, catalogue_size=10) == 0.0


def test_registry_is_explicit_and_complete() -> None:
    assert METRIC_NAMES[:11] == ("ndcg", "precision", "recall", "mrr", "hit_rate", "map", "revenue", "coverage",
                                 "conversion", "aov", "click_through")
    assert METRIC_NAMES[11:17] == ("novelty", "intra_list_diversity", "arp", *LIST_NAMES_AFTER_COVERAGE)
    assert METRIC_NAMES[17:] == ("candidate_recall", "candidate_hit_rate")
    assert metrics.CANDIDATE_STAGE == METRICS[17:]
    assert all(m.cut_off == "candidates_per_user" for m in METRICS[17:])
    assert all(m.cut_off == "k" for m in METRICS[:17])
    assert [m.name for m in METRICS] == list(METRIC_NAMES)
    assert PER_USER_METRICS == tuple(m for m in METRICS if isinstance(m, PerUserMetric))
    assert PER_USER_METRICS[:9] == METRICS[:7] + (metrics.CONVERSION, metrics.CLICK_THROUGH)
    assert isinstance(COVERAGE, ListMetric) and METRICS[7] is COVERAGE
    expected = [True] * 7 + [False, True, False, True] + [True] * 3 + [False] * 3 + [True] * 2
    assert [m.has_per_user_values for m in METRICS] == expected
    assert PRIMARY.at(10) == "ndcg@10"
    for metric in PER_USER_METRICS:
        assert metric.column.__doc__ and "=" in metric.column.__doc__  # formula in the docstring
    for list_metric in METRICS:
        if isinstance(list_metric, ListMetric):
            assert list_metric.value.__doc__ and "=" in list_metric.value.__doc__
    assert metric_named("coverage@10") is COVERAGE and metric_named("map") is metrics.MAP
    with pytest.raises(ValueError, match="unknown metric"):
        metric_named("auc@10")


def test_manifest_gate_metrics_come_from_the_registry() -> None:
    for metric in METRICS:
        if metric.higher_is_better:
            Gate(name="g", kind="threshold", metric=metric.at(10), bound=0.1)
        else:  # registered but refused as a gate (tests/unit/test_manifest.py)
            with pytest.raises(ValueError, match="better when lower"):
                Gate(name="g", kind="threshold", metric=metric.at(10), bound=0.1)
    with pytest.raises(ValueError, match="unknown metric"):
        Gate(name="g", kind="threshold", metric="auc@10", bound=0.1)


def test_module_docstring_documents_tie_breaking() -> None:
    doc = " ".join((metrics.__doc__ or "").replace("`", "").split())
    assert "taken as given" in doc and "item_id ascending" in doc


@pytest.mark.parametrize("bad_k", [0, -1])
def test_invalid_k_rejected(bad_k: int) -> None:
    rankings, labels = _one_user_tables(GRADED)
    with pytest.raises(ValueError, match="cut-off"):
        per_user_metrics(rankings, labels, bad_k)
    with pytest.raises(ValueError, match="cut-off"):
        aggregate(per_user_metrics(rankings, labels, 3), rankings, bad_k, catalogue_size=10)


def test_duplicate_items_and_negative_grades_rejected() -> None:
    with pytest.raises(ValueError, match="twice"):
        _one_user(UserRanking(items=("a", "a"), relevance={"a": 1}), 3)
    with pytest.raises(ValueError, match="relevance"):
        _one_user(UserRanking(items=("a",), relevance={"a": -1}), 3)


# --------------------------------------------------------------------------------------------------
# table helpers

Labels = Mapping[str, Mapping[str, tuple[int, float]]]  # user -> item -> (grade, revenue)
Lists = Mapping[str, Mapping[str, list[str]]]  # model -> user -> ranked items


def _rankings_table(lists: Lists) -> pa.Table:
    cols: dict[str, list] = {"user_id": [], "model": [], "rank": [], "item_id": [], "score": []}
    for model, per_user in lists.items():
        for user, items in per_user.items():
            for rank, item in enumerate(items, start=1):
                cols["user_id"].append(user)
                cols["model"].append(model)
                cols["rank"].append(rank)
                cols["item_id"].append(item)
                cols["score"].append(1000.0 - rank)
    schema = pa.schema(
        [("user_id", pa.string()), ("model", pa.string()), ("rank", pa.int64()), ("item_id", pa.string())]
        + [("score", pa.float64())]
    )
    return pa.table(cols, schema=schema)


def _labels_table(labels: Labels) -> pa.Table:
    cols: dict[str, list] = {"user_id": [], "item_id": [], "relevance": [], "revenue": []}
    for user, items in labels.items():
        for item, (grade, revenue) in items.items():
            cols["user_id"].append(user)
            cols["item_id"].append(item)
            cols["relevance"].append(grade)
            cols["revenue"].append(revenue)
    schema = pa.schema(
        [("user_id", pa.string()), ("item_id", pa.string()), ("relevance", pa.int64())]
        + [("revenue", pa.float64())]
    )
    return pa.table(cols, schema=schema)


def _user_ranking(items: list[str], labels: Mapping[str, tuple[int, float]]) -> UserRanking:
    return UserRanking(
        items=tuple(items),
        relevance={i: g for i, (g, _) in labels.items()},
        revenue={i: r for i, (_, r) in labels.items()},
    )


def _rows(table: pa.Table) -> dict[tuple[str, str], dict]:
    return {(r["model"], r["user_id"]): r for r in table.to_pylist()}


# --------------------------------------------------------------------------------------------------
# pytrec_eval agreement


def _random_instance(seed: int, n_users: int, k: int) -> tuple[dict, dict]:
    """user -> {item: (grade, revenue)} labels and model -> user -> ranked items (n <= k)."""
    rng = np.random.default_rng(seed)
    pool = [f"i{j:03d}" for j in range(80)]
    labels: dict[str, dict[str, tuple[int, float]]] = {}
    lists: dict[str, dict[str, list[str]]] = {"m_a": {}, "m_b": {}}
    for u in range(n_users):
        user = f"u{u:04d}"
        n_lab = int(rng.integers(0, 30))
        lab_items = [str(x) for x in rng.choice(pool, size=n_lab, replace=False)]
        if n_lab:
            labels[user] = {
                it: (int(rng.integers(0, 4)), round(float(rng.random()) * 40, 2)) for it in lab_items
            }
        for model_lists in lists.values():
            length = k if rng.random() < 0.7 else int(rng.integers(0, k))
            if length == 0:
                continue  # user not ranked by this model
            # half drawn from the user's label items, so that hits are frequent
            from_labels = [it for it in lab_items if rng.random() < 0.5]
            candidates = list(dict.fromkeys(from_labels + [str(x) for x in rng.permutation(pool)]))
            picked = [str(x) for x in rng.permutation(candidates[: 2 * length])[:length]]
            model_lists[user] = picked
    # users only present in rankings (no labels at all)
    for u in range(n_users, n_users + 10):
        lists["m_a"][f"u{u:04d}"] = pool[:k]
    return labels, lists


def _n_rel(labels: Mapping[str, tuple[int, float]]) -> int:
    return sum(1 for g, _ in labels.values() if g >= 1)


TREC_MEASURES = {"ndcg_cut.10", "P.10", "recall.10", "map_cut.10", "recip_rank"}


def test_agreement_with_pytrec_eval() -> None:
    k = 10
    labels, lists = _random_instance(seed=20240601, n_users=400, k=k)
    evaluated = sorted(u for u, lab in labels.items() if _n_rel(lab) >= 1)
    # the instance exercises the interesting regimes
    assert len(evaluated) >= 300
    assert sum(_n_rel(labels[u]) > k for u in evaluated) >= 100
    assert sum(0 < len(lists["m_a"].get(u, [])) < k for u in evaluated) >= 30
    assert sum(u not in lists["m_a"] for u in evaluated) >= 5

    per_user = _rows(per_user_metrics(_rankings_table(lists), _labels_table(labels), k))
    measures = {"ndcg": "ndcg_cut_10", "precision": "P_10", "recall": "recall_10", "map": "map_cut_10"}
    measures["mrr"] = "recip_rank"  # MRR@10 == recip_rank since the run holds only the top 10
    max_diff = 0.0
    for model, model_lists in lists.items():
        qrels = {u: {it: g for it, (g, _) in labels[u].items()} for u in evaluated}
        # strictly decreasing scores, so trec_eval's own tie-breaking (docno descending) never applies
        run = {
            u: {it: 1000.0 - r for r, it in enumerate(model_lists[u], 1)}
            for u in evaluated
            if u in model_lists
        }
        evaluator = pytrec_eval.RelevanceEvaluator(qrels, TREC_MEASURES)
        trec = evaluator.evaluate(run)
        # trec_eval only reports users in the run; an unranked user is a miss (all zeros) here
        assert set(trec) == set(run)
        sums = dict.fromkeys(measures, 0.0)
        for user in evaluated:
            ref = trec.get(user, dict.fromkeys(measures.values(), 0.0))
            row = per_user[(model, user)]
            for name, trec_name in measures.items():
                expected = ref[trec_name]
                got = row[f"{name}@{k}"]
                sums[name] += got
                max_diff = max(max_diff, abs(got - expected))
                assert got == pytest.approx(expected, abs=1e-9), (model, user, name)
            assert row[f"hit_rate@{k}"] == float(ref["P_10"] > 0)
        for name, trec_name in measures.items():
            trec_mean = sum(trec.get(u, {}).get(trec_name, 0.0) for u in evaluated) / len(evaluated)
            assert sums[name] / len(evaluated) == pytest.approx(trec_mean, abs=1e-9)
    assert max_diff <= 1e-9


@pytest.mark.skipif(RANX is None, reason=SKIP_REASON)
def test_agreement_with_ranx() -> None:
    """The same random instance against ranx (its own venv), both models in one call: users are keyed model|user."""
    k = 10
    labels, lists = _random_instance(seed=20240601, n_users=400, k=k)
    evaluated = sorted(u for u, lab in labels.items() if _n_rel(lab) >= 1)
    qrels = {f"{m}|{u}": {it: g for it, (g, _) in labels[u].items()} for m in lists for u in evaluated}
    run = {f"{m}|{u}": {it: 1000.0 - r for r, it in enumerate(model_lists[u], 1)}
           for m, model_lists in lists.items() for u in evaluated if u in model_lists}
    names = [f"{name}@{k}" for name in ("ndcg", "precision", "recall", "map", "mrr", "hit_rate")]
    reference = ranx_scores(qrels, run, names)
    per_user = _rows(per_user_metrics(_rankings_table(lists), _labels_table(labels), k))
    assert {key for key, _ in per_user.items() if key[1] in evaluated} == {tuple(q.split("|")) for q in qrels}
    for key, scores in ((tuple(q.split("|")), {n: reference[n][q] for n in names}) for q in qrels):
        for name in names:
            assert per_user[key][name] == pytest.approx(scores[name], abs=1e-9), (key, name)
    assert sum(reference[f"ndcg@{k}"].values()) > 0  # the instance has hits


_POOL = [f"i{j}" for j in range(8)]


@st.composite
def _instances(draw: st.DrawFn) -> tuple[int, dict[str, dict[str, tuple[int, float]]], dict[str, list[str]]]:
    """k, labels (user -> item -> (grade, revenue)) and one model's lists (possibly longer than k, or none)."""
    k = draw(st.integers(1, 6))
    n_users = draw(st.integers(1, 5))
    grade_revenue = st.tuples(st.integers(0, 3), st.integers(0, 10_000).map(lambda cents: cents / 100))
    labels = {f"u{u}": draw(st.dictionaries(st.sampled_from(_POOL), grade_revenue, max_size=6))
              for u in range(n_users)}
    lists = {f"u{u}": draw(st.lists(st.sampled_from(_POOL), unique=True, max_size=8)) for u in range(n_users)}
    return k, {u: lab for u, lab in labels.items() if lab}, {u: items for u, items in lists.items() if items}


@settings(max_examples=150, derandomize=True, deadline=None)
@given(_instances())
def test_property_agreement_with_pytrec_eval(
    instance: tuple[int, dict[str, dict[str, tuple[int, float]]], dict[str, list[str]]],
) -> None:
    k, labels, lists = instance
    evaluated = sorted(u for u, lab in labels.items() if _n_rel(lab) >= 1)
    rows = _rows(per_user_metrics(_rankings_table({"m": lists}), _labels_table(labels), k)) if lists else {}
    assert set(rows) == ({("m", u) for u in evaluated} if lists else set())
    if not rows:
        return
    qrels = {u: {it: g for it, (g, _) in labels[u].items()} for u in evaluated}
    # strictly decreasing scores; the full lists for the cut measures, the top k for recip_rank
    run = {u: {it: 100.0 - r for r, it in enumerate(lists[u], 1)} for u in evaluated if u in lists}
    top_run = {u: {it: 100.0 - r for r, it in enumerate(lists[u][:k], 1)} for u in run}
    cut = pytrec_eval.RelevanceEvaluator(qrels, {f"ndcg_cut.{k}", f"P.{k}", f"recall.{k}", f"map_cut.{k}"})
    trec = cut.evaluate(run) if run else {}
    rr = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}).evaluate(top_run) if run else {}
    names = {"ndcg": f"ndcg_cut_{k}", "precision": f"P_{k}", "recall": f"recall_{k}", "map": f"map_cut_{k}"}
    for user in evaluated:
        row = rows[("m", user)]
        ref = trec.get(user, dict.fromkeys(names.values(), 0.0))
        for name, trec_name in names.items():
            assert row[f"{name}@{k}"] == pytest.approx(ref[trec_name], abs=1e-9), (user, name)
        assert row[f"mrr@{k}"] == pytest.approx(rr.get(user, {}).get("recip_rank", 0.0), abs=1e-9)
        assert row[f"hit_rate@{k}"] == float(ref[f"P_{k}"] > 0)
        top = lists.get(user, [])[:k]
        assert row[f"revenue@{k}"] == pytest.approx(sum(labels[user].get(it, (0, 0.0))[1] for it in top))


# --------------------------------------------------------------------------------------------------
# per_user_metrics

TINY_LABELS: Labels = {
    "u1": {"a": (1, 10.0), "b": (2, 0.0)},
    "u2": {"c": (1, 4.0)},
    "u3": {"d": (0, 3.0)},  # R = 0
    "u4": {"e": (1, 0.0)},
}
TINY_LISTS: Lists = {
    "m2": {"u1": ["b", "a"], "u2": ["c"], "u3": ["z"], "u5": ["a", "c"]},  # u4 not ranked; u5 no labels
    "m1": {"u1": ["a", "x", "b"], "u2": ["y", "c"], "u3": ["d", "a"], "u4": ["e"]},
}
TINY_STRATA = {
    "u1": "tier=gold",
    "u2": "tier=silver",
    "u3": "tier=gold",
    "u4": "tier=silver",
    "u5": "tier=bronze",
}


def test_per_user_metrics_tiny_hand_values() -> None:
    table = per_user_metrics(_rankings_table(TINY_LISTS), _labels_table(TINY_LABELS), 2)
    assert table.column_names == ["model", "user_id", "n_relevant", *(f"{n}@2" for n in PER_USER_NAMES)]
    assert table.schema.field("n_relevant").type == pa.int64()
    assert all(table.schema.field(f"{n}@2").type == pa.float64() for n in PER_USER_NAMES)
    # sorted by (model, user); u3 (R = 0) and u5 (no labels) are absent; u4 present for m2 as a miss
    keys = list(zip(table.column("model").to_pylist(), table.column("user_id").to_pylist(), strict=True))
    assert keys == [("m1", "u1"), ("m1", "u2"), ("m1", "u4"), ("m2", "u1"), ("m2", "u2"), ("m2", "u4")]
    rows = _rows(table)
    # m1/u1: top 2 = a(1), x(0); b(2) at rank 3 ignored. R = 2.
    # ndcg = 1 / (2 + 1/log2 3); precision 1/2; recall 1/2; map (1/1)/2; revenue a = 10
    assert rows[("m1", "u1")] == pytest.approx(
        {"model": "m1", "user_id": "u1", "n_relevant": 2, "ndcg@2": 1 / (2 + 1 / L2(3)), "precision@2": 0.5,
         "recall@2": 0.5, "mrr@2": 1.0, "hit_rate@2": 1.0, "map@2": 0.5, "revenue@2": 10.0,
         "conversion@2": 0.0, "click_through@2": 0.0}  # TINY_LABELS has no purchased / clicked flags
    )  # fmt: skip
    # m1/u2: c at rank 2: ndcg (1/log2 3)/1, mrr 1/2, map (1/2)/1, revenue 4
    assert rows[("m1", "u2")] == pytest.approx(
        {"model": "m1", "user_id": "u2", "n_relevant": 1, "ndcg@2": 1 / L2(3), "precision@2": 0.5,
         "recall@2": 1.0, "mrr@2": 0.5, "hit_rate@2": 1.0, "map@2": 0.5, "revenue@2": 4.0,
         "conversion@2": 0.0, "click_through@2": 0.0}
    )  # fmt: skip
    # m2/u1: b(2), a(1) = ideal order -> ndcg 1; map (1/1 + 2/2)/2 = 1; revenue 0 + 10
    assert rows[("m2", "u1")] == pytest.approx(
        {"model": "m2", "user_id": "u1", "n_relevant": 2, "ndcg@2": 1.0, "precision@2": 1.0,
         "recall@2": 1.0, "mrr@2": 1.0, "hit_rate@2": 1.0, "map@2": 1.0, "revenue@2": 10.0,
         "conversion@2": 0.0, "click_through@2": 0.0}
    )  # fmt: skip
    # m2/u4: not ranked -> a miss, all zeros
    assert rows[("m2", "u4")] == {
        "model": "m2", "user_id": "u4", "n_relevant": 1, **{f"{n}@2": 0.0 for n in PER_USER_NAMES}
    }  # fmt: skip


def test_per_user_metrics_of_many_users_equal_each_user_alone() -> None:
    k = 10
    labels, lists = _random_instance(seed=7, n_users=300, k=k)
    table = per_user_metrics(_rankings_table(lists), _labels_table(labels), k)
    rows = _rows(table)
    evaluated = sorted(u for u, lab in labels.items() if _n_rel(lab) >= 1)
    assert set(rows) == {(m, u) for m in ("m_a", "m_b") for u in evaluated}
    assert table.num_rows == 2 * len(evaluated)
    order = list(zip(table.column("model").to_pylist(), table.column("user_id").to_pylist(), strict=True))
    assert order == sorted(order)
    n_missing = 0
    for model in ("m_a", "m_b"):
        for user in evaluated:
            row = rows[(model, user)]
            assert row["n_relevant"] == _n_rel(labels[user])
            if user not in lists[model]:
                n_missing += 1
                assert all(row[f"{n}@{k}"] == 0.0 for n in PER_USER_NAMES)
            alone = _one_user(_user_ranking(lists[model].get(user, []), labels[user]), k)
            assert alone is not None
            for name in PER_USER_NAMES:
                assert row[f"{name}@{k}"] == pytest.approx(alone[name], abs=1e-12), (model, user, name)
    assert n_missing > 0


def test_per_user_metrics_ignores_ranks_beyond_k_and_score() -> None:
    lists = {"m": {"u": ["x", "y", "a"]}}
    labels = {"u": {"a": (3, 5.0)}}
    table = per_user_metrics(_rankings_table(lists), _labels_table(labels), 2)
    row = table.to_pylist()[0]
    assert row["hit_rate@2"] == 0.0 and row["revenue@2"] == 0.0 and row["precision@2"] == 0.0


def test_per_user_metrics_rejects_bad_input() -> None:
    labels = _labels_table({"u": {"a": (1, 0.0)}})
    dup_rank = _rankings_table({"m": {"u": ["a", "b"]}}).set_column(
        2, "rank", pa.array([1, 1], type=pa.int64())
    )
    with pytest.raises(ValueError, match="ranks"):
        per_user_metrics(dup_rank, labels, 5)
    dup_item = _rankings_table({"m": {"u": ["a", "a"]}})
    with pytest.raises(ValueError, match="twice"):
        per_user_metrics(dup_item, labels, 5)
    dup_label = pa.concat_tables([labels, labels])
    with pytest.raises(ValueError, match="more than one row"):
        per_user_metrics(_rankings_table({"m": {"u": ["a"]}}), dup_label, 5)
    with pytest.raises(ValueError, match="missing columns"):
        per_user_metrics(_rankings_table({"m": {"u": ["a"]}}).drop_columns(["rank"]), labels, 5)


def test_per_user_metrics_empty_rankings() -> None:
    table = per_user_metrics(_rankings_table({}), _labels_table(TINY_LABELS), 3)
    assert table.num_rows == 0
    assert table.column_names == ["model", "user_id", "n_relevant", *(f"{n}@3" for n in PER_USER_NAMES)]


# --------------------------------------------------------------------------------------------------
# aggregate


def test_aggregate_tiny_by_hand() -> None:
    rankings = _rankings_table(TINY_LISTS)
    per_user = per_user_metrics(rankings, _labels_table(TINY_LABELS), 2)
    out = aggregate(per_user, rankings, 2, catalogue_size=20, strata=TINY_STRATA)

    assert list(out) == ["models", "excluded_users"]
    assert list(out["models"]) == ["m1", "m2"]
    assert list(out["models"]["m1"]) == ["all", "tier=gold", "tier=silver"]
    assert list(out["models"]["m2"]) == ["all", "tier=gold", "tier=silver"]  # bronze has no evaluated user
    assert list(out["models"]["m1"]["all"]) == [  # registry order; no item stats: no novelty, diversity, arp
        *(m.at(2) for m in METRICS
          if not (getattr(m, "needs_items", False) or getattr(m, "needs_candidates", False))), "users"]

    m1, m2 = out["models"]["m1"], out["models"]["m2"]
    # m1: evaluated u1 (gold), u2 (silver), u4 (silver); u3 (R=0) excluded
    #   precision: u1 1/2, u2 1/2, u4 1/2 -> 0.5;  mrr: 1, 1/2, 1 -> 2.5/3;  revenue: 10, 4, 0 -> 14/3
    #   coverage: top-2 items of u1, u2, u4 = {a, x} | {y, c} | {e} = 5 items / 20 (u3's d not counted)
    assert m1["all"]["users"] == 3
    assert m1["all"]["precision@2"] == pytest.approx(0.5)
    assert m1["all"]["mrr@2"] == pytest.approx(2.5 / 3)
    assert m1["all"]["revenue@2"] == pytest.approx(14 / 3)
    assert m1["all"]["coverage@2"] == pytest.approx(5 / 20)
    # m1 gold = u1 only: mrr 1, revenue 10, coverage {a, x} = 2/20; exposure 1, 1 and 18 zeros: Gini
    #   ((2*19 - 21) + (2*20 - 21)) / (20 * 2) = 0.9, entropy 1 bit / log2 20; one list: no personalisation;
    #   no flags: no conversion, so aov undefined
    assert m1["tier=gold"] == pytest.approx(
        {**{f"{n}@2": v for n, v in _tiny_m1_u1().items()}, "coverage@2": 0.1, "exposure_gini@2": 0.9,
         "exposure_entropy@2": 1 / math.log2(20), "personalisation@2": math.nan, "users": 1,
         "conversion@2": 0.0, "aov@2": math.nan, "click_through@2": 0.0}, nan_ok=True
    )
    # m1 silver = u2, u4: mrr (1/2 + 1)/2 = 0.75, revenue (4 + 0)/2 = 2, map (1/2 + 1)/2 = 0.75,
    #   coverage {y, c, e} = 3/20
    assert m1["tier=silver"]["users"] == 2
    assert m1["tier=silver"]["mrr@2"] == pytest.approx(0.75)
    assert m1["tier=silver"]["revenue@2"] == pytest.approx(2.0)
    assert m1["tier=silver"]["map@2"] == pytest.approx(0.75)
    assert m1["tier=silver"]["coverage@2"] == pytest.approx(3 / 20)
    # m2: u1 perfect, u2 [c] (precision 1/2), u4 unranked (zeros)
    #   precision (1 + 1/2 + 0)/3 = 0.5;  mrr (1 + 1 + 0)/3;  ndcg (1 + 1 + 0)/3;  coverage {b, a, c} = 3/20
    assert m2["all"]["users"] == 3
    assert m2["all"]["precision@2"] == pytest.approx(0.5)
    assert m2["all"]["mrr@2"] == pytest.approx(2 / 3)
    assert m2["all"]["ndcg@2"] == pytest.approx(2 / 3)
    assert m2["all"]["coverage@2"] == pytest.approx(3 / 20)
    # m2 silver = u2, u4: precision (1/2 + 0)/2 = 0.25, recall (1 + 0)/2, coverage {c} = 1/20
    assert m2["tier=silver"]["precision@2"] == pytest.approx(0.25)
    assert m2["tier=silver"]["recall@2"] == pytest.approx(0.5)
    assert m2["tier=silver"]["coverage@2"] == pytest.approx(1 / 20)
    assert m2["tier=gold"]["coverage@2"] == pytest.approx(2 / 20)

    # excluded: m1 ranked u3 (R = 0, gold); m2 ranked u3 (gold) and u5 (no labels, bronze)
    assert out["excluded_users"] == {
        "m1": {"all": 1, "tier=gold": 1, "tier=silver": 0},
        "m2": {"all": 2, "tier=bronze": 1, "tier=gold": 1, "tier=silver": 0},
    }
    assert list(out["excluded_users"]["m2"]) == ["all", "tier=bronze", "tier=gold", "tier=silver"]
    # means are python floats
    assert all(type(v) is float for v in m1["all"].values() if not isinstance(v, int))
    assert type(m1["all"]["users"]) is int


def _tiny_m1_u1() -> dict[str, float]:
    # see test_per_user_metrics_tiny_hand_values
    return {"ndcg": 1 / (2 + 1 / L2(3)), "precision": 0.5, "recall": 0.5, "mrr": 1.0, "hit_rate": 1.0,
            "map": 0.5, "revenue": 10.0}  # fmt: skip


def test_aggregate_without_strata_and_matches_means() -> None:
    k = 10
    labels, lists = _random_instance(seed=11, n_users=200, k=k)
    rankings = _rankings_table(lists)
    per_user = per_user_metrics(rankings, _labels_table(labels), k)
    out = aggregate(per_user, rankings, k, catalogue_size=80)
    assert list(out["models"]) == ["m_a", "m_b"]
    evaluated = sorted(u for u, lab in labels.items() if _n_rel(lab) >= 1)
    for model in ("m_a", "m_b"):
        assert list(out["models"][model]) == ["all"]
        group = out["models"][model]["all"]
        assert group["users"] == len(evaluated)
        alone = [_one_user(_user_ranking(lists[model].get(u, []), labels[u]), k) for u in evaluated]
        for name in PER_USER_NAMES:
            values = [a[name] for a in alone if a is not None]
            assert len(values) == len(evaluated)
            assert group[f"{name}@{k}"] == pytest.approx(sum(values) / len(values), abs=1e-12)
        expected_cov = len({it for u in evaluated for it in lists[model].get(u, [])[:k]}) / 80
        assert group["coverage@10"] == pytest.approx(expected_cov)
        ranked = set(lists[model])
        assert out["excluded_users"][model] == {"all": len(ranked - set(evaluated))}
    assert out["excluded_users"]["m_a"]["all"] >= 10  # the label-less users


def test_aggregate_with_no_evaluated_user_reports_nan_and_counts_excluded() -> None:
    rankings = _rankings_table(TINY_LISTS)
    per_user = per_user_metrics(rankings, _labels_table({"u3": {"d": (0, 3.0)}}), 2)  # nobody has R >= 1
    assert per_user.num_rows == 0
    out = aggregate(per_user, rankings, 2, catalogue_size=20)
    assert out["models"]["m1"]["all"]["users"] == 0
    assert math.isnan(out["models"]["m1"]["all"]["ndcg@2"])
    assert math.isnan(out["models"]["m1"]["all"]["coverage@2"])
    assert out["excluded_users"] == {"m1": {"all": 4}, "m2": {"all": 4}}
