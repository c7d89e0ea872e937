"""Inside Lambda every log line of a step is one Powertools JSON object carrying the run id and the step, so
CloudWatch Logs Insights can pull one run's story out of all functions' logs."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import pytest

from functions.record_error.handler import lambda_handler as record_error_handler
from testbed.observability import logger, step_handler


@pytest.fixture
def captured_logs() -> Iterator[io.StringIO]:
    """The shared logger's output, at INFO, into a buffer (its handler keeps the stream it was created with).

    The stream is swapped without setStream, which flushes the old one: when an earlier test of the same process
    created the logger under pytest's output capture, that stream is closed by now."""
    log = logger()
    stream = io.StringIO()
    handler = log.registered_handler
    previous_stream, handler.stream = handler.stream, stream
    previous_level = log.log_level
    log.setLevel("INFO")
    try:
        yield stream
    finally:
        handler.stream = previous_stream
        log.setLevel(previous_level)


def records(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def test_step_logs_are_json_with_run_id_and_step(captured_logs: io.StringIO) -> None:
    @step_handler("gate")
    def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
        logger().info("deciding", extra={"gates": 3})
        return {"decision": "PASS"}

    result = handler({"run": {"run_id": "loyalty-0123456789ab"}})
    assert result["decision"] == "PASS" and result["elapsed_s"] >= 0
    lines = records(captured_logs)
    assert [r["message"] for r in lines] == ["step started", "deciding", "step finished"]
    for record in lines:
        assert record["run_id"] == "loyalty-0123456789ab" and record["step"] == "gate"
        assert record["correlation_id"] == "loyalty-0123456789ab" and record["service"] == "testbed"
        assert record["level"] == "INFO" and "timestamp" in record
    assert lines[1]["gates"] == 3 and lines[2]["elapsed_s"] == result["elapsed_s"]


def test_a_real_handler_logs_its_run_and_step(captured_logs: io.StringIO, tmp_path: Any) -> None:
    run_uri = str(tmp_path / "runs" / "broken-0123456789ab")
    event = {"run": {"run_id": "broken-0123456789ab", "run_uri": run_uri, "lake": str(tmp_path)},
             "failed_step": "score", "error": {"Error": "StepError", "Cause": '{"errorMessage": "boom"}'}}
    assert record_error_handler(event, None)["decision"] == "ERROR"
    lines = records(captured_logs)
    assert [r["message"] for r in lines] == ["step started", "step finished"]
    assert all(r["run_id"] == "broken-0123456789ab" and r["step"] == "record_error" for r in lines)
    assert json.loads((tmp_path / "runs" / "broken-0123456789ab" / "run.json").read_text())["reasons"] == [
        "score: StepError: boom"]
