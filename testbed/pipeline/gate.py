"""Step 8: apply the manifest's gates to the evaluation and decide."""

from __future__ import annotations

from typing import Any

import numpy as np

from testbed.adapters import storage
from testbed.core import gates
from testbed.manifest import Manifest
from testbed.pipeline import slice_data
from testbed.pipeline.context import RunContext


def gate_inputs(ctx: RunContext, manifest: Manifest) -> gates.GateInputs:
    document = storage.read_json(ctx.uri("metrics.json"))
    latency = storage.read_json(ctx.uri("latency.json"))
    per_user = storage.read_parquet(ctx.uri("evaluation", "per_user.parquet"))
    strata = slice_data.strata(ctx) if manifest.sampling.strata else {}
    pairs = gates.pair_by_stratum(per_user, strata, [c for c in per_user.column_names if "@" in c])
    return gates.GateInputs(
        pairs=pairs, aggregates=document["models"],
        latency_ms={role: np.array(v["ms"], dtype=np.float64) for role, v in latency.items()},
        error_rate={role: float(v["error_rate"]) for role, v in latency.items()},
        strata=[s for s in pairs if s != "all"],
    )


def run_gate(ctx: RunContext, manifest: Manifest) -> dict[str, Any]:
    results = gates.evaluate(manifest.gates, gate_inputs(ctx, manifest))
    decision, reasons = gates.decide(results)
    storage.write_json(ctx.uri("gates.json"),
                       {"gates": [r.as_dict() for r in results], "decision": decision, "reasons": reasons})
    counts = {outcome: sum(r.outcome == outcome for r in results) for outcome in ("pass", "fail", "inconclusive")}
    return {"decision": decision, "reasons": reasons, "gates": counts}
