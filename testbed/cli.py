"""The `testbed` command line (SPEC §5). Exit codes: 0 PASS, 1 FAIL, 2 invalid input, 3 INCONCLUSIVE, 4 error."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from testbed.cli_support import EXIT_CODES, say
from testbed.errors import InputError, TestbedError


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # argparse exits 2 on bad arguments, as SPEC §5 asks
        self.print_usage(sys.stderr)
        self.exit(2, f"testbed: error: {message}\n")


class StepProgress:
    """Plain progress lines on stderr: which step, how far along, what it produced and how long it took."""

    def __init__(self, quiet: bool = False):
        self.quiet, self.started = quiet, time.perf_counter()

    def __call__(self, step: str, index: int, total: int, result: dict[str, Any] | None) -> None:
        if self.quiet:
            return
        if result is None:
            say(f"[{index}/{total}] {step} ...")
            return
        if "failed" in result:
            say(f"[{index}/{total}] {step} failed ({result['failed']})")
            return
        shown = {k: v for k, v in result.items() if isinstance(v, int) or (isinstance(v, str) and len(v) < 40)}
        detail = ", ".join(f"{k}={v}" for k, v in list(shown.items())[:4])
        say(f"[{index}/{total}] {step} done in {result.get('elapsed_s', 0):.1f}s ({detail})")


def _print_summary(run_dir: Path, decision: str, existing: bool) -> None:
    metrics_path, gates_path = run_dir / "metrics.json", run_dir / "gates.json"
    print(f"decision: {decision}" + (" (existing record, not rerun)" if existing else ""))
    if gates_path.exists():
        for reason in json.loads(gates_path.read_text())["reasons"]:
            print(f"  {reason}")
    if metrics_path.exists():
        deltas = json.loads(metrics_path.read_text())["deltas"]["all"]
        print(f"{'metric':<14}{'control':>10}{'candidate':>11}{'delta':>10}   95% CI")
        for name, d in deltas.items():
            print(f"{name:<14}{d['control']:>10.4f}{d['candidate']:>11.4f}{d['delta']:>+10.4f}   "
                  f"[{d['interval'][0]:+.4f}, {d['interval'][1]:+.4f}]")
    print(f"record: {run_dir}")
    if (run_dir / "report.md").exists():
        print(f"report: {run_dir / 'report.md'}")


def cmd_run(args: argparse.Namespace) -> int:
    if args.state_machine_arn:
        return _run_remote(args)
    from testbed.local import run_local

    if not args.lake:
        raise InputError("--lake is required for a local run")
    result = run_local(Path(args.manifest), args.lake, Path(args.out or "testbed-runs"), StepProgress(args.quiet))
    if args.trace:
        _print_trace(result.history)
    _print_summary(result.run_dir, result.decision, result.existing)
    return EXIT_CODES[result.decision]


def _print_trace(history: list[dict[str, Any]]) -> None:
    """The execution history, one event per line: id, seconds since start, type, state name."""
    if not history:
        return
    start = history[0]["timestamp"]
    for event in history:
        details = event.get("stateEnteredEventDetails") or event.get("stateExitedEventDetails") or {}
        offset = (event["timestamp"] - start).total_seconds()
        print(f"{event['id']:>4} {offset:>8.3f}s  {event['type']:<28} {details.get('name', '')}")


def _run_remote(args: argparse.Namespace) -> int:
    from testbed.remote import start_run

    result = start_run(Path(args.manifest), args.state_machine_arn, lake=args.lake, artifacts=args.out,
                       wait=args.wait, progress=StepProgress(args.quiet), deadline_s=args.timeout)
    print(f"execution: {result.execution_arn}")
    if not args.wait:
        return 0
    print(f"decision: {result.decision}")
    if result.record:
        print(f"record: {result.record}")
    return EXIT_CODES[result.decision or "ERROR"]


def cmd_validate(args: argparse.Namespace) -> int:
    from testbed.manifest import parse_manifest, read_manifest_file
    from testbed.pipeline.validate import validate

    raw = read_manifest_file(Path(args.manifest))
    if args.lake:
        result = validate(raw, str(Path(args.lake).resolve()) if "://" not in args.lake else args.lake)
        print(f"ok: manifest and lake are valid; run id would be {result['run_id']}")
    else:
        parse_manifest(raw, source=args.manifest)
        print("ok: manifest is valid (pass --lake to check it against a lake)")
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    from testbed.core.generate import LakeSpec, generate_lake

    shift = None
    if args.price_shift:
        category, fraction, since = args.price_shift.split(":")
        shift = (category, float(fraction), date.fromisoformat(since))
    spec = LakeSpec(users=args.users, days=args.days, seed=args.seed, end_date=date.fromisoformat(args.end),
                    price_shift=shift)
    started = time.perf_counter()
    stats = generate_lake(Path(args.out), spec)
    print(f"wrote {stats['events']} events, {stats['users']} users, {stats['items']} items to {args.out} "
          f"in {time.perf_counter() - started:.1f}s")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from testbed.pipeline.train import train_model

    cutoff = datetime.fromisoformat(args.cutoff).replace(tzinfo=UTC) if args.cutoff else None
    meta = train_model(args.lake, Path(args.out), cutoff=cutoff, label_days=args.label_days,
                       feature_set=args.feature_set, seed=args.seed, users_rate=args.users_rate)
    print(f"wrote {args.out} ({meta['feature_set']}, {len(meta['feature_names'])} features, "
          f"{meta['training']['users']} users) sha256 {meta['sha256']}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from testbed.adapters import storage
    from testbed.pipeline.context import RunContext
    from testbed.pipeline.report import render_markdown

    run_uri = args.run_dir.rstrip("/")
    record = storage.read_json(storage.join(run_uri, "run.json"))
    if record.get("decision") == "ERROR":
        print(f"run {record['run_id']}: ERROR: {'; '.join(record['reasons'])}")
        return 4
    text = render_markdown(RunContext(record["run_id"], run_uri, record["lake"]), record)
    storage.write_bytes(storage.join(run_uri, "report.md"), text.encode())
    print(text)
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    from testbed.manifest import json_schema

    text = json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"
    if args.out:
        Path(args.out).write_text(text)
    else:
        print(text, end="")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from testbed.demo import run_demo

    return run_demo(Path(args.dir), StepProgress(args.quiet), _print_summary)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="testbed", description="Preprod testbed for retail recommendation models.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for unexpected errors")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    demo = sub.add_parser("demo", help="generate a lake and two models, then run the example manifest locally")
    demo.add_argument("--dir", default="testbed-demo")
    demo.add_argument("--quiet", action="store_true")
    demo.set_defaults(func=cmd_demo)

    run = sub.add_parser("run", help="run a manifest locally (embedded AWS, DuckDB for Athena)")
    run.add_argument("manifest")
    run.add_argument("--lake", help="lake root: a directory or s3:// URI (deployed: defaults to the deployment's)")
    run.add_argument("--out", help="artifacts root: a local directory (default testbed-runs), or s3:// when deployed")
    run.add_argument("--state-machine-arn", help="start the deployed workflow instead of running locally")
    run.add_argument("--wait", action="store_true", help="with --state-machine-arn: follow it, exit with its code")
    run.add_argument("--timeout", type=float, default=3600, help="with --wait: give up after this many seconds")
    run.add_argument("--trace", action="store_true", help="local: print the execution history")
    run.add_argument("--local", action="store_true", help="run locally (the default without --state-machine-arn)")
    run.add_argument("--quiet", action="store_true")
    run.set_defaults(func=cmd_run)

    val = sub.add_parser("validate", help="check a manifest against its schema and, with --lake, a lake")
    val.add_argument("manifest")
    val.add_argument("--lake")
    val.set_defaults(func=cmd_validate)

    gen = sub.add_parser("generate", help="write a seeded synthetic retail lake")
    gen.add_argument("--out", required=True)
    gen.add_argument("--users", type=int, default=5000)
    gen.add_argument("--days", type=int, default=180)
    gen.add_argument("--seed", type=int, default=7)
    gen.add_argument("--end", default="2026-10-31", help="first day after the last event (YYYY-MM-DD)")
    gen.add_argument("--price-shift", help="CATEGORY:FRACTION:FROM_DATE, e.g. footwear:0.2:2026-10-01")
    gen.set_defaults(func=cmd_generate)

    train = sub.add_parser("train", help="train a LightGBM LambdaRank model on a lake")
    train.add_argument("--lake", required=True)
    train.add_argument("--out", required=True)
    train.add_argument("--cutoff", help="feature cutoff (ISO date); default: 4 label windows before the last event")
    train.add_argument("--label-days", type=int, default=14)
    train.add_argument("--feature-set", choices=["full", "control"], default="full")
    train.add_argument("--seed", type=int, default=1)
    train.add_argument("--users-rate", type=float, default=1.0, help="share of users to train on")
    train.set_defaults(func=cmd_train)

    rep = sub.add_parser("report", help="re-render the report of a run record")
    rep.add_argument("run_dir")
    rep.set_defaults(func=cmd_report)
    schema = sub.add_parser("schema", help="print the manifest JSON Schema")
    schema.add_argument("--out", help="write it to this file instead")
    schema.set_defaults(func=cmd_schema)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
    try:
        return int(args.func(args))
    except TestbedError as exc:
        say(f"testbed: error: {exc}")
        return exc.exit_code
    except BrokenPipeError:  # stdout closed early (e.g. `| head`): stop quietly, as other CLI tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except KeyboardInterrupt:
        say("testbed: interrupted")
        return 4
    except Exception as exc:
        if args.debug:
            raise
        say(f"testbed: internal error: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''} "
             "(rerun with --debug for details)")
        return 4
