"""Train a LightGBM LambdaRank model on candidate lists built exactly as a run builds them."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

import lightgbm as lgb
import numpy as np
import pyarrow as pa

from testbed.core import model_inputs, ranking_data
from testbed.core.arrays import group_starts
from testbed.core.event_types import DEFAULT_VOCABULARY, EventVocabulary
from testbed.core.model_inputs import FeatureInputs
from testbed.core.ranking_session import RankingSession

SCHEMA_VERSION = 1

# (trees built, trees asked for), called after each boosting round; it only watches, so the model is the same
TreeCallback = Callable[[int, int], None]


class TrainingProgress(Protocol):
    """What a caller may watch of a training: phases with their counts, then trees. The CLI draws it; the
    core only calls it, so it stays free of terminal code."""

    def begin(self, phase: str) -> None: ...

    def end(self, phase: str, counts: Mapping[str, int]) -> None: ...

    def trees(self, done: int, total: int) -> None: ...


class NoTrainingProgress:
    """Watches nothing: the default of every caller that shows no progress (handlers, tests, --quiet)."""

    def begin(self, phase: str) -> None:
        return None

    def end(self, phase: str, counts: Mapping[str, int]) -> None:
        return None

    def trees(self, done: int, total: int) -> None:
        return None


@dataclass(frozen=True)
class TrainingConfig:
    cutoff: datetime
    label_end: datetime
    windows: tuple[int, ...] = (7, 30, 90)
    candidates_per_user: int = 100
    feature_set: str = "full"  # "full" or "control" (item popularity only)
    seed: int = 1
    num_trees: int = 150
    vocabulary: EventVocabulary = DEFAULT_VOCABULARY  # the lake's event types: their grades are the labels


def select_features(all_names: list[str], feature_set: str) -> list[str]:
    if feature_set == "full":
        return all_names
    if feature_set == "control":
        return [n for n in all_names if n.startswith(ranking_data.CONTROL_PREFIXES)]
    raise ValueError(f"unknown feature set {feature_set!r} (use full or control)")


def training_matrix(session: RankingSession, users: pa.Table, cfg: TrainingConfig,
                    inputs: FeatureInputs) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str], pa.Table]:
    """(X, y, group sizes, feature names, the rows' user_id/item_id) for those `users` whose candidates hold at
    least one relevant item.

    `session` holds the lake's events (at least those of [cutoff - longest window, label_end)) and items;
    the features are the set's training inputs, built exactly as a run builds them.
    """
    session.prepare(cfg.cutoff, list(cfg.windows))
    session.candidates(users, cfg.candidates_per_user)
    names = inputs.spec.training_inputs()
    pairs, x = model_inputs.for_candidates(session, inputs, names)
    y = session.pair_relevance(session.labels(cfg.cutoff, cfg.label_end, cfg.vocabulary))
    starts = group_starts(pairs.column("user_id").to_numpy(zero_copy_only=False))
    has_relevant = np.add.reduceat(y > 0, starts[:-1]) > 0 if len(y) else np.array([], bool)
    keep_rows = np.repeat(has_relevant, np.diff(starts))
    sizes = np.diff(starts)[has_relevant]
    return x[keep_rows], y[keep_rows], sizes, names, pairs.select(["user_id", "item_id"]).filter(pa.array(keep_rows))


def train(x: np.ndarray, y: np.ndarray, groups: np.ndarray, names: list[str], cfg: TrainingConfig, *,
          categorical: list[str] | None = None, on_tree: TreeCallback | None = None) -> lgb.Booster:
    """LambdaRank on the rows; `categorical` names the inputs LightGBM splits as categories (codes); `on_tree`
    hears (trees built, trees asked for) after each round."""
    if len(groups) < 10:
        raise ValueError(f"only {len(groups)} users have a relevant candidate after the cutoff; need at least 10")
    params = {
        "objective": "lambdarank", "metric": "ndcg", "eval_at": [10], "learning_rate": 0.05,
        "num_leaves": 31, "min_data_in_leaf": 40, "feature_fraction": 0.9, "bagging_fraction": 0.8,
        "bagging_freq": 1, "lambdarank_truncation_level": 20, "seed": cfg.seed, "deterministic": True,
        "force_row_wise": True, "num_threads": 2, "verbose": -1,
    }
    used = [n for n in categorical or [] if n in names]
    dataset = lgb.Dataset(x, label=y, group=groups, feature_name=names, free_raw_data=True,
                          categorical_feature=used or "auto")
    callbacks = [_tree_callback(on_tree)] if on_tree is not None else None
    return lgb.train(params, dataset, num_boost_round=cfg.num_trees, callbacks=callbacks)


def _tree_callback(on_tree: TreeCallback) -> Callable[[lgb.callback.CallbackEnv], None]:
    def after_round(env: lgb.callback.CallbackEnv) -> None:
        on_tree(env.iteration + 1 - env.begin_iteration, env.end_iteration - env.begin_iteration)

    return after_round


def model_metadata(model_text: bytes, booster: lgb.Booster, cfg: TrainingConfig, groups: np.ndarray,
                   lake_fingerprint: str, *, features: dict[str, str | None],
                   features_from: datetime) -> dict[str, object]:
    """The model's sidecar; `features` names its feature set (name, digest, uri). `training` holds the window
    the model saw (testbed.core.training_window reads it): features from `features_from` to `cutoff`, labels
    in [cutoff, label_end)."""
    return {
        "schema_version": SCHEMA_VERSION,
        "sha256": hashlib.sha256(model_text).hexdigest(),
        "feature_names": booster.feature_name(),
        "feature_set": cfg.feature_set,
        "features": features,
        "objective": "lambdarank",
        "num_trees": booster.num_trees(),
        "training": {"features_from": features_from.isoformat(), "cutoff": cfg.cutoff.isoformat(),
                     "label_end": cfg.label_end.isoformat(),
                     "users": int(len(groups)), "rows": int(groups.sum()), "seed": cfg.seed,
                     "lake_fingerprint": lake_fingerprint},
    }

