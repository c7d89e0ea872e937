"""Step 9: write the immutable run record and its reports (Markdown and HTML). Also records ERROR outcomes.

`run.json` is written last and only if absent, so a crash never leaves a record that looks complete and a
final decision (PASS/FAIL/INCONCLUSIVE) is never replaced. An ERROR record may be replaced by a later
attempt with the same run id; every error is also kept under `errors/`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from testbed.adapters import storage
from testbed.core import gates
from testbed.manifest import Manifest
from testbed.pipeline.context import FINAL_DECISIONS, RunContext
from testbed.pipeline.report import write_run_reports

# A rough public-price model for the same work on AWS (us-east-1, 2026 list prices).
LAMBDA_USD_PER_GB_SECOND = 0.0000166667
ATHENA_USD_PER_TB = 5.0
STEP_MEMORY_GB = 3.0


def cost_estimate(step_seconds: dict[str, float], bytes_scanned: int) -> dict[str, float]:
    gb_seconds = sum(step_seconds.values()) * STEP_MEMORY_GB
    athena = max(bytes_scanned, 10 * 1024**2) / 1024**4 * ATHENA_USD_PER_TB  # Athena bills at least 10 MB
    return {"lambda_gb_seconds": round(gb_seconds, 3), "athena_bytes_scanned": bytes_scanned,
            "usd": round(gb_seconds * LAMBDA_USD_PER_GB_SECOND + athena, 6)}


def _step_seconds(steps: dict[str, Any]) -> dict[str, float]:
    seconds = {}
    for name, out in steps.items():
        parts = out if isinstance(out, list) else [out]  # the scoring Map returns one result per shard
        seconds[name] = round(sum(float(p.get("elapsed_s", 0.0)) for p in parts if isinstance(p, dict)), 3)
    return seconds


def _parity_summary(ctx: RunContext) -> dict[str, Any]:
    parity = storage.read_json(ctx.uri("features", "parity.json"))
    return {key: parity[key] for key in ("rows_stream", "rows_batch", "mismatches", "float_tolerance")}


def run_record(ctx: RunContext, manifest: Manifest, validation: dict[str, Any],
               steps: dict[str, Any]) -> dict[str, Any]:
    gates = storage.read_json(ctx.uri("gates.json"))
    stats = storage.read_json(ctx.uri("slice", "stats.json"))
    replay = storage.read_json(ctx.uri("replay.json"))
    stream = storage.read_json(ctx.uri("features", "stream_stats.json"))
    # replay and consume loop: their last invocation's elapsed_s is not the step's time, their summaries are
    timings = {"validate": float(validation.get("elapsed_s", 0.0)), **_step_seconds(steps),
               "replay": replay["seconds"], "consume": stream["seconds"]}
    record = {
        "run_id": ctx.run_id,
        "decision": gates["decision"],
        "reasons": gates["reasons"],
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "manifest_digest": validation["manifest_digest"],
        "lake": ctx.lake,
        "lake_fingerprint": validation["lake_fingerprint"],
        "code_version": validation["code_version"],
        "seeds": {"sampling": manifest.sampling.seed},
        "models": validation["models"],
        "slice": {"users": stats["users"], "events": stats["rows"]["events"],
                  "content_sha256": stats["content_sha256"]},
        "replay": replay,
        "features": {"parity": _parity_summary(ctx), "stream": stream},
        "step_seconds": timings,
        "cost_estimate": cost_estimate(timings, int(validation.get("bytes_scanned", 0))
                                       + int((steps.get("slice") or {}).get("bytes_scanned", 0))),
        "artifacts": sorted(uri.removeprefix(ctx.run_uri + "/") for uri in storage.list_keys(ctx.run_uri + "/")),
    }
    record["report"] = write_run_reports(ctx, record)  # never raises: a broken report must not fail the run
    record["artifacts"] = sorted({*record["artifacts"], *record["report"]["files"], "run.json"})
    if not storage.write_json(ctx.uri("run.json"), record, if_absent=True):
        existing = storage.read_json(ctx.uri("run.json"))
        if existing.get("decision") in FINAL_DECISIONS:
            return {"decision": existing["decision"], "existing": True}
        storage.write_json(ctx.uri("run.json"), record)
    return {"decision": record["decision"], "existing": False}


def _record_failed_parity_gate(ctx: RunContext, error: str, reasons: Sequence[str]) -> None:
    """A parity failure ends the run before the gate step; gates.json still shows parity as its failed gate."""
    parity_uri = ctx.uri("features", "parity.json")
    if error != "ParityError" or not storage.exists(parity_uri) or storage.exists(ctx.uri("gates.json")):
        return
    row = gates.parity_result(storage.read_json(parity_uri)).as_dict()
    storage.write_json(ctx.uri("gates.json"), {"gates": [row], "decision": "ERROR", "reasons": list(reasons)})


def record_error(ctx: RunContext, step: str, error: str, cause: str) -> dict[str, Any]:
    """Record what is known after a failed step; never replaces a final decision."""
    now = datetime.now(UTC).isoformat(timespec="seconds")
    try:
        message = str(json.loads(cause).get("errorMessage", cause))
    except (json.JSONDecodeError, AttributeError):
        message = cause
    message = message.strip().splitlines()[0][:500] if message.strip() else error
    record = {"run_id": ctx.run_id, "decision": "ERROR", "reasons": [f"{step}: {error}: {message}"],
              "failed_step": step, "error": error, "created_at": now}
    _record_failed_parity_gate(ctx, error, record["reasons"])
    key = hashlib.sha256(f"{now}{step}{message}".encode()).hexdigest()[:12]
    storage.write_json(ctx.uri("errors", f"{now.replace(':', '')}-{key}.json"), record)
    record_uri = ctx.uri("run.json")
    if storage.exists(record_uri) and storage.read_json(record_uri).get("decision") in FINAL_DECISIONS:
        return {"decision": storage.read_json(record_uri)["decision"], "existing": True}
    storage.write_json(record_uri, record)
    return {"decision": "ERROR", "existing": False}
