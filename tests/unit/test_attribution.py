"""TreeSHAP attribution (testbed.core.attribution): per-model importance, the difference, sampling and merging."""

from __future__ import annotations

import math
from typing import Any

import lightgbm as lgb
import numpy as np
import pytest

from testbed.core import attribution
from testbed.core.arrays import group_starts
from testbed.core.scoring import LoadedModel


def _train(x: np.ndarray, y: np.ndarray, names: list[str], **params: Any) -> LoadedModel:
    booster = lgb.train({"objective": "regression", "verbose": -1, "num_threads": 1, "num_leaves": 7,
                         "min_data_in_leaf": 5, "deterministic": True, **params},
                        lgb.Dataset(x, y, feature_name=names), 15)
    return LoadedModel("candidate", booster, booster.feature_name())


def test_a_model_whose_trees_use_one_feature_gives_it_all_of_the_attribution() -> None:
    rng = np.random.default_rng(1)
    x = np.column_stack([rng.normal(size=300), np.full(300, 2.0), np.zeros(300)])  # only f0 varies
    model = _train(x, 3 * x[:, 0] + rng.normal(scale=0.1, size=300), ["f0", "f1", "f2"])
    control = LoadedModel("control", model.booster, model.features)
    starts = np.arange(0, 301, 20)  # 15 users of 20 candidates
    scores = model.booster.predict(x)
    sums = attribution.shard_sums([control, model], {"control": x, "candidate": x},
                                  {"control": scores, "candidate": scores}, starts, np.arange(15), k=5)
    merged = attribution.merge([sums])
    top = merged.models["candidate"][0]
    assert (top.feature, top.share) == ("f0", 1.0)
    assert [f.share for f in merged.models["candidate"][1:]] == [0.0, 0.0]
    assert merged.difference_rows > 0  # identical models: nothing differs
    assert all(d.mean_abs_delta == 0.0 and d.direction == "equal" for d in merged.difference)


def test_contributions_and_bias_sum_to_the_raw_score() -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(size=(400, 4))
    x[rng.random(size=x.shape) < 0.1] = np.nan  # missing values take the trees' default branches
    model = _train(x, np.nan_to_num(x[:, 0]) - np.nan_to_num(x[:, 2]) ** 2, ["a", "b", "c", "d"])
    phi = attribution.contributions(model, x)
    assert phi.shape == (400, 5)
    np.testing.assert_allclose(phi.sum(axis=1), model.booster.predict(x), rtol=0, atol=1e-9)


class FixedContributions:
    """A booster stand-in: row i of the matrix holds i in its first column, and gets contribution row i."""

    def __init__(self, table: np.ndarray) -> None:
        self.table = table

    def predict(self, rows: np.ndarray, pred_contrib: bool = False) -> np.ndarray:
        assert pred_contrib
        return self.table[rows[:, 0].astype(int)]


def _fixed(role: str, features: list[str], table: list[list[float]]) -> LoadedModel:
    return LoadedModel(role, FixedContributions(np.asarray(table)), features)  # type: ignore[arg-type]


def test_the_difference_on_a_hand_computed_user() -> None:
    """One user, three candidates, K=1. Control scores [1, 0, -1] from f0 only (sigma sqrt(2/3)); the candidate
    scores [3, 5, 7] from f1 only plus bias 5 (sigma sqrt(8/3)). Top 1: row 0 (control), row 2 (candidate).
    Mean |contribution| over rows 0 and 2: control f0 1, candidate f1 2. Centred over them, z: control
    f0 = [1, -1] / sqrt(2/3); candidate f1 = [-2, 2] / sqrt(8/3) = [-1, 1] / sqrt(2/3).
    So |delta| is sqrt(3/2) on both features, each half of the difference; control relies on f0 alone."""
    control = _fixed("control", ["f0"], [[1, 0], [0, 0], [-1, 0]])
    candidate = _fixed("candidate", ["f0", "f1"], [[0, -2, 5], [0, 0, 5], [0, 2, 5]])
    rows = np.arange(3.0)[:, None]
    sums = attribution.shard_sums([control, candidate], {"control": rows, "candidate": rows},
                                  {"control": np.array([1.0, 0, -1]), "candidate": np.array([3.0, 5, 7])},
                                  np.array([0, 3]), np.array([0]), k=1)
    merged = attribution.merge([sums])
    assert (merged.users, merged.candidate_rows, merged.difference_users, merged.difference_rows) == (1, 3, 1, 2)
    assert merged.additivity_error == 0.0
    assert merged.models["control"][0].feature == "f0"
    assert merged.attributed_rows == 2  # TreeSHAP ran on the top-K union only
    assert merged.models["control"][0].mean_abs == pytest.approx(1.0)
    assert merged.models["candidate"][0].feature == "f1"
    assert merged.models["candidate"][0].mean_abs == pytest.approx(2.0)
    by_feature = {d.feature: d for d in merged.difference}
    for feature, direction in (("f0", "control"), ("f1", "candidate")):
        d = by_feature[feature]
        assert d.mean_abs_delta == pytest.approx(math.sqrt(1.5))
        assert d.share == pytest.approx(0.5)
        assert d.direction == direction
    assert by_feature["f0"].control_reliance == pytest.approx(math.sqrt(1.5))
    assert by_feature["f0"].candidate_reliance == 0.0


def test_a_user_whose_scores_all_tie_is_left_out_of_the_difference() -> None:
    flat = _fixed("control", ["f0"], [[0, 1], [0, 1]])
    moving = _fixed("candidate", ["f0"], [[1, 0], [-1, 0]])
    rows = np.arange(2.0)[:, None]
    merged = attribution.merge([attribution.shard_sums(
        [flat, moving], {"control": rows, "candidate": rows},
        {"control": np.array([1.0, 1.0]), "candidate": np.array([1.0, -1.0])}, np.array([0, 2]), np.array([0]), k=1)])
    assert (merged.users, merged.difference_users, merged.difference_rows) == (1, 0, 0)
    assert merged.models["candidate"][0].mean_abs == 1.0


def test_shard_sums_merge_to_the_sums_of_all_users_at_once() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(240, 3))
    control = _train(x, x[:, 0], ["a", "b", "c"])
    candidate = _train(x, x[:, 0] + 2 * x[:, 1] * x[:, 2], ["a", "b", "c"])
    control = LoadedModel("control", control.booster, control.features)
    scores = {m.role: m.booster.predict(x) for m in (control, candidate)}
    starts = np.arange(0, 241, 12)
    every = dict(models=[control, candidate], matrices={"control": x, "candidate": x}, scores=scores, starts=starts,
                 k=3)
    whole = attribution.merge([attribution.shard_sums(groups=np.arange(20), **every)])  # type: ignore[arg-type]
    split = attribution.merge([attribution.shard_sums(groups=g, **every)  # type: ignore[arg-type]
                               for g in (np.arange(0, 20, 2), np.arange(1, 20, 2))])
    assert [d.feature for d in split.difference] == [d.feature for d in whole.difference]
    for a, b in zip(whole.difference, split.difference, strict=True):
        assert a.mean_abs_delta == pytest.approx(b.mean_abs_delta)
    directions = {d.feature: (d.direction, d.control_reliance) for d in whole.difference}
    assert directions["b"] == directions["c"] == ("candidate", 0.0)  # the interaction is the candidate's alone
    assert directions["a"][0] == "control"  # the control's only input
    assert whole.additivity_error < 1e-9


def test_the_sample_is_seeded_bounded_and_its_seed_is_not_the_runs() -> None:
    users = np.repeat(np.array([f"u{i}" for i in range(50)]), 4)
    starts = group_starts(users)
    seed = attribution.attribution_seed(42)
    assert seed != 42 and seed == attribution.attribution_seed(42)
    picked = attribution.sample_groups(users, starts, 7, seed)
    assert len(picked) == 7 and list(picked) == sorted(set(picked.tolist()))
    assert list(picked) == list(attribution.sample_groups(users, starts, 7, seed))
    assert attribution.shard_sample_size(100, 4, 1000) == 25
    assert attribution.shard_sample_size(300, 7, 10) == 10
    assert attribution.shard_sample_size(0, 1, 1000) == 0
