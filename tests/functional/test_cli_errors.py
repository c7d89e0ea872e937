"""Argument and environment errors of every command (issue 14): exit 2, one stderr line that names what to fix,
never "internal error", never a traceback. Each case runs `testbed.cli.main` in process."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from testbed.adapters.aws import reset_clients
from testbed.cli import main


@dataclass(frozen=True)
class Case:
    argv: Callable[[dict[str, Any]], list[str]]  # from the inputs below: lake, manifest paths, tmp
    names: tuple[str, ...]  # what the line must name (the argument, field or file)
    hint: str = ""  # a piece of the hint, where the right thing to fix is not the default


pytestmark = pytest.mark.usefixtures("library_logs_off_stderr")


@pytest.fixture
def no_aws_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                 "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                 "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    reset_clients()
    yield
    reset_clients()


@pytest.fixture
def inputs(small_lake: Path, manifest_data: dict[str, Any], tmp_path: Path) -> dict[str, Any]:
    """Paths the cases refer to: the small lake, manifests that are each wrong in one way, a feature set."""
    def manifest(name: str, **changes: Any) -> str:
        data = json.loads(json.dumps(manifest_data))
        for key, value in changes.items():
            data[key] = value
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(data))
        return str(path)

    features = tmp_path / "features.yaml"
    features.write_text((Path(__file__).resolve().parents[2] / "testbed/feature_sets/retail-default.yaml")
                        .read_text())
    empty_run = tmp_path / "empty-run"
    empty_run.mkdir()
    return {
        "lake": str(small_lake), "tmp": str(tmp_path), "features": str(features), "empty_run": str(empty_run),
        "good": manifest("good"),
        "nobody": manifest("nobody", segment={"name": "nobody", "filters": [
            {"column": "loyalty_tier", "op": "eq", "value": "no-such-tier"}]}),
        "too_early": manifest("too-early", time={"start": "2001-01-01T00:00:00Z", "cutoff": "2001-02-01T00:00:00Z",
                                                 "end": "2001-02-15T00:00:00Z"}),
        "sampled_away": manifest("sampled-away", sampling={**manifest_data["sampling"], "rate": 1e-9}),
    }


CASES: dict[str, Case] = {
    # generate
    "generate-price-shift-format": Case(lambda i: ["generate", "--out", i["tmp"] + "/g", "--price-shift", "footwear"],
                                        ("--price-shift", "CATEGORY:FRACTION:FROM_DATE")),
    "generate-price-shift-category": Case(
        lambda i: ["generate", "--out", i["tmp"] + "/g", "--price-shift", "spaceships:0.2:2026-10-01"],
        ("--price-shift", "spaceships")),
    "generate-price-shift-fraction": Case(
        lambda i: ["generate", "--out", i["tmp"] + "/g", "--price-shift", "footwear:lots:2026-10-01"],
        ("--price-shift", "lots")),
    "generate-price-shift-fraction-too-low": Case(
        lambda i: ["generate", "--out", i["tmp"] + "/g", "--price-shift", "footwear:-1.5:2026-10-01"],
        ("--price-shift", "-1.5")),
    "generate-price-shift-date": Case(
        lambda i: ["generate", "--out", i["tmp"] + "/g", "--price-shift", "footwear:0.2:soon"],
        ("--price-shift", "soon")),
    "generate-end-not-a-date": Case(lambda i: ["generate", "--out", i["tmp"] + "/g", "--end", "31/10/2026"],
                                    ("--end", "31/10/2026")),
    "generate-users-0": Case(lambda i: ["generate", "--out", i["tmp"] + "/g", "--users", "0"], ("--users",)),
    "generate-days-negative": Case(lambda i: ["generate", "--out", i["tmp"] + "/g", "--days", "-1"], ("--days",)),
    "generate-users-not-a-number": Case(lambda i: ["generate", "--out", i["tmp"] + "/g", "--users", "many"],
                                        ("--users", "many")),
    # train
    "train-cutoff-yesterday": Case(lambda i: ["train", "--lake", i["lake"], "--out", i["tmp"] + "/m.txt",
                                              "--cutoff", "yesterday"], ("--cutoff", "yesterday")),
    "train-users-rate-above-1": Case(lambda i: ["train", "--lake", i["lake"], "--out", i["tmp"] + "/m.txt",
                                                "--users-rate", "2"], ("--users-rate",)),
    "train-label-days-0": Case(lambda i: ["train", "--lake", i["lake"], "--out", i["tmp"] + "/m.txt",
                                          "--label-days", "0"], ("--label-days",)),
    # features
    "features-sql-cutoff": Case(lambda i: ["features", "sql", i["features"], "--cutoff", "x"], ("--cutoff", "'x'")),
    "features-export-cutoff": Case(lambda i: ["features", "export", "--lake", i["lake"], "--out",
                                              i["tmp"] + "/t.parquet", "--cutoff", "later"], ("--cutoff", "later")),
    # validate
    "validate-missing-manifest": Case(lambda i: ["validate", i["tmp"] + "/nowhere.json"],
                                      ("nowhere.json", "cannot read manifest file"), hint="manifest's path"),
    "validate-segment-selects-nobody": Case(lambda i: ["validate", i["nobody"], "--lake", i["lake"]],
                                            ("segment", "'nobody'", "no eligible user"), hint="fix that field"),
    "validate-sampling-keeps-nobody": Case(lambda i: ["validate", i["sampled_away"], "--lake", i["lake"]],
                                           ("sampling", "rate")),
    "validate-window-outside-lake": Case(lambda i: ["validate", i["too_early"], "--lake", i["lake"]],
                                         ("time", "2001-01-01"), hint="inside the lake's event dates"),
    # run
    "run-missing-manifest": Case(lambda i: ["run", i["tmp"] + "/nowhere.json", "--lake", i["lake"], "--out",
                                            i["tmp"] + "/out", "--quiet"], ("nowhere.json",), hint="manifest's path"),
    "run-without-lake": Case(lambda i: ["run", i["good"], "--out", i["tmp"] + "/out", "--quiet"], ("--lake",)),
    "run-window-outside-lake": Case(lambda i: ["run", i["too_early"], "--lake", i["lake"], "--out",
                                               i["tmp"] + "/out", "--quiet"], ("time",),
                                    hint="inside the lake's event dates"),
    # report
    "report-not-a-run": Case(lambda i: ["report", i["empty_run"]], ("empty-run", "run.json")),
    "report-missing-folder": Case(lambda i: ["report", i["tmp"] + "/no-such-run"], ("no-such-run",)),
    # compare
    "compare-not-a-run": Case(lambda i: ["compare", i["empty_run"], i["empty_run"]], ("empty-run", "run.json")),
    "compare-missing-argument": Case(lambda i: ["compare", i["empty_run"]], ("run_b",)),
}

CREDENTIAL_CASES: dict[str, Case] = {
    "run-s3-lake": Case(lambda i: ["run", i["good"], "--lake", "s3://testbed-no-such-bucket/lake", "--out",
                                   i["tmp"] + "/out", "--quiet"], ("AWS credentials",), hint="AWS_PROFILE"),
    "report-s3-record": Case(lambda i: ["report", "s3://testbed-no-such-bucket/runs/x-000000000000"],
                             ("AWS credentials",), hint="AWS_PROFILE"),
    "compare-s3-record": Case(lambda i: ["compare", "s3://testbed-no-such-bucket/runs/a-000000000000",
                                         "s3://testbed-no-such-bucket/runs/b-000000000000"],
                              ("AWS credentials",), hint="AWS_ACCESS_KEY_ID"),
}


def _check(case: Case, inputs: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    try:
        code = main(case.argv(inputs))
    except SystemExit as exc:  # argparse exits itself
        code = int(exc.code or 0)
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert code == 2, err
    assert len(lines) == 1, f"expected one stderr line, got {lines!r}"
    line = lines[0]
    assert line.startswith("testbed: error: ") and "(next: " in line, line
    assert "internal error" not in line and "Traceback" not in err
    for needle in case.names:
        assert needle in line, f"{needle!r} not in {line!r}"
    assert case.hint in line.partition("(next: ")[2], line


@pytest.mark.parametrize("name", CASES)
def test_argument_and_input_errors_exit_2_with_one_line(name: str, inputs: dict[str, Any],
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    _check(CASES[name], inputs, capsys)


@pytest.mark.parametrize("name", CREDENTIAL_CASES)
def test_missing_aws_credentials_exit_2_and_say_so(name: str, inputs: dict[str, Any], no_aws_credentials: None,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    _check(CREDENTIAL_CASES[name], inputs, capsys)


def test_the_hint_of_a_window_outside_the_lake_does_not_say_fix_the_lake(
        inputs: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", inputs["too_early"], "--lake", inputs["lake"]]) == 2
    assert "fix the lake" not in capsys.readouterr().err
