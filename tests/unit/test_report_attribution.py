"""The reports' feature attribution (testbed.report.attribution) on the fixture run with an attribution.json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from testbed.adapters.storage import UriStorage
from testbed.cli import main
from testbed.cli_output import run_result
from testbed.report import attribution
from testbed.report.compare import compare
from testbed.report.inputs import load_run
from testbed.report.render import render
from tests.unit import report_run
from tests.unit.test_report_cli import validate


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    return report_run.write_run(tmp_path, attribution=True)


def test_report_md_names_the_top_features_in_the_headline(run_dir: Path) -> None:
    markdown = render(load_run(UriStorage(), str(run_dir)), strict=True).markdown
    line = next(ln for ln in markdown.splitlines() if ln.startswith("- **Features behind the difference:**"))
    assert ("the rankings differ most through ui_events (60 %, candidate relies more), i_views_30d (40 %, candidate "
            "relies less) (TreeSHAP on 300 sampled users, both models' top 10).") in line
    assert markdown.index("- **Next:**") < markdown.index(line) < markdown.index("## Gates")


def test_report_html_draws_both_attribution_charts(run_dir: Path) -> None:
    page = render(load_run(UriStorage(), str(run_dir)), strict=True).html
    section = page[page.index('<h2 id="attribution">'):]
    assert 'data-chart="attribution-difference"' in section and 'data-chart="attribution-models"' in section
    assert "<script" not in section and "candidate relies more" in section
    assert page.index('id="gates"') < page.index('id="attribution"')


def test_a_run_without_attribution_says_so(tmp_path: Path) -> None:
    data = load_run(UriStorage(), str(report_run.write_run(tmp_path)))
    assert data.attribution is None and "attribution.json" in data.missing
    rendered = render(data, strict=True)
    assert "Features behind" not in rendered.markdown and "No attribution in this run" in rendered.html


def test_json_and_compare_carry_the_top_features(run_dir: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    result = run_result(UriStorage(), "run", "local", str(run_dir), decision="FAIL")
    validate(result, "run-result.schema.json")
    assert result["attribution"]["top"][0] == {"feature": "ui_events", "share": 0.6, "direction": "candidate"}
    other = report_run.write_run(tmp_path / "b")
    compared = compare(load_run(UriStorage(), str(run_dir)), load_run(UriStorage(), str(other)))
    validate(compared, "compare-result.schema.json")
    assert compared["attribution"]["b"] is None
    assert [t["feature"] for t in compared["attribution"]["a"]] == ["ui_events", "i_views_30d"]
    assert main(["compare", str(run_dir), str(other)]) == 0
    text = capsys.readouterr().out.splitlines()
    assert "  A ui_events 60 %, i_views_30d 40 %" in text and "  B n/a" in text


def test_no_comparable_user_gives_no_difference_sentence() -> None:
    doc = report_run.attribution_model().model_copy(update={"difference_rows": 0})
    assert attribution.sentence(doc).startswith("no difference between the models' rankings to attribute")
    assert json.dumps(attribution.json_summary(doc))
