"""What this lake cannot measure: `testbed validate --lake` lists, one line each, the metrics, features and gates
a run on it cannot compute, and why (a lake without prices, without purchase or add_to_cart events, without
purchases or clicks in the label window, with return lines). None of them rejects the lake: the run goes ahead
and its gates say the same in their reasons (testbed.pipeline.gate unestimable). Revenue-based KPIs follow
revenue: aov@K (revenue per converting user) cannot be estimated when revenue@K cannot, nor when conversion@K
cannot (no purchase line in the label window); click_through@K needs a click-type event in the label window."""

from __future__ import annotations

from collections.abc import Iterable

from testbed.adapters.engines import Engine
from testbed.core.feature_spec import REVENUE, FeatureSet
from testbed.core.gates import STATISTICAL_KINDS
from testbed.core.lake_contract import CLICK_EVENT_TYPES, click_sql, purchase_line_sql
from testbed.core.metrics import AOV, CLICK_THROUGH, CONVERSION, metric_named
from testbed.core.slice_sql import window_predicate
from testbed.manifest import Manifest

PRICE_INPUTS = ("price", REVENUE)  # aggregation inputs that read events.price (revenue: price x quantity)


def _counts(engine: Engine, manifest: Manifest) -> dict[str, int]:
    window = window_predicate("e", manifest.time.start, manifest.time.end)
    labels = window_predicate("e", manifest.time.cutoff, manifest.time.end)
    events = engine.query(f"""
SELECT COUNT(*) FILTER (WHERE e.price IS NOT NULL) AS priced_events,
       COUNT(*) FILTER (WHERE e.event_type = 'purchase') AS purchases,
       COUNT(*) FILTER (WHERE e.event_type = 'add_to_cart') AS carts,
       COUNT(*) FILTER (WHERE e.event_type = 'purchase' AND coalesce(e.quantity, 1) <= 0) AS returns,
       COUNT(*) FILTER (WHERE {labels} AND e.event_type = 'purchase' AND e.price IS NOT NULL
                        AND coalesce(e.quantity, 1) > 0) AS paid_label_purchases,
       COUNT(*) FILTER (WHERE {labels} AND {purchase_line_sql('e')}) AS label_purchases,
       COUNT(*) FILTER (WHERE {labels} AND {click_sql('e')}) AS label_clicks
FROM events e WHERE {window}""").to_pylist()[0]
    items = engine.query("SELECT COUNT(*) FILTER (WHERE price IS NOT NULL) AS priced_items FROM items").to_pylist()[0]
    return {k: int(v or 0) for k, v in {**events, **items}.items()}


def _gates_on(manifest: Manifest, metrics: Iterable[str]) -> list[str]:
    names = set(metrics)
    return [g.name for g in manifest.gates
            if g.kind in STATISTICAL_KINDS and g.metric is not None and metric_named(g.metric).name in names]


def _features(sets: Iterable[FeatureSet], reads: str) -> list[str]:
    """Aggregations that read prices (`price`) or keep only one event type (`add_to_cart`, `purchase`)."""
    names: list[str] = []
    for spec in sets:
        for agg in spec.aggregations:
            if reads == "price":
                hit = agg.input in PRICE_INPUTS or any(f.column == "price" for f in agg.where)
            else:
                hit = bool(agg.events) and set(agg.events) <= {reads}
            if hit and agg.name not in names:
                names.append(agg.name)
        if reads == "price":
            names += [a.name for a in spec.attributes if a.entity == "item" and a.column == "price"
                      and a.name not in names]
    return names


def _consequences(manifest: Manifest, metrics: list[str], features: list[str], empty: str) -> str:
    k = manifest.evaluation.k
    parts = [f"{' and '.join(f'{m}@{k}' for m in metrics)} cannot be estimated"] if metrics else []
    gates = _gates_on(manifest, metrics)
    if gates:
        parts.append(f"gate{'s' if len(gates) > 1 else ''} {', '.join(gates)} will be INCONCLUSIVE")
    if features:
        parts.append(f"feature{'s' if len(features) > 1 else ''} {', '.join(features)} will be {empty}")
    return "; ".join(parts)


def lake_limitations(engine: Engine, manifest: Manifest, sets: Iterable[FeatureSet]) -> list[str]:
    """One line per thing this lake cannot measure for this manifest (empty: it can measure everything)."""
    counts, specs = _counts(engine, manifest), list(sets)
    lines = []
    if counts["priced_events"] == 0:
        where = "items.price and events.price are all null" if counts["priced_items"] == 0 else \
            "events.price is null on every event of the window; revenue is events.price x quantity"
        lines.append(f"the lake has no prices ({where}): "
                     + _consequences(manifest, [REVENUE, AOV.name], _features(specs, "price"), "all zero or empty"))
    elif counts["paid_label_purchases"] == 0:
        lines.append("no purchase in the label window has a price and a quantity above 0: "
                     + _consequences(manifest, [REVENUE, AOV.name], [], ""))
    if counts["purchases"] == 0:
        features = _features(specs, "purchase")
        lines.append("the lake has no purchase events in the window: purchases grade no label"
                     + (f"; {_consequences(manifest, [], features, 'all zero')}" if features else ""))
    if counts["carts"] == 0:
        features = _features(specs, "add_to_cart")
        lines.append("the lake has no add_to_cart events in the window: add_to_cart grades no label"
                     + (f"; {_consequences(manifest, [], features, 'all zero')}" if features else ""))
    if counts["label_purchases"] == 0:
        lines.append("no purchase line with a quantity above 0 in the label window: nobody converts; "
                     + _consequences(manifest, [CONVERSION.name, AOV.name], [], ""))
    if counts["label_clicks"] == 0:
        lines.append(f"no click event ({', '.join(CLICK_EVENT_TYPES)}) in the label window: "
                     + _consequences(manifest, [CLICK_THROUGH.name], [], ""))
    if counts["returns"]:
        lines.append(f"{counts['returns']} purchase lines with quantity <= 0 (returns) in the window: ignored for "
                     "labels and revenue")
    return lines
