"""What this lake cannot measure: `testbed validate --lake` lists, one line each, the metrics, features and gates
a run on it cannot compute, and why (a lake without prices, without events of a graded type, without conversions
or clicks in the label window, with return lines; a vocabulary that declares no conversion or no click type).
None of them rejects the lake: the run goes ahead and its gates say the same in their reasons
(testbed.pipeline.gate unestimable). Revenue-based KPIs follow revenue: aov@K (revenue per converting user) cannot
be estimated when revenue@K cannot, nor when conversion@K cannot (no conversion line in the label window);
click_through@K needs a click-type event in the label window. Conversions, clicks and grades are the manifest's
declared event types (testbed.core.event_types)."""

from __future__ import annotations

from collections.abc import Iterable

from testbed.adapters.engines import Engine
from testbed.core.event_types import DeclaredType, EventVocabulary, type_in_sql
from testbed.core.feature_spec import REVENUE, FeatureSet
from testbed.core.gates import STATISTICAL_KINDS
from testbed.core.lake_contract import click_sql, conversion_line_sql
from testbed.core.metrics import AOV, CLICK_THROUGH, CONVERSION, metric_named
from testbed.core.slice_sql import window_predicate
from testbed.manifest import Manifest

PRICE_INPUTS = ("price", REVENUE)  # aggregation inputs that read events.price (revenue: price x quantity)


def _graded(vocabulary: EventVocabulary) -> list[DeclaredType]:
    """The graded types whose absence is its own line, highest grade first (a click type's is the click line)."""
    return sorted((t for t in vocabulary.types if t.relevance > 0 and not t.click), key=lambda t: -t.relevance)


def _counts(engine: Engine, manifest: Manifest, vocabulary: EventVocabulary) -> dict[str, int]:
    window = window_predicate("e", manifest.time.start, manifest.time.end)
    labels = window_predicate("e", manifest.time.cutoff, manifest.time.end)
    conversion = type_in_sql("e.event_type", vocabulary.conversions)
    per_type = "".join(f",\n       COUNT(*) FILTER (WHERE e.event_type = '{t.name}') AS type_{i}"
                       for i, t in enumerate(_graded(vocabulary)))
    events = engine.query(f"""
SELECT COUNT(*) FILTER (WHERE e.price IS NOT NULL) AS priced_events,
       COUNT(*) FILTER (WHERE {conversion} AND coalesce(e.quantity, 1) <= 0) AS returns,
       COUNT(*) FILTER (WHERE {labels} AND {conversion} AND e.price IS NOT NULL
                        AND coalesce(e.quantity, 1) > 0) AS paid_label_purchases,
       COUNT(*) FILTER (WHERE {labels} AND {conversion_line_sql('e', vocabulary)}) AS label_purchases,
       COUNT(*) FILTER (WHERE {labels} AND {click_sql('e', vocabulary)}) AS label_clicks{per_type}
FROM events e WHERE {window}""").to_pylist()[0]
    items = engine.query("SELECT COUNT(*) FILTER (WHERE price IS NOT NULL) AS priced_items FROM items").to_pylist()[0]
    return {k: int(v or 0) for k, v in {**events, **items}.items()}


def _gates_on(manifest: Manifest, metrics: Iterable[str]) -> list[str]:
    names = set(metrics)
    return [g.name for g in manifest.gates
            if g.kind in STATISTICAL_KINDS and g.metric is not None and metric_named(g.metric).name in names]


def _features(sets: Iterable[FeatureSet], reads: str) -> list[str]:
    """Aggregations that read prices (`price`) or keep only the event type `reads`."""
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
    named = [f"{m}@{k}" for m in metrics]
    listed = f"{', '.join(named[:-1])} and {named[-1]}" if len(named) > 1 else "".join(named)
    parts = [f"{listed} cannot be estimated"] if metrics else []
    gates = _gates_on(manifest, metrics)
    if gates:
        parts.append(f"gate{'s' if len(gates) > 1 else ''} {', '.join(gates)} will be INCONCLUSIVE")
    if features:
        parts.append(f"feature{'s' if len(features) > 1 else ''} {', '.join(features)} will be {empty}")
    return "; ".join(parts)


def lake_limitations(engine: Engine, manifest: Manifest, sets: Iterable[FeatureSet]) -> list[str]:
    """One line per thing this lake cannot measure for this manifest (empty: it can measure everything)."""
    vocabulary = manifest.evaluation.vocabulary()
    counts, specs = _counts(engine, manifest, vocabulary), list(sets)
    conversions = "/".join(vocabulary.conversions)
    lines = []
    if counts["priced_events"] == 0:
        where = "items.price and events.price are all null" if counts["priced_items"] == 0 else \
            "events.price is null on every event of the window; revenue is events.price x quantity"
        lines.append(f"the lake has no prices ({where}): "
                     + _consequences(manifest, [REVENUE, AOV.name], _features(specs, "price"), "all zero or empty"))
    elif conversions and counts["paid_label_purchases"] == 0:
        lines.append(f"no {conversions} in the label window has a price and a quantity above 0: "
                     + _consequences(manifest, [REVENUE, AOV.name], [], ""))
    for i, declared in enumerate(_graded(vocabulary)):
        if counts[f"type_{i}"] == 0:
            features = _features(specs, declared.name)
            lines.append(f"the lake has no {declared.name} events in the window: {declared.name} grades no label"
                         + (f"; {_consequences(manifest, [], features, 'all zero')}" if features else ""))
    if not conversions:
        lines.append("evaluation.event_types declares no conversion: nobody converts and nothing carries revenue; "
                     + _consequences(manifest, [REVENUE, CONVERSION.name, AOV.name], [], ""))
    elif counts["label_purchases"] == 0:
        lines.append(f"no {conversions} line with a quantity above 0 in the label window: nobody converts; "
                     + _consequences(manifest, [CONVERSION.name, AOV.name], [], ""))
    if not vocabulary.clicks:
        lines.append("evaluation.event_types declares no click type: "
                     + _consequences(manifest, [CLICK_THROUGH.name], [], ""))
    elif counts["label_clicks"] == 0:
        lines.append(f"no click event ({', '.join(vocabulary.clicks)}) in the label window: "
                     + _consequences(manifest, [CLICK_THROUGH.name], [], ""))
    if counts["returns"]:
        lines.append(f"{counts['returns']} {conversions} lines with quantity <= 0 (returns) in the window: ignored "
                     "for labels and revenue")
    return lines
