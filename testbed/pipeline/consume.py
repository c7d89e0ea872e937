"""Step 5a (stream path): read the run's stream back and fold it into feature state as of the cutoff.

Reading is checkpointed: each page of a shard is decoded, stripped of event_ids already seen (Kinesis may
deliver a record twice, and a publisher killed between a call and its checkpoint sends one again), written to
the run's scratch prefix as a Parquet chunk, and only then is the shard's position saved in the state table.
A consumer cut off by the time limit resumes after the last saved position, with the seen ids rebuilt from
the chunks. A shard is finished when the record with the publisher's last sequence number has been read.

PutRecords does not keep order across a partial-failure retry, so the fold does not trust arrival order: once
every shard is read, it delivers each user's events in event-time order (see core.feature_fold) and reports
how many arrived out of order.

The stream carries only the sampled users' events, so the lake-population tables (item, category and global
keys, `Aggregation.reads == "lake"`) are folded from the slice's population extract instead: the same numpy
fold, independent of the batch SQL that parity compares it with.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from io import BytesIO
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pajson

from testbed.adapters import kinesis, state_table
from testbed.core import feature_fold
from testbed.core.duck import fetch
from testbed.core.feature_spec import FeatureSet
from testbed.manifest import Manifest
from testbed.pipeline import feature_sets, slice_data
from testbed.pipeline.context import RunContext
from testbed.record import io
from testbed.record.features import StreamStats
from testbed.record.replay import ReplayDocument
from testbed.record.steps import ConsumeResult

CHECKPOINT_KEY = "consumer"
READ_RESERVE_S = 20.0  # stop reading with this much left: writing one chunk and its checkpoint fits in it
FOLD_RESERVE_S = 120.0  # start the fold only with this much left; otherwise fold in the next invocation
EVENT_SCHEMA = pa.schema([
    ("event_id", pa.string()), ("event_time", pa.timestamp("us", tz="UTC")), ("user_id", pa.string()),
    ("item_id", pa.string()), ("event_type", pa.string()), ("quantity", pa.int64()), ("price", pa.float64()),
])


def stream_schema(slice_events: pa.Schema, used: set[str]) -> pa.Schema:
    """The contract columns, plus the further event columns the run's feature set reads, typed as in the slice."""
    extra = [slice_events.field(name) for name in slice_events.names
             if name in used and name not in EVENT_SCHEMA.names]
    return pa.schema([*EVENT_SCHEMA, *extra])


def decode(records: list[dict[str, Any]], shard_id: str, schema: pa.Schema = EVENT_SCHEMA) -> pa.Table:
    """The `schema` columns of a page's JSON payloads, plus where each record came from."""
    lines = b"\n".join(record["Data"] for record in records)
    table = pajson.read_json(BytesIO(lines), parse_options=pajson.ParseOptions(
        explicit_schema=schema, unexpected_field_behavior="ignore"))
    return table.append_column("shard_id", pa.array([shard_id] * len(records), pa.string())).append_column(
        "sequence_number", pa.array([r["SequenceNumber"] for r in records], pa.string()))


def _read_chunks(ctx: RunContext, count: int, schema: pa.Schema) -> pa.Table:
    parts = [ctx.storage.read_parquet(ctx.layout.stream_chunk(n)) for n in range(count)]
    if not parts:
        return schema.append(pa.field("shard_id", pa.string())).append(
            pa.field("sequence_number", pa.string())).empty_table()
    return pa.concat_tables(parts)


def _fresh_state(replay: ReplayDocument) -> dict[str, Any]:
    shards = {s.shard_id: {"after": None, "until": s.last_sequence, "done": not s.records} for s in replay.shards}
    return {"shards": shards, "chunks": 0, "records_read": 0, "duplicates": 0, "folded": False,
            "invocations": 0, "seconds": 0.0}


def _dedup(page: pa.Table, seen: set[str]) -> pa.Table:
    ids = page.column("event_id").to_pylist()
    keep = []
    for event_id in ids:
        keep.append(event_id not in seen)
        seen.add(event_id)
    return page.filter(pa.array(keep))


def arrived_out_of_order(events: pa.Table) -> int:
    """Events that reached the consumer after a later event of the same user (arrival = shard order)."""
    con = duckdb.connect()
    try:
        con.register("arrivals", events.select(["user_id", "event_time", "shard_id", "sequence_number"])
                     .append_column("arrival", pa.array(range(events.num_rows), pa.int64())))
        late = fetch(con, "SELECT count(*) AS n FROM (SELECT event_time < max(event_time) OVER (PARTITION BY user_id "
                          "ORDER BY arrival ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS late FROM arrivals) "
                          "WHERE late")
    finally:
        con.close()
    return int(late.column("n")[0].as_py())


def _read(ctx: RunContext, name: str, state: dict[str, Any], remaining_s: Callable[[], float],
          schema: pa.Schema) -> None:
    stream, table = ctx.invocation.clients.client("kinesis"), ctx.invocation.clients.client("dynamodb")
    seen: set[str] = set(_read_chunks(ctx, state["chunks"], schema).column("event_id").to_pylist())
    for shard_id, shard in sorted(state["shards"].items()):
        if shard["done"]:
            continue
        for records in kinesis.read_shard(stream, name, shard_id, after=shard["after"], until=int(shard["until"]),
                                          remaining_s=remaining_s, reserve_s=READ_RESERVE_S):
            page = decode(records, shard_id, schema)
            fresh = _dedup(page, seen)
            state["records_read"] += page.num_rows
            state["duplicates"] += page.num_rows - fresh.num_rows
            if fresh.num_rows:
                ctx.storage.write_parquet(ctx.layout.stream_chunk(state["chunks"]), fresh)
                state["chunks"] += 1
            shard["after"] = records[-1]["SequenceNumber"]
            shard["done"] = int(shard["after"]) >= int(shard["until"])
            state_table.save(table, name, CHECKPOINT_KEY, state)


def _fold(ctx: RunContext, manifest: Manifest, state: dict[str, Any], spec: FeatureSet,
          schema: pa.Schema) -> dict[str, Any]:
    """The stream statistics of the fold; the invocation counts and times are added once it is done."""
    events = _read_chunks(ctx, state["chunks"], schema)
    tables = feature_fold.fold(events, slice_data.read(ctx, "items"), slice_data.read(ctx, "users"), spec,
                               manifest.time.cutoff, population=slice_data.read(ctx, "population_events"))
    for group, table in tables.items():
        ctx.storage.write_parquet(ctx.layout.stream_features(group), table)
    ids = pc.unique(events.column("event_id"))
    return {"events": events.num_rows, "distinct_event_ids": len(ids), "records_read": state["records_read"],
            "duplicates_dropped": state["duplicates"], "arrived_out_of_order": arrived_out_of_order(events),
            "rows": {group: table.num_rows for group, table in tables.items()}}


def run_consume(ctx: RunContext, manifest: Manifest, remaining_s: Callable[[], float]) -> dict[str, Any]:
    """Read and fold until done or until the invocation's time runs short; `done` moves the workflow on."""
    started = time.monotonic()
    name, table = ctx.resource_name, ctx.invocation.clients.client("dynamodb")
    state = state_table.load(table, name, CHECKPOINT_KEY) or _fresh_state(io.read(ctx.storage, ctx.layout.replay))
    if state["folded"]:
        return ConsumeResult(done=True, records_read=state["records_read"],
                             duplicates=state["duplicates"]).model_dump(mode="json")
    state["invocations"] += 1
    spec = feature_sets.run_set(ctx.storage, manifest)
    extra = spec.event_columns() - set(EVENT_SCHEMA.names)  # none for the default set: no slice read at all
    schema = stream_schema(slice_data.schema(ctx, "events"), extra) if extra else EVENT_SCHEMA
    _read(ctx, name, state, remaining_s, schema)
    read_all = all(shard["done"] for shard in state["shards"].values())
    if read_all and remaining_s() > FOLD_RESERVE_S:
        stats = _fold(ctx, manifest, state, spec, schema)
        state["folded"] = True
        state["seconds"] += time.monotonic() - started
        seconds = round(state["seconds"], 3)
        io.write(ctx.storage, ctx.layout.stream_stats, StreamStats(
            **stats, invocations=state["invocations"], seconds=seconds,
            events_per_s=round(state["records_read"] / seconds, 1) if seconds else None))
    else:
        state["seconds"] += time.monotonic() - started
    state_table.save(table, name, CHECKPOINT_KEY, state)
    return ConsumeResult(done=state["folded"], records_read=state["records_read"], duplicates=state["duplicates"],
                         shards_done=sum(s["done"] for s in state["shards"].values()),
                         shards=len(state["shards"])).model_dump(mode="json")
