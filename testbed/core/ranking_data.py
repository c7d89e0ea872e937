"""Candidates, the model input matrix and labels — the same code for training and for a run.

Candidates use pre-cutoff data only (the `pre_events` table from `features.prepare`), in priority order:
1. the user's own recent items (most recent first, at most half the list),
2. the most popular items of the user's top three categories,
3. the globally most popular items, until `n` candidates.
Popularity counts events in the 30 days before the cutoff. Ties break by item_id, so lists are deterministic.
"""

from __future__ import annotations

from datetime import datetime

import duckdb
import numpy as np
import pyarrow as pa

from testbed.core.duck import fetch
from testbed.core.features import US_PER_DAY, epoch_us
from testbed.core.lake_contract import revenue_cents_sql

POPULARITY_DAYS = 30
TOP_CATEGORIES = 3
SOURCE_STRIDE = 1_000_000  # priority = source * stride + position


def candidates(con: duckdb.DuckDBPyConnection, cutoff: datetime, n: int) -> None:
    """Create temp tables `user_item` (pre-cutoff history) and `candidates` for the users in `score_users`."""
    since = epoch_us(cutoff) - POPULARITY_DAYS * US_PER_DAY
    con.execute("""
CREATE OR REPLACE TEMP TABLE user_item AS
SELECT user_id, item_id, COUNT(*) AS ui_events, MAX(t_us) AS ui_last_us,
       COUNT(*) FILTER (WHERE event_type = 'purchase') AS ui_purchases
FROM pre_events WHERE user_id IN (SELECT user_id FROM score_users) GROUP BY user_id, item_id""")
    con.execute(f"""
CREATE OR REPLACE TEMP TABLE candidates AS
WITH popularity AS (
  SELECT item_id, category, COUNT(*) AS n FROM pre_events WHERE t_us >= {since} GROUP BY item_id, category
),
category_top AS (
  SELECT * FROM (SELECT item_id, category,
    ROW_NUMBER() OVER (PARTITION BY category ORDER BY n DESC, item_id) AS pos FROM popularity) WHERE pos <= {n}
),
global_top AS (
  SELECT * FROM (SELECT item_id, ROW_NUMBER() OVER (ORDER BY SUM(n) DESC, item_id) AS pos
                 FROM popularity GROUP BY item_id) WHERE pos <= {n}
),
user_categories AS (
  SELECT * FROM (SELECT user_id, category,
    ROW_NUMBER() OVER (PARTITION BY user_id ORDER BY COUNT(*) DESC, category) AS cat_rank
    FROM pre_events WHERE user_id IN (SELECT user_id FROM score_users) GROUP BY user_id, category)
  WHERE cat_rank <= {TOP_CATEGORIES}
),
sources AS (
  SELECT user_id, item_id, pos FROM (SELECT user_id, item_id,
    ROW_NUMBER() OVER (PARTITION BY user_id ORDER BY ui_last_us DESC, item_id) AS pos FROM user_item)
  WHERE pos <= {max(1, n // 2)}
  UNION ALL
  SELECT uc.user_id, ct.item_id, {SOURCE_STRIDE} + (ct.pos - 1) * {TOP_CATEGORIES} + uc.cat_rank
  FROM user_categories uc JOIN category_top ct ON ct.category = uc.category
  UNION ALL
  SELECT su.user_id, gt.item_id, {2 * SOURCE_STRIDE} + gt.pos FROM score_users su CROSS JOIN global_top gt
),
deduplicated AS (SELECT user_id, item_id, MIN(pos) AS priority FROM sources GROUP BY user_id, item_id)
SELECT user_id, item_id, priority FROM (
  SELECT *, ROW_NUMBER() OVER (PARTITION BY user_id ORDER BY priority, item_id) AS r FROM deduplicated)
WHERE r <= {n}""")


def model_features(windows: list[int]) -> list[tuple[str, str]]:
    """(name, SQL expression) of every model input. Shares make item signals independent of slice size."""
    out: list[tuple[str, str]] = []
    for w in windows:
        out += [
            (f"i_view_share_{w}d", f"coalesce(fi.i_views_{w}d, 0) / nullif(tot.views_{w}d, 0)"),
            (f"i_purchase_share_{w}d", f"coalesce(fi.i_purchases_{w}d, 0) / nullif(tot.purchases_{w}d, 0)"),
            (f"i_conversion_{w}d", f"coalesce(fi.i_purchases_{w}d, 0) / (coalesce(fi.i_views_{w}d, 0) + 1.0)"),
            (f"uc_view_share_{w}d", f"coalesce(fuc.uc_views_{w}d, 0) / nullif(fu.u_views_{w}d, 0)"),
            (f"uc_purchases_{w}d", f"coalesce(fuc.uc_purchases_{w}d, 0)"),
            (f"uc_revenue_{w}d", f"coalesce(fuc.uc_revenue_{w}d, 0)"),
            (f"u_events_{w}d", f"coalesce(fu.u_views_{w}d + fu.u_carts_{w}d + fu.u_purchases_{w}d, 0)"),
        ]
    out += [
        ("i_days_since_last_event", "fi.i_days_since_last_event"),
        ("i_price", "it.price"),
        ("uc_days_since_last_event", "fuc.uc_days_since_last_event"),
        ("u_days_since_last_purchase", "fu.u_days_since_last_purchase"),
        ("ui_events", "coalesce(ui.ui_events, 0)"),
        ("ui_purchases", "coalesce(ui.ui_purchases, 0)"),
        ("ui_days_since_last_event", "(:cutoff_us - ui.ui_last_us) / 86400000000.0"),
        ("candidate_source", "floor(c.priority / 1000000)"),
    ]
    return out


CONTROL_PREFIXES = ("i_",)  # the popularity-only baseline sees item features alone


def matrix(con: duckdb.DuckDBPyConnection, cutoff: datetime, windows: list[int]) -> tuple[pa.Table, list[str]]:
    """(keys table [user_id, item_id], feature names) and temp table `model_matrix`, sorted by user, item.

    Needs relations `candidates`, `user_item`, `items`, `f_user`, `f_item`, `f_user_category`.
    """
    features = model_features(windows)
    totals = ", ".join(f"SUM(i_views_{w}d) AS views_{w}d, SUM(i_purchases_{w}d) AS purchases_{w}d" for w in windows)
    exprs = ",\n  ".join(f"CAST({expr.replace(':cutoff_us', str(epoch_us(cutoff)))} AS DOUBLE) AS {name}"
                         for name, expr in features)
    con.execute(f"""
CREATE OR REPLACE TEMP TABLE model_matrix AS
WITH tot AS (SELECT {totals} FROM f_item)
SELECT c.user_id, c.item_id,
  {exprs}
FROM candidates c
JOIN items it ON it.item_id = c.item_id
CROSS JOIN tot
LEFT JOIN f_user fu ON fu.user_id = c.user_id
LEFT JOIN f_item fi ON fi.item_id = c.item_id
LEFT JOIN f_user_category fuc ON fuc.user_id = c.user_id AND fuc.category = it.category
LEFT JOIN user_item ui ON ui.user_id = c.user_id AND ui.item_id = c.item_id
ORDER BY c.user_id, c.item_id""")
    keys = fetch(con, "SELECT user_id, item_id FROM model_matrix")
    return keys, [name for name, _ in features]


def matrix_values(con: duckdb.DuckDBPyConnection, names: list[str]) -> np.ndarray:
    """The named columns of `model_matrix` as a C-contiguous float64 array (NULL → NaN)."""
    table = fetch(con, f"SELECT {', '.join(names)} FROM model_matrix")
    if not names:
        return np.empty((table.num_rows, 0))
    out = np.empty((table.num_rows, len(names)), dtype=np.float64)  # one C-ordered buffer, filled per column
    for i in range(len(names)):
        out[:, i] = table.column(i).to_numpy(zero_copy_only=False)  # NULL → NaN for doubles
    return out


def labels(con: duckdb.DuckDBPyConnection, cutoff: datetime, end: datetime, relevance: dict[str, int]) -> pa.Table:
    """user_id, item_id, relevance (max grade over the user's label-window events), revenue (purchases)."""
    grade = " ".join(f"WHEN '{event_type}' THEN {int(value)}" for event_type, value in relevance.items())
    return fetch(con, f"""
SELECT user_id, item_id, relevance, revenue FROM (
  SELECT user_id, item_id, CAST(MAX(CASE event_type {grade} ELSE 0 END) AS INTEGER) AS relevance,
         CAST(SUM({revenue_cents_sql('')}) AS DOUBLE) / 100.0 AS revenue
  FROM events WHERE epoch_us(event_time) >= {epoch_us(cutoff)} AND epoch_us(event_time) < {epoch_us(end)}
  GROUP BY user_id, item_id)
WHERE relevance > 0 OR revenue > 0
ORDER BY user_id, item_id""")
