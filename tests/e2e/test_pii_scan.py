"""The PII scan: no raw value of a masked column anywhere a run leaves text behind.

One lake whose users carry emails and phone numbers (both masked); runs and refusals through the CLI that touch
the masked columns everywhere they could leak: a filter on them, strata, drift, what-ifs, the reports, refused
filter values, an unmasked personal column and a step that fails mid-run. Every byte of every out folder (Parquet
decoded too), the captured stdout and stderr and the Powertools and library logs are searched for every raw
value: zero hits. The out folder's `.testbed/pii.key` is the masking key, not personal data, and is skipped.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from testbed.cli import main
from testbed.observability import logger
from tests.e2e.test_local_run import make_manifest

MASKED = ["email", "phone"]
FOREIGN_EMAIL = "not.in.the.lake@example.com"  # a filter value that is nobody's: it must not be echoed either


@pytest.fixture(scope="module")
def lake(small_lake: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The session's small lake (events and items linked, not copied) with a phone number per user."""
    root = tmp_path_factory.mktemp("pii-lake")
    for dataset in ("events", "items"):
        for path in (small_lake / dataset).rglob("*.parquet"):
            link = root / path.relative_to(small_lake)
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(path)
    users = pq.read_table(next((small_lake / "users").rglob("*.parquet")))
    phones = pa.array([f"+44 20 7946 {i:04d}" for i in range(users.num_rows)], pa.string())
    (root / "users").mkdir()
    pq.write_table(users.append_column("phone", phones), root / "users" / "part-0.parquet")
    return root


def raw_values(lake: Path) -> set[str]:
    users = pq.read_table(lake / "users" / "part-0.parquet", columns=MASKED)
    values = {str(v) for column in MASKED for v in users.column(column).to_pylist() if v is not None}
    return values | {FOREIGN_EMAIL}


class Capture:
    """Everything the CLI said: stdout, stderr, the Powertools logger at DEBUG and every library log record."""

    def __init__(self) -> None:
        self.streams: list[io.StringIO] = []
        self.powertools = io.StringIO()
        self.library = io.StringIO()

    def texts(self) -> dict[str, str]:
        said = {f"stdout/stderr of call {i // 2} ({'err' if i % 2 else 'out'})": s.getvalue()
                for i, s in enumerate(self.streams)}
        return {**said, "powertools logs": self.powertools.getvalue(), "library logs": self.library.getvalue()}

    def cli(self, argv: list[str]) -> tuple[int, str]:
        """`testbed ARGV` through main(); returns the exit code and stderr."""
        out, err = io.StringIO(), io.StringIO()
        self.streams += [out, err]
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(argv)
        return code, err.getvalue()


@pytest.fixture(scope="module")
def capture() -> Iterator[Capture]:
    captured = Capture()
    log = logger()
    previous_stream, previous_level = log.registered_handler.setStream(captured.powertools), log.log_level
    library = logging.StreamHandler(captured.library)
    root = logging.getLogger()
    previous_root_level = root.level
    root.addHandler(library)
    root.setLevel(logging.INFO)
    patch = pytest.MonkeyPatch()
    patch.setenv("POWERTOOLS_LOG_LEVEL", "DEBUG")
    try:
        yield captured
    finally:
        patch.undo()
        root.removeHandler(library)
        root.setLevel(previous_root_level)
        log.registered_handler.setStream(previous_stream)
        log.setLevel(previous_level)


@pytest.fixture(scope="module")
def runs(lake: Path, small_models: dict[str, dict[str, str]], capture: Capture,
         tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """{name: (exit code, stderr)} of every call; the out folders are under `root`."""
    root = tmp_path_factory.mktemp("pii-runs")
    phones = sorted(raw_values(lake) - {FOREIGN_EMAIL})[:2]
    pii = {"mask": MASKED}
    reachable = [{"column": "email", "op": "not_null"}, {"column": "phone", "op": "not_null"}]
    manifests = {
        "whole": make_manifest(
            small_models, name="pii-whole", pii=pii, segment={"name": "reachable", "filters": reachable},
            sampling={"strategy": "stratified", "rate": 0.2, "seed": 5, "strata": ["loyalty_tier"]},
            whatif={"scenarios": [{"name": "cold-10", "kind": "cold_start_items", "items": 10}], "max_users": 50}),
        "eq-on-masked": make_manifest(small_models, name="eq-on-masked", pii=pii, segment={
            "name": "s", "filters": [{"column": "email", "op": "eq", "value": 5}]}),
        "in-on-masked": make_manifest(small_models, name="in-on-masked", pii=pii, segment={"name": "s", "filters": [
            {"column": "phone", "op": "in", "value": phones},
            {"column": "email", "op": "ne", "value": FOREIGN_EMAIL}]}),
        "masked-stratum": make_manifest(small_models, name="masked-stratum", pii=pii,
                                        sampling={"strategy": "stratified", "rate": 0.5, "strata": ["email"]}),
        "unmasked-phone": make_manifest(small_models, name="unmasked-phone", pii={"mask": ["email"]}),
        "fails-in-slice": make_manifest(small_models, name="fails-in-slice", pii=pii, segment={"name": "s", "filters": [
            {"column": "region", "op": "eq", "value": 5}, {"column": "email", "op": "not_null"}]}),
    }
    results: dict[str, tuple[int, str]] = {}
    for name, manifest in manifests.items():
        path = root / f"{name}.json"  # outside every out folder: some hold a refused raw value on purpose
        path.write_text(json.dumps(manifest))
        results[f"validate {name}"] = capture.cli(["validate", str(path), "--lake", str(lake)])
        results[name] = capture.cli(["run", str(path), "--lake", str(lake), "--out", str(root / name), "--quiet"])
    run_dir = next((root / "whole" / "runs").iterdir())
    results["report whole"] = capture.cli(["report", str(run_dir)])  # report.md on stdout
    return {"root": root, "results": results, "whole": run_dir}


def any_of(values: set[str]) -> re.Pattern[str]:
    """A pattern that matches wherever any of `values` occurs: the values as a trie of alternatives, which one
    pass reads far faster than one substring search per value (thousands of values over megabytes)."""
    trie: dict[str, Any] = {}
    for value in values:
        node = trie
        for char in value:
            node = node.setdefault(char, {})
        node[""] = {}

    def pattern(node: dict[str, Any]) -> str:
        branches = [re.escape(char) + pattern(child) for char, child in sorted(node.items()) if char]
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        return f"(?:{body})?" if "" in node else body

    return re.compile(pattern(trie))


def out_texts(root: Path) -> dict[str, str]:
    """Every file under the out folders as text (bytes decoded leniently), Parquet also decoded row by row."""
    texts = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file() and p.parent != root and p.name != "pii.key"):
        data = path.read_bytes()
        texts[str(path)] = data.decode("latin-1")
        if path.suffix == ".parquet":
            table = pq.read_table(path)
            strings = [table.column(i).cast(pa.string()) for i, f in enumerate(table.schema)
                       if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)
                       or pa.types.is_dictionary(f.type)]
            texts[f"{path} (decoded)"] = "\n".join(str(v) for column in strings for v in column.to_pylist())
    return texts


def test_every_call_did_what_it_should(runs: dict[str, Any]) -> None:
    results = runs["results"]
    assert results["whole"][0] in (0, 1, 3) and results["validate whole"][0] == 0
    for refused, field in (("eq-on-masked", "segment.filters.0"), ("in-on-masked", "segment.filters.0"),
                           ("masked-stratum", "sampling.strata.0"), ("unmasked-phone", "users/ column phone")):
        for call in (f"validate {refused}", refused):
            code, err = results[call]
            assert code == 2 and field in err, (call, err)
    assert results["fails-in-slice"][0] == 2 and "segment.filters" in results["fails-in-slice"][1]
    record = runs["whole"]
    assert {"drift.json", "whatif.json", "report.html", "report.md", "gates.json", "metrics.json"} <= {
        p.name for p in record.iterdir()}
    assert json.loads((record / "slice" / "stats.json").read_text())["masked_columns"] == MASKED


def test_no_raw_masked_value_anywhere(runs: dict[str, Any], capture: Capture, lake: Path) -> None:
    values = raw_values(lake)
    assert len(values) > 2 * 1000
    texts = {**out_texts(runs["root"]), **capture.texts()}
    assert sum(len(t) for t in texts.values()) > 1_000_000  # the scan read the records, not nothing
    raw = any_of(values)
    hits = [(where, found.group()) for where, text in texts.items() for found in raw.finditer(text)]
    assert hits == []


def test_the_scan_would_see_a_leak(runs: dict[str, Any], lake: Path) -> None:
    """The same scan over the raw lake finds every value: the check above can fail."""
    leaked, values = out_texts(lake), raw_values(lake) - {FOREIGN_EMAIL}
    scan = any_of(values)
    found = {match.group() for text in leaked.values() for match in scan.finditer(text)}
    # a value inside a longer one found at the same place is not a match of its own: look for those one by one
    assert all(any(value in text for text in leaked.values()) for value in values - found)
