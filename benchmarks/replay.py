"""Local Kinesis replay and consume throughput, with bare boto3-on-moto baselines in the same run.

    python benchmarks/replay.py --scale small|large [--reuse DIR]

Prints one JSON document on stdout; progress goes to stderr. The slice is what the pipeline benchmark's
manifest selects (everyone, uniform sampling at the scale's rate, seed 1, the 104-day window), taken straight
from the lake with DuckDB and the product's sampling draw. Then, on the embedded AWS:
- `replay`: testbed.pipeline.replay.run_replay (payload encoding, batching, a DynamoDB checkpoint per call);
- `consume`: testbed.pipeline.consume.run_consume (decode, dedup, Parquet chunks with checkpoints, the fold);
- `parity`: the batch features and the comparison (testbed.pipeline.features.run_features);
- `bare_transport`: the same payloads through boto3 `put_records` / `get_records` alone on the same patched
  moto (no encoding, checkpoints or fold): the ceiling the steps can reach locally;
- `moto_unpatched`: bare `put_records` on moto as shipped, for the first UNPATCHED_EVENTS records, showing the
  quadratic slowdown testbed.adapters.moto_kinesis removes (run first: the patch is process-wide).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.pipeline import LAKE_END, LAKE_SEED, SCALES, bench_settings, say, window  # noqa: E402

TARGET_EVENTS_PER_S = 15_000.0
UNPATCHED_EVENTS = 100_000
BUCKET = "testbed-replay-bench"


def lake_for(scale_name: str, reuse: Path | None) -> Path:
    from testbed.core.generate import LakeSpec, generate_lake

    scale = SCALES[scale_name]
    root = (reuse or Path(f"/tmp/testbed-replay-bench-{scale_name}")) / "lake"
    if not (root / "events").exists():
        say(f"generating the {scale_name} lake in {root}")
        generate_lake(root, LakeSpec(users=scale.users, days=scale.days, seed=LAKE_SEED, end_date=LAKE_END))
    return root


def slice_events(lake: Path, rate: float) -> Any:
    import duckdb

    from testbed.core.sampling import TWO_POW_52

    draw = f"CAST('0x' || substr(md5('1:' || user_id), 1, 13) AS BIGINT) / {TWO_POW_52}.0"  # core.sampling's draw
    span = window()
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    sql = (f"SELECT * EXCLUDE (event_date) FROM read_parquet('{lake}/events/*/*.parquet', hive_partitioning=true) "
           f"WHERE event_time >= TIMESTAMPTZ '{span['start']}' AND event_time < TIMESTAMPTZ '{span['end']}' "
           f"AND {draw} < {rate}")
    return con.sql(sql).to_arrow_table()


def bare_transport(kinesis: Any, payloads: list[tuple[str, bytes]]) -> dict[str, Any]:
    kinesis.create_stream(StreamName="bare", StreamModeDetails={"StreamMode": "ON_DEMAND"})
    started = time.perf_counter()
    for i in range(0, len(payloads), 500):
        kinesis.put_records(StreamName="bare", Records=[{"PartitionKey": k, "Data": d} for k, d in
                                                        payloads[i:i + 500]])
    put_s = time.perf_counter() - started
    started, read = time.perf_counter(), 0
    for shard in kinesis.list_shards(StreamName="bare")["Shards"]:
        iterator = kinesis.get_shard_iterator(StreamName="bare", ShardId=shard["ShardId"],
                                              ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        while iterator:
            page = kinesis.get_records(ShardIterator=iterator, Limit=10_000)
            read += len(page["Records"])
            if not page["Records"]:
                break
            iterator = page["NextShardIterator"]
    get_s = time.perf_counter() - started
    return {"events": len(payloads), "put_s": round(put_s, 3), "put_events_per_s": round(len(payloads) / put_s),
            "get_s": round(get_s, 3), "get_events_per_s": round(read / get_s), "read": read}


def moto_unpatched(payloads: list[tuple[str, bytes]]) -> dict[str, Any]:
    import boto3
    from moto import mock_aws

    with mock_aws():
        kinesis = boto3.client("kinesis", region_name="us-east-1")
        kinesis.create_stream(StreamName="unpatched", ShardCount=4)
        started, rates = time.perf_counter(), []
        for i in range(0, len(payloads), 500):
            t = time.perf_counter()
            kinesis.put_records(StreamName="unpatched", Records=[{"PartitionKey": k, "Data": d} for k, d in
                                                                 payloads[i:i + 500]])
            rates.append(500 / (time.perf_counter() - t))
        seconds = time.perf_counter() - started
    return {"events": len(payloads), "put_s": round(seconds, 3), "put_events_per_s": round(len(payloads) / seconds),
            "first_call_events_per_s": round(rates[0]), "last_call_events_per_s": round(rates[-1])}


def run(scale_name: str, reuse: Path | None) -> dict[str, Any]:
    from testbed.adapters.embedded_aws import embedded_aws
    from testbed.invocation import Invocation
    from testbed.manifest import parse_manifest
    from testbed.pipeline import consume, features, provision, replay, teardown
    from testbed.pipeline.context import RunContext

    lake = lake_for(scale_name, reuse)
    scale = SCALES[scale_name]
    say("slicing")
    events = slice_events(lake, scale.sampling_rate)
    say(f"{events.num_rows} events of {len(set(events.column('user_id').to_pylist()))} users")
    manifest = parse_manifest({"name": "replay-bench", "segment": {"name": "everyone"}, "time": window(),
                               "models": {r: {"uri": "/unused", "sha256": "0" * 64} for r in ("control",
                                                                                              "candidate")}})
    result: dict[str, Any] = {"scale": scale_name, "events": events.num_rows,
                              "started_at": datetime.now().isoformat(timespec="seconds")}
    with tempfile.TemporaryDirectory() as local:  # payloads without the embedded AWS: moto stays unpatched
        staging = RunContext("replay-bench-000000000000", f"{local}/runs/replay-bench-000000000000", str(lake),
                             Invocation.outside_lambda(bench_settings()))
        staging.storage.write_parquet(staging.uri("slice", "events.parquet"), events)
        keys, payloads, _ = replay.stream_records(staging)
        pairs = list(zip(keys, payloads, strict=True))
    say(f"unpatched moto: bare put_records of the first {UNPATCHED_EVENTS} records")
    result["moto_unpatched"] = moto_unpatched(pairs[:UNPATCHED_EVENTS])
    with embedded_aws() as aws:
        aws.client("s3").create_bucket(Bucket=BUCKET)
        ctx = RunContext("replay-bench-000000000000", f"s3://{BUCKET}/runs/replay-bench-000000000000", str(lake),
                         Invocation.outside_lambda(bench_settings()))
        ctx.storage.write_json(ctx.uri("manifest.json"), manifest.model_dump(mode="json"))
        ctx.storage.write_parquet(ctx.uri("slice", "events.parquet"), events)
        ctx.storage.write_parquet(ctx.uri("slice", "items.parquet"), ctx.storage.read_parquet(str(lake / "items" /
                                                                                          "part-0.parquet")))
        say("bare transport on patched moto")
        result["bare_transport"] = bare_transport(aws.client("kinesis"), pairs)
        provision.run_provision(ctx, manifest, lambda: 900.0)
        say("replay")
        out = replay.run_replay(ctx, manifest, lambda: 900.0)
        assert out["done"], out
        result["replay"] = ctx.storage.read_json(ctx.uri("replay.json"))
        say("consume")
        out = consume.run_consume(ctx, manifest, lambda: 900.0)
        assert out["done"], out
        result["consume"] = ctx.storage.read_json(ctx.uri("features", "stream_stats.json"))
        say("batch features and parity")
        started = time.perf_counter()
        features.run_features(ctx, manifest)
        result["parity"] = {**ctx.storage.read_json(ctx.uri("features", "parity.json")),
                            "seconds": round(time.perf_counter() - started, 3)}
        result["parity"].pop("examples")
        teardown.run_teardown(ctx)
    replay_rate, consume_rate = result["replay"]["events_per_s"], result["consume"]["events_per_s"]
    result["targets"] = {
        "events_per_s_min": TARGET_EVENTS_PER_S,
        "replay_met": replay_rate >= TARGET_EVENTS_PER_S, "consume_met": consume_rate >= TARGET_EVENTS_PER_S,
        "replay_vs_bare_put": round(replay_rate / result["bare_transport"]["put_events_per_s"], 3),
        "consume_vs_bare_get": round(consume_rate / result["bare_transport"]["get_events_per_s"], 3),
        "put_calls_expected": math.ceil(events.num_rows / 500),
    }
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", choices=sorted(SCALES), default="small")
    parser.add_argument("--reuse", type=Path, help="a directory holding DIR/lake from an earlier run to reuse")
    args = parser.parse_args()
    print(json.dumps(run(args.scale, args.reuse), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
