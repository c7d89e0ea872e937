"""Catalogue what-ifs: perturb the catalogue a run scores against, and summarise how each model responds.

Two perturbations, both applied at scoring time with history and labels unchanged:
- cold_start_items: N new items with no events. Each takes a category drawn in proportion to the
  catalogue's items per category and the price of a random item of that category (seeded). They enter every
  user's candidates the way a retailer launches items — as category candidates (source 1) of the user's top
  three categories — so the models must rank items they know nothing about but category and price.
- price_shift: the catalogue price of every item of one category multiplied by (1 + fraction).

Exposure: `new_item_share@k` is the share of top-k slots held by injected items; `affected_item_share@k`
the share held by the scenario's affected items (the injected items, or the shifted category's items).
A model degrades more gracefully when its mean relative change of the primary metric (nDCG@k) over the
scenarios is larger (less negative) by at least 0.1 percentage points; closer than that is a tie (null).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from testbed.core import metrics
from testbed.core.ranking_data import SOURCE_STRIDE
from testbed.core.ranking_session import RankingSession
from testbed.core.roles import ROLES

COLD_PREFIX = "whatif-cold-"
COLD_PRIORITY = SOURCE_STRIDE + SOURCE_STRIDE // 2  # candidate source 1, after any real category candidate
GRACEFUL_TIE = 1e-3


def cold_start_items(items: pa.Table, count: int, rng: np.random.Generator) -> pa.Table:
    """`count` new catalogue rows (item_id, category, price; other columns null) drawn from `items`."""
    if count < 1:
        raise ValueError("count must be at least 1")
    if items.num_rows == 0:
        raise ValueError("the catalogue is empty: no category to draw cold-start items from")
    categories = np.asarray(items.column("category").to_pylist(), dtype=object)
    prices = items.column("price").to_numpy(zero_copy_only=False).astype(np.float64)
    names, counts = np.unique(categories.astype(str), return_counts=True)
    drawn = rng.choice(len(names), size=count, p=counts / counts.sum())
    picked_prices = np.empty(count)
    for i, code in enumerate(drawn):  # one draw per new item (count is small: a what-if, not a dataset)
        pool = prices[categories.astype(str) == names[code]]
        picked_prices[i] = rng.choice(pool)
    rows = pa.table({
        "item_id": pa.array([f"{COLD_PREFIX}{i + 1:05d}" for i in range(count)], pa.string()),
        "category": pa.array(names[drawn].tolist(), pa.string()),
        "price": pa.array(picked_prices, pa.float64()),
    })
    return pa.concat_tables([items, rows], promote_options="default").select(items.column_names)


def shift_prices(items: pa.Table, category: str, fraction: float) -> pa.Table:
    """The catalogue with the prices of `category` multiplied by (1 + fraction), rounded to cents."""
    if not fraction > -1:
        raise ValueError("fraction must be greater than -1")
    hit = pc.equal(items.column("category"), category)
    if not pc.any(hit).as_py():
        raise ValueError(f"no item in category {category!r}")
    shifted = pc.round(pc.multiply(items.column("price").cast(pa.float64()), 1.0 + fraction), 2)
    price = pc.if_else(hit, shifted, items.column("price").cast(pa.float64()))
    return items.set_column(items.schema.get_field_index("price"), "price", price)


def pick_users(users: list[str], limit: int, rng: np.random.Generator) -> list[str]:
    """At most `limit` of the users, chosen uniformly without replacement; sorted."""
    ordered = sorted(users)
    if len(ordered) <= limit:
        return ordered
    return sorted(ordered[i] for i in rng.choice(len(ordered), size=limit, replace=False))


def add_cold_candidates(session: RankingSession, cold_ids: list[str]) -> int:
    """Append the cold items of each scored user's top categories to the session's candidates, as category
    candidates after any real one; returns rows added. The session's `items` must hold the cold items."""
    return session.add_category_candidates(cold_ids, COLD_PRIORITY)


def exposure_share(rankings: pa.Table, k: int, items: set[str]) -> dict[str, float]:
    """Per model: share of its top-k slots held by `items` (0.0 for a model with no slots)."""
    out = {}
    top = rankings.filter(pc.less_equal(rankings.column("rank"), k))
    for model in sorted(set(top.column("model").to_pylist())):
        rows = top.filter(pc.equal(top.column("model"), model))
        hits = pc.sum(pc.is_in(rows.column("item_id"), value_set=pa.array(sorted(items), pa.string()))).as_py()
        out[model] = float(hits or 0) / rows.num_rows if rows.num_rows else 0.0
    return out


def summarise(rankings: pa.Table, labels: pa.Table, k: int, *, catalogue_size: int,
              new_items: set[str], affected: set[str]) -> dict[str, dict[str, Any]]:
    """Per model: the run's metrics at k, coverage, and the exposure of new and affected items."""
    per_user = metrics.per_user_metrics(rankings, labels, k)
    summary = metrics.aggregate(per_user, rankings, k, catalogue_size)["models"]
    new_share = exposure_share(rankings, k, new_items)
    affected_share = exposure_share(rankings, k, affected)
    return {role: {**summary.get(role, {}).get("all", {}), f"new_item_share@{k}": new_share.get(role, 0.0),
                   f"affected_item_share@{k}": affected_share.get(role, 0.0)} for role in ROLES}


def deltas(scenario: Mapping[str, float | int | None], baseline: Mapping[str, float | int | None]) -> dict[str, float]:
    """Scenario minus baseline for every numeric metric both have (the `users` count excluded)."""
    out = {}
    for name, value in scenario.items():
        base = baseline.get(name)
        if name == "users" or value is None or base is None:
            continue
        if isinstance(value, int | float) and isinstance(base, int | float) and np.isfinite([value, base]).all():
            out[name] = float(value) - float(base)
    return out


def more_graceful(relative_changes: Mapping[str, list[float]],
                  tie: float = GRACEFUL_TIE) -> tuple[str | None, dict[str, float | None]]:
    """(the model whose primary metric changed least for the worse, mean relative change per model).

    None when a model has no data or the two means are within `tie` (0.1% of the baseline metric by
    default): a difference that small is no evidence either way.
    """
    means: dict[str, float | None] = {m: float(np.mean(v)) if v else None for m, v in relative_changes.items()}
    known = {m: v for m, v in means.items() if v is not None and np.isfinite(v)}
    if len(known) < 2:
        return None, means
    ordered = sorted(known.items(), key=lambda kv: kv[1], reverse=True)
    if ordered[0][1] - ordered[1][1] < tie:
        return None, means
    return ordered[0][0], means
