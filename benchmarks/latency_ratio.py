"""Identical latency measurements, some under CPU load: do the ratio gates agree while p95 moves?

    python benchmarks/latency_ratio.py [--requests 200] [--rows 100] [--load 4] [--repeats 3] [--seed 7]

Trains two seeded LightGBM rankers of different sizes (the candidate has 1.3x the control's trees, like a
richer model), then times both on the same requests (one predict call per request of `--rows` candidate rows)
with the score step's interleaved timer (testbed.core.scoring per_request_latency_ms), `--repeats` times as the
machine is and `--repeats` times while `--load` busy processes spin. Each measurement goes through the gate
step's code (testbed.core.gates evaluate) with an absolute p95 bound (the first quiet run's candidate p95 x
1.2, as a team would set it from a first run) and a latency_ratio gate (p95, bound 1.5) twice: on the
requests' wall-clock times, and on their scoring-thread CPU times (what the gate uses when the record has them).
Prints one JSON document on stdout.
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
from testbed.core.scoring import LoadedModel, RequestTimings, per_request_latency_ms  # noqa: E402
from testbed.manifest import Gate  # noqa: E402

FEATURES = 20


def _spin(until: float) -> None:
    x = 0
    while time.time() < until:
        x += 1


def _model(role: str, seed: int, trees: int) -> LoadedModel:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(4000, FEATURES))
    y = (x[:, 0] + 0.5 * x[:, 1] + rng.normal(scale=0.5, size=4000) > 0).astype(int)
    params = {"objective": "binary", "num_leaves": 31, "verbose": -1, "seed": seed, "deterministic": True,
              "num_threads": 1}
    booster = lgb.train(params, lgb.Dataset(x, y), num_boost_round=trees)
    return LoadedModel(role, booster, booster.feature_name())


def _measure(models: list[LoadedModel], requests: int, rows: int, seed: int) -> dict[str, RequestTimings]:
    matrix = np.random.default_rng(seed).normal(size=(requests * rows, FEATURES))
    starts = np.arange(0, requests * rows + 1, rows)
    return per_request_latency_ms(models, {m.role: matrix for m in models}, starts, np.arange(requests))


def _gates(timings: dict[str, RequestTimings], bound_ms: float, seed: int) -> dict[str, Any]:
    absolute = Gate(name="latency-p95", kind="latency", percentile=95, bound=bound_ms)
    ratio = Gate(name="latency-p95-ratio", kind="latency_ratio", percentile=95, bound=1.5)
    wall = {role: t.wall_ms for role, t in timings.items()}
    cpu = {role: t.cpu_ms for role, t in timings.items()}
    out: dict[str, Any] = {}
    for clock, cpu_ms in (("wall", {}), ("cpu", cpu)):
        inputs = gates.GateInputs(comparisons={}, aggregates={}, latency_ms=wall, error_rate={}, latency_trusted=True,
                                  latency_paired=True, latency_cpu_ms=cpu_ms)
        checked = [absolute, ratio] if clock == "wall" else [ratio]
        for r in gates.evaluate(checked, inputs, gates.GateSettings(seed=seed)):
            name = r.name if r.kind == "latency" else f"{r.name} ({clock})"
            out[name] = {"observed": round(r.observed or 0.0, 4), "interval": [round(v, 4) for v in r.interval or []],
                         "outcome": r.outcome}
    return out


def _run(models: list[LoadedModel], args: argparse.Namespace, load: int) -> dict[str, RequestTimings]:
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
    parser.add_argument("--load", type=int, default=4, help="busy processes during the loaded measurements")
    parser.add_argument("--repeats", type=int, default=3, help="measurements of each kind (quiet, loaded)")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    models = [_model("control", args.seed, 100), _model("candidate", args.seed + 1, 130)]
    _measure(models, 20, args.rows, args.seed)  # warm-up
    measured = [(f"{kind} {i + 1}", _run(models, args, load)) for i in range(args.repeats)
                for kind, load in (("quiet", 0), ("loaded", args.load))]
    bound = round(float(np.percentile(measured[0][1]["candidate"].wall_ms, 95)) * 1.2, 4)
    runs = {name: {"p95_ms": {role: round(float(np.percentile(t.wall_ms, 95)), 4) for role, t in timings.items()},
                   "cpu_p95_ms": {role: round(float(np.percentile(t.cpu_ms, 95)), 4) for role, t in timings.items()},
                   "gates": _gates(timings, bound, args.seed)}
            for name, timings in measured}
    names = list(next(iter(runs.values()))["gates"])
    agree = {g: len({r["gates"][g]["outcome"] for r in runs.values()}) == 1 for g in names}
    outcomes = {g: [r["gates"][g]["outcome"] for r in runs.values()] for g in names}
    print(json.dumps({"requests": args.requests, "rows_per_request": args.rows, "busy_processes": args.load,
                      "absolute_bound_ms": bound, "runs": runs, "outcomes": outcomes, "outcomes_agree": agree},
                     indent=2))


if __name__ == "__main__":
    main()
