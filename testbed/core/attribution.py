"""Which features drive each model's scores, and the difference between the two models' rankings (TreeSHAP).

LightGBM's `predict(..., pred_contrib=True)` gives, per row, one contribution per model feature plus the bias
(the expected raw score) in the last column; they sum to the row's raw score. The score step computes them for
a seeded sample of users (`sample_groups`) and adds them up per shard (`shard_sums`); `merge` turns every
shard's sums into the run's means. Rankings and every other number of the run are untouched: the sampled rows
are re-predicted apart, after the ranking and the timed latency requests.

The rows attributed: per sampled user u, T_u = the union of both models' top K (the items whose positions the
comparison is about; TreeSHAP costs about a hundred predictions per row, so it runs on these rows only).

Per model, over every row of T_u of every sampled user:
    importance_m(f) = mean |phi_m(r, f)|, and its share of the sum over features (a feature that is not an
    input of model m has phi_m = 0).

The difference (scale-free and ranking-relevant). A ranking depends only on how the scores of one user's
candidates compare, and is unchanged by a per-user shift or positive scaling of the scores. So, per sampled
user u and model m with scores y_m:
    sigma_m(u)    = the population standard deviation of y_m over all of u's candidates
    z_m(r, f)     = (phi_m(r, f) - mean over T_u of phi_m(., f)) / sigma_m(u)
Summed over f, z_m(r, .) is exactly (y_m(r) - mean over T_u of y_m) / sigma_m(u): the bias and any part of a
contribution shared by all of T_u cancel. Over every r in T_u of the users whose sigma is positive under both
models (and whose scores are all finite):
    difference(f) = mean |z_candidate(r, f) - z_control(r, f)|  — how much f changes the two models' relative
                    scores of the same items; it ranks the features behind the difference (share: of the sum)
    reliance_m(f) = mean |z_m(r, f)|, and the direction "candidate" when reliance_candidate(f) exceeds
                    reliance_control(f) ("the candidate relies more on f"), "control" when it is smaller.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from testbed.core.roles import ROLES
from testbed.core.sampling import uniform_draw

if TYPE_CHECKING:  # the evaluate and record steps merge and show sums without the LightGBM layer
    from testbed.core.scoring import LoadedModel

SEED_SALT = "attribution"
CONTROL, CANDIDATE = ROLES


def attribution_seed(sampling_seed: int) -> int:
    """The sample's seed, derived from the run's sampling seed: the first 13 hex digits (52 bits) of
    SHA-256("<seed>:attribution"), so it never draws the same users as the slice or the latency sample."""
    return int(hashlib.sha256(f"{sampling_seed}:{SEED_SALT}".encode()).hexdigest()[:13], 16)


def shard_sample_size(requested: int, shard_count: int, shard_users: int) -> int:
    """The shard's part of the run's `requested` users: shards hold equal shares of the users (one in
    `shard_count`), so each samples ceil(requested / shard_count) of its own, at most all of them."""
    if requested <= 0 or shard_users <= 0:
        return 0
    return min(shard_users, math.ceil(requested / max(shard_count, 1)))


def sample_groups(user_ids: np.ndarray, starts: np.ndarray, size: int, seed: int) -> np.ndarray:
    """Indices of the `size` user groups (rows sorted by user; `starts` from group_starts) with the smallest
    draws under `seed`, ascending."""
    users = user_ids[starts[:-1]]
    draws = np.array([uniform_draw(seed, str(u)) for u in users])
    return np.sort(np.argsort(draws, kind="stable")[:size])


def contributions(model: LoadedModel, rows: np.ndarray) -> np.ndarray:
    """TreeSHAP contributions: one column per model feature, then the bias; each row sums to its raw score."""
    if len(rows) == 0:
        return np.empty((0, len(model.features) + 1))
    return np.asarray(model.booster.predict(rows, pred_contrib=True))


@dataclass(frozen=True)
class AttributionSums:
    """One shard's sums over its sampled users; `merge` adds them up and divides. Feature lists are aligned with
    `features`, the union of both models' inputs."""

    features: list[str]
    users: int  # sampled
    candidate_rows: int  # their candidate rows
    attributed_rows: int  # their rows in either model's top K: the rows of `abs_sum`
    difference_users: int  # sampled users with a positive score spread under both models
    difference_rows: int  # their attributed rows: the rows of `reliance_sum` and `difference_sum`
    abs_sum: dict[str, list[float]]  # role -> sum of |phi| per feature
    reliance_sum: dict[str, list[float]]  # role -> sum of |z| per feature
    difference_sum: list[float]  # sum of |z_candidate - z_control| per feature
    additivity_error: float  # largest |sum of a row's contributions and bias - its score| (LightGBM's property)


def feature_union(models: Sequence[LoadedModel]) -> list[str]:
    """Every model input once, in the order of the models' own feature lists."""
    return list(dict.fromkeys(f for m in models for f in m.features))


def _on_union(model: LoadedModel, phi: np.ndarray, features: list[str]) -> np.ndarray:
    out = np.zeros((len(phi), len(features)))
    out[:, [features.index(f) for f in model.features]] = phi[:, :-1]
    return out


def _top_union(control: np.ndarray, candidate: np.ndarray, k: int) -> np.ndarray:
    """Mask of one user's rows in either model's top k: score descending, ties by row order (as top_k ranks)."""
    mask = np.zeros(len(control), dtype=bool)
    for scores in (control, candidate):
        mask[np.argsort(-scores, kind="stable")[:k]] = True
    return mask


def _empty(features: list[str]) -> AttributionSums:
    zeros = [0.0] * len(features)
    return AttributionSums(features, 0, 0, 0, 0, 0, {r: zeros for r in ROLES}, {r: zeros for r in ROLES}, zeros,
                           0.0)


def _per_user_mean(values: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Each row's user mean (rows grouped by user from `starts`, one length per user), repeated per row."""
    means = np.add.reduceat(values, starts, axis=0) / (lengths[:, None] if values.ndim == 2 else lengths)
    return np.repeat(means, lengths, axis=0)


def _score_spread(scores: np.ndarray) -> float:
    """The population std of one user's scores; 0 when any is not finite (the user is not compared)."""
    return float(scores.std()) if np.isfinite(scores).all() else 0.0


def shard_sums(models: Sequence[LoadedModel], matrices: dict[str, np.ndarray], scores: dict[str, np.ndarray],
               starts: np.ndarray, groups: np.ndarray, *, k: int) -> AttributionSums:
    """The sums of the sampled user groups `groups` (indices into `starts`) of one shard: `matrices` and `scores`
    are each role's model inputs and scores over the shard's candidate rows, sorted by user. TreeSHAP runs on
    the top-K union rows only (it costs about a hundred predictions per row)."""
    by_role = {m.role: m for m in models}
    features = feature_union(models)
    if len(groups) == 0:
        return _empty(features)
    picked, lengths, usable = [], [], []
    for g in groups:
        user = {role: scores[role][starts[g]:starts[g + 1]] for role in ROLES}
        safe = {role: np.where(np.isfinite(v), v, -np.inf) for role, v in user.items()}
        top = np.flatnonzero(_top_union(safe[CONTROL], safe[CANDIDATE], k))
        picked.append(starts[g] + top)
        lengths.append(len(top))
        usable.append(len(top) > 0 and all(_score_spread(user[role]) > 0 for role in ROLES))
    rows = np.concatenate(picked)
    count = np.asarray(lengths, dtype=np.int64)
    local = np.concatenate([[0], np.cumsum(count)])[:-1]
    row_user = np.repeat(np.arange(len(groups)), count)
    ok = np.asarray(usable)
    compared = ok[row_user]
    phi, z = {}, {}
    additivity = 0.0
    for role in ROLES:
        y = scores[role][rows]
        full = contributions(by_role[role], matrices[role][rows])
        residual = np.abs(full.sum(axis=1) - y)[np.isfinite(y)]
        additivity = max(additivity, float(residual.max()) if residual.size else 0.0)
        phi[role] = _on_union(by_role[role], full, features)
        spread = np.array([_score_spread(scores[role][starts[g]:starts[g + 1]]) for g in groups])
        centred = phi[role] - _per_user_mean(phi[role], local, count)
        z[role] = centred[compared] / spread[row_user[compared], None]
    return AttributionSums(
        features=features, users=len(groups), candidate_rows=int((starts[groups + 1] - starts[groups]).sum()),
        attributed_rows=len(rows), difference_users=int(ok.sum()), difference_rows=int(compared.sum()),
        abs_sum={role: np.abs(phi[role]).sum(axis=0).tolist() for role in ROLES},
        reliance_sum={role: np.abs(z[role]).sum(axis=0).tolist() for role in ROLES},
        difference_sum=np.abs(z[CANDIDATE] - z[CONTROL]).sum(axis=0).tolist(), additivity_error=additivity)


@dataclass(frozen=True)
class FeatureImportance:
    feature: str
    mean_abs: float
    share: float  # of the sum over features, a fraction


@dataclass(frozen=True)
class FeatureDifference:
    feature: str
    mean_abs_delta: float
    share: float
    control_reliance: float
    candidate_reliance: float
    direction: str  # "candidate" (relies more on it), "control" or "equal"


@dataclass(frozen=True)
class Attribution:
    features: list[str]
    users: int
    candidate_rows: int
    attributed_rows: int
    difference_users: int
    difference_rows: int
    models: dict[str, list[FeatureImportance]]  # largest first
    difference: list[FeatureDifference]  # largest first
    additivity_error: float


def _ranked_importance(features: list[str], sums: np.ndarray, rows: int) -> list[FeatureImportance]:
    means = sums / rows if rows else np.zeros(len(features))
    total = means.sum()
    shares = means / total if total > 0 else np.zeros(len(features))
    order = sorted(range(len(features)), key=lambda i: (-means[i], features[i]))
    return [FeatureImportance(features[i], float(means[i]), float(shares[i])) for i in order]


def _direction(control: float, candidate: float) -> str:
    if math.isclose(control, candidate, rel_tol=1e-9, abs_tol=1e-12):
        return "equal"
    return CANDIDATE if candidate > control else CONTROL


def merge(parts: Sequence[AttributionSums]) -> Attribution:
    """The run's means from every shard's sums (shards of one run share their feature list)."""
    if not parts:
        raise ValueError("no attribution sums to merge")
    features = parts[0].features
    if any(p.features != features for p in parts):
        raise ValueError("attribution sums of one run must share their features")

    def total(values: list[list[float]]) -> np.ndarray:
        return np.sum(np.asarray(values, dtype=np.float64), axis=0)

    rows = sum(p.attributed_rows for p in parts)
    compared = sum(p.difference_rows for p in parts)
    reliance = {role: total([p.reliance_sum[role] for p in parts]) / max(compared, 1) for role in ROLES}
    difference = _ranked_importance(features, total([p.difference_sum for p in parts]), compared)
    position = {f: i for i, f in enumerate(features)}
    return Attribution(
        features=features, users=sum(p.users for p in parts), candidate_rows=sum(p.candidate_rows for p in parts),
        attributed_rows=rows,
        difference_users=sum(p.difference_users for p in parts), difference_rows=compared,
        models={role: _ranked_importance(features, total([p.abs_sum[role] for p in parts]), rows) for role in ROLES},
        difference=[FeatureDifference(
            d.feature, d.mean_abs, d.share, float(reliance[CONTROL][position[d.feature]]),
            float(reliance[CANDIDATE][position[d.feature]]),
            _direction(reliance[CONTROL][position[d.feature]], reliance[CANDIDATE][position[d.feature]]))
            for d in difference],
        additivity_error=max(p.additivity_error for p in parts))
