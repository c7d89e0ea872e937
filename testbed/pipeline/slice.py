"""Step 3: select and sample the segment, keep all its events in the window, mask PII, write the slice.

It also writes the population extract (slice/population_events.parquet): every lake user's pre-cutoff events
that the run's lake-population features (item, category and global aggregations) and the candidates'
popularity read, without user_id. Later steps compute those from it, never from the lake. From it, the item
popularity of the beyond-accuracy metrics (slice/item_popularity.parquet), and from the slice's events each
user's pre-cutoff history of the worst cohorts (slice/user_history.parquet), so evaluate reads a few thousand
counts rather than the extract and the events.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from testbed.adapters.engines import make_engine
from testbed.adapters.storage import parquet_bytes
from testbed.core.beyond_accuracy import item_popularity
from testbed.core.catalogue import UnknownItems, count_unknown
from testbed.core.cohorts import user_history
from testbed.core.ranking_session import RankingSession
from testbed.core.slice_sql import partition_range, population_extract, render, sampled_table
from testbed.core.slice_tables import mask, normalise_events, stratum_labels, stratum_stats, touched_items
from testbed.errors import ManifestError, QueryInputError
from testbed.manifest import Manifest
from testbed.pipeline import feature_sets
from testbed.pipeline.context import RunContext
from testbed.record import io
from testbed.record.layout import SLICE_TABLES
from testbed.record.slice import SliceStats
from testbed.record.steps import SliceResult


def unknown_items(events: pa.Table, items: pa.Table, manifest: Manifest) -> UnknownItems:
    """The slice's events and relevant label pairs whose item the items query did not find in items/."""
    t = manifest.time
    with RankingSession(events) as ranking:
        labels = ranking.labels(t.cutoff, t.end, manifest.evaluation.vocabulary())
    relevant = labels.filter(pc.greater(labels.column("relevance"), 0)).column("item_id")
    return count_unknown(events.column("item_id"), relevant, items.column("item_id"))


def run_slice(ctx: RunContext, manifest: Manifest) -> dict[str, Any]:
    table = sampled_table(ctx.run_id)
    queries = render(manifest, population_extract(manifest, feature_sets.run_set(ctx.storage, manifest)), table)
    engine = make_engine(ctx.invocation, ctx.lake, partition_range(manifest.time.start, manifest.time.end),
                         ctx.scratch("slice"))
    try:
        engine.materialise(table, queries.sampling, queries.params)  # the sampling once, not once per statement
        users = engine.query(queries.users)
        events = engine.query(queries.events)
        population = engine.query(queries.population)
        population_events = engine.query(queries.population_events)
        catalogue = engine.query(queries.catalogue)
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
        catalogue = catalogue.sort_by([("item_id", "ascending")])
        population_events = population_events.sort_by([(c, "ascending") for c in population_events.column_names])
    items = touched_items(catalogue, events.column("item_id"), population_events.column("item_id"))
    events = normalise_events(events)
    unknown = unknown_items(events, items, manifest)
    users = users.append_column("stratum", stratum_labels(users, manifest.sampling.strata))
    tables = mask({"users": users, "events": events, "items": items,
                   "population_events": normalise_events(population_events)},
                  manifest.pii.mask, ctx.invocation.settings.pii_key(ctx.invocation.clients.secret_string))
    digest = hashlib.sha256()
    for name in SLICE_TABLES:
        data = parquet_bytes(tables[name].combine_chunks())
        digest.update(data)
        ctx.storage.write_bytes(ctx.layout.slice_table(name), data, bulky=True)
    ctx.storage.write_parquet(ctx.layout.item_popularity,
                              item_popularity(tables["population_events"], manifest.time.cutoff))
    ctx.storage.write_parquet(ctx.layout.user_history,
                              user_history(tables["events"], tables["items"], manifest.time.cutoff))
    probabilities = tables["users"].column("inclusion_probability")
    stats = SliceStats.model_validate({
        "rows": {name: tables[name].num_rows for name in SLICE_TABLES},
        "users": tables["users"].num_rows,
        "eligible_users": int(pc.sum(population.column("_tb_eligible_users")).as_py() or 0),
        "catalogue_size": catalogue.num_rows,
        "unknown_items": asdict(unknown),
        "strategy": manifest.sampling.strategy,
        "seed": manifest.sampling.seed,
        "strata": stratum_stats(tables["users"], tables["events"], population, manifest.sampling.strata),
        "inclusion_probability": {
            "min": pc.min(probabilities).as_py(), "mean": pc.mean(probabilities).as_py(),
            "max": pc.max(probabilities).as_py(),
        },
        "masked_columns": sorted({c for t in tables.values() for c in manifest.pii.mask if c in t.column_names}),
        "content_sha256": digest.hexdigest(),
    })
    io.write(ctx.storage, ctx.layout.slice_stats, stats)
    return SliceResult(users=stats.users, events=stats.rows.events, content_sha256=stats.content_sha256,
                       bytes_scanned=int(getattr(engine, "bytes_scanned", 0))).model_dump(mode="json")
