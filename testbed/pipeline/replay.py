"""Step 4: publish the slice's events to the run's stream, resumable across invocations.

Events go out in event-time order (ties by event_id), so each user's events are in order; the partition key
is the user id and the payload is the event row as JSON with its original `event_time` (UTC, microseconds).
The publisher's position is checkpointed in the run's state table after every PutRecords call: the next event
index plus the entries of the last call that still need a retry. A replay cut off by the Lambda time limit
therefore resumes exactly where it stopped: no record is skipped and no confirmed record is sent again.
Only failed entries are retried, with exponential backoff and full jitter, at most `replay.max_attempts`
times. When the replay is complete, `replay.json` holds the shards' first and last sequence numbers.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from testbed.adapters import kinesis, state_table
from testbed.core.duck import fetch
from testbed.core.replay_batches import backoff_s, next_batch
from testbed.errors import ReplayError
from testbed.manifest import Manifest
from testbed.pipeline import slice_data
from testbed.pipeline.context import RunContext
from testbed.record import io
from testbed.record.replay import ReplayDocument
from testbed.record.steps import ReplayResult

CHECKPOINT_KEY = "publisher"
RESERVE_S = 20.0  # stop with this much of the invocation left: one more call plus its checkpoint fits in it
PAYLOAD_SQL = """
SELECT e.user_id, epoch_us(e.event_time) AS t_us, to_json(row)::VARCHAR AS payload
FROM events e, LATERAL (SELECT e.* REPLACE (strftime(e.event_time, '%Y-%m-%dT%H:%M:%S.%fZ') AS event_time)) row
ORDER BY e.event_time, e.event_id
"""


def stream_records(ctx: RunContext) -> tuple[list[str], list[bytes], np.ndarray]:
    """(partition keys, JSON payloads, event times in µs) of the slice's events in publish order."""
    con = slice_data.connect(ctx, ("events",))
    try:
        table = fetch(con, PAYLOAD_SQL)
    finally:
        con.close()
    payloads = [p.encode() for p in table.column("payload").to_pylist()]
    return table.column("user_id").to_pylist(), payloads, table.column("t_us").to_numpy()


def _fresh_state(total: int) -> dict[str, Any]:
    return {"total": total, "next": 0, "retry": [], "attempt": 0, "published": 0, "put_calls": 0,
            "retried_entries": 0, "errors": {}, "shards": {}, "invocations": 0, "seconds": 0.0, "done": False}


def _confirm(state: dict[str, Any], result: dict[str, Any]) -> None:
    shard = state["shards"].setdefault(result["ShardId"], {"first": None, "last": None, "records": 0})
    sequence = result["SequenceNumber"]
    if shard["first"] is None or int(sequence) < int(shard["first"]):
        shard["first"] = sequence
    if shard["last"] is None or int(sequence) > int(shard["last"]):
        shard["last"] = sequence
    shard["records"] += 1
    state["published"] += 1


class Pacer:
    """Hold event i until (t_i - t_anchor) / speedup wall seconds have passed since the anchor (no-op unset)."""

    def __init__(self, speedup: float | None, t_us: np.ndarray, start: int, sleep: Callable[[float], None]):
        self.speedup, self.t_us, self.sleep = speedup, t_us, sleep
        self.anchor_t = int(t_us[start]) if speedup and start < len(t_us) else 0
        self.anchor_wall = time.monotonic()

    def wait_for(self, index: int, budget_s: float) -> None:
        if not self.speedup:
            return
        due = (int(self.t_us[index]) - self.anchor_t) / 1e6 / self.speedup
        self.sleep(max(0.0, min(due - (time.monotonic() - self.anchor_wall), budget_s)))


def summary(name: str, manifest: Manifest, state: dict[str, Any]) -> dict[str, Any]:
    shards = [{"shard_id": shard_id, "first_sequence": s["first"], "last_sequence": s["last"],
               "records": s["records"]} for shard_id, s in sorted(state["shards"].items())]
    seconds = round(state["seconds"], 3)
    return {"stream": name, "stream_mode": manifest.replay.stream_mode, "records": state["total"],
            "published": state["published"], "put_calls": state["put_calls"],
            "retried_entries": state["retried_entries"], "errors": state["errors"], "shards": shards,
            "invocations": state["invocations"], "seconds": seconds, "speedup": manifest.replay.speedup,
            "events_per_s": round(state["published"] / seconds, 1) if seconds else None}


def run_replay(ctx: RunContext, manifest: Manifest, remaining_s: Callable[[], float],
               rng: random.Random | None = None, sleep: Callable[[float], None] = time.sleep) -> dict[str, Any]:
    """Publish until done or until the invocation's time runs short; `done` tells the workflow to move on."""
    started = time.monotonic()
    name, clients = ctx.resource_name, ctx.invocation.clients
    stream, table = clients.client("kinesis"), clients.client("dynamodb")
    keys, payloads, t_us = stream_records(ctx)
    state = state_table.load(table, name, CHECKPOINT_KEY) or _fresh_state(len(keys))
    if state["total"] != len(keys):
        raise ReplayError(f"the slice has {len(keys)} events but the replay checkpoint expects {state['total']}")
    rng = rng or random.Random(ctx.run_id)
    sizes = [len(p) + len(k.encode()) for k, p in zip(keys, payloads, strict=True)]
    pacer = Pacer(manifest.replay.speedup, t_us, state["next"], sleep)
    state["invocations"] += 1
    while not state["done"] and remaining_s() > RESERVE_S:
        retrying = bool(state["retry"])
        if retrying:
            indices = list(state["retry"])
            sleep(backoff_s(state["attempt"], rng))
        elif state["next"] < state["total"]:
            indices = list(range(state["next"], next_batch(sizes, state["next"])))
            pacer.wait_for(indices[0], remaining_s() - RESERVE_S)
        else:
            state["done"] = True
            break
        results = kinesis.put_records(stream, name, [(keys[i], payloads[i]) for i in indices])
        failed = []
        for index, result in zip(indices, results, strict=True):
            if "ErrorCode" in result:
                failed.append(index)
                state["errors"][result["ErrorCode"]] = state["errors"].get(result["ErrorCode"], 0) + 1
            else:
                _confirm(state, result)
        state["put_calls"] += 1
        state["retried_entries"] += len(failed)
        if not retrying:
            state["next"] = indices[-1] + 1
        state["retry"], state["attempt"] = failed, (state["attempt"] + 1 if failed else 0)
        if failed and state["attempt"] >= manifest.replay.max_attempts:
            state_table.save(table, name, CHECKPOINT_KEY, state)
            raise ReplayError(f"{len(failed)} records still failed after {state['attempt']} PutRecords attempts "
                              f"({', '.join(sorted(state['errors']))}); raise replay.shards or set replay.speedup")
        state["done"] = not state["retry"] and state["next"] >= state["total"]
        state_table.save(table, name, CHECKPOINT_KEY, state)
    state["seconds"] += time.monotonic() - started
    state_table.save(table, name, CHECKPOINT_KEY, state)
    if state["done"]:
        io.write(ctx.storage, ctx.layout.replay, ReplayDocument.model_validate(summary(name, manifest, state)))
    return ReplayResult(done=state["done"], published=state["published"], records=state["total"],
                        put_calls=state["put_calls"], retried_entries=state["retried_entries"]).model_dump(mode="json")
