"""The candidate stage's recall (testbed.core.metrics candidate_recall@N, candidate_hit_rate@N) on small tables."""

from __future__ import annotations

import math

import pyarrow as pa
import pytest

from testbed.core.metrics import CandidateSets, aggregate, per_user_metrics
from testbed.manifest import Manifest

N = 4


def _rankings(rows: list[tuple[str, str, int, str]]) -> pa.Table:
    model, user, rank, item = zip(*rows, strict=True)
    return pa.table({"user_id": list(user), "model": list(model), "rank": pa.array(rank, pa.int32()),
                     "item_id": list(item)})


def _labels(rows: list[tuple[str, str, int]]) -> pa.Table:
    user, item, grade = zip(*rows, strict=True)
    return pa.table({"user_id": list(user), "item_id": list(item), "relevance": pa.array(grade, pa.int32()),
                     "revenue": [0.0] * len(rows)})


def _candidates(rows: list[tuple[str, str, str]], staged: tuple[str, ...] = ("control", "candidate")) -> CandidateSets:
    model, user, item = zip(*rows, strict=True)
    return CandidateSets(pa.table({"model": list(model), "user_id": list(user), "item_id": list(item)}), N, staged)


# u1: relevant a, b, c (d has grade 0: not relevant, R = 3); u2: relevant e (R = 1); u3: no label (R = 0)
LABELS = _labels([("u1", "a", 3), ("u1", "b", 1), ("u1", "c", 2), ("u1", "d", 0), ("u2", "e", 1)])
RANKINGS = _rankings([(m, u, 1, "x") for m in ("control", "candidate") for u in ("u1", "u2", "u3")])
# control's candidates hold a, b and d of u1 (2 of 3) and e of u2; the candidate's hold no label item at all
CANDIDATES = _candidates([("control", "u1", i) for i in ("a", "b", "d", "x")] + [("control", "u2", "e"),
                          ("control", "u3", "a")] + [("candidate", u, i) for u in ("u1", "u2", "u3")
                                                     for i in ("x", "y")])


def _by_model_user(table: pa.Table, column: str) -> dict[tuple[str, str], float]:
    return {(r["model"], r["user_id"]): r[column] for r in table.to_pylist()}


def test_hand_computed_per_user_values() -> None:
    out = per_user_metrics(RANKINGS, LABELS, 2, candidates=CANDIDATES)
    assert _by_model_user(out, f"candidate_recall@{N}") == {
        ("candidate", "u1"): 0.0, ("candidate", "u2"): 0.0, ("control", "u1"): 2 / 3, ("control", "u2"): 1.0}
    assert _by_model_user(out, f"candidate_hit_rate@{N}") == {
        ("candidate", "u1"): 0.0, ("candidate", "u2"): 0.0, ("control", "u1"): 1.0, ("control", "u2"): 1.0}
    assert "candidate_recall@2" not in out.column_names  # the cut-off is N, not K


def test_users_without_label_items_are_excluded_as_for_ndcg() -> None:
    out = per_user_metrics(RANKINGS, LABELS, 2, candidates=CANDIDATES)
    assert sorted({r["user_id"] for r in out.to_pylist()}) == ["u1", "u2"]  # u3 (R = 0) has no row
    summary = aggregate(out, RANKINGS, 2, catalogue_size=10, candidates_per_user=N)
    assert summary["models"]["control"]["all"][f"candidate_recall@{N}"] == pytest.approx((2 / 3 + 1) / 2)
    assert summary["models"]["control"]["all"][f"candidate_hit_rate@{N}"] == 1.0
    assert summary["excluded_users"]["control"]["all"] == 1


def test_candidates_that_omit_every_label_item_give_recall_zero() -> None:
    summary = aggregate(per_user_metrics(RANKINGS, LABELS, 2, candidates=CANDIDATES), RANKINGS, 2,
                        catalogue_size=10, candidates_per_user=N)
    candidate = summary["models"]["candidate"]["all"]
    assert candidate[f"candidate_recall@{N}"] == 0.0
    assert candidate[f"candidate_hit_rate@{N}"] == 0.0  # every user has no label item among their candidates
    assert candidate["recall@2"] == 0.0  # no ranking of those candidates could do better


def test_a_model_without_a_candidate_stage_is_not_applicable() -> None:
    only_control = _candidates([("control", "u1", "a")], staged=("control",))
    out = per_user_metrics(RANKINGS, LABELS, 2, candidates=only_control)
    values = _by_model_user(out, f"candidate_recall@{N}")
    assert math.isnan(values[("candidate", "u1")]) and math.isnan(values[("candidate", "u2")])
    assert values[("control", "u1")] == 1 / 3 and values[("control", "u2")] == 0.0
    hit_rate = _by_model_user(out, f"candidate_hit_rate@{N}")
    assert math.isnan(hit_rate[("candidate", "u1")])
    summary = aggregate(out, RANKINGS, 2, catalogue_size=10, candidates_per_user=N)
    assert f"candidate_recall@{N}" not in summary["models"]["candidate"]["all"]  # not applicable: no number
    assert summary["models"]["control"]["all"][f"candidate_recall@{N}"] == pytest.approx(1 / 6)


def test_duplicate_and_unknown_candidate_rows_count_once_or_not_at_all() -> None:
    doubled = _candidates([("control", "u1", "a"), ("control", "u1", "a"), ("control", "u1", "zz"),
                           ("control", "nobody", "a"), ("candidate", "u1", "b")])
    values = _by_model_user(per_user_metrics(RANKINGS, LABELS, 2, candidates=doubled), f"candidate_recall@{N}")
    assert values[("control", "u1")] == 1 / 3 and values[("candidate", "u1")] == 1 / 3


def test_without_candidate_sets_no_candidate_columns() -> None:
    out = per_user_metrics(RANKINGS, LABELS, 2)
    assert not [c for c in out.column_names if c.startswith("candidate_")]
    assert f"candidate_recall@{N}" not in aggregate(out, RANKINGS, 2, catalogue_size=10)["models"]["control"]["all"]


def _manifest(metric: str) -> dict[str, object]:
    sha = "0" * 64
    return {"name": "m", "segment": {"name": "all", "filters": []},
            "time": {"start": "2026-01-01T00:00:00Z", "cutoff": "2026-01-10T00:00:00Z", "end": "2026-01-15T00:00:00Z"},
            "models": {"control": {"uri": "c.txt", "sha256": sha}, "candidate": {"uri": "d.txt", "sha256": sha}},
            "evaluation": {"k": 10, "candidates_per_user": 50},
            "gates": [{"name": "reach", "kind": "threshold", "metric": metric, "bound": 0.5}]}


def test_gates_name_the_candidate_metrics_at_candidates_per_user() -> None:
    assert Manifest.model_validate(_manifest("candidate_recall@50")).gates[0].metric == "candidate_recall@50"
    Manifest.model_validate(_manifest("candidate_hit_rate@50"))
    with pytest.raises(ValueError, match="candidate_recall@10 must use candidates_per_user=50"):
        Manifest.model_validate(_manifest("candidate_recall@10"))
