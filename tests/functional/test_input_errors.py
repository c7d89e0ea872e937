"""Malformed manifests and lakes: exit code 2 and one stderr line naming the field or column (SPEC §2, §3, §5).

Most cases go through `testbed validate MANIFEST --lake LAKE`; a subset also goes through the workflow's validate
step, which must reject the run before it writes anything, with an error the run's failure carries to the CLI as
exit 2 and the same message. A few of those go through a whole `testbed run` (each starts the embedded AWS), which
must stop with that message as one stderr line and never leave a PASS record behind.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from testbed.adapters.executions import raise_for_failure
from testbed.adapters.storage import MemoryStorage
from testbed.cli import main
from testbed.errors import InputError
from testbed.invocation import Invocation
from testbed.pipeline.validate import validate
from testbed.record.claim import ExecutionRef

Mutation = Callable[[dict[str, Any]], None]
LakeEdit = Callable[[Path], None]

PARTITION = "event_date=2026-10-01"  # inside the base manifest's [start, end) window
SQL_VALUE = "x'; DROP TABLE users; --"


# --------------------------------------------------------------------------------------------------
# helpers


@pytest.fixture(autouse=True)
def _library_logs_off_stderr() -> Iterator[None]:
    """Give the root logger a handler so third-party log records never reach stderr via logging.lastResort.

    pytest's logging plugin normally does this; with `-p no:logging` it does not, and in-process stderr
    would then depend on how pytest was started. What a real process prints is checked separately by
    `test_failing_run_prints_one_stderr_line_from_a_real_process`.
    """
    handler = logging.NullHandler()
    logging.getLogger().addHandler(handler)
    yield
    logging.getLogger().removeHandler(handler)



def call(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def call_run(manifest: Path, lake: Path, out: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """`testbed run MANIFEST --lake LAKE --out OUT --quiet`: (exit code, stderr)."""
    code, _, err = call(["run", str(manifest), "--lake", str(lake), "--out", str(out), "--quiet"], capsys)
    return code, err


def assert_one_line_error(err: str, *needles: str) -> str:
    """stderr is exactly one `testbed: error:` line, no traceback, and names every needle."""
    lines = err.splitlines()
    assert len(lines) == 1, f"expected one stderr line, got {lines!r}"
    line = lines[0]
    assert line.startswith("testbed: error: "), line
    assert "Traceback" not in err
    assert "internal error" not in line
    for needle in needles:
        assert needle in line, f"{needle!r} not in {line!r}"
    return line


def validate_step_rejects(manifest: dict[str, Any], lake: Path, *needles: str) -> None:
    """The workflow's validate step (artifacts, an execution to claim the run for) on a MemoryStorage that holds
    the manifest's model files: it raises an input error naming every needle before writing anything, and the
    execution's failure (error name, Lambda's error payload) becomes the same exit-2 error at the CLI."""
    models = [Path(ref["uri"]) for ref in manifest["models"].values()]
    memory = MemoryStorage({str(path): path.read_bytes() for path in models if path.is_file()})
    before = dict(memory.objects)
    execution = ExecutionRef(id="arn:aws:states:us-east-1:1:execution:testbed:run-1", timeout_s=3600)
    with pytest.raises(InputError) as rejected:
        validate(Invocation.on(memory), manifest, str(lake), "s3://artifacts", execution)
    message = str(rejected.value)
    assert "\n" not in message
    for needle in needles:
        assert needle in message, f"{needle!r} not in {message!r}"
    assert memory.objects == before  # no claim, no manifest, no record: the run never got going
    payload = {"errorType": type(rejected.value).__name__, "errorMessage": message, "stackTrace": []}
    with pytest.raises(InputError) as carried:
        raise_for_failure(type(rejected.value).__name__, json.dumps(payload))
    assert str(carried.value) == message


def assert_no_pass_record(out: Path) -> None:
    for record in out.rglob("run.json"):
        assert json.loads(record.read_text())["decision"] != "PASS", record


def mirror_lake(source: Path, target: Path, datasets: tuple[str, ...] = ("events", "users", "items")) -> Path:
    """A cheap copy of a lake: the folder tree with every Parquet file symlinked to the original.

    Files are only ever replaced through `rewrite_parquet`, which unlinks the symlink first, so the
    session's shared lake is never written to.
    """
    for dataset in datasets:
        for path in (source / dataset).rglob("*.parquet"):
            link = target / path.relative_to(source)
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(path)
    return target


def rewrite_parquet(path: Path, change: Callable[[pa.Table], pa.Table]) -> None:
    table = change(pq.read_table(path))
    path.unlink()  # drop the symlink; never write through it
    pq.write_table(table, path)


def rewrite_events(lake: Path, change: Callable[[pa.Table], pa.Table], partition: str | None = None) -> None:
    for path in sorted((lake / "events").rglob("*.parquet")):
        if partition is None or path.parent.name == partition:
            rewrite_parquet(path, change)


def first_event_id(lake: Path) -> str:
    return str(pq.read_table(lake / "events" / PARTITION / "part-0.parquet").column("event_id")[0].as_py())


def replace_value(table: pa.Table, column: str, row: int, value: Any) -> pa.Table:
    index = table.schema.get_field_index(column)
    values = table.column(index).to_pylist()
    values[row] = value
    return table.set_column(index, table.schema.field(index), pa.array(values, table.schema.field(index).type))


# --------------------------------------------------------------------------------------------------
# manifest cases: (id, change to a valid manifest, strings the message must contain)


def _set(path: str, value: Any) -> Mutation:
    def change(data: dict[str, Any]) -> None:
        *parents, leaf = path.split(".")
        node = data
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value

    return change


def _add_gate(gate: dict[str, Any]) -> Mutation:
    return lambda data: data["gates"].append(gate)


def _duplicate_gate(data: dict[str, Any]) -> None:
    data["gates"].append({**data["gates"][0], "margin": 0.5})


MANIFEST_CASES: list[tuple[str, Mutation, tuple[str, ...]]] = [
    ("unknown-top-level-key", _set("colour", "blue"), ("colour", "unknown key")),
    ("unknown-nested-key", _set("sampling.rte", 0.5), ("sampling.rte", "unknown key")),
    ("unknown-key-in-a-gate", lambda d: d["gates"][0].update(treshold=1), ("gates.0.treshold", "unknown key")),
    ("month-13", _set("time.start", "2026-13-01"), ("time.start", "month")),
    ("not-a-date", _set("time.end", "next tuesday"), ("time.end",)),
    ("start-equals-cutoff", _set("time.start", "2026-10-17T00:00:00Z"), ("time.start", "time.cutoff")),
    ("start-after-cutoff", _set("time.start", "2026-10-20T00:00:00Z"), ("time.start", "time.cutoff")),
    ("cutoff-equals-end", _set("time.cutoff", "2026-10-31T00:00:00Z"), ("time.cutoff", "time.end")),
    ("cutoff-after-end", _set("time.cutoff", "2026-11-05T00:00:00Z"), ("time.cutoff", "time.end")),
    ("rate-zero", _set("sampling.rate", 0), ("sampling.rate",)),
    ("rate-above-one", _set("sampling.rate", 1.5), ("sampling.rate",)),
    ("rate-negative", _set("sampling.rate", -0.1), ("sampling.rate",)),
    ("unknown-strategy", _set("sampling.strategy", "random"), ("sampling.strategy",)),
    ("unknown-filter-column", _set("segment.filters", [{"column": "shoe_size", "op": "eq", "value": "42"}]),
     ("segment.filters.0.column", "shoe_size")),
    ("filter-column-not-an-identifier",
     _set("segment.filters", [{"column": "region; DROP TABLE users", "op": "eq", "value": "x"}]),
     ("segment.filters.0.column",)),
    ("unknown-filter-op", _set("segment.filters", [{"column": "region", "op": "like", "value": "e%"}]),
     ("segment.filters.0",)),
    ("string-value-on-numeric-column",
     _set("segment.filters", [{"column": "prior_orders", "op": "gt", "value": "three"}]),
     ("segment.filters.0.value", "prior_orders")),
    ("string-in-list-on-numeric-column",
     _set("segment.filters", [{"column": "prior_orders", "op": "in", "value": [1, "2; --"]}]),
     ("segment.filters.0.value", "prior_orders")),
    ("unknown-strata-column",
     lambda d: d["sampling"].update(strategy="stratified", strata=["favourite_colour"]),
     ("sampling.strata.0", "favourite_colour")),
    ("unknown-pii-mask-column", _set("pii.mask", ["email", "phone_number"]), ("pii.mask.1", "phone_number")),
    ("gate-unknown-metric", _add_gate({"name": "floor", "kind": "threshold", "metric": "accuracy@10", "bound": 0.1}),
     ("gates.2", "accuracy@10")),
    ("gate-metric-k-differs", _add_gate({"name": "floor", "kind": "threshold", "metric": "ndcg@5", "bound": 0.1}),
     ("floor", "ndcg@5", "k=10")),
    ("duplicate-gate-names", _duplicate_gate, ("gate names must be unique",)),
    ("gate-without-margin", _add_gate({"name": "better", "kind": "superiority", "metric": "ndcg@10"}),
     ("gates.2", "margin")),
    ("missing-model-file", lambda d: d["models"]["control"].update(uri="/nonexistent/control.txt"),
     ("models.control.uri", "/nonexistent/control.txt")),
    ("model-checksum-mismatch", lambda d: d["models"]["candidate"].update(sha256="0" * 64),
     ("models.candidate.sha256", "checksum")),
    ("model-checksum-not-hex", lambda d: d["models"]["candidate"].update(sha256="not-a-digest"),
     ("models.candidate.sha256",)),
    ("name-not-a-slug", _set("name", "Small Test!"), ("name",)),
]

# The cases that also go through the workflow's validate step, and the few of them that go through a whole
# `testbed run`: one per kind of check (the schema, a check against the lake's columns, the model files).
STEP_MANIFEST_CASES = {"unknown-nested-key", "start-after-cutoff", "rate-above-one", "unknown-filter-column",
                       "string-value-on-numeric-column", "model-checksum-mismatch", "missing-model-file",
                       "duplicate-gate-names"}
RUN_MANIFEST_CASES = {"unknown-nested-key", "string-value-on-numeric-column", "missing-model-file"}


@pytest.mark.parametrize(("change", "needles"), [c[1:] for c in MANIFEST_CASES], ids=[c[0] for c in MANIFEST_CASES])
def test_validate_rejects_bad_manifest(change: Mutation, needles: tuple[str, ...], manifest_data: dict[str, Any],
                                       write_manifest: Callable[..., Path], small_lake: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    change(manifest_data)
    code, out, err = call(["validate", str(write_manifest(manifest_data)), "--lake", str(small_lake)], capsys)
    assert code == 2
    assert out == ""
    assert_one_line_error(err, *needles)


@pytest.mark.parametrize(("change", "needles"), [c[1:] for c in MANIFEST_CASES if c[0] in STEP_MANIFEST_CASES],
                         ids=[c[0] for c in MANIFEST_CASES if c[0] in STEP_MANIFEST_CASES])
def test_validate_step_rejects_bad_manifest(change: Mutation, needles: tuple[str, ...], manifest_data: dict[str, Any],
                                            small_lake: Path) -> None:
    change(manifest_data)
    validate_step_rejects(manifest_data, small_lake, *needles)


@pytest.mark.parametrize(("change", "needles"), [c[1:] for c in MANIFEST_CASES if c[0] in RUN_MANIFEST_CASES],
                         ids=[c[0] for c in MANIFEST_CASES if c[0] in RUN_MANIFEST_CASES])
def test_run_rejects_bad_manifest(change: Mutation, needles: tuple[str, ...], manifest_data: dict[str, Any],
                                  write_manifest: Callable[..., Path], small_lake: Path, tmp_path: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    change(manifest_data)
    out = tmp_path / "out"
    code, err = call_run(write_manifest(manifest_data), small_lake, out, capsys)
    assert code == 2
    assert_one_line_error(err, *needles)
    assert_no_pass_record(out)
    assert not list(out.rglob("run.json"))  # rejected in the validate step: no run id, no record


def test_valid_manifest_is_accepted(manifest_data: dict[str, Any], write_manifest: Callable[..., Path],
                                    small_lake: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The baseline every case above breaks in one place."""
    code, out, err = call(["validate", str(write_manifest(manifest_data)), "--lake", str(small_lake)], capsys)
    assert (code, err) == (0, "")
    assert out.startswith("ok: manifest and lake are valid; run id would be small-test-")


def test_manifest_that_is_not_json(tmp_path: Path, small_lake: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "broken.json"
    path.write_text('{"name": "small-test", "segment": ')
    code, _, err = call(["validate", str(path), "--lake", str(small_lake)], capsys)
    assert code == 2
    assert_one_line_error(err, str(path), "not valid JSON")
    out = tmp_path / "out"
    code, err = call_run(path, small_lake, out, capsys)
    assert code == 2
    assert_one_line_error(err, str(path), "not valid JSON")
    assert_no_pass_record(out)


def test_manifest_that_is_json_but_not_an_object(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "list.json"
    path.write_text("[1, 2, 3]")
    code, _, err = call(["validate", str(path)], capsys)
    assert code == 2
    assert_one_line_error(err, str(path), "object")


def test_missing_manifest_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "nowhere.json"
    code, _, err = call(["validate", str(path)], capsys)
    assert code == 2
    assert_one_line_error(err, str(path), "cannot read manifest")


# --------------------------------------------------------------------------------------------------
# model files


JUNK_MODELS = {
    "plain-text": "milk=2\neggs=12\n",
    "tree-header-then-junk": "tree\nthis is a shopping list, not a LightGBM model\nmilk=2\n",
}


def _model_ref(path: Path, text: str | bytes) -> dict[str, str]:
    data = text.encode() if isinstance(text, str) else text
    path.write_bytes(data)
    return {"uri": str(path), "sha256": hashlib.sha256(data).hexdigest()}  # checksum matches: only the format is bad


@pytest.fixture(params=sorted(JUNK_MODELS))
def junk_model(tmp_path: Path, request: pytest.FixtureRequest) -> dict[str, str]:
    return _model_ref(tmp_path / "not-a-model.txt", JUNK_MODELS[request.param])


def test_validate_rejects_a_file_that_is_not_a_lightgbm_model(
        junk_model: dict[str, str], manifest_data: dict[str, Any], write_manifest: Callable[..., Path],
        small_lake: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest_data["models"]["candidate"] = junk_model
    code, out, err = call(["validate", str(write_manifest(manifest_data)), "--lake", str(small_lake)], capsys)
    assert code == 2
    assert out == ""
    assert_one_line_error(err, "models.candidate", "not a LightGBM")


def test_validate_step_rejects_a_file_that_is_not_a_lightgbm_model(
        junk_model: dict[str, str], manifest_data: dict[str, Any], small_lake: Path) -> None:
    manifest_data["models"]["control"] = junk_model
    validate_step_rejects(manifest_data, small_lake, "models.control", "not a LightGBM")


def test_run_rejects_a_file_that_is_not_a_lightgbm_model(
        manifest_data: dict[str, Any], write_manifest: Callable[..., Path], small_lake: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    manifest_data["models"]["control"] = _model_ref(tmp_path / "not-a-model.txt", JUNK_MODELS["tree-header-then-junk"])
    out = tmp_path / "out"
    code, err = call_run(write_manifest(manifest_data), small_lake, out, capsys)
    assert code == 2
    assert_one_line_error(err, "models.control", "not a LightGBM")
    assert_no_pass_record(out)
    for record in out.rglob("run.json"):  # if the run got an id before finding out, it is recorded as ERROR
        assert json.loads(record.read_text())["decision"] == "ERROR"


def test_not_a_model_error_is_one_line_at_the_file_descriptor_level(
        junk_model: dict[str, str], manifest_data: dict[str, Any], write_manifest: Callable[..., Path],
        small_lake: Path, capfd: pytest.CaptureFixture[str]) -> None:
    manifest_data["models"]["candidate"] = junk_model
    code = main(["validate", str(write_manifest(manifest_data)), "--lake", str(small_lake)])
    assert code == 2
    assert_one_line_error(capfd.readouterr().err, "models.candidate")


def test_truncated_model_file_is_rejected_not_a_crash(
        small_models: dict[str, dict[str, str]], manifest_data: dict[str, Any], write_manifest: Callable[..., Path],
        small_lake: Path, tmp_path: Path) -> None:
    """A partial download with a matching checksum: LightGBM's parser would abort the process on it."""
    text = Path(small_models["control"]["uri"]).read_bytes()
    manifest_data["models"]["control"] = _model_ref(tmp_path / "truncated.txt", text[:20_000])
    done = subprocess.run(
        [sys.executable, "-m", "testbed", "validate", str(write_manifest(manifest_data)), "--lake", str(small_lake)],
        capture_output=True, text=True, env=dict(os.environ), timeout=120, check=False)
    assert done.returncode == 2
    assert_one_line_error(done.stderr, "models.control", "truncated")


def test_failing_run_prints_one_stderr_line_from_a_real_process(
        manifest_data: dict[str, Any], write_manifest: Callable[..., Path], small_lake: Path,
        tmp_path: Path) -> None:
    """The CLI as users start it (no pytest log capture): nothing but the one error line on stderr."""
    manifest_data["models"]["candidate"]["sha256"] = "0" * 64
    env = {**os.environ, "TESTBED_PII_SECRET": os.environ["TESTBED_PII_SECRET"]}
    done = subprocess.run(
        [sys.executable, "-m", "testbed", "run", str(write_manifest(manifest_data)), "--lake", str(small_lake),
         "--out", str(tmp_path / "out"), "--quiet"],
        capture_output=True, text=True, env=env, timeout=120, check=False)
    assert done.returncode == 2
    assert_one_line_error(done.stderr, "models.candidate.sha256", "checksum")
    assert_no_pass_record(tmp_path / "out")


# --------------------------------------------------------------------------------------------------
# lakes that break the SPEC §2 contract


def _drop_price_everywhere(lake: Path) -> None:
    rewrite_events(lake, lambda t: t.drop_columns(["price"]))


def _drop_users_user_id(lake: Path) -> None:
    for path in (lake / "users").rglob("*.parquet"):
        rewrite_parquet(path, lambda t: t.drop_columns(["user_id"]))


def _drop_items_category(lake: Path) -> None:
    for path in (lake / "items").rglob("*.parquet"):
        rewrite_parquet(path, lambda t: t.drop_columns(["category"]))


def _event_time_as_string(lake: Path) -> None:
    def change(table: pa.Table) -> pa.Table:
        index = table.schema.get_field_index("event_time")
        text = pc.strftime(table.column(index), format="%Y-%m-%dT%H:%M:%S")
        return table.set_column(index, "event_time", text)

    rewrite_events(lake, change)


def _event_time_as_string_in_one_partition(lake: Path) -> None:
    def change(table: pa.Table) -> pa.Table:
        index = table.schema.get_field_index("event_time")
        return table.set_column(index, "event_time", pc.strftime(table.column(index), format="%Y-%m-%d %H:%M:%S"))

    rewrite_events(lake, change, PARTITION)


def _quantity_as_string(lake: Path) -> None:
    rewrite_events(lake, lambda t: t.set_column(t.schema.get_field_index("quantity"), "quantity",
                                                t.column("quantity").cast(pa.string())))


def _items_price_as_string(lake: Path) -> None:
    for path in (lake / "items").rglob("*.parquet"):
        rewrite_parquet(path, lambda t: t.set_column(t.schema.get_field_index("price"), "price",
                                                     t.column("price").cast(pa.string())))


def _duplicate_event_id(lake: Path) -> None:
    rewrite_events(lake, lambda t: replace_value(t, "event_id", 1, t.column("event_id")[0].as_py()), PARTITION)


def _duplicate_event_id_across_partitions(lake: Path) -> None:
    duplicate = first_event_id(lake)
    rewrite_events(lake, lambda t: replace_value(t, "event_id", 0, duplicate), "event_date=2026-10-02")


def _event_outside_partition(lake: Path) -> None:
    rewrite_events(lake, lambda t: replace_value(t, "event_time", 0,
                                                 t.column("event_time")[0].as_py() + timedelta(days=3)), PARTITION)


def _unknown_event_type(lake: Path) -> None:
    rewrite_events(lake, lambda t: replace_value(t, "event_type", 0, "click"), PARTITION)


def _null_user_id(lake: Path) -> None:
    rewrite_events(lake, lambda t: replace_value(t, "user_id", 0, None), PARTITION)


def _no_items(lake: Path) -> None:
    import shutil

    shutil.rmtree(lake / "items")


def _no_users_files(lake: Path) -> None:
    for path in (lake / "users").rglob("*.parquet"):
        path.unlink()


LAKE_CASES: list[tuple[str, LakeEdit, tuple[str, ...]]] = [
    ("events-missing-price", _drop_price_everywhere, ("events/", "price", "missing")),
    ("users-missing-user_id", _drop_users_user_id, ("users/", "user_id", "missing")),
    ("items-missing-category", _drop_items_category, ("items/", "category", "missing")),
    ("event_time-is-string", _event_time_as_string, ("events/", "event_time", "timestamp")),
    ("event_time-is-string-in-one-partition", _event_time_as_string_in_one_partition,
     ("events/", "event_time", "timestamp")),
    ("quantity-is-string", _quantity_as_string, ("events/", "quantity", "int")),
    ("items-price-is-string", _items_price_as_string, ("items/", "price", "double")),
    ("duplicate-event_id", _duplicate_event_id, ("events/", "event_id", "duplicate")),
    ("duplicate-event_id-across-partitions", _duplicate_event_id_across_partitions,
     ("events/", "event_id", "duplicate")),
    ("event-outside-its-partition", _event_outside_partition, ("events/", "event_time", "event_date")),
    ("unknown-event_type", _unknown_event_type, ("events/", "event_type", "view, add_to_cart, purchase")),
    ("null-user_id", _null_user_id, ("events/", "user_id")),
    ("no-items-dataset", _no_items, ("items/", "missing")),
    ("users-folder-without-parquet", _no_users_files, ("users/",)),
]

STEP_LAKE_CASES = {"events-missing-price", "event_time-is-string", "duplicate-event_id", "no-items-dataset"}
RUN_LAKE_CASES = {"duplicate-event_id"}  # its message quotes an example value


@pytest.fixture
def broken_lake(small_lake: Path, tmp_path: Path, request: pytest.FixtureRequest) -> Path:
    edit: LakeEdit = request.param
    lake = mirror_lake(small_lake, tmp_path / "lake")
    edit(lake)
    # the shared lake is untouched: every original file is still a regular file
    assert all(not p.is_symlink() for p in small_lake.rglob("*.parquet"))
    return lake


@pytest.mark.parametrize(("broken_lake", "needles"), [c[1:] for c in LAKE_CASES], ids=[c[0] for c in LAKE_CASES],
                         indirect=["broken_lake"])
def test_validate_rejects_broken_lake(broken_lake: Path, needles: tuple[str, ...], manifest_data: dict[str, Any],
                                      write_manifest: Callable[..., Path], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = call(["validate", str(write_manifest(manifest_data)), "--lake", str(broken_lake)], capsys)
    assert code == 2
    assert out == ""
    assert_one_line_error(err, *needles)


@pytest.mark.parametrize(("broken_lake", "needles"), [c[1:] for c in LAKE_CASES if c[0] in STEP_LAKE_CASES],
                         ids=[c[0] for c in LAKE_CASES if c[0] in STEP_LAKE_CASES], indirect=["broken_lake"])
def test_validate_step_rejects_broken_lake(broken_lake: Path, needles: tuple[str, ...],
                                           manifest_data: dict[str, Any]) -> None:
    validate_step_rejects(manifest_data, broken_lake, *needles)


@pytest.mark.parametrize(("broken_lake", "needles"), [c[1:] for c in LAKE_CASES if c[0] in RUN_LAKE_CASES],
                         ids=[c[0] for c in LAKE_CASES if c[0] in RUN_LAKE_CASES], indirect=["broken_lake"])
def test_run_rejects_broken_lake(broken_lake: Path, needles: tuple[str, ...], manifest_data: dict[str, Any],
                                 write_manifest: Callable[..., Path], tmp_path: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    code, err = call_run(write_manifest(manifest_data), broken_lake, out, capsys)
    assert code == 2
    assert_one_line_error(err, *needles)
    assert_no_pass_record(out)


@pytest.mark.parametrize("edit", [_duplicate_event_id, _event_outside_partition, _unknown_event_type],
                         ids=["duplicate-event_id", "event-outside-its-partition", "unknown-event_type"])
def test_lake_row_errors_name_an_example_row(edit: LakeEdit, small_lake: Path, tmp_path: Path,
                                             manifest_data: dict[str, Any], write_manifest: Callable[..., Path],
                                             capsys: pytest.CaptureFixture[str]) -> None:
    """SPEC §2: the message names the dataset, the column and an example row (here: the broken event's id)."""
    lake = mirror_lake(small_lake, tmp_path / "lake")
    example = first_event_id(lake)
    edit(lake)
    code, _, err = call(["validate", str(write_manifest(manifest_data)), "--lake", str(lake)], capsys)
    assert code == 2
    assert_one_line_error(err, "events/", repr(example))


def test_lake_error_outside_the_manifest_window_is_not_reported(
        small_lake: Path, tmp_path: Path, manifest_data: dict[str, Any], write_manifest: Callable[..., Path],
        capsys: pytest.CaptureFixture[str]) -> None:
    """Row checks look at the run's partitions only: a bad row before time.start does not block the run."""
    lake = mirror_lake(small_lake, tmp_path / "lake")
    rewrite_events(lake, lambda t: replace_value(t, "event_type", 0, "click"), "event_date=2026-07-10")
    code, _, err = call(["validate", str(write_manifest(manifest_data)), "--lake", str(lake)], capsys)
    assert (code, err) == (0, "")


# --------------------------------------------------------------------------------------------------
# filter values are data, never SQL


def _sql_filter(manifest_data: dict[str, Any]) -> None:
    manifest_data["segment"] = {"name": "bobby-tables",
                                "filters": [{"column": "region", "op": "eq", "value": SQL_VALUE}]}


def _users_fingerprint(lake: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in sorted((lake / "users").rglob("*.parquet"))}


def test_validate_takes_sql_looking_filter_value_as_data(
        manifest_data: dict[str, Any], write_manifest: Callable[..., Path], small_lake: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """The value is data: it matches nobody, which validate reports naming the segment (issue 14); no SQL ran."""
    before = _users_fingerprint(small_lake)
    _sql_filter(manifest_data)
    code, out, err = call(["validate", str(write_manifest(manifest_data)), "--lake", str(small_lake)], capsys)
    assert (code, out) == (2, "")
    assert_one_line_error(err, "segment", "selects no eligible user")
    assert _users_fingerprint(small_lake) == before
    # the users table is still there and still readable: a plain manifest validates afterwards
    plain = write_manifest({k: v for k, v in manifest_data.items() if k != "segment"}
                           | {"segment": {"name": "everyone", "filters": []}}, "plain.json")
    assert call(["validate", str(plain), "--lake", str(small_lake)], capsys)[0] == 0


@pytest.mark.parametrize("value", ["O'Brien", "east' OR '1'='1", 'east" OR "1"="1', "east\\'; --"])
def test_quoted_filter_values_never_widen_the_segment(
        value: str, manifest_data: dict[str, Any], write_manifest: Callable[..., Path], small_lake: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """A value bound as a parameter matches literally; rendered into SQL it could select everyone."""
    from testbed.adapters.duckdb_engine import DuckDBEngine
    from testbed.core.slice_sql import render, sampled_table
    from testbed.manifest import parse_manifest

    manifest_data["segment"] = {"name": "quotes", "filters": [{"column": "region", "op": "eq", "value": value}]}
    code, _, err = call(["validate", str(write_manifest(manifest_data)), "--lake", str(small_lake)], capsys)
    assert code == 2
    assert_one_line_error(err, "segment", "'quotes'", "selects no eligible user")  # it matched nobody
    queries = render(parse_manifest(manifest_data), sampled=sampled_table("quotes"))
    assert value not in queries.sampling  # the value is a parameter, not part of the statement
    engine = DuckDBEngine(str(small_lake))
    try:
        engine.materialise(sampled_table("quotes"), queries.sampling, queries.params)
        assert engine.query(queries.users).num_rows == 0
        assert engine.query("SELECT COUNT(*) AS n FROM users").column(0)[0].as_py() == 1500
    finally:
        engine.close()


def test_run_with_sql_looking_filter_value_selects_nobody_and_says_so(
        manifest_data: dict[str, Any], write_manifest: Callable[..., Path], small_lake: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """The value is data: it matches nobody, the run stops at validate with exit 2 naming the segment, and no
    SQL ran."""
    _sql_filter(manifest_data)
    out = tmp_path / "out"
    code, err = call_run(write_manifest(manifest_data), small_lake, out, capsys)
    assert code == 2
    assert_one_line_error(err, "segment", "selects no eligible user")
    assert_no_pass_record(out)
    assert not list(out.rglob("run.json"))  # it stopped at validate, before the slice step and any record
    assert os.path.isdir(small_lake / "users") and any((small_lake / "users").rglob("*.parquet"))
