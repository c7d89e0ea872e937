"""Score candidate rows with a LightGBM model and keep each user's top K.

Ties in score break by item_id ascending (rows arrive sorted by user_id, item_id and the sort is stable),
so rankings are deterministic.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import lightgbm as lgb
import numpy as np
import pyarrow as pa

from testbed.core.arrays import group_starts
from testbed.errors import ModelArtifactError

# LightGBM's native log lines ("[LightGBM] [Fatal] ...") go to Python logging, not straight to stderr:
# load errors already surface as one-line ModelArtifactError messages.
lgb.register_logger(logging.getLogger("testbed.lightgbm"))



@dataclass(frozen=True)
class LoadedModel:
    role: str
    booster: lgb.Booster
    features: list[str]


HEADER_KEYS = (b"version=", b"num_class=", b"max_feature_idx=", b"objective=", b"feature_names=")


def text_model_problem(text: bytes) -> str | None:
    """Why `text` is not a whole LightGBM text model, or None. Cheap structural checks only."""
    if not text.startswith(b"tree\n"):
        return "does not start with 'tree'"
    header = text.split(b"\nTree=", 1)[0]
    missing = [key.decode().rstrip("=") for key in HEADER_KEYS if b"\n" + key not in header]
    if missing:
        return f"header lacks {missing[0]}"
    if b"\nend of trees" not in text:
        return "no 'end of trees' marker: truncated?"
    return None


def load_model(role: str, text: bytes, source: str) -> LoadedModel:
    """The LightGBM model in `text`; which features it may use is its feature set's (feature_check)."""
    problem = text_model_problem(text)
    if problem:  # checked before LightGBM's parser, which prints native errors and aborts on truncated files
        raise ModelArtifactError(f"{source}: not a LightGBM text model ({problem})")
    try:
        booster = lgb.Booster(model_str=text.decode("utf-8"))
    except (UnicodeDecodeError, lgb.basic.LightGBMError) as exc:
        raise ModelArtifactError(f"{source}: not a LightGBM model file ({str(exc).splitlines()[0][:80]})") from None
    return LoadedModel(role=role, booster=booster, features=booster.feature_name())


def top_k(user_ids: pa.Array, item_ids: pa.Array, scores: np.ndarray, k: int) -> pa.Table:
    """Rows sorted by (user_id, item_id) → user_id, rank (1-based), item_id, score for the top k per user."""
    users = user_ids.to_numpy(zero_copy_only=False)
    starts = group_starts(users)
    codes = np.repeat(np.arange(len(starts) - 1), np.diff(starts))
    safe = np.where(np.isnan(scores), -np.inf, scores)
    order = np.lexsort((-safe, codes))  # by user, then score descending; stable keeps item_id order on ties
    rank = np.arange(len(order)) - starts[codes[order]] + 1
    keep = order[rank <= k]
    return pa.table({
        "user_id": pa.array(users[keep], pa.string()),
        "rank": pa.array(rank[rank <= k], pa.int32()),
        "item_id": item_ids.take(pa.array(keep)),
        "score": pa.array(scores[keep], pa.float64()),
    })


@dataclass(frozen=True)
class RequestTimings:
    """One model's timed requests: wall-clock ms (what a caller waits) and the scoring thread's CPU ms (what the
    model costs: time the machine gave to other processes is not in it)."""

    wall_ms: np.ndarray
    cpu_ms: np.ndarray


def _timed_predict_ms(model: LoadedModel, rows: np.ndarray) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.thread_time()
    model.booster.predict(rows, num_threads=1)  # one thread: the calling one, so its CPU clock sees all the work
    return (time.perf_counter() - wall) * 1000.0, (time.thread_time() - cpu) * 1000.0


def per_request_latency_ms(models: list[LoadedModel], matrices: dict[str, np.ndarray], starts: np.ndarray,
                           groups: np.ndarray) -> dict[str, RequestTimings]:
    """Time one predict call per model and sampled user (a 'request'), as a deployed ranker would serve it.
    The models take turns on each request, and which goes first alternates, so a warm cache or a slow phase
    hits both alike and the timings pair by request. On a busy machine the wall clock also counts the moments
    the scheduler gave the core to another process, which land on one model's request at random; the thread's
    CPU time does not, so ratios of CPU times stay put under load (benchmarks/latency_ratio.py)."""
    wall = {m.role: np.empty(len(groups)) for m in models}
    cpu = {m.role: np.empty(len(groups)) for m in models}
    for i, g in enumerate(groups):
        for model in models if i % 2 == 0 else models[::-1]:
            wall[model.role][i], cpu[model.role][i] = _timed_predict_ms(model,
                                                                        matrices[model.role][starts[g]:starts[g + 1]])
    return {m.role: RequestTimings(wall[m.role], cpu[m.role]) for m in models}
