"""Step 9: write the immutable run record and its reports (Markdown and HTML). Also records ERROR outcomes.

`run.json` is written last, and every write of it is conditional: created only if absent, so a crash never
leaves a record that looks complete and a final decision (PASS/FAIL/INCONCLUSIVE) is never replaced; an ERROR
record is replaced (by a later attempt with the same run id) only in the version that was read, so a final
record written meanwhile is never overwritten. Every error is also kept under `errors/`. An execution that
does not hold the run's claim (testbed.pipeline.claim) records nothing.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from testbed.core import gates
from testbed.errors import TransientError
from testbed.manifest import Manifest
from testbed.pipeline import claim
from testbed.pipeline.context import RunContext
from testbed.pipeline.report import write_run_reports
from testbed.record import documents, io
from testbed.record.gates import GateRow, GatesDocument, ParityFailureGates
from testbed.record.layout import DocumentPath
from testbed.record.run import (
    CostEstimate,
    ErrorRecord,
    FeatureSummary,
    ModelProvenance,
    ParitySummary,
    ReportStatus,
    RunFile,
    RunRecord,
    Seeds,
    SliceSummary,
)
from testbed.record.steps import RecordResult

# A rough public-price model for the same work on AWS (us-east-1, 2026 list prices).
LAMBDA_USD_PER_GB_SECOND = 0.0000166667
ATHENA_USD_PER_TB = 5.0
STEP_MEMORY_GB = 3.0
WRITE_ATTEMPTS = 3  # conditional writes of run.json before giving up (each loses only to a concurrent write)
NOT_RECORDED = {"decision": "ERROR", "existing": False, "recorded": False}  # record_error of a run not held


def cost_estimate(step_seconds: dict[str, float], bytes_scanned: int) -> dict[str, float]:
    gb_seconds = sum(step_seconds.values()) * STEP_MEMORY_GB
    athena = max(bytes_scanned, 10 * 1024**2) / 1024**4 * ATHENA_USD_PER_TB  # Athena bills at least 10 MB
    return {"lambda_gb_seconds": round(gb_seconds, 3), "athena_bytes_scanned": bytes_scanned,
            "usd": round(gb_seconds * LAMBDA_USD_PER_GB_SECOND + athena, 6)}


def _step_seconds(steps: dict[str, Any]) -> dict[str, float]:
    return {name: round(float(out.get("elapsed_s", 0.0)), 3) for name, out in steps.items() if isinstance(out, dict)}


def _score_seconds(ctx: RunContext) -> float:
    """Every scoring shard's seconds, summed (Lambda bills each shard): from their result documents, since the
    workflow's state keeps only the number of shards."""
    keys = sorted(k for k in ctx.storage.list_keys(ctx.layout.scores + "/") if k.endswith(".result.json"))
    return round(sum(io.read(ctx.storage, DocumentPath(k, documents.SHARD_RESULT)).seconds for k in keys), 3)


def _parity_summary(ctx: RunContext) -> ParitySummary:
    parity = io.read(ctx.storage, ctx.layout.parity)
    return ParitySummary(rows_stream=parity.rows_stream, rows_batch=parity.rows_batch, mismatches=parity.mismatches,
                         float_tolerance=parity.float_tolerance)


NOT_RENDERED = ReportStatus(written=False, files=[], errors=[])  # the draft's, replaced once the reports exist


def run_record(ctx: RunContext, manifest: Manifest, validation: dict[str, Any],
               steps: dict[str, Any]) -> dict[str, Any]:
    storage, layout = ctx.storage, ctx.layout
    decided = io.read(storage, layout.gates)
    if not isinstance(decided, GatesDocument):
        raise TypeError("gates.json holds a failed parity gate: an ERROR run has no run record")
    stats = io.read(storage, layout.slice_stats)
    replay = io.read(storage, layout.replay)
    stream = io.read(storage, layout.stream_stats)
    # replay and consume loop: their last invocation's elapsed_s is not the step's time, their summaries are;
    # the scoring Map's shards report theirs in their result documents
    timings = {"validate": float(validation.get("elapsed_s", 0.0)), **_step_seconds(steps),
               "replay": replay.seconds, "consume": stream.seconds, "score": _score_seconds(ctx)}
    draft = RunRecord(
        run_id=ctx.run_id,
        decision=decided.decision,
        reasons=decided.reasons,
        warnings=decided.warnings,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        manifest_digest=validation["manifest_digest"],
        lake=ctx.lake,
        lake_fingerprint=validation["lake_fingerprint"],
        code_version=validation["code_version"],
        seeds=Seeds(sampling=manifest.sampling.seed),
        models={role: ModelProvenance.model_validate(model) for role, model in validation["models"].items()},
        slice=SliceSummary(users=stats.users, events=stats.rows.events, content_sha256=stats.content_sha256),
        replay=replay,
        features=FeatureSummary(parity=_parity_summary(ctx), stream=stream),
        step_seconds=timings,
        cost_estimate=CostEstimate.model_validate(cost_estimate(timings, int(validation.get("bytes_scanned", 0))
                                                   + int((steps.get("slice") or {}).get("bytes_scanned", 0)))),
        artifacts=sorted(uri.removeprefix(ctx.run_uri + "/") for uri in storage.list_keys(ctx.run_uri + "/")),
        report=NOT_RENDERED,
    )
    # the reports render the record before it is written; never raises: a broken report must not fail the run
    report = write_run_reports(ctx, draft.model_dump(mode="json", exclude={"report"}))
    record = draft.model_copy(update={"report": report,
                                      "artifacts": sorted({*draft.artifacts, *report.files, "run.json"})})
    return _write_record(ctx, record).model_dump(mode="json")


def _write_record(ctx: RunContext, record: RunFile) -> RecordResult:
    """Create run.json, or replace the ERROR record there in exactly the version read; a final one stays."""
    storage, path = ctx.storage, ctx.layout.record
    for _ in range(WRITE_ATTEMPTS):
        if io.write(storage, path, record, if_absent=True):
            return RecordResult(decision=record.decision, existing=False)
        existing, tag = io.read_tagged(storage, path)
        if isinstance(existing, RunRecord):
            return RecordResult(decision=existing.decision, existing=True)
        if io.write(storage, path, record, if_match=tag):
            return RecordResult(decision=record.decision, existing=False)
    raise TransientError(f"{path.uri} changed on every one of {WRITE_ATTEMPTS} conditional writes")


def _record_failed_parity_gate(ctx: RunContext, error: str, reasons: Sequence[str]) -> None:
    """A parity failure ends the run before the gate step; gates.json still shows parity as its failed gate."""
    storage, layout = ctx.storage, ctx.layout
    if error != "ParityError" or not storage.exists(layout.parity.uri) or storage.exists(layout.gates.uri):
        return
    parity = io.to_json(layout.parity, io.read(storage, layout.parity))
    row = GateRow.model_validate(gates.parity_result(parity).as_dict())
    io.write(storage, layout.gates, ParityFailureGates(gates=[row], decision="ERROR", reasons=list(reasons)))


def record_error(ctx: RunContext, step: str, error: str, cause: str) -> dict[str, Any]:
    """Record what is known after a failed step; never replaces a final decision, and writes nothing of a run
    another execution holds."""
    if not claim.holds(ctx):
        return NOT_RECORDED
    now = datetime.now(UTC).isoformat(timespec="seconds")
    try:
        message = str(json.loads(cause).get("errorMessage", cause))
    except (json.JSONDecodeError, AttributeError):
        message = cause
    message = message.strip().splitlines()[0][:500] if message.strip() else error
    record = ErrorRecord(run_id=ctx.run_id, decision="ERROR", reasons=[f"{step}: {error}: {message}"],
                         failed_step=step, error=error, created_at=now)
    _record_failed_parity_gate(ctx, error, record.reasons)
    key = hashlib.sha256(f"{now}{step}{message}".encode()).hexdigest()[:12]
    io.write(ctx.storage, ctx.layout.error(f"{now.replace(':', '')}-{key}"), record)
    return _write_record(ctx, record).model_dump(mode="json")
