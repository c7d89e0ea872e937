"""List changes in the reports: the sentence (report.md, report.html, console, --json, compare) and the histogram."""

from __future__ import annotations

import json
from pathlib import Path

from testbed.adapters.storage import UriStorage
from testbed.cli_output import run_result, summary_lines
from testbed.report import list_change
from testbed.report.compare import compare, text
from testbed.report.html import render_html
from testbed.report.inputs import load_run
from testbed.report.markdown import render_markdown
from tests.unit import report_run
from tests.unit.test_report_cli import validate

SENTENCE = ("The candidate changes 64 % of top-10 slots; 12 % of users get entirely new lists (mean Jaccard 0.41, "
            "RBO 0.37 at p = 0.9, 400 users).")


def test_sentence_and_markdown() -> None:
    metrics = report_run.metrics_model()
    assert list_change.sentence(metrics) == SENTENCE
    assert list_change.markdown_lines(metrics) == [f"- **List changes:** {SENTENCE}"]
    without = metrics.model_copy(update={"list_change": None})
    assert list_change.sentence(without) is None and list_change.markdown_lines(without) == []
    assert list_change.sentence(None) is None


def test_every_report_shows_it(tmp_path: Path) -> None:
    run = report_run.write_run(tmp_path / "a")
    data = load_run(UriStorage(), str(run))
    assert SENTENCE in render_markdown(data)
    page = render_html(data, strict=True)
    section = page[page.index('<h2 id="list-change">'):page.index('<h2 id="provenance">')]
    assert SENTENCE in section and '<figure class="chart" data-chart="list-change"><svg' in section
    assert section.count("<tr><td>") == 2  # all, tier=gold
    assert "<script" not in section

    result = run_result(UriStorage(), "run", "local", str(run), decision="FAIL", run_id=report_run.RUN_ID)
    validate(result, "run-result.schema.json")
    assert result["list_change"]["summary"] == SENTENCE and result["list_change"]["changed_slot_share"] == 0.64
    assert any(line.startswith("lists") and SENTENCE in line for line in summary_lines(result))


def test_compare_shows_both_runs(tmp_path: Path) -> None:
    a = report_run.write_run(tmp_path / "a")
    b = report_run.write_run(tmp_path / "b")
    metrics = json.loads((b / "metrics.json").read_text())
    del metrics["list_change"]  # a record from before list changes were measured
    (b / "metrics.json").write_text(json.dumps(metrics))
    result = compare(load_run(UriStorage(), str(a)), load_run(UriStorage(), str(b)))
    validate(result, "compare-result.schema.json")
    assert result["list_change"]["a"]["new_list_share"] == 0.12 and result["list_change"]["b"] is None
    lines = text(result)
    assert f"lists A: {SENTENCE}" in lines and "lists B: n/a" in lines
