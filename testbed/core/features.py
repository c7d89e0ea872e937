"""Batch features as of the cutoff over 7/30/90-day windows, for users, items and user×category.

Point-in-time correct by construction: every query reads only events with event_time < cutoff, and each
window w covers [cutoff - w days, cutoff). Revenue is summed in integer cents (round(price × quantity × 100))
so sums are exact and identical on every engine and in the stream fold. Recency is days from the last event
before the cutoff to the cutoff, computed from integer microseconds.

This module holds the names and the SQL aggregates; testbed.core.ranking_session runs them over the
slice's pre-cutoff events (any superset of the slice's events is fine: the cutoff filter is applied there).
"""

from __future__ import annotations

from datetime import datetime

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


def aggregates_sql(prefix: str, windows: list[int], cutoff_us: int) -> str:
    """The SELECT list of one entity's features over rows with event_type, t_us and revenue_cents."""
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
