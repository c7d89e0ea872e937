"""The reports of a real local run, opened in headless Chromium through the DevTools protocol. A stratified run on the
small lake (the demo's manifest shape) is started through `testbed run --json`; its stdout must validate against
schemas/run-result.schema.json, its report.md must stay under 60 lines, and its report.html must load with no
console error, no network request and every chart drawn. The hand-made record of tests/unit/report_run.py adds
drift and what-if charts. Every page must show the headline, and every forest plot must declare one scale for all
its rows and name it on its axis. `test_demo_report_and_the_swapped_demos_fail_report` (slow; .ci/run runs it) does
the same for `testbed demo` itself and for the demo with its models swapped (FAIL). Screenshots go to
$PYTEST_ARTIFACTS or test-artifacts/report/ (gitignored). Skipped with a reason when no Chromium is installed
(`apt-get install -y chromium`).
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import os
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from testbed.adapters.storage import UriStorage
from testbed.cli import main
from testbed.report.render import write_reports
from tests.conftest import BASE_MANIFEST
from tests.e2e.chromium import Chromium, find_chromium
from tests.unit import report_run

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = find_chromium()
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="no Chromium on PATH (Debian: apt-get install -y "
                                                              "chromium; or set $CHROMIUM)")
MAX_MARKDOWN_LINES = 61  # +1: the candidate stage's recall (issue 13), one headline line
# Every chart's data series must have drawn something: pygal puts each series' marks in a `g.series`.
# Forest plots declare their scale and every row's (data-scale, data-row-scales): one scale per chart.
CHARTS_JS = """
Array.from(document.querySelectorAll('figure.chart')).map(f => {
  const svg = f.querySelector('svg');
  const box = svg ? svg.getBoundingClientRect() : {width: 0, height: 0};
  const marks = svg ? svg.querySelectorAll('g.series path, g.series rect, g.series circle').length : 0;
  return {name: f.dataset.chart, width: box.width, height: box.height, marks: marks,
          title: svg ? (svg.querySelector('.title') || {}).textContent || '' : '',
          scale: f.dataset.scale || null, rowScales: f.dataset.rowScales ? f.dataset.rowScales.split(' ') : null,
          axis: svg ? Array.from(svg.querySelectorAll('.titles .title')).map(t => t.textContent) : []};
})
"""
HEADLINE_JS = "Array.from(document.querySelectorAll('#headline li')).map(li => li.textContent)"


def artifacts_dir() -> Path:
    target = Path(os.environ.get("PYTEST_ARTIFACTS") or ROOT / "test-artifacts") / "report"
    target.mkdir(parents=True, exist_ok=True)
    return target


def run_schema() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads((ROOT / "schemas" / "run-result.schema.json").read_text())
    return schema


def demo_like_manifest(models: dict[str, dict[str, str]]) -> dict[str, Any]:
    manifest = copy.deepcopy(BASE_MANIFEST)
    manifest.update(name="report-browser", models=copy.deepcopy(models),
                    sampling={"strategy": "stratified", "rate": 0.6, "seed": 42, "strata": ["loyalty_tier"],
                              "min_events_per_user": 3})
    manifest["gates"] = [
        {"name": "ndcg-not-worse", "kind": "non_inferiority", "metric": "ndcg@10", "margin": 0.02,
         "scope": "per_stratum"},
        {"name": "recall-not-worse", "kind": "non_inferiority", "metric": "recall@10", "margin": 0.05,
         "margin_type": "relative"},
        {"name": "ndcg-floor", "kind": "threshold", "metric": "ndcg@10", "bound": 0.02},
        {"name": "latency-p95", "kind": "latency", "percentile": 95, "bound": 1000},
        {"name": "scoring-errors", "kind": "error_rate", "bound": 0.001},
    ]
    return manifest


@pytest.fixture(scope="module")
def json_run(small_models: dict[str, dict[str, str]], small_lake: Path,
             tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """`testbed run --json` on the small lake; its exit code, stdout and stderr."""
    root = tmp_path_factory.mktemp("report-run")
    manifest = root / "manifest.json"
    manifest.write_text(json.dumps(demo_like_manifest(small_models)))
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["run", str(manifest), "--lake", str(small_lake), "--out", str(root / "out"), "--json"])
    return {"code": code, "stdout": out.getvalue(), "stderr": err.getvalue()}


def test_run_json_is_the_only_stdout_and_validates(json_run: dict[str, Any]) -> None:
    result = json.loads(json_run["stdout"])  # the whole of stdout is one JSON document
    jsonschema.Draft202012Validator(run_schema()).validate(result)
    assert result["exit_code"] == json_run["code"] and result["mode"] == "local" and result["error"] is None
    assert result["decision"] in ("PASS", "FAIL", "INCONCLUSIVE")
    run_dir = Path(result["record"])
    assert run_dir.name == result["run_id"] and (run_dir / "run.json").exists()
    assert result["reports"] == {"markdown": str(run_dir / "report.md"), "html": str(run_dir / "report.html")}
    gates = json.loads((run_dir / "gates.json").read_text())["gates"]
    assert len(result["gates"]) == len(gates) and {m["metric"] for m in result["metrics"]} >= {"ndcg@10"}
    assert "[1/" in json_run["stderr"]  # progress went to stderr


def test_run_record_has_both_reports_and_a_short_markdown(json_run: dict[str, Any]) -> None:
    run_dir = Path(json.loads(json_run["stdout"])["record"])
    record = json.loads((run_dir / "run.json").read_text())
    assert {"report.md", "report.html"} <= set(record["artifacts"])
    assert record["report"]["written"] is True and record["report"]["errors"] == []
    markdown = (run_dir / "report.md").read_text()
    assert len(markdown.splitlines()) < MAX_MARKDOWN_LINES
    assert markdown.startswith(f"# Testbed run `{record['run_id']}`: **{record['decision']}**")
    assert "[report.html](report.html)" in markdown


def check_in_browser(page: Path, screenshot: Path, expected: set[str], profile: Path) -> list[dict[str, Any]]:
    """Open the page (a fresh browser profile in `profile`); assert no console problem, no request beyond the
    file itself, every chart drawn; save a screenshot."""
    assert CHROMIUM is not None
    with Chromium(CHROMIUM, profile) as browser:
        browser.open(page.as_uri())
        charts: list[dict[str, Any]] = browser.evaluate(CHARTS_JS)
        decision = browser.evaluate("document.querySelector('#decision .decision').textContent")
        headline: list[str] = browser.evaluate(HEADLINE_JS)
        browser.screenshot(screenshot)
        problems, requests = browser.problems(), browser.requests()
    assert problems == []
    assert requests == [page.as_uri()], requests
    assert decision in ("PASS", "FAIL", "INCONCLUSIVE")
    assert [line.split(":")[0] for line in headline][:1] == ["why"] and headline[-1].startswith("next:"), headline
    names = {c["name"] for c in charts}
    assert expected <= names, expected - names
    for chart in charts:
        assert chart["width"] > 100 and chart["height"] > 100, chart
        assert chart["marks"] > 0 and chart["title"], chart
        if chart["name"].startswith("forest-"):  # one scale per chart, named on its axis
            assert chart["scale"] in ("absolute", "relative"), chart
            assert any(title.startswith(f"{chart['scale']} Δ") for title in chart["axis"]), chart
        if chart["scale"] is not None:
            assert set(chart["rowScales"]) == {chart["scale"]}, chart
    assert screenshot.stat().st_size > 10_000
    return charts


@needs_chromium
def test_report_of_a_real_run_in_chromium(json_run: dict[str, Any], tmp_path: Path) -> None:
    run_dir = Path(json.loads(json_run["stdout"])["record"])
    expected = {"forest-ndcg-not-worse", "forest-recall-not-worse", "composition", "inclusion", "scores", "coverage",
                "popularity"}
    if (run_dir / "drift.json").exists():
        expected.add("drift-ranking")
    charts = check_in_browser(run_dir / "report.html", artifacts_dir() / "small-run-report.png", expected, tmp_path)
    forest = next(c for c in charts if c["name"] == "forest-ndcg-not-worse")
    assert "ndcg@10" in forest["title"]


@needs_chromium
def test_report_with_drift_failed_gate_and_whatif_in_chromium(tmp_path: Path) -> None:
    run_dir = report_run.write_run(tmp_path / "record")
    write_reports(UriStorage(), str(run_dir), strict=True)
    check_in_browser(run_dir / "report.html", artifacts_dir() / "fixture-report.png",
                     {"forest-ndcg-not-worse", "composition", "inclusion", "drift-ranking",
                      "drift-daily-i-revenue-30d", "drift-daily-i-price", "scores", "coverage", "popularity"},
                     tmp_path / "profile")


DEMO_CHARTS = {"forest-ndcg-not-worse", "forest-recall-not-worse", "forest-revenue-not-worse", "composition",
               "inclusion", "scores", "coverage", "popularity", "forest-worst-cohorts", "attribution-difference",
               "list-change"}


@pytest.mark.slow
@needs_chromium
def test_demo_report_and_the_swapped_demos_fail_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`testbed demo --json` itself (about a minute): PASS, JSON valid, report.md < 60 lines, report.html clean, the
    recall and revenue forest plots on the relative scale of their gates. Then the demo's manifest with control and
    candidate swapped: FAIL, every failed gate with its harm p-value (< 0.05) and a one-sentence reason, report.md
    within 60 lines, its report.html clean too."""
    code = main(["demo", "--dir", str(tmp_path / "demo"), "--json"])
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    jsonschema.Draft202012Validator(run_schema()).validate(result)
    assert (code, result["decision"]) == (0, "PASS"), (result["error"], captured.err[-2000:])
    run_dir = Path(result["record"])
    lines = (run_dir / "report.md").read_text().splitlines()
    assert len(lines) < MAX_MARKDOWN_LINES, len(lines)
    charts = check_in_browser(run_dir / "report.html", artifacts_dir() / "demo-report.png", DEMO_CHARTS,
                              tmp_path / "profile")
    scales = {c["name"]: c["scale"] for c in charts if c["name"].startswith("forest-")}
    assert scales == {"forest-ndcg-not-worse": "absolute", "forest-recall-not-worse": "relative",
                      "forest-revenue-not-worse": "relative", "forest-worst-cohorts": "absolute"}
    gain = result["attribution"]["top"][:3]  # the features behind the candidate's gain, named in report.md
    assert gain and all(f["direction"] == "candidate" for f in gain), gain
    named = next(line for line in lines if line.startswith("- **Features behind the difference:**"))
    assert all(f["feature"] in named for f in gain), named

    manifest = json.loads((tmp_path / "demo" / "manifest.json").read_text())
    manifest["models"]["control"], manifest["models"]["candidate"] = (manifest["models"]["candidate"],
                                                                      manifest["models"]["control"])
    swapped = tmp_path / "demo" / "swapped.json"  # beside the demo's manifest: model paths resolve the same
    swapped.write_text(json.dumps(manifest))
    code = main(["run", str(swapped), "--lake", str(tmp_path / "demo" / "lake"), "--out", str(tmp_path / "swapped"),
                 "--json"])
    failed = json.loads(capsys.readouterr().out)
    jsonschema.Draft202012Validator(run_schema()).validate(failed)
    assert (code, failed["decision"]) == (1, "FAIL"), failed["error"]
    fails = [g for g in failed["gates"] if g["outcome"] == "fail"]
    assert fails and all(g["p_test"] == "harm" and g["p_value"] < 0.05 for g in fails), fails
    assert len(failed["headline"]["reasons"]) == len(fails)
    for gate, reason in zip(fails, failed["headline"]["reasons"], strict=True):
        assert reason == f"FAIL {gate['name']}: {gate['summary']}"
        assert gate["summary"].count(". ") == 0 and gate["summary"].endswith(").")  # one sentence, p-value last
    swapped_dir = Path(failed["record"])
    markdown = (swapped_dir / "report.md").read_text()
    assert len(markdown.splitlines()) <= MAX_MARKDOWN_LINES, len(markdown.splitlines())
    for gate in fails:
        assert f"- FAIL {gate['name']}: {gate['summary']}" in markdown
    # the same features behind the loss, now the model the candidate relies on less; the worst cohorts with
    # their corrected intervals, the worst a proven harm
    loss = failed["attribution"]["top"][:3]
    assert [f["feature"] for f in loss] == [f["feature"] for f in gain], (loss, gain)
    assert all(f["direction"] == "control" for f in loss), loss
    worst = failed["cohorts"]["worst"]
    assert worst and worst[0]["verdict"] == "proven harm" and worst[0]["interval_adjusted"][1] < 0, worst
    assert all(len(w["interval_adjusted"]) == 2 and None not in w["interval_adjusted"] for w in worst), worst
    assert f"- **Cohorts:** {failed['cohorts']['summary']}" in markdown
    check_in_browser(swapped_dir / "report.html", artifacts_dir() / "demo-swapped-report.png", DEMO_CHARTS,
                     tmp_path / "profile-swapped")
