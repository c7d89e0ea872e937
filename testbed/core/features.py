"""Batch features as of the cutoff over 7/30/90-day windows, for users, items and user×category.

Point-in-time correct by construction: every query reads only events with event_time < cutoff, and each
window w covers [cutoff - w days, cutoff). Revenue is summed in integer cents (round(price × quantity × 100))
so sums are exact and identical on every engine and in the stream fold. Recency is days from the last event
before the cutoff to the cutoff, computed from integer microseconds.

The functions take a DuckDB connection on which `events` is a relation of the slice's events (any superset
is fine: the cutoff filter is applied here).
"""

from __future__ import annotations

from datetime import datetime

import duckdb
import pyarrow as pa

from testbed.core.duck import fetch
from testbed.core.lake_contract import revenue_cents_sql

EVENT_TYPES = {"view": "views", "add_to_cart": "carts", "purchase": "purchases"}
US_PER_DAY = 86_400_000_000

ENTITY_KEYS = {"user": ["user_id"], "item": ["item_id"], "user_category": ["user_id", "category"]}
PREFIX = {"user": "u", "item": "i", "user_category": "uc"}


def epoch_us(value: datetime) -> int:
    return int(value.timestamp()) * 1_000_000 + value.microsecond


def feature_columns(entity: str, windows: list[int]) -> list[str]:
    """Names of the feature columns for an entity, in table order (keys excluded)."""
    prefix = PREFIX[entity]
    names = [f"{prefix}_{label}_{w}d" for w in windows for label in (*EVENT_TYPES.values(), "revenue")]
    return [*names, f"{prefix}_days_since_last_event", f"{prefix}_days_since_last_purchase"]


def _aggregates(prefix: str, windows: list[int], cutoff_us: int) -> str:
    parts = []
    for w in windows:
        since = cutoff_us - w * US_PER_DAY
        for event_type, label in EVENT_TYPES.items():
            parts.append(f"COUNT(*) FILTER (WHERE event_type = '{event_type}' AND t_us >= {since}) "
                         f"AS {prefix}_{label}_{w}d")
        parts.append(f"CAST(coalesce(SUM(revenue_cents) FILTER (WHERE t_us >= {since}), 0) AS DOUBLE) / 100.0 "
                     f"AS {prefix}_revenue_{w}d")
    parts.append(f"CAST({cutoff_us} - MAX(t_us) AS DOUBLE) / {US_PER_DAY}.0 AS {prefix}_days_since_last_event")
    parts.append(f"CAST({cutoff_us} - MAX(t_us) FILTER (WHERE event_type = 'purchase') AS DOUBLE) / {US_PER_DAY}.0"
                 f" AS {prefix}_days_since_last_purchase")
    return ",\n  ".join(parts)


def prepare(con: duckdb.DuckDBPyConnection, cutoff: datetime, windows: list[int]) -> None:
    """Create `pre_events`: events before the cutoff (within the longest window) with category and cents."""
    cutoff_us = epoch_us(cutoff)
    oldest = cutoff_us - max(windows) * US_PER_DAY
    con.execute(f"""
CREATE OR REPLACE TEMP TABLE pre_events AS
SELECT e.user_id, e.item_id, e.event_type, coalesce(i.category, '') AS category,
       epoch_us(e.event_time) AS t_us, {revenue_cents_sql('e')} AS revenue_cents
FROM events e LEFT JOIN items i ON i.item_id = e.item_id
WHERE epoch_us(e.event_time) < {cutoff_us} AND epoch_us(e.event_time) >= {oldest}""")


def compute(con: duckdb.DuckDBPyConnection, entity: str, cutoff: datetime, windows: list[int]) -> pa.Table:
    """One feature table (after `prepare`), sorted by its keys."""
    keys = ", ".join(ENTITY_KEYS[entity])
    sql = (f"SELECT {keys},\n  {_aggregates(PREFIX[entity], windows, epoch_us(cutoff))}\n"
           f"FROM pre_events GROUP BY {keys} ORDER BY {keys}")
    return fetch(con, sql)


def compute_all(con: duckdb.DuckDBPyConnection, cutoff: datetime, windows: list[int]) -> dict[str, pa.Table]:
    prepare(con, cutoff, windows)
    return {entity: compute(con, entity, cutoff, windows) for entity in ENTITY_KEYS}
