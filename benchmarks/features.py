"""Declared feature sets: batch SQL vs the same SQL in bare DuckDB, the stream fold's events/s, peak memory.

    python benchmarks/features.py --scale small|large [--reuse DIR] [--repeat N]

Prints one JSON document on stdout; progress goes to stderr. The events are the pipeline benchmark's slice
(everyone, uniform sampling at the scale's rate, seed 1, 2026-07-19 to 2026-10-31, events after the cutoff
included: both paths must drop them), with the lake's whole catalogue and users. For each feature set (the
retail-like set mirroring today's built-in features, and a generated 100-feature set cycling through every
operation, key set, window and filter):
- `batch_s`: `feature_sql.batch_tables` (connect, register, every table's statement, fetch to Arrow);
- `bare_duckdb_s`: the same generated statements and parameters on an already open bare DuckDB connection
  with the same tables registered (connection set-up excluded) — `ratio` = batch_s / bare_duckdb_s;
- `fold_s`, `fold_events_per_s`: `feature_fold.fold` over the slice's events (all of them, in slice order);
- `parity_mismatches`: `parity.compare` of the fold's tables against the batch's (must be 0);
- `peak_rss_mb`: the process's peak resident set during that step alone (VmHWM reset through
  /proc/self/clear_refs before each step), and `rss_before_mb`.
Times are the best of `--repeat` runs. Targets: ratio ≤ 1.5, fold ≥ 100,000 events/s (default set).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.pipeline import SCALES, machine, say, window  # noqa: E402
from benchmarks.replay import lake_for, slice_events  # noqa: E402

TARGET_RATIO = 1.5
TARGET_EVENTS_PER_S = 100_000.0


def _status_kb(field: str) -> int | None:
    try:
        line = next(x for x in Path("/proc/self/status").read_text().splitlines() if x.startswith(field + ":"))
    except (OSError, StopIteration):
        return None
    return int(line.split()[1])


def measured(step: Callable[[], Any], repeat: int) -> tuple[Any, dict[str, Any]]:
    """Run `step` `repeat` times: its result, the best wall time and the peak RSS while it ran."""
    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS (Linux)
    except OSError:
        pass
    before = _status_kb("VmRSS")
    best, result = float("inf"), None
    for _ in range(repeat):
        started = time.perf_counter()
        result = step()
        best = min(best, time.perf_counter() - started)
    peak = _status_kb("VmHWM")
    return result, {"seconds": round(best, 3), "rss_before_mb": None if before is None else round(before / 1024),
                    "peak_rss_mb": None if peak is None else round(peak / 1024)}


def bare_duckdb(queries: dict[str, Any], tables: dict[str, Any], repeat: int) -> dict[str, Any]:
    import duckdb

    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    for name, table in tables.items():
        con.register(name, table)

    def run_all() -> None:
        for query in queries.values():
            con.sql(query.sql, params=list(query.params) or None).to_arrow_table()

    _, timing = measured(run_all, repeat)
    con.close()
    return timing


def one_set(name: str, spec: Any, tables: dict[str, Any], cutoff: datetime, repeat: int) -> dict[str, Any]:
    from testbed.core import feature_fold, feature_sql, parity
    from testbed.core.feature_spec import epoch_us

    events, items, users = tables["events"], tables["items"], tables["users"]
    say(f"{name}: {len(spec.aggregations)} features in {len(spec.groups())} tables")
    queries = feature_sql.batch_queries(spec, epoch_us(cutoff), "duckdb")
    batch, batch_timing = measured(lambda: feature_sql.batch_tables(events, items, users, spec, cutoff), repeat)
    bare = bare_duckdb(queries, tables, repeat)
    stream, fold_timing = measured(lambda: feature_fold.fold(events, items, users, spec, cutoff), repeat)
    report = parity.compare(stream, batch, spec.table_keys())
    return {
        "features": len(spec.aggregations), "tables": {t: batch[t].num_rows for t in batch},
        "batch": batch_timing, "bare_duckdb": bare,
        "ratio": round(batch_timing["seconds"] / bare["seconds"], 3),
        "fold": fold_timing, "fold_events_per_s": round(events.num_rows / fold_timing["seconds"]),
        "parity_mismatches": report.mismatches, "parity_rows": report.rows_batch,
    }


def run(scale_name: str, reuse: Path | None, repeat: int) -> dict[str, Any]:
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from tests.unit.feature_sets import retail_like_spec, wide_spec

    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    lake = lake_for(scale_name, reuse)
    say("slicing")
    events = slice_events(lake, SCALES[scale_name].sampling_rate)
    events = events.set_column(events.schema.get_field_index("event_time"), "event_time",
                               pc.cast(events.column("event_time"), pa.timestamp("us", tz="UTC")))
    tables = {"events": events, "items": pq.read_table(lake / "items"), "users": pq.read_table(lake / "users")}
    cutoff = datetime.fromisoformat(window()["cutoff"].replace("Z", "+00:00"))
    say(f"{events.num_rows} events, {tables['items'].num_rows} items, {tables['users'].num_rows} users")
    sets = {"retail_like": one_set("retail_like", retail_like_spec(), tables, cutoff, repeat),
            "wide_100": one_set("wide_100", wide_spec(100), tables, cutoff, repeat)}
    default = sets["retail_like"]
    targets = {"batch_within_1_5x_duckdb": all(s["ratio"] <= TARGET_RATIO for s in sets.values()),
               "fold_at_least_100k_events_per_s": default["fold_events_per_s"] >= TARGET_EVENTS_PER_S,
               "parity_zero_mismatches": all(s["parity_mismatches"] == 0 for s in sets.values())}
    return {"scale": scale_name, "events": events.num_rows, "cutoff": window()["cutoff"], "repeat": repeat,
            "machine": {**machine(), "loadavg_1m_before": round(load_before, 2),
                        "loadavg_1m_after": round(os.getloadavg()[0], 2)},
            "sets": sets, "targets": {**targets, "all_met": all(targets.values())},
            "bench_total_s": round(time.perf_counter() - started, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", choices=sorted(SCALES), default="small")
    parser.add_argument("--reuse", type=Path, metavar="DIR", help="use (or generate and keep) DIR/lake")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement; the best is reported")
    args = parser.parse_args(argv)
    print(json.dumps(run(args.scale, args.reuse, args.repeat), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
