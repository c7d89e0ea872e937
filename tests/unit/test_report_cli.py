"""The terminal side: --json documents against their shipped schemas, the end-of-run summary, one-line errors
with a hint, progress lines and the live table, and `testbed report` / `testbed compare` (local and s3://)."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from testbed.adapters.storage import UriStorage
from testbed.cli import main
from testbed.cli_output import error_line, error_result, hint_for, run_result, summary_lines
from testbed.errors import (
    InputError,
    LakeError,
    ManifestError,
    ModelArtifactError,
    RunFailedError,
    StepError,
    TransientError,
)
from testbed.progress import LiveProgress, PlainProgress, Progress, make_progress, rows_of
from tests.unit import report_run

ROOT = Path(__file__).resolve().parents[2]


def schema(name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((ROOT / "schemas" / name).read_text())
    jsonschema.Draft202012Validator.check_schema(document)
    return document


def validate(document: Any, name: str) -> None:
    jsonschema.Draft202012Validator(schema(name)).validate(document)


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    return report_run.write_run(tmp_path / "a")


def test_run_result_validates_and_lists_failed_gates_first(run_dir: Path) -> None:
    (run_dir / "report.md").write_text("x")
    result = run_result(UriStorage(), "run", "local", str(run_dir), decision="FAIL", run_id=report_run.RUN_ID)
    validate(result, "run-result.schema.json")
    assert (result["decision"], result["exit_code"], result["error"]) == ("FAIL", 1, None)
    assert [(g["name"], g["outcome"]) for g in result["gates"]][:2] == [("revenue-floor", "fail"),
                                                                         ("ndcg-not-worse", "inconclusive")]
    assert result["gates"][2]["p_value"] == 0.0003  # the adjusted one
    assert result["gate_counts"] == {"fail": 1, "inconclusive": 1, "pass": 2}
    assert [m["metric"] for m in result["metrics"]] == ["recall@10", "revenue@10", "ndcg@10"]
    assert result["drift"] == {"drifted": 2, "features": 3, "top": [
        {"feature": "i_revenue_30d", "method": "wasserstein", "psi": 0.42, "drifted": True},
        {"feature": "i_price", "method": "wasserstein", "psi": 0.25, "drifted": True},
        {"feature": "u_views_7d", "method": "ks", "psi": 0.03, "drifted": False}]}
    assert result["reports"] == {"markdown": str(run_dir / "report.md"), "html": None}
    assert result["step_seconds"] == {"validate": 0.5, "slice": 1.25, "score": 3.0}


def test_the_schema_rejects_a_result_whose_exit_code_contradicts_its_decision(run_dir: Path) -> None:
    result = run_result(UriStorage(), "run", "local", str(run_dir), decision="FAIL")
    result["exit_code"] = 0
    with pytest.raises(jsonschema.ValidationError):
        validate(result, "run-result.schema.json")
    result = run_result(UriStorage(), "run", "local", str(run_dir), decision="FAIL")
    result["gates"][0]["outcome"] = "maybe"
    with pytest.raises(jsonschema.ValidationError):
        validate(result, "run-result.schema.json")


def test_a_deployed_run_not_waited_for_has_no_decision() -> None:
    result = run_result(UriStorage(), "run", "deployed", None, decision=None, status="RUNNING", execution_arn="arn:x")
    validate(result, "run-result.schema.json")
    assert (result["exit_code"], result["record"], result["gates"]) == (0, None, [])


def test_summary_is_aligned_and_names_failures_drift_and_reports(run_dir: Path) -> None:
    (run_dir / "report.md").write_text("x")
    (run_dir / "report.html").write_text("x")
    lines = summary_lines(run_result(UriStorage(), "run", "local", str(run_dir), decision="FAIL"))
    assert lines[0] == "decision    FAIL  [4 gates: 1 fail, 1 inconclusive, 2 pass]"
    assert lines[1] == "why         1 gate failed on proven harm: revenue@10"
    assert lines[2] == "primary     ndcg@10 0.3000 → 0.3120: +0.0120 (+4.0%), 95% CI [+0.0030, +0.0210]"
    assert lines[3] == "guardrails  none declared (every gate is a goal)"
    assert lines[4].startswith("next        do not promote")
    assert lines[5] == ("reason      FAIL revenue-floor: The candidate's revenue@10 is 3.250 for all users, below the "
                        "floor of 4.500.")
    assert lines[6].startswith("reason      INCONCLUSIVE ndcg-not-worse: ndcg@10 changed by -0.004 for tier=gold")
    header = next(i for i, ln in enumerate(lines) if ln.startswith("metric"))
    table = lines[header:header + 4]
    assert len({ln.index("  [") for ln in table[1:]}) == 1  # the interval column lines up
    assert table[1].split() == ["recall@10", "0.2000", "0.2500", "+0.0500", "[+0.0300,", "+0.0700]"]
    assert "drift       2 of 3 features drifted: i_revenue_30d, i_price" in lines
    assert lines[-3:] == [f"record      {run_dir}", f"report.md   {run_dir / 'report.md'}",
                          f"report.html {run_dir / 'report.html'}"]


def test_json_of_a_failed_gate_carries_the_harm_p_value_and_every_interval_its_level(run_dir: Path) -> None:
    gates_path = run_dir / "gates.json"
    document = json.loads(gates_path.read_text())
    document["gates"][0].update(outcome="fail", p_value=1.0, p_adjusted=1.0, p_harm=0.0001, p_harm_adjusted=0.0004,
                                confidence=0.9)
    gates_path.write_text(json.dumps(document))
    result = run_result(UriStorage(), "run", "local", str(run_dir), decision="FAIL")
    validate(result, "run-result.schema.json")
    by_name = {(g["name"], g["stratum"]): g for g in result["gates"]}
    harmful = by_name[("ndcg-not-worse", "all")]
    assert (harmful["p_value"], harmful["p_test"], harmful["confidence"]) == (0.0004, "harm", 0.9)
    assert by_name[("ndcg-not-worse", "tier=gold")]["p_test"] == "pass"  # inconclusive: the pass test's p
    assert by_name[("revenue-floor", "all")]["p_test"] is None  # point values: no test
    assert {m["confidence"] for m in result["metrics"]} == {0.95}
    header = next(ln for ln in summary_lines(result) if ln.startswith("metric"))
    assert header.endswith("  95% CI")


def test_summary_lists_every_reason_or_says_how_many_more() -> None:
    reasons = [f"FAIL gate-{i} [all]: harm" for i in range(6)]
    rows = [ln for ln in summary_lines({"decision": "FAIL", "reasons": reasons}) if ln.startswith("reason")]
    assert rows[:5] == [f"reason      {r}" for r in reasons[:5]]
    assert rows[5:] == ["reason      +1 more (all in report.md and --json)"]
    every = [ln for ln in summary_lines({"decision": "FAIL", "reasons": reasons[:5]}) if ln.startswith("reason")]
    assert len(every) == 5 and not any("more" in ln for ln in every)


@pytest.mark.parametrize(("error", "needle"), [
    (ManifestError("manifest: gates[0].margin: must be > 0"), "testbed validate MANIFEST"),
    (LakeError("events: column price: expected double"), "--lake LAKE"),
    (ModelArtifactError("models.control.sha256: checksum mismatch"), "sha256sum"),
    (InputError("--lake is required"), "--help"),
    (RunFailedError("StepError: evaluate failed\nsecond line"), "recorded as ERROR"),
    (TransientError("throttled"), "run the same command again"),
    (StepError("score timed out"), "errors/"),
    (KeyError("surprise"), "--debug"),
])
def test_every_error_is_one_line_with_what_to_do_next(error: Exception, needle: str) -> None:
    line = error_line(error, internal=isinstance(error, KeyError))
    assert "\n" not in line and line.startswith("testbed: error: ") and needle in line
    assert "(next: " in line and line.endswith(")")
    assert hint_for(error) in line


def test_error_result_validates() -> None:
    document = error_result(ManifestError("manifest: name: bad slug"), 2, "run")
    validate(document, "run-result.schema.json")
    assert document["error"]["type"] == "ManifestError" and document["decision"] is None
    failed = error_result(RunFailedError("StepError: boom"), 4, "demo")
    validate(failed, "run-result.schema.json")
    assert failed["decision"] == "ERROR"


def test_rows_of_a_step_result() -> None:
    assert rows_of({"user_rows": 10, "item_rows": 5, "elapsed_s": 1.0}) == 15
    assert rows_of({"users": 3, "events": 70}) == 70
    assert rows_of({"records_read": 79629, "shards_done": 4, "shards": 4}) == 79629
    assert rows_of({"shards": 2}) is None
    assert rows_of({"decision": "PASS", "existing": True}) is None and rows_of(None) is None


def test_plain_progress_lines(capsys: pytest.CaptureFixture[str]) -> None:
    progress = PlainProgress()
    progress("slice", 2, 9, None)
    progress("slice", 2, 9, {"users": 1225, "events": 79629, "elapsed_s": 0.8})
    progress("score", 5, 9, {"failed": "StepError"})
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines() == ["[2/9] slice ...", "[2/9] slice done in 0.8s, 79,629 rows (users=1225, events=79629)",
                                "[5/9] score failed (StepError)"]


def test_live_progress_table_shows_each_step_state_rows_and_time() -> None:
    stream = io.StringIO()
    with LiveProgress(stream, steps=("validate", "slice", "score")) as progress:
        progress("validate", 1, 3, None)
        progress("validate", 1, 3, {"run_id": "x", "elapsed_s": 0.25})
        progress("slice", 2, 3, None)
        progress("slice", 2, 3, {"events": 79629, "users": 1225, "elapsed_s": 1.5})
        progress("score", 3, 3, None)
    screen = stream.getvalue()
    last = screen[screen.rindex("step"):]  # the final redraw
    validate_line = next(ln for ln in last.splitlines() if ln.lstrip().startswith("validate"))
    assert "✓ done" in validate_line and "0.2s" in validate_line  # the handler's own 0.25 s
    slice_line = next(ln for ln in last.splitlines() if ln.lstrip().startswith("slice"))
    assert "79,629" in slice_line and "1.5s" in slice_line
    assert "running" in next(ln for ln in last.splitlines() if ln.lstrip().startswith("score"))
    assert "elapsed" in last


def test_quiet_and_non_terminal_progress_choices(monkeypatch: pytest.MonkeyPatch) -> None:
    assert type(make_progress(quiet=True)) is Progress
    monkeypatch.setattr("sys.stderr", io.StringIO())
    assert isinstance(make_progress(), PlainProgress)


def test_report_command_rerenders_both_reports(run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(run_dir), "--strict"]) == 0
    out, err = capsys.readouterr()
    assert out == (run_dir / "report.md").read_text()
    assert (run_dir / "report.html").read_text().startswith("<!DOCTYPE html>")
    assert err.splitlines() == [f"wrote {run_dir / 'report.md'}", f"wrote {run_dir / 'report.html'}"]


def test_report_command_on_a_folder_without_a_record(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "no run.json there" in err[0] and "(next: " in err[0]


def test_report_command_on_s3(run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from testbed.adapters.embedded_aws import embedded_aws

    with embedded_aws() as aws:
        aws.client("s3").create_bucket(Bucket="reports")
        storage = UriStorage(aws.client("s3"))
        for path in run_dir.rglob("*"):
            if path.is_file():
                storage.write_bytes(f"s3://reports/runs/{run_dir.name}/{path.relative_to(run_dir)}", path.read_bytes())
        uri = f"s3://reports/runs/{run_dir.name}"
        assert main(["report", uri + "/", "--quiet"]) == 0
        page = storage.read_bytes(uri + "/report.html").decode()
        markdown = storage.read_bytes(uri + "/report.md").decode()
    assert "revenue-floor" in page and 'data-chart="popularity"' in page
    assert markdown.startswith(f"# Testbed run `{report_run.RUN_ID}`: **FAIL**")
    out, err = capsys.readouterr()
    assert out == "" and f"wrote {uri}/report.html" in err


def test_compare_command_json_and_text(run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    other = report_run.write_run(tmp_path / "b", failed=False, drift=False)
    record = json.loads((other / "run.json").read_text())
    record["models"]["candidate"]["sha256"] = "f" * 64
    (other / "run.json").write_text(json.dumps(record))
    assert main(["compare", str(run_dir), str(other), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    validate(result, "compare-result.schema.json")
    assert (result["a"]["decision"], result["b"]["decision"], result["decision_changed"]) == (
        "FAIL", "INCONCLUSIVE", True)
    assert result["same_inputs"] == {"manifest": True, "lake": True, "code": True, "models": False, "slice": True}
    changed = [g for g in result["gates"] if g["changed"]]
    assert changed == [{"name": "revenue-floor", "stratum": "all", "metric": "revenue@10",
                        "a": {"outcome": "fail", "observed": 3.25, "threshold": 4.5},
                        "b": {"outcome": "pass", "observed": 3.25, "threshold": 4.5}, "changed": True}]
    assert result["drift"]["no_longer_drifted"] == [] and result["drift"]["b_available"] is False
    assert main(["compare", str(run_dir), str(other)]) == 0
    text = capsys.readouterr().out.splitlines()
    assert text[2].split() == ["decision", "FAIL", "INCONCLUSIVE", "(changed)"]
    assert any(ln.split()[:5] == ["revenue-floor", "/", "all", "fail", "3.2500"] for ln in text)
    assert "inputs        manifest same, lake same, code same, models different, slice same" in text


def test_compare_reports_metric_and_drift_changes(run_dir: Path, tmp_path: Path) -> None:
    from testbed.report.compare import compare
    from testbed.report.inputs import load_run

    other = report_run.write_run(tmp_path / "b")
    metrics = json.loads((other / "metrics.json").read_text())
    metrics["deltas"]["all"]["ndcg@10"]["delta"] = -0.02
    (other / "metrics.json").write_text(json.dumps(metrics))
    drift = json.loads((other / "drift.json").read_text())
    drift["features"][1]["drifted"] = True  # u_views_7d
    drift["features"][2]["drifted"] = False  # i_price
    (other / "drift.json").write_text(json.dumps(drift))
    result = compare(load_run(UriStorage(), str(run_dir)), load_run(UriStorage(), str(other)))
    ndcg = next(m for m in result["metrics"] if m["metric"] == "ndcg@10")
    assert ndcg["a"] == pytest.approx(0.012) and ndcg["change"] == pytest.approx(-0.032)
    assert result["drift"]["newly_drifted"] == ["u_views_7d"] and result["drift"]["no_longer_drifted"] == ["i_price"]
    assert not result["decision_changed"] and not any(g["changed"] for g in result["gates"])
    validate(result, "compare-result.schema.json")


def test_the_failing_step_error_type_picks_the_hint(capsys: pytest.CaptureFixture[str]) -> None:
    """The workflow hands the CLI an InputError with the step's message; the step's own error type (seen by the
    progress callback) chooses the hint, also with --quiet."""
    progress = make_progress(quiet=True)
    progress("validate", 1, 9, None)
    progress("validate", 1, 9, {"failed": "ModelArtifactError"})
    progress("teardown", 9, 9, {"failed": "StepError"})
    assert progress.failed_error == "ModelArtifactError"
    error = InputError("manifest: models.candidate.sha256: checksum mismatch")
    error.workflow_error = progress.failed_error  # type: ignore[attr-defined]
    assert "sha256sum" in error_line(error)
    document = error_result(error, 2, "run")
    validate(document, "run-result.schema.json")
    assert document["error"]["type"] == "ModelArtifactError"
    assert capsys.readouterr().err == ""  # quiet


def test_report_command_renders_an_error_record(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "runs" / "broken-0123456789ab"
    run.mkdir(parents=True)
    (run / "run.json").write_text(report_run.error_record("broken-0123456789ab", "evaluate",
                                                          "evaluate: StepError: boom"))
    assert main(["report", str(run), "--strict"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("# Testbed run `broken-0123456789ab`: **ERROR**\n\n- **Why:** the run stopped in step "
                          "evaluate with an error (below); no gate was decided\n- **Next:** fix the error and rerun; "
                          "no decision was made\n\n- evaluate: StepError: boom\n")
    page = (run / "report.html").read_text()
    assert "ERROR" in page and "evaluate" in page and "<script" not in page
