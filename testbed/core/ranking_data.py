"""Candidates and the model inputs — the same definitions for training and for a run.

testbed.core.ranking_session builds both (and the labels) in DuckDB. Candidates use pre-cutoff data only,
in priority order:
1. the user's own recent items (most recent first, at most half the list),
2. the most popular items of the user's top three categories,
3. the globally most popular items, until `n` candidates.
Popularity counts events in the 30 days before the cutoff. Ties break by item_id, so lists are deterministic.
"""

from __future__ import annotations

POPULARITY_DAYS = 30
TOP_CATEGORIES = 3
SOURCE_STRIDE = 1_000_000  # priority = source * stride + position


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
