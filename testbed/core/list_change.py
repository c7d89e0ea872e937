"""How much the candidate changes the users' top-K lists: Jaccard, rank-biased overlap, changed slots.

Per user ranked by either model, with ``C`` and ``D`` the control's and the candidate's top ``K`` (``c_i``, ``d_i``
the items at rank ``i``):

* ``Jaccard@K = |C ∩ D| / |C ∪ D|``: 1 when the candidate shows the same items (in any order), 0 when none.
* ``RBO`` (Webber, Moffat & Zobel 2010, extrapolated ``RBO_ext``, their eq. 32) with persistence ``p``
  (:data:`PERSISTENCE`: the top ranks weigh most; with p = 0.9 the first 10 ranks carry about 86 % of the
  weight): with ``X_d = |C_{:d} ∩ D_{:d}|`` the overlap at depth ``d``, ``s <= l`` the two lists' lengths,
  ``RBO_ext = (1-p)/p [sum_{d=1..l} X_d/d p^d + sum_{d=s+1..l} X_s (d-s)/(s d) p^d] + [(X_l-X_s)/l + X_s/s] p^l``;
  1 for identical lists, below 1 as soon as two lists of one length differ in order, 0 without a shared item
  (or with an empty list); it extrapolates a shorter list as agreeing, so a prefix of the other list scores 1.
* changed slots: ``|{i <= max(|C|, |D|) : c_i != d_i}| / max(|C|, |D|)``, a rank held by one list only
  counting as changed.

Summaries per stratum are plain means over the users (no inclusion weights: they describe the lists the run
scored, not a population estimate); "entirely new" lists are those with Jaccard 0. Pure code.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["HISTOGRAM_EDGES", "PERSISTENCE", "UserListChange", "per_user_change", "summarise"]

PERSISTENCE = 0.9
HISTOGRAM_EDGES = tuple(round(0.1 * i, 1) for i in range(11))  # Jaccard bins [0, 0.1), ..., [0.9, 1.0]


@dataclass(frozen=True)
class UserListChange:
    """One entry per user ranked by either model, users sorted."""

    user_id: list[str]
    jaccard: np.ndarray
    rbo: np.ndarray
    changed_slots: np.ndarray  # share of the user's top-K slots whose item changed


def _codes(column: pa.ChunkedArray, vocab: pa.Array) -> np.ndarray:
    return np.asarray(pc.index_in(column.cast(pa.string()), value_set=vocab).to_numpy(zero_copy_only=False),
                      dtype=np.int64)


def rbo_ext(overlap: np.ndarray, short: np.ndarray, long: np.ndarray, p: float = PERSISTENCE) -> np.ndarray:
    """``RBO_ext`` per row of ``overlap`` (``X_d`` at depths 1..K, columns), lists of ``short`` <= ``long`` items."""
    n, k = overlap.shape
    depth = np.arange(1, k + 1, dtype=np.float64)
    weight = p ** depth
    rows = np.arange(n)
    in_long = depth[None, :] <= long[:, None]
    a = np.sum(np.where(in_long, overlap / depth * weight, 0.0), axis=1)
    x_s = np.where(short > 0, overlap[rows, np.maximum(short - 1, 0)], 0.0)
    x_l = np.where(long > 0, overlap[rows, np.maximum(long - 1, 0)], 0.0)
    safe_s = np.maximum(short, 1).astype(np.float64)
    tail = in_long & (depth[None, :] > short[:, None])
    b = x_s * np.sum(np.where(tail, (depth - short[:, None]) / (safe_s[:, None] * depth) * weight, 0.0), axis=1)
    c = ((x_l - x_s) / np.maximum(long, 1) + x_s / safe_s) * p ** long
    return np.where(short > 0, (1 - p) / p * (a + b) + c, 0.0)


def per_user_change(rankings: pa.Table, k: int, control: str = "control", candidate: str = "candidate",
                    p: float = PERSISTENCE) -> UserListChange:
    """Jaccard, RBO and changed slots of every user's top ``k`` (``rankings``: user_id, model, rank 1..n, item_id)."""
    if k < 1:
        raise ValueError(f"cut-off k must be a positive integer, got {k!r}")
    top = rankings.filter(pc.and_(pc.less_equal(rankings.column("rank"), k),
                                  pc.is_in(rankings.column("model").cast(pa.string()),
                                           value_set=pa.array([control, candidate]))))
    users = pc.unique(top.column("user_id").cast(pa.string()))
    users = users.take(pc.sort_indices(users))
    n = len(users)
    user = _codes(top.column("user_id"), users)
    # item codes only need to be equal for equal items: hashing, no sort
    item = np.asarray(pc.dictionary_encode(top.column("item_id").cast(pa.string()).combine_chunks()).indices
                      .to_numpy(zero_copy_only=False), dtype=np.int64)
    rank = np.asarray(top.column("rank").to_numpy(), dtype=np.int64)
    is_candidate = np.asarray(pc.equal(top.column("model").cast(pa.string()), candidate).to_numpy(
        zero_copy_only=False), dtype=bool)

    # each model's (user, rank) grid of item codes, -1 where the list is shorter
    grid = np.full((2, n, k), -1, dtype=np.int64)
    grid[is_candidate.astype(np.int64), user, rank - 1] = item
    length = (grid >= 0).sum(axis=2)
    # a shared item enters the overlap at the deeper of its two ranks: compare every control slot with every
    # candidate slot of the same user (K x K per user; an item is at most once in a list)
    same = (grid[0][:, :, None] == grid[1][:, None, :]) & (grid[0] >= 0)[:, :, None]
    at_user, at_control, at_candidate = np.nonzero(same)
    depth = np.maximum(at_control, at_candidate)
    entered = np.bincount(at_user * k + depth, minlength=n * k).reshape(n, k)
    overlap = np.cumsum(entered, axis=1).astype(np.float64)

    short, long = length.min(axis=0), length.max(axis=0)
    both = overlap[:, -1]
    union = length.sum(axis=0) - both
    jaccard = np.divide(both, union, out=np.zeros(n), where=union > 0)
    changed = ((grid[0] != grid[1]) & ((grid[0] >= 0) | (grid[1] >= 0))).sum(axis=1)
    changed_share = np.divide(changed, long, out=np.zeros(n), where=long > 0)
    return UserListChange(users.to_pylist(), jaccard, rbo_ext(overlap, short, long, p), changed_share)


def _summary(change: UserListChange, mask: np.ndarray) -> dict[str, Any]:
    jaccard = change.jaccard[mask]
    counts, _ = np.histogram(jaccard, bins=np.asarray(HISTOGRAM_EDGES))
    return {"users": int(mask.sum()), "mean_jaccard": float(jaccard.mean()),
            "mean_rbo": float(change.rbo[mask].mean()), "changed_slot_share": float(change.changed_slots[mask].mean()),
            "new_list_share": float(np.mean(jaccard == 0)), "jaccard_counts": [int(c) for c in counts]}


def summarise(change: UserListChange, k: int, strata: Mapping[str, str] | None = None,
              p: float = PERSISTENCE) -> dict[str, Any]:
    """metrics.json's ``list_change``: "all" and every stratum with a user (sorted), histogram bins shared."""
    stratum = np.asarray([(strata or {}).get(u) for u in change.user_id], dtype=object)
    groups: dict[str, Any] = {}
    if change.user_id:
        groups["all"] = _summary(change, np.ones(len(change.user_id), dtype=bool))
    for label in sorted({s for s in stratum.tolist() if s is not None}):
        groups[label] = _summary(change, stratum == label)
    return {"k": k, "rbo_persistence": p, "jaccard_edges": list(HISTOGRAM_EDGES), "strata": groups}
