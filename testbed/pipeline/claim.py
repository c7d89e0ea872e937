"""The run's claim: one execution at a time works on a run.

Two executions of one manifest (a CI retry after `--timeout` while the first still runs) share the run id and
so its stream, table and record. Validate therefore takes `claim.json` with a conditional put before the run
is provisioned or written: created if absent, or taken over, conditional on the version it read, from a
claim that is stale. A claim is stale once its execution must have ended: its run has a record written at or
after the claim (record and record_error are its last writes), or its state machine timeout has passed since
it was taken (a timed-out execution records nothing). A claim held by this same execution (a retried step) is
its own. Any other claim means the run is in progress: this execution fails with RunInProgressError, and the
steps that change a run's resources or record (provision, record_error, teardown) check the claim first, so
the second execution provisions, deletes and writes nothing of the first's.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from testbed.adapters.storage import Storage
from testbed.errors import RunInProgressError
from testbed.pipeline.context import RunContext
from testbed.record import io
from testbed.record.claim import ExecutionRef, RunClaim
from testbed.record.layout import RunLayout
from testbed.record.run import RunFile

TAKEOVER_ATTEMPTS = 3


def in_progress(claim: RunClaim) -> RunInProgressError:
    return RunInProgressError(f"run {claim.run_id} is already in progress (execution {claim.execution}, "
                              f"since {claim.created_at}); this execution changed nothing of it")


def is_stale(claim: RunClaim, record: RunFile | None, now: datetime) -> bool:
    """Whether the claim's execution has ended (see the module docstring)."""
    taken = datetime.fromisoformat(claim.created_at)
    if record is not None and datetime.fromisoformat(record.created_at) >= taken:
        return True
    return now >= taken + timedelta(seconds=claim.timeout_s)


def take(storage: Storage, layout: RunLayout, execution: ExecutionRef, record: RunFile | None,
         now: datetime | None = None) -> RunClaim:
    """Claim the run for `execution`, or raise RunInProgressError naming the execution that holds it."""
    now = now or datetime.now(UTC)
    mine = RunClaim(run_id=layout.run_id, execution=execution.id,
                    created_at=now.isoformat(timespec="seconds"), timeout_s=execution.timeout_s)
    for _ in range(TAKEOVER_ATTEMPTS):
        if io.write(storage, layout.claim, mine, if_absent=True):
            return mine
        held, tag = io.read_tagged(storage, layout.claim)
        if held.execution == execution.id:
            return held
        if not is_stale(held, record, now):
            raise in_progress(held)
        if io.write(storage, layout.claim, mine, if_match=tag):
            return mine
    raise in_progress(io.read(storage, layout.claim))  # another execution took it over first


def holds(ctx: RunContext) -> bool:
    """Whether this execution holds the run (always, outside a workflow execution or before claims existed)."""
    claim = io.read_if_present(ctx.storage, ctx.layout.claim)
    return claim is None or ctx.execution is None or claim.execution == ctx.execution


def require(ctx: RunContext) -> None:
    """Raise RunInProgressError unless this execution holds the run."""
    if not holds(ctx):
        raise in_progress(io.read(ctx.storage, ctx.layout.claim))
