"""The slice's tables as the slice step writes them: stratum labels, one event_time type, masked PII, and the
per-stratum counts of stats.json."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from testbed.core.pii import mask_column


def stratum_labels(users: pa.Table, strata: list[str]) -> pa.Array:
    """'col=value|col2=value' per user, or 'all' when the manifest names no strata."""
    if not strata:
        return pa.array(["all"] * users.num_rows, pa.string())
    parts = [pc.binary_join_element_wise(f"{c}=", pc.fill_null(users.column(c).cast(pa.string()), "null"), "")
             for c in strata]
    return pc.binary_join_element_wise(*parts, "|") if len(parts) > 1 else parts[0]


def normalise_events(events: pa.Table) -> pa.Table:
    """event_time as timestamp[us, UTC], so every later step sees one type whatever the lake used."""
    index = events.schema.get_field_index("event_time")
    return events.set_column(index, "event_time", events.column(index).cast(pa.timestamp("us", tz="UTC")))


def touched_items(catalogue: pa.Table, *item_ids: pa.ChunkedArray) -> pa.Table:
    """The catalogue rows whose item_id is among `item_ids` (a null id matches nothing, as in SQL's IN), in the
    catalogue's order."""
    wanted = pa.chunked_array([c for ids in item_ids for c in ids.chunks], catalogue.schema.field("item_id").type)
    keep = pc.is_in(catalogue.column("item_id"), value_set=pc.unique(wanted).drop_null(), skip_nulls=True)
    return catalogue.filter(keep)


def mask(tables: dict[str, pa.Table], columns: list[str], secret: bytes) -> dict[str, pa.Table]:
    """Every table with the named PII columns it has replaced by their keyed hashes (testbed.core.pii)."""
    out = {}
    for name, table in tables.items():
        masked = table
        for column in columns:
            if column in masked.column_names:
                masked = mask_column(masked, column, secret)
        out[name] = masked
    return out


def stratum_stats(users: pa.Table, events: pa.Table, population: pa.Table, strata: list[str]) -> dict[str, Any]:
    """Per stratum: sampled users and their events, and the population's eligible and expected users."""
    per_user_events = events.group_by("user_id").aggregate([("event_id", "count")])
    counts = dict(zip(per_user_events.column("user_id").to_pylist(),
                      per_user_events.column("event_id_count").to_pylist(), strict=True))
    out: dict[str, dict[str, Any]] = {}
    for user, stratum in zip(users.column("user_id").to_pylist(), users.column("stratum").to_pylist(), strict=True):
        row = out.setdefault(stratum, {"users": 0, "events": 0})
        row["users"] += 1
        row["events"] += counts.get(user, 0)
    labels = stratum_labels(population, strata).to_pylist()
    for label, row in zip(labels, population.to_pylist(), strict=True):
        target = out.setdefault(label, {"users": 0, "events": 0})
        target["eligible_users"] = row["_tb_eligible_users"]
        target["expected_users"] = round(float(row["_tb_expected_users"] or 0.0), 6)
    return dict(sorted(out.items()))
