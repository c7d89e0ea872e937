"""One bad filter is exit 2 whichever engine runs it, and failures are classified by type and error code: DuckDB's
exception types, Athena's AthenaError category and retryable flag, never the message text."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from testbed import errors
from testbed.adapters.embedded_aws import EmbeddedAWS, embedded_aws
from testbed.adapters.engines import make_engine
from testbed.errors import InputError, ManifestError, QueryInputError, StepError, TransientError
from testbed.invocation import Invocation
from testbed.local import run_local
from testbed.manifest import parse_manifest
from testbed.pipeline.context import RunContext
from testbed.pipeline.slice import run_slice
from testbed.settings import Settings

# Validation only checks string values against numeric columns; a date column meets the bad value in the query.
BAD_FILTER = [{"column": "signup_date", "op": "gte", "value": "yesterday"}]


def _failed(athena_error: dict[str, Any], reason: str = "query failed") -> dict[str, Any]:
    return {"QueryExecution": {"Status": {"State": "FAILED", "StateChangeReason": reason,
                                          "AthenaError": athena_error}}}


@pytest.fixture
def athena_run(tmp_path: Path) -> Any:
    """A run context whose settings pick Athena, inside the embedded AWS."""
    settings = Settings.from_environment({"TESTBED_ENGINE": "athena", "TESTBED_ATHENA_WORKGROUP": "wg",
                                          "TESTBED_GLUE_DATABASE": "lake", "TESTBED_PII_SECRET": "s" * 16})
    with embedded_aws(settings) as aws:
        aws.client("s3").create_bucket(Bucket="art")
        aws.client("athena").create_work_group(Name="wg", Configuration={})
        invocation = Invocation.outside_lambda(settings)
        yield aws, RunContext("bad-000000000001", "s3://art/runs/bad-000000000001", "s3://lake", invocation)


def _stub_status(aws: EmbeddedAWS, monkeypatch: pytest.MonkeyPatch, response: dict[str, Any]) -> None:
    monkeypatch.setattr(aws.client("athena"), "get_query_execution", lambda **_: response)


def test_a_bad_filter_value_is_exit_2_on_duckdb(manifest_data: dict[str, Any], write_manifest: Any,
                                                small_lake: Path, tmp_path: Path) -> None:
    manifest_data["segment"]["filters"] = BAD_FILTER
    with pytest.raises(InputError, match="segment.filters: a value does not fit its column") as raised:
        run_local(write_manifest(manifest_data), str(small_lake), tmp_path / "out")
    assert raised.value.exit_code == 2  # what the CLI returns
    # validate runs the segment's population query, so the value is refused before any run is recorded
    assert list((tmp_path / "out").glob("runs/*/run.json")) == []


def test_a_bad_filter_value_is_exit_2_on_athena(athena_run: Any, manifest_data: dict[str, Any],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    aws, ctx = athena_run
    manifest_data["segment"]["filters"] = BAD_FILTER
    _stub_status(aws, monkeypatch, _failed({"ErrorCategory": 2, "ErrorType": 1000, "Retryable": False,
                                            "ErrorMessage": "INVALID_CAST_ARGUMENT: Value cannot be cast to date"}))
    with pytest.raises(ManifestError, match="segment.filters") as raised:
        run_slice(ctx, parse_manifest(manifest_data))
    assert raised.value.exit_code == 2


def test_duckdb_rejecting_a_value_is_an_input_error(small_lake: Path) -> None:
    engine = make_engine(Invocation.outside_lambda(Settings()), str(small_lake))
    try:
        with pytest.raises(QueryInputError) as raised:
            engine.query("SELECT COUNT(*) FROM users WHERE signup_date >= ?", ["yesterday"])
    finally:
        engine.close()
    assert raised.value.exit_code == 2


@pytest.mark.parametrize(("athena_error", "reason", "expected"), [
    ({"ErrorCategory": 2, "ErrorType": 1006, "Retryable": False}, "SYNTAX_ERROR", QueryInputError),
    ({"ErrorCategory": 1, "ErrorType": 401, "Retryable": True}, "failed writing results", TransientError),
    # the text says throttling, the codes say a permanent system error: the codes win
    ({"ErrorCategory": 1, "ErrorType": 200, "Retryable": False}, "ThrottlingException: SlowDown", StepError),
    ({}, "no AthenaError at all", StepError),
])
def test_athena_failures_are_classified_by_their_codes(athena_run: Any, monkeypatch: pytest.MonkeyPatch,
                                                       athena_error: dict[str, Any], reason: str,
                                                       expected: type[errors.TestbedError]) -> None:
    aws, ctx = athena_run
    _stub_status(aws, monkeypatch, _failed(athena_error, reason))
    engine = make_engine(ctx.invocation, ctx.lake, scratch_uri=ctx.scratch("x"))
    with pytest.raises(errors.TestbedError) as raised:
        engine.query("SELECT 1")
    assert type(raised.value) is expected


def test_athena_throttling_the_start_is_transient(athena_run: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    aws, ctx = athena_run
    athena = aws.client("athena")

    def throttled(**_: Any) -> Any:
        raise athena.exceptions.TooManyRequestsException(
            {"Error": {"Code": "TooManyRequestsException", "Message": "Rate exceeded"}}, "StartQueryExecution")

    monkeypatch.setattr(athena, "start_query_execution", throttled)
    engine = make_engine(ctx.invocation, ctx.lake, scratch_uri=ctx.scratch("x"))
    with pytest.raises(TransientError, match="throttled"):
        engine.query("SELECT 1")

