"""Step 8: apply the manifest's gates to the evaluation and decide (statistics in testbed.core.gates)."""

from __future__ import annotations

from typing import Any

import numpy as np

from testbed.adapters import storage
from testbed.core import gates
from testbed.core.sample_ratio import sample_ratio_test
from testbed.manifest import Manifest
from testbed.pipeline import paired
from testbed.pipeline.context import RunContext


def gate_inputs(ctx: RunContext, manifest: Manifest) -> gates.GateInputs:
    document = storage.read_json(ctx.uri("metrics.json"))
    latency = storage.read_json(ctx.uri("latency.json"))
    per_user = storage.read_parquet(ctx.uri("evaluation", "per_user.parquet"))
    stats = storage.read_json(ctx.uri("slice", "stats.json"))
    parity_uri = ctx.uri("features", "parity.json")
    comparisons = paired.comparisons(ctx, manifest, per_user)
    return gates.GateInputs(
        comparisons=comparisons, aggregates=document["models"],
        latency_ms={role: np.array(v["ms"], dtype=np.float64) for role, v in latency.items()},
        error_rate={role: float(v["error_rate"]) for role, v in latency.items()},
        scored_users={role: int(v["users"]) for role, v in latency.items()},
        strata=[s for s in comparisons if s != "all"],
        sample_ratio=sample_ratio_test(stats["strata"], manifest.statistics.sample_ratio_alpha),
        parity=storage.read_json(parity_uri) if storage.exists(parity_uri) else None,
    )


def run_gate(ctx: RunContext, manifest: Manifest) -> dict[str, Any]:
    inputs = gate_inputs(ctx, manifest)
    settings = gates.GateSettings(correction=manifest.statistics.correction, power=manifest.statistics.power)
    results = gates.evaluate(manifest.gates, inputs, settings)
    decision, reasons = gates.decide(results)
    document = {
        "gates": [r.as_dict() for r in results],
        "correction": settings.correction,
        "power": settings.power,
        "resamples": manifest.statistics.resamples,
        "bootstrap_seed": paired.bootstrap_seed(manifest),
        "sample_ratio": inputs.sample_ratio.as_dict() if inputs.sample_ratio else None,
        "decision": decision,
        "reasons": reasons,
    }
    storage.write_json(ctx.uri("gates.json"), document)
    counts = {outcome: sum(r.outcome == outcome for r in results) for outcome in ("pass", "fail", "inconclusive")}
    return {"decision": decision, "reasons": reasons, "gates": counts}
