"""End-to-end performance benchmark of the local run, with bare DuckDB and bare LightGBM baselines.

    python benchmarks/pipeline.py --scale small|large [--workdir DIR] [--keep] [--reuse DIR] [--profile]

Prints one JSON document on stdout; progress goes to stderr. See benchmarks/README.md for every field.

Lake generation, training and the local run each happen in a child process (this script re-invoked with
the hidden `--child` option) so that the parent stays small: a child's `ru_maxrss` starts from its
parent's resident set at spawn time (the kernel carries the high-water mark across fork/exec), so a parent
that had generated a lake in-process would inflate the child's figure. The parent samples each child's
VmRSS from /proc/<pid>/status every 50 ms and tags every sample with the step the child reported last
over a pipe. The baselines run in the parent after the local run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

SCRIPT = Path(__file__).resolve()
ROOT = SCRIPT.parent.parent
if str(ROOT) not in sys.path:  # run as a file from a checkout without an installed package
    sys.path.insert(0, str(ROOT))

LAKE_END = date(2026, 10, 31)
LAKE_SEED = 7
SAMPLE_INTERVAL_S = 0.05
REPEATS = 3
ROLES = {"control": "control", "candidate": "full"}  # role -> training feature set
BENCH_SECRET = "benchmark-only-pii-secret-0123456789"


def bench_settings() -> Any:
    """The process's settings, with the benchmark's own PII key and quiet logs unless the environment sets them."""
    from pydantic import SecretStr

    from testbed.settings import Settings

    settings = Settings.from_environment()
    return settings.model_copy(update={"pii_secret": settings.pii_secret or SecretStr(BENCH_SECRET),
                                       "log_level": settings.log_level or "WARNING"})

TARGETS = {"slice_ratio_max": 1.5, "score_ratio_max": 1.3, "end_to_end_s_max": 300.0, "peak_rss_mb_max": 4096.0}


@dataclass(frozen=True)
class Scale:
    users: int
    days: int
    sampling_rate: float
    train_users_rate: float
    num_trees: int = 100


SCALES = {
    "small": Scale(users=5_000, days=120, sampling_rate=0.5, train_users_rate=1.0),
    "large": Scale(users=100_000, days=142, sampling_rate=0.2, train_users_rate=0.05),
    # benchmarks/scale.py's sizes: ~1M, ~5M (= large) and ~20M lake events, the training size kept at ~5k users
    "1m": Scale(users=20_000, days=142, sampling_rate=0.2, train_users_rate=0.25),
    "20m": Scale(users=400_000, days=142, sampling_rate=0.2, train_users_rate=0.0125),
}
SCALES["5m"] = SCALES["large"]


def say(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def mb(kib: float | int | None) -> float | None:
    return None if kib is None else round(kib / 1024.0, 1)


def per_second(rows: int | None, seconds: float | None) -> float | None:
    if rows is None or not seconds:
        return None
    return round(rows / seconds, 1)


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return round(numerator / denominator, 3)


# --------------------------------------------------------------------------------------------------
# Child side: the work being measured. Each task reports its current phase over a pipe.
# --------------------------------------------------------------------------------------------------


def proc_status_kib(pid: int | str, field: str) -> int | None:
    """A `kB` field (VmRSS, VmHWM) of /proc/<pid>/status, or None when gone (or a zombie)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None


class PhaseWriter:
    def __init__(self, fd: int) -> None:
        self.stream = os.fdopen(fd, "w", buffering=1, encoding="utf-8")

    def __call__(self, phase: str) -> None:
        self.stream.write(phase + "\n")
        self.stream.flush()


def child_generate(args: dict[str, Any], phase: PhaseWriter) -> dict[str, Any]:
    from testbed.core.generate import LakeSpec, generate_lake

    spec = LakeSpec(users=args["users"], days=args["days"], seed=LAKE_SEED, end_date=LAKE_END)
    phase("generate")
    started = time.perf_counter()
    counts = generate_lake(Path(args["lake"]), spec)
    return {"seconds": round(time.perf_counter() - started, 3), "counts": counts}


def child_train(args: dict[str, Any], phase: PhaseWriter) -> dict[str, Any]:
    from testbed.pipeline.train import train_model

    out: dict[str, Any] = {}
    for role, feature_set in ROLES.items():
        phase(f"train_{role}")
        started = time.perf_counter()
        meta = train_model(args["lake"], Path(args["models"]) / f"{role}.txt", feature_set=feature_set,
                           num_trees=args["num_trees"], users_rate=args["users_rate"])
        out[role] = {"seconds": round(time.perf_counter() - started, 3), "feature_set": feature_set,
                     "sha256": meta["sha256"], "features": len(meta["feature_names"]),
                     "training_users": meta["training"]["users"], "training_rows": meta["training"]["rows"]}
    return out


class ThreadProfiles:
    """cProfile for the calling thread and every thread started after `start` (the local runner executes the
    workflow, and so every handler, on moto's worker threads)."""

    def __init__(self) -> None:
        self.profiles: list[Any] = []
        self.lock = threading.Lock()

    def _new(self) -> None:
        import cProfile

        profile = cProfile.Profile()
        with self.lock:
            self.profiles.append(profile)
        profile.enable()  # replaces this hook for the thread

    def start(self) -> None:
        threading.setprofile(lambda *_: self._new())
        self._new()

    def report(self, path: Path) -> None:
        import pstats

        threading.setprofile(None)
        stats: pstats.Stats | None = None
        for profile in self.profiles:
            profile.disable()
            try:
                stats = pstats.Stats(profile, stream=sys.stderr) if stats is None else stats.add(profile)
            except TypeError:  # a thread that recorded nothing
                continue
        if stats is None:
            return
        stats.dump_stats(str(path))
        print(f"[bench child] profile of {len(self.profiles)} threads written to {path}", file=sys.stderr)
        stats.sort_stats("cumulative").print_stats(50)
        stats.sort_stats("tottime").print_stats(30)


def child_pipeline(args: dict[str, Any], phase: PhaseWriter) -> dict[str, Any]:
    from testbed.local import run_local

    events: list[dict[str, Any]] = []  # every progress call: step, started/finished, time, result
    started = time.perf_counter()

    def progress(step: str, index: int, total: int, result: dict[str, Any] | None) -> None:
        at = round(time.perf_counter() - started, 3)
        if result is None:
            phase(step)
        else:
            print(f"[bench child] {step} done in {result.get('elapsed_s', '?')} s", file=sys.stderr, flush=True)
        events.append({"step": step, "event": "started" if result is None else "finished", "at_s": at,
                       "result": result})

    profiler = ThreadProfiles() if args.get("profile") else None
    phase("setup")
    if profiler:
        profiler.start()
    result = run_local(Path(args["manifest"]), args["lake"], Path(args["out"]), progress, settings=bench_settings())
    wall = time.perf_counter() - started
    phase("teardown")
    if profiler:
        profiler.report(Path(args["profile"]))
    return {"wall_s": round(wall, 3), "run_id": result.run_id, "decision": result.decision,
            "existing": result.existing, "run_dir": str(result.run_dir), "steps": result.steps,
            "progress": events,
            "self_ru_maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
            "vmhwm_kib": proc_status_kib("self", "VmHWM")}


CHILD_TASKS = {"generate": child_generate, "train": child_train, "pipeline": child_pipeline}


def child_main(task: str, io_path: Path, phase_fd: int) -> int:
    phase = PhaseWriter(phase_fd)
    args = json.loads(io_path.read_text())
    result = CHILD_TASKS[task](args, phase)
    io_path.with_suffix(".result.json").write_text(json.dumps(result, default=str))
    return 0


# --------------------------------------------------------------------------------------------------
# Parent side: spawn, sample, collect.
# --------------------------------------------------------------------------------------------------


@dataclass
class ChildRun:
    result: dict[str, Any]
    seconds: float  # wall time of the whole child, interpreter start-up included
    peaks_kib: dict[str, int]  # phase -> peak sampled VmRSS
    samples: int
    wait4_maxrss_kib: int


class Monitor:
    """Reads phase names from a pipe and samples the child's VmRSS, keeping the peak per phase."""

    def __init__(self, pid: int, read_fd: int) -> None:
        self.pid = pid
        self.phase = "startup"
        self.peaks: dict[str, int] = {}
        self.samples = 0
        self.stopped = threading.Event()
        self.lock = threading.Lock()
        self.reader = threading.Thread(target=self._read, args=(read_fd,), daemon=True)
        self.sampler = threading.Thread(target=self._sample, daemon=True)

    def start(self) -> None:
        self.reader.start()
        self.sampler.start()

    def _read(self, fd: int) -> None:
        with os.fdopen(fd, "r", encoding="utf-8") as stream:
            for line in stream:
                self._record()  # the last sample of the phase that is ending
                self.phase = line.strip() or self.phase

    def _record(self) -> bool:
        rss = proc_status_kib(self.pid, "VmRSS")
        if rss is None:
            return False
        with self.lock:
            self.samples += 1
            if rss > self.peaks.get(self.phase, 0):
                self.peaks[self.phase] = rss
        return True

    def _sample(self) -> None:
        while not self.stopped.is_set():
            if not self._record():
                return
            self.stopped.wait(SAMPLE_INTERVAL_S)

    def stop(self) -> None:
        self.stopped.set()
        self.sampler.join()
        self.reader.join(timeout=5)


def run_child(task: str, args: dict[str, Any], scratch: Path) -> ChildRun:
    scratch.mkdir(parents=True, exist_ok=True)
    io_path = scratch / f"{task}.json"
    io_path.write_text(json.dumps(args))
    result_path = io_path.with_suffix(".result.json")
    result_path.unlink(missing_ok=True)
    read_fd, write_fd = os.pipe()
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, str(SCRIPT), "--child", task, "--child-io", str(io_path), "--phase-fd", str(write_fd)],
        pass_fds=(write_fd,), stdout=sys.stderr.fileno(), cwd=str(ROOT))
    os.close(write_fd)
    monitor = Monitor(proc.pid, read_fd)
    monitor.start()
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    monitor.stop()
    if proc.returncode != 0 or not result_path.exists():
        raise SystemExit(f"benchmark: child task {task} failed (exit code {proc.returncode}); see stderr")
    return ChildRun(result=json.loads(result_path.read_text()), seconds=round(seconds, 3),
                    peaks_kib=dict(monitor.peaks), samples=monitor.samples, wait4_maxrss_kib=usage.ru_maxrss)


# --------------------------------------------------------------------------------------------------
# Lake, models and manifest.
# --------------------------------------------------------------------------------------------------


def prepare(workdir: Path, scale_name: str, scale: Scale, reuse: bool) -> dict[str, Any]:
    """Generate the lake and train both models (or reuse them); returns the generate and train blocks."""
    lake, models, meta_path = workdir / "lake", workdir / "models", workdir / "bench-prepared.json"
    wanted = {"scale": scale_name, **asdict(scale), "lake_seed": LAKE_SEED, "lake_end": LAKE_END.isoformat()}
    if reuse and meta_path.exists():
        meta = json.loads(meta_path.read_text())
        complete = all((models / f"{role}.txt").exists() for role in ROLES) and (lake / "users").is_dir()
        if meta.get("params") == wanted and complete:
            say(f"reusing the lake and models in {workdir}")
            return {"generate": {**meta["generate"], "reused": True},
                    "train": {**meta["train"], "reused": True}}
        say(f"{meta_path} does not match --scale {scale_name} (or files are missing); regenerating")
    scratch = workdir / "bench-io"
    say(f"generating a lake: {scale.users} users x {scale.days} days")
    gen = run_child("generate", {"lake": str(lake), "users": scale.users, "days": scale.days}, scratch)
    events = int(gen.result["counts"]["events"])
    generate = {"seconds": gen.result["seconds"], "events": events,
                "events_per_s": per_second(events, gen.result["seconds"]), "counts": gen.result["counts"],
                "peak_rss_mb": mb(gen.peaks_kib.get("generate")), "reused": False}
    say(f"generated {events} events in {generate['seconds']} s")
    say(f"training control and candidate (num_trees={scale.num_trees}, users_rate={scale.train_users_rate})")
    tr = run_child("train", {"lake": str(lake), "models": str(models), "num_trees": scale.num_trees,
                             "users_rate": scale.train_users_rate}, scratch)
    train = {role: {**tr.result[role], "peak_rss_mb": mb(tr.peaks_kib.get(f"train_{role}"))} for role in ROLES}
    train["num_trees"] = scale.num_trees
    train["users_rate"] = scale.train_users_rate
    say("trained: " + ", ".join(f"{role} {train[role]['seconds']} s" for role in ROLES))
    meta_path.write_text(json.dumps({"params": wanted, "generate": generate, "train": train}, indent=2) + "\n")
    return {"generate": generate, "train": {**train, "reused": False}}


def window() -> dict[str, str]:
    end = datetime(LAKE_END.year, LAKE_END.month, LAKE_END.day, tzinfo=UTC)
    cutoff = end - timedelta(days=14)
    start = cutoff - timedelta(days=90)
    iso = "%Y-%m-%dT%H:%M:%SZ"
    return {"start": start.strftime(iso), "cutoff": cutoff.strftime(iso), "end": end.strftime(iso)}


def write_manifest(path: Path, scale_name: str, scale: Scale, models: Path, train: dict[str, Any], *,
                   users_per_shard: int | None = None) -> dict[str, Any]:
    manifest = {
        "name": f"bench-{scale_name}",
        "description": "Benchmark: every user, uniform sample; candidate vs control.",
        "segment": {"name": "everyone", "filters": []},
        "time": window(),
        "sampling": {"strategy": "uniform", "rate": scale.sampling_rate, "seed": 1},
        "features": {"windows_days": [7, 30, 90]},
        "models": {role: {"uri": str((models / f"{role}.txt").resolve()), "sha256": train[role]["sha256"]}
                   for role in ROLES},
        "evaluation": {"k": 10, "candidates_per_user": 100,
                       **({"users_per_shard": users_per_shard} if users_per_shard else {})},
        "gates": [
            {"name": "ndcg-not-worse", "kind": "non_inferiority", "metric": "ndcg@10", "margin": 0.01},
            {"name": "latency-p95", "kind": "latency", "percentile": 95, "bound": 50},
        ],
    }
    path.write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


# --------------------------------------------------------------------------------------------------
# The local run and its per-step table.
# --------------------------------------------------------------------------------------------------


def merge_shards(value: Any) -> dict[str, Any]:
    """A step's result; a list of shard results (the scoring shards' documents) becomes one dict (counts and
    seconds summed)."""
    if isinstance(value, dict):
        return value
    if not isinstance(value, list):
        return {}
    merged: dict[str, Any] = {"shards": len(value), "shard_elapsed_s": [s.get("elapsed_s") for s in value]}
    for shard in value:
        for key, item in shard.items():
            if key == "shard":
                continue
            if isinstance(item, int | float) and not isinstance(item, bool):
                merged[key] = round(merged.get(key, 0) + item, 4)
            elif isinstance(item, dict) and all(isinstance(v, int | float) for v in item.values()):
                totals = merged.setdefault(key, {})
                for k, v in item.items():
                    totals[k] = round(totals.get(k, 0) + v, 4)
    return merged


def shard_results(run_dir: Path) -> list[dict[str, Any]]:
    """The scoring shards' result documents (the workflow's state keeps only their number), each shard's own
    `seconds` as its `elapsed_s`."""
    from testbed.record.scores import ShardResult

    docs = [ShardResult.model_validate_json(path.read_text()) for path in sorted(run_dir.glob("scores/*.result.json"))]
    return [{**doc.model_dump(mode="json", exclude={"seconds"}), "elapsed_s": doc.seconds} for doc in docs]


def step_rows(step: str, out: dict[str, Any], steps: dict[str, Any]) -> tuple[int | None, str | None]:
    """Rows a step processes and what they are (None when the step has no row count)."""
    slice_events = steps.get("slice", {}).get("events")
    if step == "slice":
        return out.get("events"), "slice events written"
    if step == "features":
        return slice_events, "slice events read"
    if step == "score":
        return out.get("candidate_rows"), "candidate rows scored (by each model)"
    if step == "evaluate":
        return out.get("rankings_rows"), "ranking rows evaluated"
    if step == "gate":
        users = steps.get("evaluate", {}).get("users_evaluated")
        return users, "users evaluated" if users is not None else None
    return None, None


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def counts_of(out: dict[str, Any]) -> dict[str, Any]:
    """The numbers a step reported (not its timing, which is reported separately)."""
    return {k: v for k, v in out.items() if k not in ("elapsed_s", "shard_elapsed_s") and (
        is_number(v) or (isinstance(v, dict) and v and all(is_number(x) for x in v.values())))}


def observed_walls(progress: list[dict[str, Any]]) -> dict[str, float]:
    """Started-to-finished seconds per step as the progress callback saw them (includes handler import)."""
    began: dict[str, float] = {}
    walls: dict[str, float] = {}
    for event in progress:
        if event["event"] == "started":
            began.setdefault(event["step"], event["at_s"])
        elif event["step"] in began:
            walls[event["step"]] = round(event["at_s"] - began[event["step"]], 3)
    return walls


def run_pipeline(workdir: Path, manifest_path: Path, lake: Path, profile: Path | None) -> dict[str, Any]:
    from testbed.steps import NAMES  # the table's order

    out = Path(tempfile.mkdtemp(prefix="run-", dir=workdir))
    say(f"local run of {manifest_path.name} into {out}")
    child = run_child("pipeline", {"manifest": str(manifest_path), "lake": str(lake), "out": str(out),
                                   "profile": str(profile) if profile else None}, workdir / "bench-io")
    res = child.result
    if res["existing"]:
        raise SystemExit("benchmark: the run already existed, so no step ran; use a fresh --workdir")
    validate = next((e["result"] for e in res["progress"] if e["step"] == "validate" and e["result"]), {})
    steps_out = {"validate": validate, **{k: merge_shards(v) for k, v in (res["steps"] or {}).items()}}
    if "score" in steps_out:
        steps_out["score"] = merge_shards(shard_results(Path(res["run_dir"])))
    walls = observed_walls(res["progress"])
    order = [*NAMES, *(s for s in steps_out if s not in NAMES)]
    table: dict[str, Any] = {}
    for step in (s for s in order if s in steps_out or s in walls):
        out_step = steps_out.get(step, {})
        # A Map step's shards may overlap, so its wall time is what the progress callback saw, not a sum.
        sharded = "shard_elapsed_s" in out_step
        seconds = walls.get(step) if sharded else out_step.get("elapsed_s")
        rows, basis = step_rows(step, out_step, steps_out)
        table[step] = {"seconds": seconds, "observed_s": walls.get(step), "rows": rows, "rows_basis": basis,
                       "rows_per_s": per_second(rows, seconds), "peak_rss_mb": mb(child.peaks_kib.get(step)),
                       "counts": counts_of(out_step)}
        if sharded:
            table[step]["shard_seconds"] = out_step["shard_elapsed_s"]
            table[step]["shard_seconds_sum"] = out_step.get("elapsed_s")
    in_steps = sum(float(row["seconds"] or 0.0) for row in table.values())
    marks = [e["at_s"] for e in res["progress"]]
    around = {"before_first_step_s": marks[0] if marks else None,
              "after_last_step_s": round(res["wall_s"] - marks[-1], 3) if marks else None}
    sampled_peak = max(child.peaks_kib.values(), default=0)
    children_maxrss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    peak = max(sampled_peak, res.get("vmhwm_kib") or 0)
    say(f"local run finished in {res['wall_s']} s, decision {res['decision']}, peak RSS {mb(peak)} MB")
    return {
        "run_id": res["run_id"], "decision": res["decision"], "out_dir": str(out), "run_dir": res["run_dir"],
        "wall_s": res["wall_s"],
        "child_process_s": child.seconds,
        "steps_total_s": round(in_steps, 3),
        "outside_steps_s": round(res["wall_s"] - in_steps, 3),
        "outside_steps": around,
        "steps": table,
        "peak_rss_mb": mb(peak),
        "peak_rss_mb_sampled": mb(sampled_peak),
        "peak_rss_mb_by_phase": {phase: mb(v) for phase, v in child.peaks_kib.items()},
        "vmhwm_mb": mb(res.get("vmhwm_kib")),
        "ru_maxrss_mb": mb(child.wait4_maxrss_kib),
        "ru_maxrss_children_mb": mb(children_maxrss),
        "rss_samples": child.samples,
    }


# --------------------------------------------------------------------------------------------------
# Baselines: the same work done by the bare libraries.
# --------------------------------------------------------------------------------------------------


def bare_duckdb_slice(lake: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    """The users/events/items statements on a bare DuckDB connection over the same Parquet, written the plain
    way: each one recomputes the sampling inline (the product materialises it once instead)."""
    import duckdb

    from testbed.adapters.duckdb_engine import to_duckdb
    from testbed.core.slice_sql import plain_statements
    from testbed.manifest import parse_manifest

    plain, bound = plain_statements(parse_manifest(manifest))
    statements = {name: to_duckdb(plain[name]) for name in ("users", "events", "items")}
    extra = {"population": to_duckdb(plain["population"])}
    params = list(bound) or None
    runs: list[dict[str, float]] = []
    rows: dict[str, int] = {}
    for _ in range(REPEATS):
        con = duckdb.connect()
        con.execute("SET TimeZone = 'UTC'")
        con.execute("CREATE MACRO from_base(s, b) AS CAST('0x' || s AS BIGINT)")
        glob = str(lake / "events" / "**" / "*.parquet").replace("'", "''")
        con.execute(f"CREATE VIEW events AS SELECT * FROM read_parquet('{glob}', hive_partitioning = true, "
                    "hive_types = {'event_date': DATE}, union_by_name = true)")
        for dataset in ("users", "items"):
            path = str(lake / dataset / "**" / "*.parquet").replace("'", "''")
            con.execute(f"CREATE VIEW {dataset} AS SELECT * FROM read_parquet('{path}', union_by_name = true)")
        run: dict[str, float] = {}
        for name, sql in {**statements, **extra}.items():
            started = time.perf_counter()
            table = con.sql(sql, params=params).to_arrow_table()
            run[name] = time.perf_counter() - started
            rows[name] = table.num_rows
            del table
        con.close()
        runs.append(run)
    totals = [sum(run[name] for name in statements) for run in runs]
    best = runs[totals.index(min(totals))]
    return {"seconds": round(min(totals), 3), "runs_s": [round(t, 3) for t in totals],
            "statements_s": {name: round(best[name], 3) for name in statements},
            "rows": {name: rows[name] for name in statements},
            "not_in_total": {"population_s": round(min(run["population"] for run in runs), 3)}}


def timed_predict(booster: Any, matrix: Any) -> dict[str, Any]:
    timings = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        booster.predict(matrix)
        timings.append(time.perf_counter() - started)
    return {"seconds": round(min(timings), 4), "runs_s": [round(t, 4) for t in timings]}


def bare_lightgbm_predict(models: Path, rows: int) -> dict[str, Any]:
    """Each model file predicting a random U[0, 1) float64 matrix with the score step's row count."""
    import lightgbm as lgb
    import numpy as np

    rng = np.random.default_rng(0)
    per_model: dict[str, Any] = {}
    for role in ROLES:
        booster = lgb.Booster(model_file=str(models / f"{role}.txt"))
        matrix = rng.random((rows, booster.num_feature()))
        per_model[role] = {"features": booster.num_feature(), "trees": booster.num_trees(),
                           **timed_predict(booster, matrix)}
        del matrix
    return {"rows": rows, "seconds": round(sum(m["seconds"] for m in per_model.values()), 4), "models": per_model}


def real_matrix_predict(models: Path, run_dir: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    """Reference only: bare predict on the run's own score matrix, rebuilt from its exported slice and features.

    Random U[0, 1) features send every row down much the same short tree paths, so the random baseline is
    faster than predicting real candidate rows; this isolates LightGBM's own cost on the real data. It calls
    the product's candidate and model-input code (the same calls the score step makes) and is skipped with a
    note if that code or the run's artifacts are not what it expects.
    """
    try:
        import lightgbm as lgb
        import pyarrow.parquet as pq

        from testbed.adapters.storage import UriStorage
        from testbed.core import model_inputs
        from testbed.core.feature_matrix import MatrixInputs
        from testbed.core.ranking_session import RankingSession
        from testbed.manifest import parse_manifest
        from testbed.pipeline import feature_sets

        parsed = parse_manifest(manifest)
        windows, cutoff = parsed.features.windows_days, parsed.time.cutoff
        storage = UriStorage()
        spec = feature_sets.run_set(storage, parsed)
        events, items, users = (pq.read_table(run_dir / "slice" / f"{name}.parquet")
                                for name in ("events", "items", "users"))
        inputs = model_inputs.FeatureInputs(spec, MatrixInputs(
            items, users, {group: pq.read_table(run_dir / "features" / f"batch_{group}.parquet")
                           for group in spec.groups()}, feature_sets.external_tables(storage, spec), cutoff))
        session = RankingSession(events, items)
        started = time.perf_counter()
        session.prepare(cutoff, windows)
        session.candidates(users.select(["user_id"]), parsed.evaluation.candidates_per_user)
        rows = session.candidate_pairs().num_rows
        candidates_s = time.perf_counter() - started
        per_model: dict[str, Any] = {}
        for role in ROLES:
            booster = lgb.Booster(model_file=str(models / f"{role}.txt"))
            started = time.perf_counter()
            _, matrix = model_inputs.for_candidates(session, inputs, booster.feature_name())
            inputs_s = time.perf_counter() - started
            per_model[role] = {"model_inputs_s": round(inputs_s, 3), **timed_predict(booster, matrix)}
            del matrix
        session.close()
    except Exception as exc:  # a reference number must never sink the benchmark
        return {"skipped": f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"}
    return {"rows": rows, "candidates_sql_s": round(candidates_s, 3),
            "seconds": round(sum(m["seconds"] for m in per_model.values()), 4), "models": per_model}


def baselines(lake: Path, models: Path, manifest: dict[str, Any], pipeline: dict[str, Any]) -> dict[str, Any]:
    say("baseline: bare DuckDB slice statements (best of 3)")
    duck = bare_duckdb_slice(lake, manifest)
    score = pipeline["steps"]["score"]
    candidate_rows = int(score["counts"].get("candidate_rows") or 0)
    say(f"baseline: bare LightGBM predict on {candidate_rows} random rows (best of 3)")
    bare = bare_lightgbm_predict(models, candidate_rows)
    real: dict[str, Any] = {"skipped": "the run directory is gone"}
    if pipeline.get("run_dir") and Path(pipeline["run_dir"]).is_dir():
        say("reference: bare LightGBM predict on the run's own score matrix (best of 3)")
        real = real_matrix_predict(models, Path(pipeline["run_dir"]), manifest)
    predict_s = sum(float(v) for v in (score["counts"].get("predict_seconds") or {}).values())
    # The baseline is "LightGBM predict alone on the same matrix": the run's own matrix when it could
    # be rebuilt, else the random one of the same shape (which predicts faster: see real_matrix_predict).
    same = real.get("seconds") or bare["seconds"]
    return {
        "duckdb_slice": duck,
        "slice_ratio": ratio(pipeline["steps"]["slice"]["seconds"], duck["seconds"]),
        "lightgbm_predict_same_matrix": real,
        "lightgbm_predict_random_matrix": bare,
        "score_predict_s": round(predict_s, 4),
        "score_ratio": ratio(predict_s, same),
        "score_ratio_basis": "same matrix" if real.get("seconds") else "random matrix of the same shape",
        "score_step_ratio": ratio(score["seconds"], same),
        "score_ratio_random_matrix": ratio(predict_s, bare["seconds"]),
    }


def targets(scale_name: str, pipeline: dict[str, Any], base: dict[str, Any]) -> dict[str, Any]:
    def within(value: float | None, limit: float) -> bool | None:
        return None if value is None else value <= limit

    checks = {
        "slice_within_1_5x_duckdb": within(base["slice_ratio"], TARGETS["slice_ratio_max"]),
        "score_within_1_3x_predict": within(base["score_ratio"], TARGETS["score_ratio_max"]),
        "end_to_end_under_300s": within(pipeline["wall_s"], TARGETS["end_to_end_s_max"]),
        "peak_rss_under_4096mb": within(pipeline["peak_rss_mb"], TARGETS["peak_rss_mb_max"]),
    }
    return {**checks, "all_met": all(bool(v) for v in checks.values()), "enforced": scale_name == "large",
            "limits": TARGETS}


def machine() -> dict[str, Any]:
    import duckdb
    import lightgbm
    import pyarrow

    try:
        total = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                     if line.startswith("MemTotal:"))
    except (OSError, StopIteration):
        total = None
    return {"cpus": os.cpu_count(), "mem_total_gib": None if total is None else round(total / 1024**2, 1),
            "python": platform.python_version(), "duckdb": duckdb.__version__, "lightgbm": lightgbm.__version__,
            "pyarrow": pyarrow.__version__}


# --------------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", choices=sorted(SCALES), default="small")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--workdir", type=Path, help="where to put the lake, models and run (default: a temp dir)")
    where.add_argument("--reuse", type=Path, metavar="DIR",
                       help="reuse (or create and keep) the lake and models in DIR; implies --keep for them")
    parser.add_argument("--keep", action="store_true", help="keep the working directory (and the run output)")
    parser.add_argument("--users-per-shard", type=int, metavar="N",
                        help="set evaluation.users_per_shard in the benchmark manifest (default: the product's)")
    parser.add_argument("--profile", action="store_true", help="cProfile the local run (stats to stderr + file)")
    parser.add_argument("--child", choices=sorted(CHILD_TASKS), help=argparse.SUPPRESS)
    parser.add_argument("--child-io", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--phase-fd", type=int, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def bench(args: argparse.Namespace) -> dict[str, Any]:
    scale = SCALES[args.scale]
    started = time.perf_counter()
    load_before = os.getloadavg()
    if args.reuse:
        workdir, remove = args.reuse.resolve(), False
    elif args.workdir:
        workdir, remove = args.workdir.resolve(), False
    else:
        workdir, remove = Path(tempfile.mkdtemp(prefix="testbed-bench-")), not args.keep
    workdir.mkdir(parents=True, exist_ok=True)
    out_dir: Path | None = None
    try:
        prepared = prepare(workdir, args.scale, scale, reuse=bool(args.reuse))
        manifest = write_manifest(workdir / "manifest.json", args.scale, scale, workdir / "models", prepared["train"],
                                  users_per_shard=args.users_per_shard)
        profile = workdir / "pipeline.pstats" if args.profile else None
        pipeline = run_pipeline(workdir, workdir / "manifest.json", workdir / "lake", profile)
        out_dir = Path(pipeline["out_dir"])
        base = baselines(workdir / "lake", workdir / "models", manifest, pipeline)
        if not args.keep:
            pipeline["out_dir"] = pipeline["run_dir"] = None  # removed below
        return {
            "benchmark": "pipeline",
            "scale": args.scale,
            "params": {**asdict(scale), "lake_seed": LAKE_SEED, "lake_end": LAKE_END.isoformat(),
                       "time": manifest["time"], "segment": "everyone", "sampling": manifest["sampling"],
                       "k": 10, "candidates_per_user": 100, "windows_days": [7, 30, 90],
                       "users_per_shard": args.users_per_shard or "product default"},
            "machine": {**machine(), "loadavg_1m_before": round(load_before[0], 2),
                        "loadavg_1m_after": round(os.getloadavg()[0], 2)},
            "workdir": None if remove else str(workdir),
            "generate": prepared["generate"],
            "train": prepared["train"],
            "pipeline": pipeline,
            "baselines": base,
            "targets": targets(args.scale, pipeline, base),
            "bench_total_s": round(time.perf_counter() - started, 1),
        }
    finally:
        if remove:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            shutil.rmtree(workdir / "bench-io", ignore_errors=True)
            if out_dir is not None and not args.keep:
                shutil.rmtree(out_dir, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    from testbed.settings import prefer_passive_openmp

    prefer_passive_openmp()  # as the CLI does; the child processes inherit it
    args = parse_args(argv)
    if args.child:
        return child_main(args.child, args.child_io, args.phase_fd)
    result = bench(args)
    json.dump(result, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
