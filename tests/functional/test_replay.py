"""The Kinesis replay on moto: no loss, no duplicates, resume, ordering, batching, pacing, stale streams, parity."""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from testbed.adapters import kinesis, run_resources, state_table
from testbed.adapters.embedded_aws import embedded_aws
from testbed.core import feature_fold, feature_sql
from testbed.core.replay_batches import MAX_BATCH_BYTES, MAX_RECORDS
from testbed.errors import ParityError, ReplayError
from testbed.invocation import Invocation
from testbed.manifest import Manifest, parse_manifest
from testbed.pipeline import consume, feature_sets, provision, replay, teardown
from testbed.pipeline import features as features_step
from testbed.pipeline.context import RunContext
from tests.conftest import BASE_MANIFEST

SLICE_USERS = 250
BUCKET = "testbed-replay-test"


def unlimited() -> float:
    return 900.0


@dataclass
class StreamRun:
    ctx: RunContext
    manifest: Manifest
    events: pa.Table
    items: pa.Table
    users: pa.Table

    @property
    def name(self) -> str:
        return self.ctx.resource_name

    @property
    def kinesis(self) -> Any:
        return self.ctx.invocation.clients.client("kinesis")

    @property
    def dynamodb(self) -> Any:
        return self.ctx.invocation.clients.client("dynamodb")

    def event_ids(self) -> set[str]:
        return set(self.events.column("event_id").to_pylist())


def _manifest(**replay_options: Any) -> Manifest:
    data = {**BASE_MANIFEST, "models": {role: {"uri": "/unused", "sha256": "0" * 64}
                                         for role in ("control", "candidate")}}
    return parse_manifest({**data, "replay": replay_options} if replay_options else data)


def _slice_events(lake: Path, seed: int = 5) -> pa.Table:
    """The small lake's events of a few users, rows shuffled so many users are out of order in the lake."""
    events = ds.dataset(lake / "events", partitioning="hive").to_table()
    users = sorted(set(events.column("user_id").to_pylist()))[:SLICE_USERS]
    chosen = events.filter(pc.is_in(events.column("user_id"), pa.array(users)))
    order = list(range(chosen.num_rows))
    random.Random(seed).shuffle(order)
    return chosen.take(pa.array(order))


def _stage(lake: Path, events: pa.Table, manifest: Manifest, run_id: str = "replay-test-000000000001") -> StreamRun:
    invocation = Invocation.outside_lambda()
    invocation.clients.client("s3").create_bucket(Bucket=BUCKET)
    ctx = RunContext(run_id, f"s3://{BUCKET}/runs/{run_id}", str(lake), invocation)
    items, users = pq.read_table(lake / "items"), pq.read_table(lake / "users")
    ctx.storage.write_json(ctx.uri("manifest.json"), manifest.model_dump(mode="json"))
    ctx.storage.write_parquet(ctx.uri("slice", "events.parquet"), events)
    ctx.storage.write_parquet(ctx.uri("slice", "items.parquet"), items)
    ctx.storage.write_parquet(ctx.uri("slice", "users.parquet"), users)
    # the population extract: every lake user's events, without user_id (the features window them)
    population = ds.dataset(lake / "events", partitioning="hive").to_table().drop_columns(["user_id"])
    ctx.storage.write_parquet(ctx.uri("slice", "population_events.parquet"), population)
    return StreamRun(ctx, manifest, events, items, users)


@pytest.fixture
def staged(small_lake: Path) -> Iterator[StreamRun]:
    with embedded_aws():
        run = _stage(small_lake, _slice_events(small_lake), _manifest())
        provision.run_provision(run.ctx, run.manifest, unlimited)
        yield run


def _until_done(step: Callable[[], dict[str, Any]], limit: int = 200) -> int:
    """Call a looping step as the state machine would, until it reports done; the number of invocations."""
    for invocation in range(1, limit + 1):
        if step()["done"]:
            return invocation
    raise AssertionError("the step never finished")


def _replay_and_consume(run: StreamRun) -> None:
    _until_done(lambda: replay.run_replay(run.ctx, run.manifest, unlimited, sleep=lambda _: None))
    _until_done(lambda: consume.run_consume(run.ctx, run.manifest, unlimited))


def _consumed_ids(run: StreamRun) -> list[str]:
    state = state_table.load(run.dynamodb, run.name, consume.CHECKPOINT_KEY)
    assert state is not None
    return consume._read_chunks(run.ctx, state["chunks"], consume.EVENT_SCHEMA).column("event_id").to_pylist()


def _stream_tables(run: StreamRun) -> dict[str, pa.Table]:
    return {e: run.ctx.storage.read_parquet(run.ctx.uri("features", f"stream_{e}.parquet")) for e in ("user", "item",
                                                                                                 "user_category")}


class CountingPuts:
    """Wraps the adapter's put_records: counts calls and keeps each batch's byte size."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.batches: list[tuple[int, int]] = []
        self._original = kinesis.put_records
        monkeypatch.setattr(kinesis, "put_records", self)

    def __call__(self, client: Any, stream: str, entries: list[tuple[str, bytes]]) -> list[dict[str, Any]]:
        self.batches.append((len(entries), sum(len(k.encode()) + len(d) for k, d in entries)))
        return self._original(client, stream, entries)


def _inject_partial_failures(monkeypatch: pytest.MonkeyPatch, share: float, seed: int) -> dict[str, int]:
    """moto never fails an entry: fail `share` of them (not stored), as Kinesis does under throttling."""
    from moto.kinesis.models import KinesisBackend

    original = KinesisBackend.put_records
    rng = random.Random(seed)
    counts = {"failed": 0}

    def put_records(self: Any, stream_arn: str, stream_name: str, records: list[dict[str, Any]]) -> dict[str, Any]:
        fail = [rng.random() < share for _ in records]
        stored = original(self, stream_arn, stream_name, [r for r, f in zip(records, fail, strict=True) if not f])
        accepted = iter(stored["Records"])
        out = []
        for i, failed in enumerate(fail):
            if failed:
                code = "ProvisionedThroughputExceededException" if i % 2 else "InternalFailure"
                out.append({"ErrorCode": code, "ErrorMessage": "injected"})
            else:
                out.append(next(accepted))
        counts["failed"] += sum(fail)
        return {"FailedRecordCount": sum(fail), "Records": out}

    monkeypatch.setattr(KinesisBackend, "put_records", put_records)
    return counts


# --- acceptance ---------------------------------------------------------------------------------------------

def test_round_trip_is_exact_and_uses_ceil_n_over_500_calls(staged: StreamRun,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    puts = CountingPuts(monkeypatch)
    _replay_and_consume(staged)
    n = staged.events.num_rows
    assert len(puts.batches) == math.ceil(n / MAX_RECORDS)
    consumed = _consumed_ids(staged)
    assert len(consumed) == n and set(consumed) == staged.event_ids()
    result = features_step.run_features(staged.ctx, staged.manifest)
    parity = staged.ctx.storage.read_json(staged.ctx.uri("features", "parity.json"))
    assert result["parity_mismatches"] == 0 and parity["mismatches"] == 0 and parity["examples"] == []
    assert parity["rows_stream"] == parity["rows_batch"] > SLICE_USERS
    summary = staged.ctx.storage.read_json(staged.ctx.uri("replay.json"))
    assert summary["published"] == n and summary["put_calls"] == len(puts.batches)
    assert sum(s["records"] for s in summary["shards"]) == n
    assert all(int(s["first_sequence"]) <= int(s["last_sequence"]) for s in summary["shards"])


def test_partial_failures_on_10_percent_lose_nothing_and_duplicate_nothing(
        staged: StreamRun, monkeypatch: pytest.MonkeyPatch) -> None:
    injected = _inject_partial_failures(monkeypatch, share=0.10, seed=7)
    _replay_and_consume(staged)
    consumed = _consumed_ids(staged)
    assert injected["failed"] > 0.08 * staged.events.num_rows
    assert len(consumed) == len(set(consumed)) and set(consumed) == staged.event_ids()
    summary = staged.ctx.storage.read_json(staged.ctx.uri("replay.json"))
    assert summary["retried_entries"] == injected["failed"]
    assert set(summary["errors"]) == {"ProvisionedThroughputExceededException", "InternalFailure"}
    assert features_step.run_features(staged.ctx, staged.manifest)["parity_mismatches"] == 0


def test_attempts_are_bounded(staged: StreamRun, monkeypatch: pytest.MonkeyPatch) -> None:
    _inject_partial_failures(monkeypatch, share=1.0, seed=1)
    manifest = _manifest(max_attempts=3)
    with pytest.raises(ReplayError, match="after 3 PutRecords attempts"):
        replay.run_replay(staged.ctx, manifest, unlimited, sleep=lambda _: None)


class Budget:
    """A Lambda clock that runs out after `checks` looks at it, then is renewed by the next invocation."""

    def __init__(self, rng: random.Random, most: int) -> None:
        self.rng, self.most, self.left = rng, most, 0

    def renew(self) -> Callable[[], float]:
        self.left = self.rng.randint(1, self.most)

        def remaining() -> float:
            self.left -= 1
            return 900.0 if self.left >= 0 else 0.0

        return remaining


def test_interrupted_publisher_and_consumer_resume_to_the_uninterrupted_state(
        staged: StreamRun, small_lake: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kinesis, "GET_LIMIT", 700)  # several pages per shard, so the consumer stops mid-shard
    puts = CountingPuts(monkeypatch)
    budget = Budget(random.Random(11), most=6)
    invocations = _until_done(lambda: replay.run_replay(staged.ctx, staged.manifest, budget.renew(),
                                                        sleep=lambda _: None))
    assert invocations > 3
    assert len(puts.batches) == math.ceil(staged.events.num_rows / MAX_RECORDS)  # nothing sent twice
    consumer_invocations = _until_done(lambda: consume.run_consume(staged.ctx, staged.manifest, budget.renew()))
    assert consumer_invocations > 3
    consumed = _consumed_ids(staged)
    assert len(consumed) == len(set(consumed)) and set(consumed) == staged.event_ids()

    with embedded_aws():  # the same slice, never interrupted
        reference = _stage(small_lake, staged.events, staged.manifest, run_id="replay-test-000000000002")
        provision.run_provision(reference.ctx, reference.manifest, unlimited)
        _replay_and_consume(reference)
        expected = _stream_tables(reference)
    interrupted = _stream_tables(staged)
    for entity, table in expected.items():
        assert interrupted[entity].equals(table), entity


def test_a_publisher_killed_after_a_call_resends_it_and_the_consumer_drops_the_duplicates(
        staged: StreamRun, monkeypatch: pytest.MonkeyPatch) -> None:
    original, calls = kinesis.put_records, {"n": 0}

    def dies_after_third_call(client: Any, stream: str, entries: list[tuple[str, bytes]]) -> list[dict[str, Any]]:
        result = original(client, stream, entries)
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("Lambda timed out after Kinesis accepted the batch")
        return result

    monkeypatch.setattr(kinesis, "put_records", dies_after_third_call)
    with pytest.raises(RuntimeError):
        replay.run_replay(staged.ctx, staged.manifest, unlimited, sleep=lambda _: None)
    _replay_and_consume(staged)
    stats = staged.ctx.storage.read_json(staged.ctx.uri("features", "stream_stats.json"))
    assert stats["duplicates_dropped"] == MAX_RECORDS  # the third batch went out twice
    assert stats["records_read"] == staged.events.num_rows + MAX_RECORDS
    assert set(_consumed_ids(staged)) == staged.event_ids()
    assert features_step.run_features(staged.ctx, staged.manifest)["parity_mismatches"] == 0


def test_each_users_events_reach_the_consumer_in_event_time_order(staged: StreamRun) -> None:
    by_user_lake: dict[str, list[int]] = {}
    times = pc.cast(staged.events.column("event_time"), pa.timestamp("us", tz="UTC")).cast(pa.int64())
    for user, t in zip(staged.events.column("user_id").to_pylist(), times.to_pylist(), strict=True):
        by_user_lake.setdefault(user, []).append(t)
    assert sum(ts != sorted(ts) for ts in by_user_lake.values()) > SLICE_USERS / 2  # out of order in the lake
    _replay_and_consume(staged)
    arrived: dict[str, list[tuple[int, str]]] = {}
    for shard_id in kinesis.shard_ids(staged.kinesis, staged.name):
        for page in kinesis.read_shard(staged.kinesis, staged.name, shard_id, after=None, until=10**30,
                                       remaining_s=unlimited, reserve_s=0):
            table = consume.decode(page, shard_id)
            t_us = pc.cast(table.column("event_time"), pa.timestamp("us", tz="UTC")).cast(pa.int64()).to_pylist()
            for user, t, event_id in zip(table.column("user_id").to_pylist(), t_us,
                                         table.column("event_id").to_pylist(), strict=True):
                arrived.setdefault(user, []).append((t, event_id))
            if len(page) < kinesis.GET_LIMIT:
                break
    assert set(arrived) == set(by_user_lake)
    assert all(sequence == sorted(sequence) for sequence in arrived.values())
    assert staged.ctx.storage.read_json(staged.ctx.uri("features", "stream_stats.json"))["arrived_out_of_order"] == 0


def test_five_mebibytes_bind_before_500_records_for_large_payloads(
        small_lake: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    events = _slice_events(small_lake).slice(0, 600)
    events = events.append_column("note", pa.array(["x" * 40_000] * events.num_rows))
    with embedded_aws():
        run = _stage(small_lake, events, _manifest())
        provision.run_provision(run.ctx, run.manifest, unlimited)
        puts = CountingPuts(monkeypatch)
        _replay_and_consume(run)
        assert set(_consumed_ids(run)) == run.event_ids()
    sizes = [size for _, size in puts.batches]
    assert all(count <= MAX_RECORDS and size <= MAX_BATCH_BYTES for count, size in puts.batches)
    record = max(size / count for count, size in puts.batches) + 200
    assert all(size > MAX_BATCH_BYTES - record for size in sizes[:-1])  # full: the next record would not fit
    assert len(puts.batches) == math.ceil(sum(sizes) / MAX_BATCH_BYTES) > math.ceil(600 / MAX_RECORDS)


class FakeClock:
    """time.monotonic that only moves when the publisher sleeps."""

    def __init__(self) -> None:
        self.now, self.slept = 1000.0, []  # type: ignore[var-annotated]

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_speedup_paces_event_time_into_wall_time(staged: StreamRun, monkeypatch: pytest.MonkeyPatch) -> None:
    manifest = _manifest(speedup=86_400.0)  # one day of events per second
    clock = FakeClock()
    monkeypatch.setattr(replay, "time", clock)
    replay.run_replay(staged.ctx, manifest, unlimited, sleep=clock.sleep)
    slept = clock.slept
    t_us = pc.cast(staged.events.column("event_time"), pa.timestamp("us", tz="UTC")).cast(pa.int64())
    span_s = (pc.max(t_us).as_py() - pc.min(t_us).as_py()) / 1e6 / 86_400.0
    last_batch_start = sorted(t_us.to_pylist())[(staged.events.num_rows - 1) // MAX_RECORDS * MAX_RECORDS]
    due = (last_batch_start - pc.min(t_us).as_py()) / 1e6 / 86_400.0
    assert due <= span_s
    assert sum(slept) == pytest.approx(due, rel=1e-9)


def test_a_stale_stream_and_table_from_a_crashed_run_are_replaced(staged: StreamRun) -> None:
    kinesis.put_records(staged.kinesis, staged.name, [("stale-user", b'{"event_id": "stale"}')])
    state_table.save(staged.dynamodb, staged.name, replay.CHECKPOINT_KEY, {"stale": True})
    created = provision.run_provision(staged.ctx, staged.manifest, unlimited)
    assert created["replaced_stale"]
    assert state_table.load(staged.dynamodb, staged.name, replay.CHECKPOINT_KEY) is None
    _replay_and_consume(staged)
    assert "stale" not in set(_consumed_ids(staged))
    assert set(_consumed_ids(staged)) == staged.event_ids()


def test_teardown_deletes_stream_table_and_scratch(staged: StreamRun) -> None:
    _replay_and_consume(staged)
    assert staged.ctx.storage.list_keys(staged.ctx.scratch() + "/")
    result = teardown.run_teardown(staged.ctx)
    assert result["stream_deleted"] and result["table_deleted"] and result["deleted_objects"] > 0
    assert staged.kinesis.list_streams()["StreamNames"] == []
    assert staged.dynamodb.list_tables()["TableNames"] == []
    assert list(staged.ctx.storage.list_keys(staged.ctx.scratch() + "/")) == []
    assert teardown.run_teardown(staged.ctx) == {"deleted_objects": 0, "stream_deleted": False,
                                                 "table_deleted": False, "sampled_table_deleted": False}


def test_a_stream_value_that_differs_fails_parity_naming_the_feature(
        staged: StreamRun, monkeypatch: pytest.MonkeyPatch) -> None:
    original = consume.decode

    def one_cent_off(records: list[dict[str, Any]], shard_id: str, schema: pa.Schema) -> pa.Table:
        """A serialization bug: every price read from the stream is one cent higher."""
        table = original(records, shard_id, schema)
        return table.set_column(table.schema.get_field_index("price"), "price",
                                pc.add(table.column("price"), 0.01))

    monkeypatch.setattr(consume, "decode", one_cent_off)
    _replay_and_consume(staged)
    with pytest.raises(ParityError, match=r"u_revenue_\d+d|uc_revenue_\d+d|i_revenue_\d+d"):
        features_step.run_features(staged.ctx, staged.manifest)
    parity = staged.ctx.storage.read_json(staged.ctx.uri("features", "parity.json"))
    assert parity["mismatches"] >= 1 and parity["examples"]
    assert {e["feature"] for e in parity["examples"]} <= {f for f in parity["features_mismatched"]}


def test_stream_fold_equals_the_batch_sql_on_the_slice(staged: StreamRun) -> None:
    spec, cutoff = feature_sets.run_set(staged.ctx.storage, staged.manifest), staged.manifest.time.cutoff
    batch = feature_sql.batch_tables(staged.events, staged.items, staged.users, spec, cutoff)
    folded = feature_fold.fold(staged.events, staged.items, staged.users, spec, cutoff)
    assert set(batch) == set(folded) == set(spec.groups())
    for group, table in batch.items():
        assert folded[group].equals(table.combine_chunks().cast(folded[group].schema)), group


def test_provision_sizes_a_provisioned_stream_from_the_manifest(small_lake: Path) -> None:
    with embedded_aws():
        run = _stage(small_lake, _slice_events(small_lake).slice(0, 10), _manifest(stream_mode="provisioned",
                                                                                    shards=3))
        created = provision.run_provision(run.ctx, run.manifest, unlimited)
        assert len(created["shards"]) == 3 and not created["replaced_stale"]
        described = run.kinesis.describe_stream_summary(StreamName=run.name)["StreamDescriptionSummary"]
        assert described["EncryptionType"] == "KMS" and described["OpenShardCount"] == 3
        assert run_resources.delete_stream(run.kinesis, run.name) and run_resources.delete_table(run.dynamodb,
                                                                                                 run.name)
