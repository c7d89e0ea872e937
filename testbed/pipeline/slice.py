"""Step 3: select and sample the segment, keep all its events in the window, mask PII, write the slice."""

from __future__ import annotations

import hashlib
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from testbed.adapters import storage
from testbed.adapters.engines import make_engine
from testbed.core.pii import mask_column
from testbed.core.slice_sql import partition_range, render
from testbed.errors import ManifestError, QueryInputError
from testbed.manifest import Manifest
from testbed.pipeline.context import RunContext


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


def mask(tables: dict[str, pa.Table], columns: list[str], secret: bytes) -> dict[str, pa.Table]:
    out = {}
    for name, table in tables.items():
        masked = table
        for column in columns:
            if column in masked.column_names:
                masked = mask_column(masked, column, secret)
        out[name] = masked
    return out


def stratum_stats(users: pa.Table, events: pa.Table, population: pa.Table, strata: list[str]) -> dict[str, Any]:
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
        target["eligible_users"] = row["eligible_users"]
        target["expected_users"] = round(float(row["expected_users"] or 0.0), 6)
    return dict(sorted(out.items()))


def run_slice(ctx: RunContext, manifest: Manifest) -> dict[str, Any]:
    queries = render(manifest)
    engine = make_engine(ctx.invocation, ctx.lake, partition_range(manifest.time.start, manifest.time.end),
                         ctx.scratch("slice"))
    try:
        users = engine.query(queries.users, queries.params)
        events = engine.query(queries.events, queries.params)
        items = engine.query(queries.items, queries.params)
        population = engine.query(queries.population, queries.params)
        catalogue_size = engine.query("SELECT COUNT(*) FROM items").column(0)[0].as_py()
    except QueryInputError as exc:  # either engine: a filter value that does not fit its column
        raise ManifestError(f"manifest: segment.filters: a value does not fit its column "
                            f"({str(exc).splitlines()[0][:100]})") from None
    finally:
        engine.close()
    if users.num_rows == 0:
        raise ManifestError(f"manifest: segment: {manifest.segment.name!r} selects no users with at least "
                            f"{manifest.sampling.min_events_per_user} events in [time.start, time.cutoff) "
                            "after sampling; widen the filters or the window")
    if not engine.preserves_order:  # Athena's UNLOAD writes files in no particular order: same bytes everywhere
        users = users.sort_by([("user_id", "ascending")])
        events = events.sort_by([("user_id", "ascending"), ("event_time", "ascending"), ("event_id", "ascending")])
        items = items.sort_by([("item_id", "ascending")])
    users = users.append_column("stratum", stratum_labels(users, manifest.sampling.strata))
    tables = mask({"users": users, "events": normalise_events(events), "items": items},
                  manifest.pii.mask, ctx.invocation.settings.pii_key(ctx.invocation.clients.secret_string))
    digest = hashlib.sha256()
    for name in ("users", "events", "items"):
        data = storage.parquet_bytes(tables[name].combine_chunks())
        digest.update(data)
        storage.write_bytes(ctx.uri("slice", f"{name}.parquet"), data, bulky=True)
    probabilities = tables["users"].column("inclusion_probability")
    stats = {
        "rows": {name: tables[name].num_rows for name in ("users", "events", "items")},
        "users": tables["users"].num_rows,
        "eligible_users": int(pc.sum(population.column("eligible_users")).as_py() or 0),
        "catalogue_size": catalogue_size,
        "strategy": manifest.sampling.strategy,
        "seed": manifest.sampling.seed,
        "strata": stratum_stats(tables["users"], tables["events"], population, manifest.sampling.strata),
        "inclusion_probability": {
            "min": pc.min(probabilities).as_py(), "mean": pc.mean(probabilities).as_py(),
            "max": pc.max(probabilities).as_py(),
        },
        "masked_columns": sorted({c for t in tables.values() for c in manifest.pii.mask if c in t.column_names}),
        "content_sha256": digest.hexdigest(),
    }
    storage.write_json(ctx.uri("slice", "stats.json"), stats)
    return {"users": stats["users"], "events": stats["rows"]["events"], "content_sha256": stats["content_sha256"],
            "bytes_scanned": int(getattr(engine, "bytes_scanned", 0))}
