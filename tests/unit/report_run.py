"""A small, hand-made run record for the report tests: every input the reports read, with numbers chosen so the
expected figures can be worked out by hand. `write_run` writes it; keyword switches leave parts out.

The gate step lists gates in manifest order; here the failed gate is the third one, so a report that shows it
first has reordered them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

RUN_ID = "fixture-run-0123456789ab"
ITEMS = [f"i{n:02d}" for n in range(10)]  # i00 is the most popular, i09 the least


def gates_doc(failed: bool = True) -> dict[str, Any]:
    gates = [
        {"name": "ndcg-not-worse", "kind": "non_inferiority", "metric": "ndcg@10", "stratum": "all",
         "observed": 0.012, "relative": 0.04, "interval": [0.004, 0.02], "threshold": -0.01, "statistic": 3.1,
         "p_value": 0.0001, "p_adjusted": 0.0003, "alpha": 0.05, "outcome": "pass", "n": 400, "mde": 0.006,
         "required_n": 150, "method": "bca-bootstrap", "reason": "delta 0.012 [0.004, 0.02] vs limit -0.01"},
        {"name": "ndcg-not-worse", "kind": "non_inferiority", "metric": "ndcg@10", "stratum": "tier=gold",
         "observed": -0.004, "interval": [-0.015, 0.007], "threshold": -0.01, "p_value": 0.21,
         "outcome": "inconclusive", "n": 80, "reason": "interval includes -0.01"},
        {"name": "revenue-floor", "kind": "threshold", "metric": "revenue@10", "stratum": "all", "observed": 3.25,
         "interval": None, "threshold": 4.5, "p_value": None, "outcome": "fail" if failed else "pass", "n": 400,
         "reason": "candidate revenue@10 3.25 vs minimum 4.5"},
        {"name": "latency-p95", "kind": "latency", "metric": "p95 latency ms", "stratum": "all", "observed": 12.5,
         "interval": None, "threshold": 50.0, "p_value": None, "outcome": "pass", "n": 200, "reason": "ok"},
    ]
    decision = "FAIL" if failed else "INCONCLUSIVE"
    reasons = ["revenue-floor (all): candidate revenue@10 3.25 below 4.5"] if failed else []
    reasons.append("ndcg-not-worse (tier=gold): interval [-0.015, 0.007] includes -0.01")
    return {"gates": gates, "decision": decision, "reasons": reasons, "correction": "holm",
            "sample_ratio": {"chi2": 0.4, "dof": 1, "p_value": 0.53}}


def metrics_doc() -> dict[str, Any]:
    def delta(control: float, candidate: float, lo: float, hi: float, n: int) -> dict[str, Any]:
        return {"n": n, "control": control, "candidate": candidate, "delta": candidate - control,
                "relative": (candidate - control) / control, "interval": [lo, hi], "p_value": 0.01}

    models = {
        "control": {"all": {"ndcg@10": 0.30, "recall@10": 0.20, "revenue@10": 4.0, "coverage@10": 0.10, "users": 400},
                    "tier=gold": {"ndcg@10": 0.40, "recall@10": 0.25, "revenue@10": 6.0, "coverage@10": 0.05,
                                  "users": 80},
                    "tier=silver": {"ndcg@10": 0.28, "recall@10": 0.18, "revenue@10": 3.5, "coverage@10": 0.08,
                                    "users": 320}},
        "candidate": {"all": {"ndcg@10": 0.312, "recall@10": 0.25, "revenue@10": 3.25, "coverage@10": 0.30,
                              "users": 400},
                      "tier=gold": {"ndcg@10": 0.396, "recall@10": 0.26, "revenue@10": 5.0, "coverage@10": 0.12,
                                    "users": 80},
                      "tier=silver": {"ndcg@10": 0.30, "recall@10": 0.24, "revenue@10": 2.9, "coverage@10": 0.20,
                                      "users": 320}},
    }
    deltas = {
        "all": {"ndcg@10": delta(0.30, 0.312, 0.003, 0.021, 400), "recall@10": delta(0.20, 0.25, 0.03, 0.07, 400),
                "revenue@10": delta(4.0, 3.25, -1.2, -0.3, 400)},
        "tier=gold": {"ndcg@10": delta(0.40, 0.396, -0.018, 0.010, 80),
                      "recall@10": delta(0.25, 0.26, -0.01, 0.03, 80),
                      "revenue@10": delta(6.0, 5.0, -2.0, 0.0, 80)},
        "tier=silver": {"ndcg@10": delta(0.28, 0.30, 0.01, 0.03, 320),
                        "recall@10": delta(0.18, 0.24, 0.04, 0.08, 320),
                        "revenue@10": delta(3.5, 2.9, -1.0, -0.2, 320)},
    }
    return {"k": 10, "models": models, "deltas": deltas, "interval": "bca-bootstrap, 95%"}


def drift_doc() -> dict[str, Any]:
    features = [
        {"feature": "i_revenue_30d", "table": "item", "type": "numeric", "method": "wasserstein", "statistic": 0.31,
         "threshold": 0.1, "p_value": None, "psi": 0.42, "psi_threshold": 0.2, "drifted": True, "rank": 1,
         "strata": [{"stratum": "tier=gold", "statistic": 0.4, "psi": 0.5, "drifted": True},
                    {"stratum": "tier=silver", "statistic": 0.05, "psi": 0.04, "drifted": False}]},
        {"feature": "u_views_7d", "table": "user", "type": "numeric", "method": "ks", "statistic": 0.08,
         "threshold": 0.05, "p_value": 0.2, "psi": 0.03, "psi_threshold": 0.2, "drifted": False, "rank": 3,
         "strata": []},
        {"feature": "i_price", "table": "item", "type": "numeric", "method": "wasserstein", "statistic": 0.2,
         "threshold": 0.1, "p_value": None, "psi": 0.25, "psi_threshold": 0.2, "drifted": True, "rank": 2,
         "strata": []},
    ]
    daily = {"i_revenue_30d": {"dates": ["2026-10-01", "2026-10-02", "2026-10-03", "2026-10-04"],
                               "psi": [0.02, 0.05, 0.31, 0.44], "threshold": 0.2, "retrain_after": "2026-10-03"},
             "i_price": {"dates": ["2026-10-01", "2026-10-02"], "psi": [0.1, 0.3], "threshold": 0.2,
                         "retrain_after": "2026-10-02"}}
    return {"baseline": {"kind": "population", "source": "unsampled segment", "rows": 5000}, "features": features,
            "top_strata": [{"stratum": "tier=gold", "drifted_features": 1, "max_psi": 0.5}], "daily": daily,
            "drifted": 2}


def whatif_doc() -> dict[str, Any]:
    return {"scenarios": [{"name": "cold-start-50", "kind": "cold_start_items", "params": {"items": 50},
                           "models": {"control": {"ndcg@10": 0.29}, "candidate": {"ndcg@10": 0.30}},
                           "deltas_vs_baseline": {"control": {"ndcg@10": -0.01}, "candidate": {"ndcg@10": -0.012}}}],
            "more_graceful": "control"}


def record_doc(decision: str, reasons: list[str]) -> dict[str, Any]:
    return {"run_id": RUN_ID, "decision": decision, "reasons": reasons, "created_at": "2026-11-01T12:00:00+00:00",
            "manifest_digest": "a" * 64, "lake": "/lake", "lake_fingerprint": "b" * 64, "code_version": "0.1.0+abc",
            "seeds": {"sampling": 42, "bootstrap": 7},
            "models": {"control": {"uri": "models/control.txt", "sha256": "c" * 64},
                       "candidate": {"uri": "models/candidate.txt", "sha256": "d" * 64}},
            "slice": {"users": 400, "events": 9000, "content_sha256": "e" * 64},
            "replay": {"stream": "testbed-fixture", "shards": [
                {"shard_id": "shardId-000000000000", "first_sequence": "4960", "last_sequence": "4999",
                 "records": 9000}], "records": 9000, "put_calls": 18, "retried_entries": 3},
            "step_seconds": {"validate": 0.5, "slice": 1.25, "score": 3.0}, "cost_estimate": {"usd": 0.0003},
            "artifacts": []}


def stats_doc() -> dict[str, Any]:
    return {"users": 400, "rows": {"events": 9000, "users": 400, "items": 10}, "strategy": "stratified", "seed": 42,
            "eligible_users": 800, "catalogue_size": 10, "content_sha256": "e" * 64,
            "strata": {"tier=gold": {"users": 80, "events": 3000, "eligible_users": 100, "expected_users": 80.0},
                       "tier=silver": {"users": 320, "events": 6000, "eligible_users": 700,
                                       "expected_users": 320.0}}}


def users_table() -> pa.Table:
    """Two gold users (p 0.8 and 0.6) and three silver users (p 0.5, 0.4, 0.3)."""
    return pa.table({"user_id": ["u1", "u2", "u3", "u4", "u5"],
                     "stratum": ["tier=gold", "tier=gold", "tier=silver", "tier=silver", "tier=silver"],
                     "inclusion_probability": [0.8, 0.6, 0.5, 0.4, 0.3]})


def rankings_table() -> pa.Table:
    """Control recommends only the two most popular items; candidate spreads over i00, i04 and i09.
    Scores: control 1.0 / 2.0 / 3.0 (repeated), candidate 0.5 (x2) and 3.0 (x4), one NaN."""
    rows = []
    for user in ("u1", "u2"):
        for rank, (item, score) in enumerate((("i00", 3.0), ("i01", 2.0), ("i00", 1.0)), start=1):
            rows.append((user, "control", rank, item, score))
    candidate = [("u1", "i00", 3.0), ("u1", "i04", 3.0), ("u1", "i09", 0.5),
                 ("u2", "i00", 3.0), ("u2", "i04", 3.0), ("u2", "i09", float("nan"))]
    for rank, (user, item, score) in enumerate(candidate):
        rows.append((user, "candidate", rank % 3 + 1, item, score))
    columns = list(zip(*rows, strict=True))
    return pa.table({"user_id": list(columns[0]), "model": list(columns[1]), "rank": list(columns[2]),
                     "item_id": list(columns[3]), "score": list(columns[4])})


def items_table() -> pa.Table:
    """i00 .. i09 with 90-day interactions 100, 90, ..., 10 (views only; carts and purchases 0)."""
    return pa.table({"item_id": ITEMS, "i_views_7d": [1] * 10, "i_views_90d": [100 - 10 * n for n in range(10)],
                     "i_carts_90d": [0] * 10, "i_purchases_90d": [0] * 10})


def write_run(root: Path, *, failed: bool = True, drift: bool = True, whatif: bool = True,
              parquet: bool = True, skip: tuple[str, ...] = ()) -> Path:
    """The run record under root/runs/RUN_ID; `skip` names files (relative paths) to leave out."""
    run = root / "runs" / RUN_ID
    gates = gates_doc(failed)
    documents: dict[str, Any] = {
        "run.json": record_doc(gates["decision"], gates["reasons"]), "gates.json": gates,
        "metrics.json": metrics_doc(), "slice/stats.json": stats_doc(),
        "features/parity.json": {"rows_stream": 400, "rows_batch": 400, "mismatches": 0, "examples": []},
        "latency.json": {"control": {"p50_ms": 5.0, "p95_ms": 11.0, "p99_ms": 20.0, "requests_timed": 200,
                                     "errors": 0, "error_rate": 0.0},
                         "candidate": {"p50_ms": 6.0, "p95_ms": 12.5, "p99_ms": 22.0, "requests_timed": 200,
                                       "errors": 1, "error_rate": 0.005}},
        "manifest.json": {"name": "fixture-run"},
    }
    if drift:
        documents["drift.json"] = drift_doc()
    if whatif:
        documents["whatif.json"] = whatif_doc()
    for name, document in documents.items():
        if name not in skip:
            (run / name).parent.mkdir(parents=True, exist_ok=True)
            (run / name).write_text(json.dumps(document, indent=2))
    if parquet:
        for name, table in (("slice/users.parquet", users_table()), ("rankings.parquet", rankings_table()),
                            ("features/batch_item.parquet", items_table())):
            if name not in skip:
                (run / name).parent.mkdir(parents=True, exist_ok=True)
                pq.write_table(table, run / name)
    return run
