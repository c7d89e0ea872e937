"""The run's claim and the conditional record writes, on a MemoryStorage."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from testbed.adapters.storage import MemoryStorage
from testbed.errors import RunInProgressError
from testbed.pipeline import claim
from testbed.pipeline.context import RunContext
from testbed.pipeline.record import record_error
from testbed.pipeline.teardown import run_teardown
from testbed.record import io
from testbed.record.claim import ExecutionRef, RunClaim
from testbed.record.run import ErrorRecord
from tests.unit import report_run

FIRST = ExecutionRef(id="arn:aws:states:us-east-1:1:execution:m:first", timeout_s=3600)
SECOND = ExecutionRef(id="arn:aws:states:us-east-1:1:execution:m:second", timeout_s=3600)
T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def _error(created: datetime) -> ErrorRecord:
    return ErrorRecord(run_id=report_run.RUN_ID, decision="ERROR", reasons=["score: StepError: x"],
                       failed_step="score", error="StepError", created_at=created.isoformat(timespec="seconds"))


def test_a_claim_is_taken_once_and_a_retry_of_its_execution_keeps_it(memory: MemoryStorage, ctx: RunContext) -> None:
    taken = claim.take(memory, ctx.layout, FIRST, None, T0)
    assert io.read(memory, ctx.layout.claim) == taken == RunClaim(
        run_id=ctx.run_id, execution=FIRST.id, created_at="2026-11-01T12:00:00+00:00", timeout_s=3600)
    assert claim.take(memory, ctx.layout, FIRST, None, T0 + timedelta(minutes=5)) == taken
    before = dict(memory.objects)
    with pytest.raises(RunInProgressError, match=f"already in progress \\(execution {FIRST.id}"):
        claim.take(memory, ctx.layout, SECOND, None, T0 + timedelta(minutes=5))
    assert memory.objects == before


@pytest.mark.parametrize("how", ["timed out", "recorded"])
def test_a_stale_claim_is_taken_over(memory: MemoryStorage, ctx: RunContext, how: str) -> None:
    claim.take(memory, ctx.layout, FIRST, None, T0)
    later = T0 + (timedelta(seconds=FIRST.timeout_s) if how == "timed out" else timedelta(minutes=1))
    record = _error(T0 + timedelta(seconds=30)) if how == "recorded" else None
    assert claim.take(memory, ctx.layout, SECOND, record, later).execution == SECOND.id
    assert io.read(memory, ctx.layout.claim).execution == SECOND.id


def test_an_older_record_does_not_free_a_live_claim(memory: MemoryStorage, ctx: RunContext) -> None:
    claim.take(memory, ctx.layout, FIRST, None, T0)
    with pytest.raises(RunInProgressError):
        claim.take(memory, ctx.layout, SECOND, _error(T0 - timedelta(minutes=1)), T0 + timedelta(minutes=1))


def test_of_two_takeovers_of_one_stale_claim_one_wins(memory: MemoryStorage, ctx: RunContext,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    claim.take(memory, ctx.layout, FIRST, None, T0)
    third = ExecutionRef(id="arn:aws:states:us-east-1:1:execution:m:third", timeout_s=3600)
    later = T0 + timedelta(hours=2)
    read_tagged = io.read_tagged

    def raced(storage: Any, path: Any) -> Any:  # the third execution takes over between our read and write
        held = read_tagged(storage, path)
        monkeypatch.setattr(io, "read_tagged", read_tagged)
        claim.take(memory, ctx.layout, third, None, later)
        return held

    monkeypatch.setattr(io, "read_tagged", raced)
    with pytest.raises(RunInProgressError, match="execution:m:third"):
        claim.take(memory, ctx.layout, SECOND, None, later)
    assert io.read(memory, ctx.layout.claim).execution == third.id


def test_a_second_execution_records_and_deletes_nothing(memory: MemoryStorage, ctx: RunContext) -> None:
    claim.take(memory, ctx.layout, FIRST, None, T0)
    memory.write_bytes(ctx.layout.scratch("shards", "shard-00000.json"), b"{}")
    second = dataclasses.replace(ctx, execution=SECOND.id)
    before = dict(memory.objects)
    assert record_error(second, "provision", "RunInProgressError", "in progress")["recorded"] is False
    assert run_teardown(second) == {"deleted_objects": 0, "stream_deleted": False, "table_deleted": False,
                                    "sampled_table_deleted": False}
    with pytest.raises(RunInProgressError):
        claim.require(second)
    assert memory.objects == before
    claim.require(dataclasses.replace(ctx, execution=FIRST.id))


def test_record_error_after_a_final_pass_leaves_it_intact(memory: MemoryStorage, ctx: RunContext) -> None:
    io.write(memory, ctx.layout.record, report_run.record_model("PASS", []))
    before = memory.read_bytes(ctx.layout.record.uri)
    assert record_error(ctx, "teardown", "StepError", "late") == {"decision": "PASS", "existing": True}
    assert memory.read_bytes(ctx.layout.record.uri) == before


def test_an_error_record_is_replaced_only_in_the_version_read(memory: MemoryStorage, ctx: RunContext,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    io.write(memory, ctx.layout.record, _error(T0))
    assert record_error(ctx, "slice", "StepError", "again") == {"decision": "ERROR", "existing": False}
    assert io.read(memory, ctx.layout.record).reasons == ["slice: StepError: again"]
    read_tagged = io.read_tagged

    passed = io.dumps(ctx.layout.record, report_run.record_model("PASS", []))

    def raced(storage: Any, path: Any) -> Any:  # the final record lands between our read and our write
        held = read_tagged(storage, path)
        memory.objects[ctx.layout.record.uri] = passed
        return held

    monkeypatch.setattr(io, "read_tagged", raced)
    assert record_error(ctx, "teardown", "StepError", "late") == {"decision": "PASS", "existing": True}
    assert memory.read_bytes(ctx.layout.record.uri) == passed
