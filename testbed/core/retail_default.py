"""The testbed's built-in model inputs as a declared feature set: the default of the demo and `testbed train`.

Base aggregations carry the counts and recencies; derived features rebuild today's names and arithmetic
exactly: a share is a count over the global count (null when that is 0), a conversion is purchases over
views + 1.0, recency aggregations span the longest window (the old pre-cutoff events). The rendering for
7/30/90 days ships as testbed/feature_sets/retail-default.yaml.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from testbed.core.feature_spec import Aggregation, Attribute, Context, Derived, FeatureSet

DEFAULT_WINDOWS = [7, 30, 90]
SHIPPED = Path(__file__).resolve().parent.parent / "feature_sets" / "retail-default.yaml"
HEADER = ("# The testbed's built-in model inputs as a feature set (schemas/feature-set.schema.json).\n"
          "# Written by testbed.core.retail_default.feature_set_yaml(retail_default([7, 30, 90])); do not edit.\n")
_COUNTED = {"views": "view", "carts": "add_to_cart", "purchases": "purchase"}
_PREFIX_KEYS = {"u": ["user_id"], "i": ["item_id"], "g": [], "uc": ["user_id", "item.category"],
                "ui": ["user_id", "item_id"]}


def _count(prefix: str, label: str, window: str) -> dict[str, Any]:
    return {"name": f"{prefix}_{label}_{window}", "keys": _PREFIX_KEYS[prefix], "operation": "count",
            "window": window, "events": [_COUNTED[label]]}


def retail_default(windows_days: list[int]) -> FeatureSet:
    """Today's model inputs over the given windows (days), with today's names."""
    longest = f"{max(windows_days)}d"
    aggregations: list[dict[str, Any]] = []
    derived: list[tuple[str, str]] = []
    for days in windows_days:
        w = f"{days}d"
        aggregations += [_count("u", label, w) for label in ("views", "carts", "purchases")]
        aggregations += [_count(prefix, label, w) for prefix in ("i", "g") for label in ("views", "purchases")]
        aggregations += [_count("uc", "views", w), _count("uc", "purchases", w),
                         {"name": f"uc_revenue_{w}", "keys": _PREFIX_KEYS["uc"], "operation": "sum",
                          "input": "revenue", "window": w, "events": ["purchase"]}]
        derived += [
            (f"i_view_share_{w}", f"i_views_{w} / g_views_{w}"),
            (f"i_purchase_share_{w}", f"i_purchases_{w} / g_purchases_{w}"),
            (f"i_conversion_{w}", f"i_purchases_{w} / (i_views_{w} + 1.0)"),
            (f"uc_view_share_{w}", f"uc_views_{w} / u_views_{w}"),
            (f"u_events_{w}", f"u_views_{w} + u_carts_{w} + u_purchases_{w}"),
        ]
    inputs = [f"{name}_{days}d" for days in windows_days for name in (
        "i_view_share", "i_purchase_share", "i_conversion", "uc_view_share", "uc_purchases", "uc_revenue", "u_events")]
    inputs += ["i_days_since_last_event", "i_price", "uc_days_since_last_event", "u_days_since_last_purchase",
               "ui_events", "ui_purchases", "ui_days_since_last_event", "candidate_source"]
    recency = {"operation": "days_since_last", "window": longest}
    aggregations += [
        {"name": "i_days_since_last_event", "keys": _PREFIX_KEYS["i"], **recency},
        {"name": "uc_days_since_last_event", "keys": _PREFIX_KEYS["uc"], **recency},
        {"name": "u_days_since_last_purchase", "keys": _PREFIX_KEYS["u"], "events": ["purchase"], **recency},
        {"name": "ui_events", "keys": _PREFIX_KEYS["ui"], "operation": "count", "window": longest},
        {"name": "ui_purchases", "keys": _PREFIX_KEYS["ui"], "operation": "count", "window": longest,
         "events": ["purchase"]},
        {"name": "ui_days_since_last_event", "keys": _PREFIX_KEYS["ui"], **recency},
    ]
    return FeatureSet(
        name="retail-default",
        description=f"The testbed's built-in ranking features over {', '.join(f'{d}d' for d in windows_days)} "
                    "windows (testbed.core.retail_default).",
        aggregations=[Aggregation.model_validate(a) for a in aggregations],
        attributes=[Attribute(name="i_price", entity="item", column="price")],
        derived=[Derived(name=name, expr=expr) for name, expr in derived],
        context=[Context(name="candidate_source", value="candidate_source")],
        inputs=inputs,  # what `testbed train` trains on, in the order the built-in models were trained
    )


def feature_set_yaml(spec: FeatureSet) -> str:
    """The set as a feature set file: declaration order kept, defaults but the version left out."""
    data = {"version": spec.version, **spec.model_dump(mode="json", exclude_defaults=True)}
    return HEADER + yaml.safe_dump(data, sort_keys=False, width=120, allow_unicode=True, default_flow_style=None)
