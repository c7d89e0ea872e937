"""Scale model: per-step time and memory measured at several lake sizes, fitted and projected to 100M events.

    python benchmarks/scale.py --scale small [--scale 1m ...] [--workdir DIR] [--markdown FILE]
    python benchmarks/scale.py --from a.json b.json ...      # re-report saved benchmarks/pipeline.py outputs

Each size runs benchmarks/pipeline.py in a child process (`--reuse DIR/<scale> --keep`, so lakes and models are
reused). Per step it fits `seconds = a + b * events` and `peak MB = a + b * events` by least squares over the
sizes given (one size: the proportional model `b * events`), where `events` is the lake events in the window for
the steps that read the lake and the slice events for the others. It projects to 100M lake events and 10M users,
and for the deployed run sets each projection against the step's Lambda memory and timeout (infra/config.py
defaults, testbed/steps.py size class) and Lambda's own 10,240 MB / 900 s limits, flagging a step that would
exceed them without looping. JSON on stdout, a markdown table on stderr (or --markdown FILE).
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

SCRIPT = Path(__file__).resolve()
ROOT = SCRIPT.parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

TARGET_EVENTS = 100_000_000
TARGET_USERS = 10_000_000
LAMBDA_MAX_MB = 10_240
LAMBDA_MAX_S = 900
HEADROOM = 1.25  # memory asked for = projected peak x this
ATHENA_USD_PER_TB = 5.0
KINESIS_RECORDS_PER_S = 1_000  # per shard write limit
KINESIS_BYTES_PER_S = 1_000_000
# Scans of the window's events per step, counted in the SQL: validate = lake_contract's 7 row checks, its count
# and the segment check's sampling; slice = the sampling's CTAS, the events statement and the population extract;
# drift = its users statement's sampling, its events statement (sampling + window) and the population extract.
ATHENA_SCANS = {"validate": 9, "slice": 3, "drift": 4}
# Steps whose work does not grow with the events (resources, shard plans, gates over a few numbers): projected
# as constants at the largest measured size's figures.
FIXED_COST = frozenset({"provision", "plan_shards", "whatif", "gate", "record", "teardown"})
METHOD_IN_RUN = "in-run step-tagged VmRSS (one process for all steps: includes what earlier steps left)"


@dataclass(frozen=True)
class Fit:
    """y = intercept + slope * x; `model` says how it was fitted."""

    intercept: float
    slope: float
    model: str

    def at(self, x: float) -> float:
        return self.intercept + self.slope * x


def fit_linear(xs: list[float], ys: list[float], base: float = 0.0) -> Fit:
    """Least squares of y = a + b*x over two or more distinct x; one point (or one distinct x): y = base + b*x
    (proportional above a known base, e.g. the process's resident set before the first step)."""
    if not xs or len(xs) != len(ys):
        raise ValueError("fit_linear needs as many y as x, at least one")
    if len(set(xs)) < 2:
        mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
        if mean_x <= 0:
            raise ValueError("a proportional fit needs x > 0")
        return Fit(base, max(0.0, mean_y - base) / mean_x, "proportional" if not base else "base + proportional")
    n = len(xs)
    mean_x, mean_y = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mean_x) ** 2 for x in xs)
    sxy = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True))
    slope = sxy / sxx
    return Fit(mean_y - slope * mean_x, slope, "least squares a + b*x")


def lake_window_bytes(lake: Path, start: date, end: date) -> int | None:
    """Parquet bytes of the events partitions with start <= event_date < end (what an Athena scan reads at most)."""
    events = lake / "events"
    if not events.is_dir():
        return None
    total = 0
    for part in events.glob("event_date=*"):
        day = date.fromisoformat(part.name.split("=", 1)[1])
        if start <= day < end:
            total += sum(f.stat().st_size for f in part.glob("*.parquet"))
    return total


def size_point(doc: dict[str, Any]) -> dict[str, Any]:
    """One measured size from a benchmarks/pipeline.py document."""
    pipe = doc["pipeline"]
    steps = pipe["steps"]
    time = doc["params"]["time"]
    lake_bytes = None
    if doc.get("workdir"):
        lake_bytes = lake_window_bytes(Path(doc["workdir"]) / "lake", date.fromisoformat(time["start"][:10]),
                                       date.fromisoformat(time["end"][:10]))
    slice_counts = steps.get("slice", {}).get("counts", {})
    return {
        "scale": doc["scale"], "lake_users": doc["params"]["users"], "lake_events": doc["generate"]["events"],
        "slice_events": steps["slice"]["rows"], "slice_users": slice_counts.get("users"),
        "window_parquet_bytes": lake_bytes, "wall_s": pipe["wall_s"], "peak_rss_mb": pipe["peak_rss_mb"],
        "base_rss_mb": pipe.get("peak_rss_mb_by_phase", {}).get("setup"),  # the run's process before any step
        "loadavg_1m": [doc["machine"].get("loadavg_1m_before"), doc["machine"].get("loadavg_1m_after")],
        "steps": {name: {"seconds": row["seconds"], "peak_rss_mb": row["peak_rss_mb"],
                         "shards": row.get("counts", {}).get("shards"),
                         "shard_seconds": row.get("shard_seconds"), "memory_method": METHOD_IN_RUN,
                         "counts": row.get("counts", {})}
                  for name, row in steps.items()},
    }


def lambda_limits() -> dict[str, dict[str, int]]:
    """Configured Lambda memory (MB) and timeout (s) per size class: infra/config.py's defaults."""
    from infra.config import _DEFAULTS as defaults

    return {"light": {"memory_mb": defaults["lambda_memory_mb"], "timeout_s": defaults["lambda_timeout_seconds"]},
            "heavy": {"memory_mb": defaults["heavy_lambda_memory_mb"],
                      "timeout_s": defaults["heavy_lambda_timeout_seconds"]}}


def deployed(step: str, seconds: float, peak_mb: float, limits: dict[str, dict[str, int]]) -> dict[str, Any]:
    """One step's projection against its Lambda: memory asked for, invocations, and what it would break."""
    from testbed.steps import step as step_of

    spec = step_of(step)
    conf = limits[spec.size]
    memory = math.ceil(peak_mb * HEADROOM)
    # A looping step returns before its timeout and is called again; others must fit in one call.
    invocations = max(1, math.ceil(seconds / conf["timeout_s"])) if spec.loops else 1
    over_lambda = memory > LAMBDA_MAX_MB or (not spec.loops and seconds > LAMBDA_MAX_S)
    over_config = memory > conf["memory_mb"] or (not spec.loops and seconds > conf["timeout_s"])
    return {"size_class": spec.size, "configured_memory_mb": conf["memory_mb"], "memory_needed_mb": memory,
            "timeout_s": conf["timeout_s"], "duration_s": round(seconds, 1), "loops": spec.loops,
            "invocations": invocations, "over_configured": over_config, "over_lambda_limits": over_lambda}


def project(points: list[dict[str, Any]], users_per_shard: int = 5_000) -> dict[str, Any]:
    """Fits per step over the measured sizes and the projection to TARGET_EVENTS / TARGET_USERS."""
    from testbed.steps import NAMES
    from testbed.steps import step as step_of

    points = sorted(points, key=lambda p: p["lake_events"])
    largest = points[-1]
    slice_fraction = largest["slice_events"] / largest["lake_events"]
    user_fraction = (largest["slice_users"] or 0) / largest["lake_users"]
    target_slice_events = TARGET_EVENTS * slice_fraction
    target_slice_users = TARGET_USERS * user_fraction
    shards = max(1, math.ceil(target_slice_users / users_per_shard))
    limits = lambda_limits()
    steps: dict[str, Any] = {}
    for name in (n for n in NAMES if all(n in p["steps"] for p in points)):
        rows = [p["steps"][name] for p in points]
        if any(r["seconds"] is None or r["peak_rss_mb"] is None for r in rows):
            continue
        reads_lake = step_of(name).reads_lake
        xs = [float(p["lake_events"] if reads_lake else p["slice_events"]) for p in points]
        x_target = TARGET_EVENTS if reads_lake else target_slice_events
        if name == "score":
            # One Map item per shard: its work grows with the users in a shard, not with the slice.
            xs = [float(min(users_per_shard, p["slice_users"] or users_per_shard)) for p in points]
            ys_s = [float(max(r["shard_seconds"] or [r["seconds"]])) for r in rows]
            x_target = float(min(users_per_shard, target_slice_users))
        else:
            ys_s = [float(r["seconds"]) for r in rows]
        ys_m = [float(r["peak_rss_mb"]) for r in rows]
        if name in FIXED_COST:  # the largest size's figures (their in-run RSS growth is earlier steps' leftovers)
            time_fit, mem_fit = Fit(ys_s[-1], 0.0, "constant"), Fit(ys_m[-1], 0.0, "constant")
        else:
            time_fit = fit_linear(xs, ys_s)
            mem_fit = fit_linear(xs, ys_m, base=min(ys_m[0], largest.get("base_rss_mb") or 0.0))
        # A projection never goes below the largest size's measurement (a flat step's fit can dip on noise).
        seconds, peak = max(ys_s[-1], time_fit.at(x_target)), max(ys_m[-1], mem_fit.at(x_target))
        steps[name] = {"x": "shard users" if name == "score" else "lake events" if reads_lake else "slice events",
                       "x_target": round(x_target), "memory_method": rows[-1]["memory_method"],
                       "seconds_fit": vars(time_fit), "peak_mb_fit": vars(mem_fit),
                       "local": {"seconds": round(seconds, 1), "peak_rss_mb": round(peak)},
                       "deployed": deployed(name, seconds, peak, limits)}
    bytes_per_event = None
    if largest["window_parquet_bytes"]:
        bytes_per_event = largest["window_parquet_bytes"] / largest["lake_events"]
    athena: dict[str, Any] = {"note": "upper bound: each query billed for the whole window's Parquet"}
    if bytes_per_event is not None:
        window_bytes = TARGET_EVENTS * bytes_per_event
        per_step = {s: {"queries": n, "bytes": round(n * window_bytes)} for s, n in ATHENA_SCANS.items()}
        total = sum(v["bytes"] for v in per_step.values())
        athena.update({"window_bytes": round(window_bytes), "per_step": per_step, "bytes": total,
                       "usd": round(total / 1e12 * ATHENA_USD_PER_TB, 2)})
    replay = steps.get("replay", {}).get("local", {})
    kinesis: dict[str, Any] = {"slice_events": round(target_slice_events)}
    if replay.get("seconds"):
        rate = target_slice_events / replay["seconds"]
        record_bytes = 0.0
        counts = largest["steps"]["replay"]["counts"]
        if counts.get("bytes") and counts.get("records"):
            record_bytes = counts["bytes"] / counts["records"]
        kinesis.update({"events_per_s": round(rate), "record_bytes": round(record_bytes) or None,
                        "shards": max(math.ceil(rate / KINESIS_RECORDS_PER_S),
                                      math.ceil(rate * record_bytes / KINESIS_BYTES_PER_S))})
    flagged = [n for n, s in steps.items() if s["deployed"]["over_lambda_limits"]]
    basis = {"sizes": len({p["lake_events"] for p in points}), "note": None}
    if basis["sizes"] < 2:  # a line through one point cannot tell fixed cost from growth
        basis["note"] = ("one size measured: each fit is a line from zero (time) or the process's base (memory) "
                         "through it, so a step's fixed cost is projected as growth; fit from two or more sizes "
                         "(--scale 1m --scale 5m --scale 20m)")
    return {"basis": basis, "target": {"lake_events": TARGET_EVENTS, "lake_users": TARGET_USERS,
                       "slice_events": round(target_slice_events), "slice_users": round(target_slice_users),
                       "slice_fraction_basis": largest["scale"]},
            "score_shards": shards, "users_per_shard": users_per_shard, "steps": steps, "athena": athena,
            "kinesis": kinesis, "flagged_over_lambda_limits": flagged,
            "over_configured": [n for n, s in steps.items() if s["deployed"]["over_configured"]]}


def markdown(points: list[dict[str, Any]], proj: dict[str, Any]) -> str:
    sizes = [p["scale"] for p in points]
    head = ["step", *(f"{s} s / MB" for s in sizes), "fit (time; memory)", "100M local s / MB",
            "Lambda MB needed / configured", "duration s / timeout", "flag"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, row in proj["steps"].items():
        dep = row["deployed"]
        cells = [f"{p['steps'][name]['seconds']} / {p['steps'][name]['peak_rss_mb']}" for p in points]
        flag = "OVER LAMBDA" if dep["over_lambda_limits"] else "over config" if dep["over_configured"] else ""
        calls = f" ({dep['invocations']} calls)" if dep["loops"] else ""
        fits = f"{row['seconds_fit']['model']}; {row['peak_mb_fit']['model']}"
        lines.append("| " + " | ".join([name, *cells, fits,
                                          f"{row['local']['seconds']} / {row['local']['peak_rss_mb']}",
                                          f"{dep['memory_needed_mb']} / {dep['configured_memory_mb']}",
                                          f"{dep['duration_s']}{calls} / {dep['timeout_s']}", flag]) + " |")
    tgt = proj["target"]
    lines.append("")
    lines.append(f"Projection: {tgt['lake_events']:,} lake events, {tgt['lake_users']:,} users -> "
                 f"{tgt['slice_events']:,} slice events, {tgt['slice_users']:,} slice users "
                 f"({proj['score_shards']} score shards of {proj['users_per_shard']:,}).")
    ath = proj["athena"]
    if "bytes" in ath:
        lines.append(f"Athena: {ath['bytes'] / 1e9:,.1f} GB scanned ({ath['note']}), ${ath['usd']}.")
    kin = proj["kinesis"]
    if "shards" in kin:
        lines.append(f"Kinesis: {kin['shards']} shards for {kin['events_per_s']:,} events/s.")
    if proj["basis"]["note"]:
        lines.append(f"Note: {proj['basis']['note']}.")
    return "\n".join(lines) + "\n"


def run_size(scale: str, workdir: Path) -> dict[str, Any]:
    """benchmarks/pipeline.py at one size in a child process, its lake, models and run kept in workdir/scale."""
    out = subprocess.run([sys.executable, str(SCRIPT.parent / "pipeline.py"), "--scale", scale,
                          "--reuse", str(workdir / scale), "--keep"],
                         check=True, stdout=subprocess.PIPE, cwd=str(ROOT))
    doc: dict[str, Any] = json.loads(out.stdout)
    (workdir / f"{scale}.json").write_text(json.dumps(doc, indent=2) + "\n")
    return doc


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", action="append", help="a benchmarks/pipeline.py scale; repeat for several")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/testbed-scale"),
                        help="lakes, models, runs and each size's pipeline JSON (default /tmp/testbed-scale)")
    parser.add_argument("--from", dest="inputs", nargs="+", type=Path, help="saved pipeline.py JSON outputs")
    parser.add_argument("--markdown", type=Path, help="write the table here instead of stderr")
    args = parser.parse_args(argv)
    if args.inputs:
        docs = [json.loads(path.read_text()) for path in args.inputs]
    else:
        args.workdir.mkdir(parents=True, exist_ok=True)
        docs = [run_size(scale, args.workdir) for scale in args.scale or ["small"]]
    points = [size_point(doc) for doc in docs]
    proj = project(points)
    json.dump({"benchmark": "scale", "sizes": points, "projection": proj}, sys.stdout, indent=2)
    sys.stdout.write("\n")
    table = markdown(points, proj)
    if args.markdown:
        args.markdown.write_text(table)
    else:
        sys.stderr.write(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
