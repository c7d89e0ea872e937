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

import duckdb
import numpy as np
import pyarrow as pa

from testbed.core import stats
from testbed.core.bootstrap import bca_interval
from testbed.core.duck import fetch
from testbed.core.feature_spec import epoch_us
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


_HISTORY_SQL = """
WITH history AS (
    SELECT e.user_id, i.category FROM events e LEFT JOIN items i USING (item_id)
    WHERE epoch_us(e.event_time) < $cutoff_us
), per_category AS (
    SELECT user_id, category, count(*) AS n FROM history WHERE category IS NOT NULL GROUP BY user_id, category
)
SELECT h.user_id, h.events, t.category AS top_category
FROM (SELECT user_id, count(*) AS events FROM history GROUP BY user_id) h
LEFT JOIN (SELECT user_id, arg_min(category, (-n, category)) AS category FROM per_category GROUP BY user_id) t
USING (user_id)"""


def families(events: pa.Table, items: pa.Table, users: Sequence[str], cutoff: datetime,
             strata: Mapping[str, str] | None) -> list[Family]:
    """The cohort families of `users` from the slice's events (pre-cutoff rows only) and its catalogue."""
    con = duckdb.connect()
    try:
        con.register("events", events.select(["user_id", "item_id", "event_time"]))
        con.register("items", items.select(["item_id", "category"]))
        history = fetch(con, _HISTORY_SQL.replace("$cutoff_us", str(epoch_us(cutoff))))
    finally:
        con.close()
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
