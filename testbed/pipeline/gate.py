"""Step 8: apply the manifest's gates to the evaluation and decide."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow.compute as pc

from testbed.adapters import storage
from testbed.core import gates
from testbed.manifest import Manifest
from testbed.pipeline.context import RunContext


def gate_inputs(ctx: RunContext, manifest: Manifest) -> gates.GateInputs:
    document = storage.read_json(ctx.uri("metrics.json"))
    latency = storage.read_json(ctx.uri("latency.json"))
    per_user = storage.read_parquet(ctx.uri("evaluation", "per_user.parquet"))
    users = storage.read_parquet(ctx.uri("slice", "users.parquet"))
    strata = dict(zip(users.column("user_id").to_pylist(), users.column("stratum").to_pylist(), strict=True))
    metric_names = [c for c in per_user.column_names if "@" in c]
    tables = {m: per_user.filter(pc.equal(per_user.column("model"), m)) for m in ("control", "candidate")}
    labels = np.array([strata.get(u, "all") for u in tables["control"].column("user_id").to_pylist()])
    names = sorted(set(strata.values()) - {"all"}) if manifest.sampling.strata else []
    pairs: gates.Pairs = {}
    for stratum in ["all", *names]:
        mask = np.ones(len(labels), bool) if stratum == "all" else labels == stratum
        pairs[stratum] = {m: (tables["control"].column(m).to_numpy()[mask],
                              tables["candidate"].column(m).to_numpy()[mask]) for m in metric_names}
    return gates.GateInputs(
        pairs=pairs, aggregates=document["models"],
        latency_ms={role: np.array(v["ms"], dtype=np.float64) for role, v in latency.items()},
        error_rate={role: float(v["error_rate"]) for role, v in latency.items()},
        strata=names,
    )


def run_gate(ctx: RunContext, manifest: Manifest) -> dict[str, Any]:
    results = gates.evaluate(manifest.gates, gate_inputs(ctx, manifest))
    decision, reasons = gates.decide(results)
    storage.write_json(ctx.uri("gates.json"),
                       {"gates": [r.as_dict() for r in results], "decision": decision, "reasons": reasons})
    counts = {outcome: sum(r.outcome == outcome for r in results) for outcome in ("pass", "fail", "inconclusive")}
    return {"decision": decision, "reasons": reasons, "gates": counts}
