"""Two identical latency measurements, one of them under CPU load: does the ratio gate agree while p95 moves?

    python benchmarks/latency_ratio.py [--requests 200] [--rows 100] [--load 2] [--seed 7]

Trains two small seeded LightGBM rankers of the same size on synthetic data, then times both on the same
requests (one predict call per request of `--rows` candidate rows) with the score step's interleaved timer
(testbed.core.scoring per_request_latency_ms) twice: once as the machine is, once while `--load` busy
processes spin. Each measurement goes through the gate step's code (testbed.core.gates evaluate) with an
absolute p95 bound (the quiet run's candidate p95 x 1.2, as a team would set it from a first run) and a
latency_ratio gate (p95, bound 1.5). Prints one JSON document on stdout.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import time
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from testbed.core import gates  # noqa: E402
from testbed.core.scoring import LoadedModel, per_request_latency_ms  # noqa: E402
from testbed.manifest import Gate  # noqa: E402

FEATURES = 20


def _spin(until: float) -> None:
    x = 0
    while time.time() < until:
        x += 1


def _model(role: str, seed: int) -> LoadedModel:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(4000, FEATURES))
    y = (x[:, 0] + 0.5 * x[:, 1] + rng.normal(scale=0.5, size=4000) > 0).astype(int)
    params = {"objective": "binary", "num_leaves": 31, "verbose": -1, "seed": seed, "deterministic": True,
              "num_threads": 1}
    booster = lgb.train(params, lgb.Dataset(x, y), num_boost_round=150)
    return LoadedModel(role, booster, booster.feature_name())


def _measure(models: list[LoadedModel], requests: int, rows: int, seed: int) -> dict[str, np.ndarray]:
    matrix = np.random.default_rng(seed).normal(size=(requests * rows, FEATURES))
    starts = np.arange(0, requests * rows + 1, rows)
    return per_request_latency_ms(models, {m.role: matrix for m in models}, starts, np.arange(requests))


def _gates(timings: dict[str, np.ndarray], bound_ms: float, seed: int) -> dict[str, Any]:
    absolute = Gate(name="latency-p95", kind="latency", percentile=95, bound=bound_ms)
    ratio = Gate(name="latency-p95-ratio", kind="latency_ratio", percentile=95, bound=1.5)
    inputs = gates.GateInputs(comparisons={}, aggregates={}, latency_ms=timings, error_rate={}, latency_trusted=True,
                              latency_paired=True)
    rows = gates.evaluate([absolute, ratio], inputs, gates.GateSettings(seed=seed))
    return {r.name: {"observed": r.observed, "interval": r.interval, "threshold": r.threshold, "outcome": r.outcome}
            for r in rows}


def _run(models: list[LoadedModel], args: argparse.Namespace, load: int) -> dict[str, np.ndarray]:
    workers = [multiprocessing.Process(target=_spin, args=(time.time() + 600,)) for _ in range(load)]
    for w in workers:
        w.start()
    try:
        return _measure(models, args.requests, args.rows, args.seed)
    finally:
        for w in workers:  # only the processes started above
            w.terminate()
            w.join()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--rows", type=int, default=100)
    parser.add_argument("--load", type=int, default=2, help="busy processes during the second measurement")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    models = [_model("control", args.seed), _model("candidate", args.seed + 1)]
    _measure(models, 20, args.rows, args.seed)  # warm-up
    quiet = _run(models, args, 0)
    loaded = _run(models, args, args.load)
    bound = round(float(np.percentile(quiet["candidate"], 95)) * 1.2, 4)
    runs = {name: {"p95_ms": {role: round(float(np.percentile(t[role], 95)), 4) for role in t},
                   "gates": _gates(t, bound, args.seed)}
            for name, t in (("quiet", quiet), ("loaded", loaded))}
    agree = {g: runs["quiet"]["gates"][g]["outcome"] == runs["loaded"]["gates"][g]["outcome"]
             for g in runs["quiet"]["gates"]}
    print(json.dumps({"requests": args.requests, "rows_per_request": args.rows, "busy_processes": args.load,
                      "absolute_bound_ms": bound, "runs": runs, "outcomes_agree": agree}, indent=2))


if __name__ == "__main__":
    main()
