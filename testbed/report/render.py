"""Render and write both reports of a run record. Used by the record step and by `testbed report`.

Not strict (the record step): a failing section becomes a note, and a failure of the whole rendering gives
minimal reports that still carry the decision and its reasons; `Rendered.errors` says what went wrong so the
caller can log it. Strict (tests, `testbed report --strict`): any rendering error raises.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from testbed.adapters.storage import Storage
from testbed.record import io
from testbed.record.layout import HTML_REPORT, MARKDOWN_REPORT, RunLayout
from testbed.record.run import ReportStatus, RunFile, RunRecord
from testbed.report.html import minimal_html, render_html
from testbed.report.inputs import UNKNOWN, RunData, load_run
from testbed.report.markdown import render_markdown


@dataclass
class Rendered:
    markdown: str
    html: str
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0
    uris: dict[str, str] = field(default_factory=dict)


def render(data: RunData, strict: bool = False) -> Rendered:
    started = time.perf_counter()
    errors: list[str] = []
    markdown = render_markdown(data)
    page = render_html(data, strict=strict, errors=errors)
    return Rendered(markdown, page, errors, round(time.perf_counter() - started, 3))


def minimal(run_uri: str, record: RunFile | None, problem: str) -> Rendered:
    run_id = record.run_id if record is not None else run_uri.rstrip("/").rsplit("/", 1)[-1]
    decision = record.decision if record is not None else UNKNOWN
    reasons = record.reasons if record is not None else []
    lines = [f"# Testbed run `{run_id}`: **{decision}**", "", *[f"- {r}" for r in reasons],
             "", f"The full report could not be rendered ({problem}); see run.json and gates.json."]
    return Rendered("\n".join(lines) + "\n", minimal_html(run_id, decision, reasons, problem), [problem])


def draft_record(run_uri: str, record: dict[str, Any]) -> RunFile:
    """run.json's content as the record step has it before the reports exist: all but their status, which no
    report shows. A record that is complete already (an ERROR record, one read back) is taken as it is."""
    try:
        return io.parse(RunLayout.at(run_uri).record, record)
    except ValidationError:
        return RunRecord.model_validate({**record, "report": ReportStatus(written=False, files=[], errors=[])})


def _record_for_fallback(storage: Storage, run_uri: str, record: dict[str, Any] | None) -> RunFile | None:
    """The record the minimal report still shows: the draft, else run.json as it is on disk, else none."""
    try:
        return draft_record(run_uri, record) if record is not None else io.read(storage, RunLayout.at(run_uri).record)
    except Exception:
        return None


def _load(storage: Storage, run_uri: str, record: dict[str, Any] | None) -> RunData:
    return load_run(storage, run_uri, draft_record(run_uri, record) if record is not None else None)


def render_run(storage: Storage, run_uri: str, record: dict[str, Any] | None = None,
               strict: bool = False) -> Rendered:
    """Both reports of the run at `run_uri`; `record` is the record step's run.json before it is written."""
    if strict:
        return render(_load(storage, run_uri, record), strict=True)
    try:
        return render(_load(storage, run_uri, record))
    except Exception as exc:  # the report must never fail the run: fall back to the decision alone
        problem = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}".strip()
        return minimal(run_uri, _record_for_fallback(storage, run_uri, record), problem)


def write_reports(storage: Storage, run_uri: str, record: dict[str, Any] | None = None,
                  strict: bool = False) -> Rendered:
    """Render and write report.md and report.html next to the run record; returns what was written."""
    rendered = render_run(storage, run_uri, record, strict)
    layout = RunLayout.at(run_uri)
    for name, text in ((MARKDOWN_REPORT, rendered.markdown), (HTML_REPORT, rendered.html)):
        uri = layout.report(name)
        storage.write_bytes(uri, text.encode())
        rendered.uris[name] = uri
    return rendered
