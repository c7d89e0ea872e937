"""The `testbed` command line (SPEC §5). Exit codes: 0 PASS, 1 FAIL, 2 invalid input, 3 INCONCLUSIVE, 4 error."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from testbed.cli_support import say
from testbed.errors import CredentialsError, InputError, TestbedError
from testbed.settings import Settings, prefer_passive_openmp

if TYPE_CHECKING:
    from testbed.adapters.storage import Storage
    from testbed.phase_progress import PhaseProgress
    from testbed.record.base import Decision
    from testbed.record.layout import RunLayout


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # argparse exits 2 on bad arguments, as SPEC §5 asks; one line
        self.exit(2, f"testbed: error: {message} (next: see `{self.prog} --help`)\n")


def _whole_number(minimum: int) -> Any:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{value} is below {minimum}; give {minimum} or more")
        return value

    return parse


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from None


def _instant(text: str) -> datetime:
    """An ISO date or date-time; without an offset it is UTC."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO date or time (e.g. 2026-10-01 or "
                                         "2026-10-01T12:00:00)") from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _share(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"{value} is not a share in (0, 1]")
    return value


def _price_shift(text: str) -> tuple[str, float, date]:
    """CATEGORY:FRACTION:FROM_DATE; the category is checked against the generated ones by `generate`."""
    parts = text.split(":")
    if len(parts) != 3 or not parts[0]:
        raise argparse.ArgumentTypeError(f"{text!r} is not CATEGORY:FRACTION:FROM_DATE (e.g. footwear:0.2:2026-10-01)")
    category, fraction, since = parts
    try:
        shift = float(fraction)
    except ValueError:
        raise argparse.ArgumentTypeError(f"fraction {fraction!r} is not a number (e.g. 0.2 for +20 %)") from None
    if not shift > -1:
        raise argparse.ArgumentTypeError(f"fraction {shift} must be above -1 (a price cannot fall by 100 % or more)")
    try:
        return category, shift, date.fromisoformat(since)
    except ValueError:
        raise argparse.ArgumentTypeError(f"FROM_DATE {since!r} is not a date (YYYY-MM-DD)") from None


def _progress(args: argparse.Namespace) -> Any:
    from testbed.progress import make_progress
    from testbed.steps import TRACKED

    return make_progress(quiet=args.quiet, steps=TRACKED, dumb_terminal=args.settings.dumb_terminal)


def _phases(args: argparse.Namespace, label: str, unit: str = "trees") -> PhaseProgress:
    """Progress of one long piece of work (training, generating) on stderr; nothing with --quiet."""
    from testbed.phase_progress import make_phase_progress

    return make_phase_progress(label, unit=unit, quiet=args.quiet, dumb_terminal=args.settings.dumb_terminal)


@contextlib.contextmanager
def _workflow_error(progress: Any) -> Iterator[None]:
    """Tag an error that ends a run with the type its failing step raised (progress saw it), for the hint."""
    try:
        yield
    except TestbedError as exc:
        exc.workflow_error = progress.failed_error  # type: ignore[attr-defined]
        raise


def _finish(args: argparse.Namespace, result: dict[str, Any]) -> int:
    """--json: the result document alone on stdout; otherwise the summary table (--quiet only hides progress)."""
    from testbed.cli_output import summary_lines

    if args.json:
        print(json.dumps(result, indent=2, sort_keys=True))
    else:
        print("\n".join(summary_lines(result)))
    return int(result["exit_code"])


def _storage(args: argparse.Namespace) -> Storage:
    """Storage for run records wherever they are: local paths, or s3:// with the settings' client."""
    from testbed.adapters.aws import clients_for
    from testbed.adapters.storage import UriStorage

    return UriStorage(clients_for(args.settings).client("s3"))


def _local_summary(command: str, args: argparse.Namespace, progress: Any = None) -> Any:
    """The summary callback run_local's callers (run, demo) finish with; it ends the live display first."""
    from testbed.adapters.storage import UriStorage
    from testbed.cli_output import run_result

    def summary(run_dir: Path, decision: Decision, existing: bool) -> int:
        if progress is not None:
            progress.close()
        return _finish(args, run_result(UriStorage(), command, "local", str(run_dir), decision=decision,
                                        run_id=run_dir.name, existing=existing))

    return summary


def cmd_run(args: argparse.Namespace) -> int:
    if args.state_machine_arn:
        return _run_remote(args)
    from testbed.local import run_local

    if not args.lake:
        raise InputError("--lake is required for a local run")
    with _progress(args) as progress, _workflow_error(progress):
        result = run_local(Path(args.manifest), args.lake, Path(args.out or "testbed-runs"), progress,
                           settings=args.settings, watch=not args.quiet)
    if args.trace and not args.json:
        _print_trace(result.history)
    return int(_local_summary("run", args)(result.run_dir, result.decision, result.existing))


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
    from testbed.adapters.aws import clients_for
    from testbed.adapters.storage import is_s3
    from testbed.cli_output import run_result
    from testbed.remote import start_run

    sfn = clients_for(args.settings).client("stepfunctions")
    with _progress(args) as progress, _workflow_error(progress):
        result = start_run(sfn, Path(args.manifest), args.state_machine_arn, lake=args.lake, artifacts=args.out,
                           wait=args.wait, progress=progress, deadline_s=args.timeout)
    run_uri = result.record.removesuffix("/run.json") if result.record else None
    if run_uri and not is_s3(run_uri):
        run_uri = None
    document = run_result(_storage(args), "run", "deployed", run_uri if args.wait else None,
                          decision=result.decision, run_id=result.run_id, status=result.status,
                          execution_arn=result.execution_arn)
    return _finish(args, document)


def cmd_validate(args: argparse.Namespace) -> int:
    from testbed.invocation import Invocation
    from testbed.manifest import parse_manifest, read_manifest_file
    from testbed.pipeline.validate import validate

    raw = read_manifest_file(Path(args.manifest))
    if args.lake:
        lake = str(Path(args.lake).resolve()) if "://" not in args.lake else args.lake
        result = validate(Invocation.outside_lambda(args.settings), raw, lake)
        for warning in result.get("warnings", []):
            print(f"warning: {warning}")
        print(f"ok: manifest and lake are valid; run id would be {result['run_id']}")
        for line in result.get("limitations", []):
            print(f"note: {line}")
    else:
        parse_manifest(raw, source=args.manifest)
        print("ok: manifest is valid (pass --lake to check it against a lake)")
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    from testbed.core.generate import LakeSpec, category_names, generate_lake

    spec = LakeSpec(users=args.users, days=args.days, seed=args.seed, end_date=args.end, price_shift=args.price_shift)
    known = category_names(spec.categories)
    if spec.price_shift is not None and spec.price_shift[0] not in known:
        raise InputError(f"argument --price-shift: category {spec.price_shift[0]!r} is not generated; "
                         f"one of {', '.join(known)}")
    started = time.perf_counter()
    with _phases(args, "generate", unit="files") as progress:
        progress.begin("writing the lake")
        stats = generate_lake(Path(args.out), spec, on_file=progress.advance)
        progress.end("writing the lake", {"events": stats["events"], "files": stats["files"]})
    print(f"wrote {stats['events']} events, {stats['users']} users, {stats['items']} items to {args.out} "
          f"in {time.perf_counter() - started:.1f}s")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from testbed.pipeline.train import train_model

    with _phases(args, "train") as progress:
        meta = train_model(args.lake, Path(args.out), storage=_storage(args), cutoff=args.cutoff,
                           label_days=args.label_days, feature_set=args.feature_set, features=args.features,
                           seed=args.seed, users_rate=args.users_rate, num_trees=args.trees, progress=progress)
    print(f"wrote {args.out} ({meta['feature_set']}, {len(meta['feature_names'])} features, "
          f"{meta['training']['users']} users) sha256 {meta['sha256']}")
    return 0


def cmd_features(args: argparse.Namespace) -> int:
    """check: the set (and, with --lake, its columns); sql: its batch queries; export: a training table."""
    from testbed.pipeline.train import export_table

    cutoff = getattr(args, "cutoff", None)
    if args.features_command == "export":
        result = export_table(args.lake, args.features, Path(args.out), cutoff=cutoff, label_days=args.label_days,
                              seed=args.seed, users_rate=args.users_rate, storage=_storage(args))
        print(f"wrote {args.out}: {result['rows']} rows, {result['users']} users, {len(result['features'])} "
              f"features, cutoff {result['cutoff']}, labels until {result['label_end']}")
        return 0
    from testbed.core import feature_sql
    from testbed.core.feature_check import load_feature_set

    spec = load_feature_set(_storage(args).read_bytes(args.file), f"feature set {args.file}")
    if args.features_command == "sql":
        assert cutoff is not None
        for group, query in feature_sql.batch_queries(spec, feature_sql.epoch_us(cutoff), args.dialect).items():
            print(f"-- feature table {group}; parameters: {json.dumps(list(query.params), default=str)}")
            print(query.sql.rstrip() + ";\n")
        return 0
    if args.lake:
        from testbed.pipeline.validate import check_feature_file_against_lake

        check_feature_file_against_lake(args.settings, spec, args.lake, args.file)
    print(f"ok: feature set {spec.name} declares {len(spec.names())} features in {len(spec.groups())} tables; "
          f"digest {spec.digest()}" + ("" if args.lake else " (pass --lake to check its columns)"))
    return 0


def _run_layout(storage: Storage, given: str) -> RunLayout:
    """The run record folder the user named (local or s3://); an InputError when it holds no run.json."""
    from testbed.adapters.storage import is_s3
    from testbed.record.layout import RunLayout

    layout = RunLayout.at(given if is_s3(given) else str(Path(given).resolve()))
    if not storage.exists(layout.record.uri):
        raise InputError(f"{given}: no run.json there; give a run record folder (<out>/runs/<run_id>)")
    return layout


def cmd_report(args: argparse.Namespace) -> int:
    """Re-render report.md and report.html from a run record (local or s3://); report.md goes to stdout."""
    from testbed.report.render import write_reports

    storage = _storage(args)
    rendered = write_reports(storage, _run_layout(storage, args.run_dir).root, strict=args.strict)
    for problem in rendered.errors:
        say(f"testbed: warning: report section not rendered: {problem}")
    if not args.quiet:
        print(rendered.markdown, end="")
    for uri in rendered.uris.values():
        say(f"wrote {uri}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    """How two run records differ: decision, gates, metric deltas and drift."""
    from testbed.report.compare import compare, text
    from testbed.report.inputs import load_run

    storage = _storage(args)
    runs = [load_run(storage, _run_layout(storage, given).root, derived=False) for given in (args.run_a, args.run_b)]
    result = compare(runs[0], runs[1])
    print(json.dumps(result, indent=2, sort_keys=True) if args.json else "\n".join(text(result)))
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    from testbed.manifest import json_schema

    if args.record:
        from testbed.record.schemas import write_schemas

        for path in write_schemas(Path(args.record)):
            print(path)
        return 0
    text = json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"
    if args.out:
        Path(args.out).write_text(text)
    else:
        print(text, end="")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from testbed.demo import run_demo

    with _progress(args) as progress, _workflow_error(progress):
        return run_demo(Path(args.dir), progress, _local_summary("demo", args, progress),
                        phases=lambda label: _phases(args, label))


def _output_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quiet", action="store_true", help="no progress display (the summary still goes to stdout)")
    parser.add_argument("--json", action="store_true",
                        help="the result as JSON on stdout (schemas/run-result.schema.json), nothing else there")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="testbed", description="Preprod testbed for retail recommendation models.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for unexpected errors")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    demo = sub.add_parser("demo", help="generate a lake and two models, then run the example manifest locally")
    demo.add_argument("--dir", default="testbed-demo")
    _output_flags(demo)
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
    _output_flags(run)
    run.set_defaults(func=cmd_run)

    val = sub.add_parser("validate", help="check a manifest against its schema and, with --lake, a lake")
    val.add_argument("manifest")
    val.add_argument("--lake")
    val.set_defaults(func=cmd_validate)

    gen = sub.add_parser("generate", help="write a seeded synthetic retail lake")
    gen.add_argument("--out", required=True)
    gen.add_argument("--users", type=_whole_number(1), default=5000)
    gen.add_argument("--days", type=_whole_number(1), default=180)
    gen.add_argument("--seed", type=_whole_number(0), default=7)
    gen.add_argument("--end", type=_day, default=date(2026, 10, 31), help="first day after the last event (YYYY-MM-DD)")
    gen.add_argument("--price-shift", type=_price_shift,
                     help="CATEGORY:FRACTION:FROM_DATE, e.g. footwear:0.2:2026-10-01")
    gen.add_argument("--quiet", action="store_true", help="no progress display on stderr")
    gen.set_defaults(func=cmd_generate)

    train = sub.add_parser("train", help="train a LightGBM LambdaRank model on a lake")
    train.add_argument("--lake", required=True)
    train.add_argument("--out", required=True)
    train.add_argument("--cutoff", type=_instant,
                       help="feature cutoff (ISO date); default: 4 label windows before the last event")
    train.add_argument("--label-days", type=_whole_number(1), default=14)
    train.add_argument("--features", help="feature set file (YAML or JSON; default: the retail-default set)")
    train.add_argument("--feature-set", choices=["full", "control"], default="full",
                       help="full: the set's training inputs; control: its item features (i_*) only")
    train.add_argument("--seed", type=_whole_number(0), default=1)
    train.add_argument("--users-rate", type=_share, default=1.0, help="share of users to train on")
    train.add_argument("--trees", type=_whole_number(1), default=150, help="boosting rounds (default 150)")
    train.add_argument("--quiet", action="store_true", help="no progress display on stderr")
    train.set_defaults(func=cmd_train)

    feat = sub.add_parser("features", help="check a feature set, print its batch SQL, or export a training table")
    fsub = feat.add_subparsers(dest="features_command", required=True, parser_class=_Parser)
    check = fsub.add_parser("check", help="validate a feature set file (and its columns against a lake)")
    check.add_argument("file")
    check.add_argument("--lake", help="also check every column it reads against this lake")
    sql = fsub.add_parser("sql", help="print the batch SQL of a feature set (values are bound parameters)")
    sql.add_argument("file")
    sql.add_argument("--cutoff", type=_instant, required=True, help="feature cutoff (ISO date or time, UTC)")
    sql.add_argument("--dialect", choices=["duckdb", "trino"], default="duckdb")
    export = fsub.add_parser("export", help="write a training table: candidates, relevance and every feature")
    export.add_argument("--lake", required=True)
    export.add_argument("--out", required=True, help="Parquet file to write")
    export.add_argument("--features", help="feature set file (default: the retail-default set)")
    export.add_argument("--cutoff", type=_instant,
                        help="feature cutoff (ISO date); default: 4 label windows before the last event")
    export.add_argument("--label-days", type=_whole_number(1), default=14)
    export.add_argument("--seed", type=_whole_number(0), default=1)
    export.add_argument("--users-rate", type=_share, default=1.0, help="share of users to export")
    feat.set_defaults(func=cmd_features)

    rep = sub.add_parser("report", help="re-render report.md and report.html of a run record (local or s3://)")
    rep.add_argument("run_dir", help="a run record folder: <out>/runs/<run_id> or s3://.../runs/<run_id>")
    rep.add_argument("--strict", action="store_true", help="fail on any rendering error instead of noting it")
    rep.add_argument("--quiet", action="store_true", help="do not print report.md on stdout")
    rep.set_defaults(func=cmd_report)

    cmp_ = sub.add_parser("compare", help="how two run records differ: decision, gates, metrics and drift")
    cmp_.add_argument("run_a")
    cmp_.add_argument("run_b")
    cmp_.add_argument("--json", action="store_true", help="the comparison as JSON (schemas/compare-result)")
    cmp_.set_defaults(func=cmd_compare)
    schema = sub.add_parser("schema", help="print the manifest JSON Schema")
    schema.add_argument("--out", help="write it to this file instead")
    schema.add_argument("--record", metavar="DIR", help="write the run record's schemas to DIR instead "
                        "(schemas/run-record)")
    schema.set_defaults(func=cmd_schema)
    return parser


def main(argv: list[str] | None = None) -> int:
    prefer_passive_openmp()
    args = build_parser().parse_args(argv)
    try:
        args.settings = Settings.from_environment()  # once per command; commands read args.settings
        return int(args.func(args))
    except BrokenPipeError:  # stdout closed early (e.g. `| head`): stop quietly, as other CLI tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except KeyboardInterrupt:
        say("testbed: interrupted")
        return 4
    except Exception as exc:
        error = _environment_error(exc)
        if args.debug and not isinstance(error, TestbedError):
            raise
        return _fail(args, error)


def _environment_error(exc: Exception) -> Exception:
    """What the environment lacks, by the SDK's error type: missing AWS credentials are an input (exit 2)."""
    from botocore.exceptions import NoCredentialsError, PartialCredentialsError

    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        return CredentialsError(f"AWS credentials are missing or incomplete ({exc}); an s3:// lake or record, "
                                "and a deployed run, need them")
    return exc


def _fail(args: argparse.Namespace, exc: Exception) -> int:
    """One stderr line naming what went wrong and what to do next; with --json, the error document on stdout."""
    from testbed.cli_output import error_line, error_result

    internal = not isinstance(exc, TestbedError)
    code = 4 if internal else exc.exit_code  # type: ignore[attr-defined]
    say(error_line(exc, internal=internal))
    if getattr(args, "json", False) and args.command in ("run", "demo"):
        print(json.dumps(error_result(exc, code, args.command), indent=2, sort_keys=True))
    return code
