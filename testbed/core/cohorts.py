"""Which users the candidate hurts: the cohorts where the paired delta of the primary metric is worst.

Cohorts come in families, each a partition of the evaluated users:

* ``stratum``: the slice's sampling strata (only when the manifest declares strata);
* ``activity``: deciles of the user's number of events before the cutoff in the slice (users with the same
  count share a decile, so a lake of light users may have fewer than ten);
* ``tenure``: ``new`` (no event before the cutoff in the slice's history) or ``returning``;
* ``top_category``: the category of most of the user's pre-cutoff events (ties: the smallest name);
  ``(no history)`` for new users.

Every cohort of at least ``min_users`` evaluated users is tested: its weighted paired delta (candidate minus
control, users weighted by 1 / inclusion probability) with a BCa interval and a two-sided p-value, all cohorts
from the resamples metrics.json's intervals are drawn from (within sampling strata when the slice drew a fixed
number per stratum; stats.compare_strata_and_domains), so they cost no draws of their own. The p-values are
corrected across every tested cohort of every family (the manifest's correction, Holm by default), and each
cohort's adjusted interval is the set of deltas its corrected two-sided test would not reject (test inversion,
testbed.core.inversion), so it excludes 0 exactly when the corrected p-value is at most 1 - confidence. A cohort
whose corrected p-value is above that is *exploratory*: worth a look, not evidence. The worst cohorts are the
tested ones with the lowest delta (gated metrics are better when higher).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from testbed.core import stats
from testbed.core.bootstrap import bca_interval
from testbed.core.gates import ADVISORY, COMPARISON_KINDS
from testbed.core.inversion import family_rejects, inverted_interval
from testbed.core.metrics import PRIMARY

FAMILIES = ("stratum", "activity", "tenure", "top_category")
NEW, RETURNING, NO_HISTORY = "new", "returning", "(no history)"
DECILES = 10
WORST_SHOWN = 10  # cohorts kept in the record, worst first


class GateLike(Protocol):
    """A manifest gate or a recorded gate row: what the primary metric is read from."""

    @property
    def kind(self) -> str: ...
    @property
    def role(self) -> str: ...
    @property
    def metric(self) -> str | None: ...


def primary_metric(gates: Iterable[GateLike], k: int) -> str:
    """The run's primary metric: the first non-advisory comparison gate's metric, else nDCG@K."""
    named = next((g.metric for g in gates if g.kind in COMPARISON_KINDS and g.role != ADVISORY and g.metric), None)
    return named or PRIMARY.at(k)


@dataclass(frozen=True)
class Family:
    """One partition of users into cohorts: user_id -> cohort label."""

    name: str
    labels: Mapping[str, str]


@dataclass(frozen=True)
class Finding:
    family: str
    cohort: str
    n: int
    control: float
    candidate: float
    delta: float
    interval: tuple[float, float]
    interval_adjusted: tuple[float, float]
    p_value: float
    p_adjusted: float
    exploratory: bool


@dataclass(frozen=True)
class CohortReport:
    metric: str
    min_users: int
    tested: int  # cohorts with at least min_users users
    too_small: int  # cohorts below min_users, not tested
    correction: str
    confidence: float
    worst: list[Finding]  # up to WORST_SHOWN tested cohorts, lowest delta first


def _activity_labels(counts: Mapping[str, int], users: Sequence[str]) -> dict[str, str]:
    """Decile d (1 = fewest events) of each user: 1 + floor(10 * users with strictly fewer events / n)."""
    values = np.array([counts.get(u, 0) for u in users], dtype=np.int64)
    if not values.size:
        return {}
    ordered = np.sort(values)
    decile = 1 + (DECILES * np.searchsorted(ordered, values, side="left")) // values.size
    ranges = {int(d): (int(values[decile == d].min()), int(values[decile == d].max())) for d in np.unique(decile)}

    def label(d: int) -> str:
        low, high = ranges[d]
        span = f"{low} event{'s' if low != 1 else ''}" if low == high else f"{low}–{high} events"
        return f"decile {d} ({span})"

    return {u: label(int(d)) for u, d in zip(users, decile.tolist(), strict=True)}


def user_history(events: pa.Table, items: pa.Table, cutoff: datetime) -> pa.Table:
    """(user_id, events, top_category), users sorted, of every user with an event before `cutoff` in the slice's
    `events`: the number of those events, and the category of most of them (ties: the smallest name; null when
    none of their items has a category). The slice step writes it (slice/user_history.parquet), so the evaluate
    step reads a row per user instead of every event."""
    times = events.column("event_time")
    before = events.select(["user_id", "item_id"]).filter(pc.less(times, pa.scalar(cutoff, type=times.type)))
    users = pc.dictionary_encode(before.column("user_id").combine_chunks())
    user = np.asarray(users.indices.to_numpy(zero_copy_only=False), dtype=np.int64)
    n_users = len(users.dictionary)
    names = pc.unique(items.column("category").drop_null().combine_chunks())
    names = names.take(pc.sort_indices(names))  # codes in name order: the first maximum is the smallest name
    item_category = pc.fill_null(pc.index_in(items.column("category"), value_set=names), -1).to_numpy()
    position = pc.index_in(before.column("item_id"), value_set=items.column("item_id").combine_chunks())
    found = pc.is_valid(position).to_numpy(zero_copy_only=False)
    category = np.full(user.size, -1, dtype=np.int64)
    category[found] = item_category[position.filter(found).to_numpy()]
    width = max(len(names), 1)  # one empty column when no item has a category
    known = category >= 0
    per_category = np.bincount(user[known] * width + category[known], minlength=n_users * width)
    per_category = per_category.reshape(n_users, width)
    labels = names.to_pylist()
    top = [labels[code] if most else None
           for code, most in zip(per_category.argmax(axis=1).tolist(), per_category.max(axis=1).tolist(), strict=True)]
    table = pa.table({"user_id": users.dictionary.cast(pa.string()),
                      "events": pa.array(np.bincount(user, minlength=n_users), pa.int64()),
                      "top_category": pa.array(top, pa.string())})
    return table.take(pc.sort_indices(table.column("user_id")))


def families(history: pa.Table, users: Sequence[str], strata: Mapping[str, str] | None) -> list[Family]:
    """The cohort families of `users` from the slice's `user_history` and its strata."""
    ids = [str(u) for u in history.column("user_id").to_pylist()]
    counts = dict(zip(ids, history.column("events").to_pylist(), strict=True))
    top = {u: str(c) for u, c in zip(ids, history.column("top_category").to_pylist(), strict=True) if c is not None}
    out = [Family("stratum", {u: strata[u] for u in users if u in strata})] if strata else []
    out.append(Family("activity", _activity_labels(counts, users)))
    out.append(Family("tenure", {u: RETURNING if counts.get(u, 0) else NEW for u in users}))
    out.append(Family("top_category", {u: top.get(u, NO_HISTORY) for u in users}))
    return out


def _two_sided(rejects: Callable[[float], bool]) -> Callable[[float], bool]:
    """A one-sided p-value's test as the two-sided test (p = 2 x the smaller tail) of the corrected family."""
    return lambda p: rejects(min(1.0, 2.0 * p))


@dataclass(frozen=True)
class CohortDomains:
    """Every cohort of at least `min_users` users as index arrays into the paired sample, keyed
    "<family>\x1f<cohort>", and how many cohorts were too small to test."""

    rows: dict[str, np.ndarray]
    too_small: int
    min_users: int


def cohort_domains(users: Sequence[str], cohort_families: Sequence[Family], min_users: int) -> CohortDomains:
    """The cohorts to test: `users` are the paired sample's users, in its row order."""
    position = {u: i for i, u in enumerate(users)}
    rows: dict[str, np.ndarray] = {}
    too_small = 0
    for family in cohort_families:
        members: dict[str, list[int]] = {}
        for user, label in family.labels.items():
            if user in position:
                members.setdefault(label, []).append(position[user])
        for label in sorted(members):
            if len(members[label]) >= max(min_users, 2):
                rows[f"{family.name}\x1f{label}"] = np.sort(np.asarray(members[label], dtype=np.int64))
            else:
                too_small += 1
    return CohortDomains(rows, too_small, min_users)


def worst_cohorts(deltas: Mapping[str, stats.DomainDelta], metric: str, domains: CohortDomains, *,
                  confidence: float, correction: stats.Correction) -> CohortReport:
    """Test every cohort's paired delta of `metric` (one column of `deltas`, from stats.compare_strata_and_domains
    on `domains`) and keep the worst (module docstring)."""
    alpha = 1.0 - confidence
    keys = list(deltas)
    p_values = [float(stats.two_sided_p(deltas[key].delta)[0]) for key in keys]
    finite = [p if math.isfinite(p) else 1.0 for p in p_values]
    adjusted = stats.adjust_p_values(finite, correction)

    def delta_of(index: int) -> float:
        value = float(deltas[keys[index]].delta.estimate[0])
        return value if math.isfinite(value) else math.inf

    # only the shown cohorts need their corrected interval (a 128-step inversion each): rank first, then invert
    order = sorted(range(len(keys)), key=lambda i: (delta_of(i), *keys[i].split("\x1f", 1)))
    found = []
    for index in order[:WORST_SHOWN]:
        key, p, p_adj, cmp = keys[index], p_values[index], adjusted[index], deltas[keys[index]]
        lo, hi = bca_interval(cmp.delta, alpha / 2.0)
        two_sided = _two_sided(family_rejects(finite, index, correction, alpha))
        lo_adj, hi_adj = inverted_interval(cmp.delta, two_sided, two_sided)
        family_name, _, label = key.partition("\x1f")
        found.append(Finding(family_name, label, cmp.n, float(cmp.control[0]), float(cmp.candidate[0]),
                             float(cmp.delta.estimate[0]), (float(lo[0]), float(hi[0])), (lo_adj, hi_adj), p,
                             float(p_adj), not p_adj <= alpha))
    return CohortReport(metric, domains.min_users, len(keys), domains.too_small, correction, confidence,
                        found)
