"""latency.json: the score shards' request timings merged into one summary per model."""

from __future__ import annotations

from typing import Any

import numpy as np

from testbed.core.stats import percentile


def latency_summary(shards: list[dict[str, Any]]) -> dict[str, Any]:
    """Per model: percentiles of the timed requests of every shard, and the error rate over its users; the
    timings pair across models when every shard's do, and are Lambda's when every shard ran in Lambda."""
    out: dict[str, Any] = {}
    for role in ("control", "candidate"):
        ms = np.array([v for s in shards for v in s[role]["ms"]], dtype=np.float64)
        cpu = np.array([v for s in shards for v in s[role].get("cpu_ms", [])], dtype=np.float64)
        users = sum(s["users"] for s in shards)
        errors = sum(s[role]["errors"] for s in shards)
        out[role] = {"requests_timed": int(ms.size), "p50_ms": percentile(ms, 50), "p95_ms": percentile(ms, 95),
                     "p99_ms": percentile(ms, 99), "users": users, "errors": errors,
                     "error_rate": errors / users if users else 0.0, "ms": ms.round(4).tolist()}
        if cpu.size == ms.size and cpu.size:  # every shard timed CPU too
            out[role].update(cpu_ms=cpu.round(4).tolist(), cpu_p95_ms=percentile(cpu, 95))
    out["paired"] = bool(shards) and all(s.get("paired", False) for s in shards)
    out["measured_in"] = "lambda" if shards and all(s.get("measured_in") == "lambda" for s in shards) else "local"
    return out
