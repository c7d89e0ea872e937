"""Step 6: candidates per user from pre-cutoff data, scored by both models; top K and request latencies.

A run may split users into shards (the deployed workflow maps over them); each shard writes its own
`scores/shard-NNNNN.parquet` and latency file, and the evaluate step merges them.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pyarrow as pa

from testbed.adapters import storage
from testbed.core import features, ranking_data
from testbed.core.arrays import group_starts
from testbed.core.sampling import uniform_draw
from testbed.core.scoring import LoadedModel, load_model, per_request_latency_ms, top_k
from testbed.manifest import Manifest
from testbed.pipeline import slice_data
from testbed.pipeline.context import RunContext

ROLES = ("control", "candidate")


def shard_users(ctx: RunContext, index: int, count: int) -> pa.Table:
    users = storage.read_parquet(ctx.uri("slice", "users.parquet")).column("user_id").to_pylist()
    return pa.table({"user_id": pa.array(sorted(users)[index::count], pa.string())})


def latency_groups(user_ids: np.ndarray, starts: np.ndarray, sample: int, seed: int) -> np.ndarray:
    """A deterministic sample of user groups to time: the users with the smallest draws."""
    users = user_ids[starts[:-1]]
    draws = np.array([uniform_draw(seed, str(u)) for u in users])
    return np.sort(np.argsort(draws, kind="stable")[:sample])


def record_shard_failure(ctx: RunContext, index: int, exc: Exception) -> None:
    """Leave the shard's error where evaluate looks, so a failed shard can never pass unnoticed."""
    storage.write_json(ctx.uri("scores", f"shard-{index:05d}.error.json"),
                       {"error": type(exc).__name__, "message": str(exc)})


def columns_for(values: np.ndarray, names: list[str], wanted: list[str]) -> np.ndarray:
    """The model's columns in its own order; the matrix itself when they already match (no copy)."""
    if wanted == names:
        return values
    return np.ascontiguousarray(values[:, [names.index(n) for n in wanted]])


def run_score(ctx: RunContext, manifest: Manifest, shard_index: int = 0, shard_count: int = 1) -> dict[str, Any]:
    windows, cutoff = manifest.features.windows_days, manifest.time.cutoff
    con = slice_data.connect(ctx, ("events", "items"))
    try:
        slice_data.register_features(con, ctx)
        con.register("score_users", shard_users(ctx, shard_index, shard_count))
        features.prepare(con, cutoff, windows)
        ranking_data.candidates(con, cutoff, manifest.evaluation.candidates_per_user)
        keys, names = ranking_data.matrix(con, cutoff, windows)
        models: list[LoadedModel] = []
        for role in ROLES:
            ref = getattr(manifest.models, role)
            models.append(load_model(role, storage.read_bytes(ref.uri), names, f"models.{role}"))
        used = [n for n in names if any(n in m.features for m in models)]
        values = ranking_data.matrix_values(con, used)  # fetched once for both models
    finally:
        con.close()
    matrices = {m.role: columns_for(values, used, m.features) for m in models}
    del values
    user_ids = keys.column("user_id").combine_chunks()
    starts = group_starts(user_ids.to_numpy(zero_copy_only=False))
    sample = latency_groups(user_ids.to_numpy(zero_copy_only=False), starts,
                            manifest.evaluation.latency_sample_users, manifest.sampling.seed)
    parts, latency, timings = [], {}, {}
    for model in models:
        t0 = time.perf_counter()
        scores = np.asarray(model.booster.predict(matrices[model.role])) if len(keys) else np.empty(0)
        timings[model.role] = round(time.perf_counter() - t0, 4)
        ranked = top_k(user_ids, keys.column("item_id").combine_chunks(), scores, manifest.evaluation.k)
        parts.append(ranked.add_column(1, "model", pa.array([model.role] * ranked.num_rows, pa.string())))
        latency[model.role] = {
            "ms": per_request_latency_ms(model, matrices[model.role], starts, sample).round(4).tolist(),
            "errors": int(np.add.reduceat(np.isnan(scores), starts[:-1]).astype(bool).sum()) if len(scores) else 0,
        }
    rankings = pa.concat_tables(parts)
    name = f"shard-{shard_index:05d}"
    storage.write_parquet(ctx.uri("scores", f"{name}.parquet"), rankings, bulky=True)
    storage.write_json(ctx.uri("scores", f"{name}.latency.json"), {"users": int(len(starts) - 1), **latency})
    return {"shard": shard_index, "users": int(len(starts) - 1), "candidate_rows": int(len(keys)),
            "predict_seconds": timings}
