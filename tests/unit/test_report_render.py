"""report.md and report.html from the hand-made run record: failed gate first with its numbers, compact
Markdown, a self-contained page, graceful degradation, and a record step that never fails on a report."""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any

import pytest

from testbed.adapters.storage import UriStorage
from testbed.invocation import Invocation
from testbed.pipeline.context import RunContext
from testbed.pipeline.report import write_run_reports
from testbed.report import html as html_report
from testbed.report import render
from testbed.report.inputs import load_run
from testbed.report.markdown import render_markdown
from tests.unit import report_run


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    return report_run.write_run(tmp_path)


def test_markdown_puts_the_failed_gate_first_with_its_numbers(run_dir: Path) -> None:
    text = render_markdown(load_run(UriStorage(), str(run_dir)))
    lines = text.splitlines()
    assert lines[0] == f"# Testbed run `{report_run.RUN_ID}`: **FAIL**"
    assert lines[2] == "- **Why:** 1 gate failed on proven harm: revenue@10"
    assert lines[6].startswith("- **List changes:** The candidate changes 64 % of top-10 slots")
    assert lines[8] == ("- FAIL revenue-floor: The candidate's revenue@10 is 3.250 for all users, below the floor of "
                        "4.500.")
    assert lines[9] == ("- INCONCLUSIVE ndcg-not-worse: ndcg@10 changed by -0.004 for tier=gold (interval -0.015 to "
                        "+0.007): not enough evidence that it did not fall by more than the allowed 0.010 (p 0.2100, "
                        "unadjusted).")
    assert lines[10] == "" and lines[11] == "## Gates"  # each reason once: the rows' sentences replace gates.json's
    start = lines.index("## Gates")
    assert lines[start + 2] == "| gate | role | stratum | observed | interval | allowed | evidence | outcome |"
    assert lines[start + 4] == ("| revenue-floor (revenue@10) | goal | all | 3.2500 candidate value | n/a | ≥ 4.5000 | "
                                "n/a | fail |")
    assert lines[start + 5] == ("| ndcg-not-worse (ndcg@10) | goal | tier=gold | -0.0040 absolute Δ | "
                                "[-0.0150, +0.0070] | ≥ -0.0100 | p 0.2100, unadjusted | inconclusive |")
    assert lines[start + 6].endswith("| +0.0120 absolute Δ | [+0.0040, +0.0200] | ≥ -0.0100 | p 0.0003, adjusted "
                                     "| pass |")
    assert lines[start + 7].endswith("| 12.50 ms | n/a | ≤ 50.00 ms | n/a | pass |")  # adjusted p above


def test_markdown_has_top_deltas_drift_provenance_and_the_html_link(run_dir: Path) -> None:
    text = render_markdown(load_run(UriStorage(), str(run_dir)))
    lines = text.splitlines()
    start = lines.index("## Top deltas (all users, K=10; bca-bootstrap, 95%)")
    assert lines[start + 4].startswith("| recall@10 | 0.2000 | 0.2500 | +0.0500 | +25.0% | 95% CI [+0.0300, +0.0700] |")
    assert lines[start + 5].startswith("| revenue@10 | 4.0000 | 3.2500 | -0.7500 | -18.8% |")
    assert "| coverage@10 | 0.1000 | 0.3000 | +0.2000 | +200.0% | n/a |" in lines
    assert "2 of 3 features drifted (baseline: population)." in lines
    drift_rows = [ln for ln in lines if ln.startswith("| i_") or ln.startswith("| u_")]
    assert [r.split(" | ")[0] for r in drift_rows] == ["| i_revenue_30d", "| i_price", "| u_views_7d"]
    assert "| i_revenue_30d | wasserstein | 0.3100 | PSI 0.4200 (limit 0.2000) | yes |" in lines
    assert "- slice: 400 users, 9000 events, 2 strata (stratified sampling, seed 42)" in lines
    assert f"- models: control `{'c' * 16}`, candidate `{'d' * 16}`" in lines
    assert lines[-1] == "Charts, every gate and the full provenance: [report.html](report.html)"
    assert len(lines) < 60


def _harmful(data: Any) -> Any:
    """The fixture with its passing ndcg gate turned into a failed one, proven harmful by the harm test."""
    gates = data.gates.gates
    harmful = gates[0].model_copy(update={"outcome": "fail", "observed": -0.09, "interval": [-0.1, -0.081],
                                          "p_value": 1.0, "p_adjusted": 1.0, "p_harm": 0.0001,
                                          "p_harm_adjusted": 0.0004, "confidence": 0.9})
    data.gates = data.gates.model_copy(update={"gates": [harmful, *gates[1:]]})
    return data


def test_a_failed_gate_shows_its_harm_p_value_and_the_levels_of_both_intervals(run_dir: Path) -> None:
    lines = render_markdown(_harmful(load_run(UriStorage(), str(run_dir)))).splitlines()
    row = next(ln for ln in lines if ln.startswith("| ndcg-not-worse (ndcg@10) | goal | all |"))
    assert row.endswith("| -0.0900 absolute Δ | 90% CI [-0.1000, -0.0810] | ≥ -0.0100 | harm p 0.0004, adjusted "
                        "| fail |")
    assert ("- FAIL ndcg-not-worse: ndcg@10 fell by 0.090 for all users (90% CI 0.081–0.100), more than the allowed "
            "0.010 (harm p 0.0004, adjusted).") in lines  # adjusted
    assert "| p 1.0000 |" not in "\n".join(lines)
    recall = next(ln for ln in lines if ln.startswith("| recall@10 |"))
    assert "| 95% CI [+0.0300, +0.0700] |" in recall  # the metrics' level (manifest statistics.confidence)


def test_html_shows_a_failed_gates_harm_p_value_in_the_banner_the_table_and_the_details(run_dir: Path) -> None:
    page = html_report.render_html(_harmful(load_run(UriStorage(), str(run_dir)))).replace(' class="n"', "")
    banner = page[page.index('id="decision"'):page.index("</header>")]
    assert ("FAIL ndcg-not-worse: ndcg@10 fell by 0.090 for all users (90% CI 0.081–0.100), more than the allowed "
            "0.010 (harm p 0.0004, adjusted).") in banner
    assert ("<td>-0.0900 absolute Δ</td><td>90% CI [-0.1000, -0.0810]</td><td>≥ -0.0100</td>"
            "<td>harm p 0.0004, adjusted</td>") in page
    details = page[page.index('id="gate-details"'):]
    assert "<td>1.0000</td><td>1.0000</td><td>0.0001</td><td>0.0004</td>" in details  # p, adjusted, harm, adj.
    assert "p 1.0000" not in page


def test_markdown_without_drift_or_gates_says_so(tmp_path: Path) -> None:
    run = report_run.write_run(tmp_path, drift=False, skip=("gates.json",))
    text = render_markdown(load_run(UriStorage(), str(run)))
    assert "No drift diagnostics in this run." in text and "No gates.json in this run." in text


def test_many_gates_list_only_failures_and_count_the_rest(run_dir: Path) -> None:
    data = load_run(UriStorage(), str(run_dir))
    assert data.gates is not None
    passing = data.gates.gates[0]
    more = [passing.model_copy(update={"stratum": f"s{i}"}) for i in range(20)]
    data.gates = data.gates.model_copy(update={"gates": [*data.gates.gates, *more]})
    text = render_markdown(data)
    assert "…and 22 passed gates (see report.html)." in text
    assert len(text.splitlines()) < 60


def test_markdown_of_an_error_record(tmp_path: Path) -> None:
    run = tmp_path / "err"
    run.mkdir()
    (run / "run.json").write_text(report_run.error_record("x-0123456789ab", "score", "score: StepError: boom"))
    text = render_markdown(load_run(UriStorage(), str(run)))
    assert text.splitlines() == ["# Testbed run `x-0123456789ab`: **ERROR**", "",
                                 "- **Why:** the run stopped in step score with an error (below); no gate was decided",
                                 "- **Next:** fix the error and rerun; no decision was made", "",
                                 "- score: StepError: boom"]


def _visible_text(page: str) -> str:
    text = re.sub(r"<[^>]+>", " ", re.sub(r"<style.*?</style>", "", page, flags=re.S))
    return re.sub(r"\s+", " ", html.unescape(text))


def test_html_shows_the_headline_and_the_failed_gate_first_with_its_numbers(run_dir: Path) -> None:
    page = html_report.render_html(load_run(UriStorage(), str(run_dir)), strict=True)
    headline = _visible_text(page[page.index('id="headline"'):page.index("</ul>", page.index('id="headline"'))])
    assert "why: 1 gate failed on proven harm: revenue@10" in headline
    assert "primary: ndcg@10 0.3000 → 0.3120: +0.0120 (+4.0%), 95% CI [+0.0030, +0.0210]" in headline
    assert "guardrails: none declared" in headline and "next: do not promote" in headline
    table = page[page.index("<table", page.index('id="gates"')):]
    first_row = table[table.index("<tbody><tr"):table.index("</tr>", table.index("<tbody>"))]
    assert 'class="fail"' in first_row and "revenue-floor" in first_row
    assert ">3.2500 candidate value<" in first_row and ">≥ 4.5000<" in first_row
    assert "below the floor of 4.500." in first_row  # the row's sentence
    text = _visible_text(page)
    assert text.count("The candidate's revenue@10 is 3.250 for all users, below the floor of 4.500.") == 2  # banner
    assert "candidate revenue@10 3.25 vs minimum 4.5" in text  # the row's own statistics, in the details table


def test_html_has_every_section_and_chart(run_dir: Path) -> None:
    page = html_report.render_html(load_run(UriStorage(), str(run_dir)), strict=True)
    charts = re.findall(r'<figure class="chart" data-chart="([^"]+)"[^>]*><svg', page)
    assert charts == ["forest-ndcg-not-worse", "composition", "inclusion", "drift-ranking", "drift-daily-i-revenue-30d",
                      "drift-daily-i-price", "scores", "coverage", "popularity", "list-change"]
    text = _visible_text(page)
    for needle in ("Per-stratum deltas", "Slice composition", "Feature drift", "Strata most affected",
                   "Catalogue what-if", "List changes", "Degrades more gracefully: control", "Provenance", "a" * 64,
                   "b" * 64,
                   "c" * 64, "d" * 64, "0.1.0+abc", "seed: sampling 42", "seed: bootstrap 7",
                   "shardId-000000000000", "4960", "4999", "3 retried entries", "400 vs 400 rows, 0 mismatches",
                   "multiple-testing correction: holm", "sample-ratio check p = 0.5300", "retrain after 2026-10-03"):
        assert needle in text, needle


def test_html_is_self_contained_and_deterministic(run_dir: Path) -> None:
    data = load_run(UriStorage(), str(run_dir))
    page = html_report.render_html(data, strict=True)
    assert "<script" not in page.lower()
    assert not re.search(r"""(?:src|href)\s*=\s*["'](?!#)""", page)  # no loaded resource of any kind
    assert not re.search(r"url\(\s*['\"]?(?:https?:)?//", page) and "@import" not in page
    assert "Content-Security-Policy" in page and "default-src 'none'" in page
    assert "Generated with pygal" not in page  # the dated generator comment is dropped
    assert page == html_report.render_html(load_run(UriStorage(), str(run_dir)), strict=True)


def test_html_escapes_run_data(tmp_path: Path) -> None:
    run = report_run.write_run(tmp_path)
    data = load_run(UriStorage(), str(run))
    assert data.gates is not None
    rows = list(data.gates.gates)
    rows[2] = rows[2].model_copy(update={"name": "<img src=x onerror=alert(1)>"})
    data.gates = data.gates.model_copy(update={"gates": rows})
    page = html_report.render_html(data, strict=True)
    assert "<img src=x" not in page and "&lt;img src=x onerror=alert(1)&gt;" in page


def test_html_degrades_when_inputs_are_missing(tmp_path: Path) -> None:
    run = report_run.write_run(tmp_path, drift=False, whatif=False, parquet=False,
                               skip=("metrics.json", "latency.json"))
    errors: list[str] = []
    page = html_report.render_html(load_run(UriStorage(), str(run)), strict=True, errors=errors)
    text = _visible_text(page)
    for needle in ("No drift diagnostics in this run.", "No metrics.json in this run.",
                   "No rankings in this run: no score distributions.", "No coverage in metrics.json.",
                   "Not in this run record:"):
        assert needle in text, needle
    assert errors == []
    assert "Catalogue what-if" not in text


def test_a_failing_section_is_noted_unless_strict(run_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(data: Any) -> str:
        raise ValueError("bad drift row")

    monkeypatch.setattr(html_report, "SECTIONS", [(n, broken if n == "drift" else f)
                                                  for n, f in html_report.SECTIONS])
    data = load_run(UriStorage(), str(run_dir))
    errors: list[str] = []
    page = html_report.render_html(data, errors=errors)
    assert errors == ["drift: ValueError: bad drift row"]
    assert "This section could not be rendered (ValueError: bad drift row)." in page
    assert "revenue-floor" in page  # the rest is there
    with pytest.raises(ValueError, match="bad drift row"):
        html_report.render_html(data, strict=True)


def test_write_reports_writes_both_files(run_dir: Path) -> None:
    rendered = render.write_reports(UriStorage(), str(run_dir), strict=True)
    assert (run_dir / "report.md").read_text() == rendered.markdown
    assert (run_dir / "report.html").read_text() == rendered.html
    assert rendered.errors == [] and set(rendered.uris) == {"report.md", "report.html"}


def test_record_step_writes_a_minimal_report_when_rendering_fails(run_dir: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    def explode(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("renderer broke")

    monkeypatch.setattr(render, "load_run", explode)
    record = report_run.record_doc("FAIL", ["revenue-floor (all): candidate revenue@10 3.25 below 4.5"])
    ctx = RunContext(report_run.RUN_ID, str(run_dir), "/lake", Invocation.outside_lambda())
    result = write_run_reports(ctx, record)
    assert result.written is True and result.errors == ["RuntimeError: renderer broke"]
    assert result.files == ["report.html", "report.md"]
    markdown = (run_dir / "report.md").read_text()
    assert markdown.startswith(f"# Testbed run `{report_run.RUN_ID}`: **FAIL**\n\n- revenue-floor (all)")
    assert "could not be rendered (RuntimeError: renderer broke)" in markdown
    page = (run_dir / "report.html").read_text()
    assert "FAIL" in page and "renderer broke" in page and "<script" not in page


def test_record_step_survives_even_a_failed_write(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    class ReadOnly(UriStorage):
        def write_bytes(self, *args: Any, **kwargs: Any) -> bool:
            raise PermissionError("read-only bucket")

    run = report_run.write_run(tmp_path)
    invocation = Invocation.on(ReadOnly())
    result = write_run_reports(RunContext(report_run.RUN_ID, str(run), "/lake", invocation),
                               report_run.record_doc("FAIL", []))
    assert result.model_dump() == {"written": False, "files": [], "errors": ["PermissionError: read-only bucket"]}


def test_strict_rendering_raises_instead_of_falling_back(tmp_path: Path) -> None:
    run = report_run.write_run(tmp_path)
    (run / "metrics.json").write_text('{"k": 10, "deltas": {"all": {"ndcg@10": {"delta": "oops", "relative": []}}}}')
    rendered = render.render_run(UriStorage(), str(run), strict=True)  # odd values are shown as they are
    assert "ndcg@10" in rendered.markdown


def test_a_daily_series_without_values_is_a_note_not_an_empty_chart(tmp_path: Path) -> None:
    run = report_run.write_run(tmp_path)
    data = load_run(UriStorage(), str(run))
    assert data.drift is not None
    quiet_day = data.drift.daily["i_price"].model_copy(update={"psi": [None, None]})
    data.drift = data.drift.model_copy(update={"daily": {**data.drift.daily, "i_price": quiet_day}})
    page = html_report.render_html(data, strict=True)
    assert 'data-chart="drift-daily-i-price"' not in page and 'data-chart="drift-daily-i-revenue-30d"' in page
    assert "Daily PSI of i_price: no day had enough data for a value." in page
