"""Render and write both reports of a run record. Used by the record step and by `testbed report`.

Not strict (the record step): a failing section becomes a note, and a failure of the whole rendering gives
minimal reports that still carry the decision and its reasons; `Rendered.errors` says what went wrong so the
caller can log it. Strict (tests, `testbed report --strict`): any rendering error raises.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from testbed.adapters.storage import Storage, join
from testbed.report.html import minimal_html, render_html
from testbed.report.inputs import RunData, load_run
from testbed.report.markdown import render_markdown

MARKDOWN, HTML = "report.md", "report.html"


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


def minimal(run_uri: str, record: dict[str, Any], problem: str) -> Rendered:
    run_id = str(record.get("run_id") or run_uri.rstrip("/").rsplit("/", 1)[-1])
    decision = str(record.get("decision") or "UNKNOWN")
    reasons = [str(r) for r in record.get("reasons") or []]
    lines = [f"# Testbed run `{run_id}`: **{decision}**", "", *[f"- {r}" for r in reasons],
             "", f"The full report could not be rendered ({problem}); see run.json and gates.json."]
    return Rendered("\n".join(lines) + "\n", minimal_html(run_id, decision, reasons, problem), [problem])


def render_run(storage: Storage, run_uri: str, record: dict[str, Any] | None = None,
               strict: bool = False) -> Rendered:
    if strict:
        return render(load_run(storage, run_uri, record), strict=True)
    try:
        return render(load_run(storage, run_uri, record))
    except Exception as exc:  # the report must never fail the run: fall back to the decision alone
        problem = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}".strip()
        fallback = record
        if fallback is None:
            try:
                fallback = storage.read_json(join(run_uri, "run.json"))
            except Exception:
                fallback = {}
        return minimal(run_uri, fallback if isinstance(fallback, dict) else {}, problem)


def write_reports(storage: Storage, run_uri: str, record: dict[str, Any] | None = None,
                  strict: bool = False) -> Rendered:
    """Render and write report.md and report.html next to the run record; returns what was written."""
    rendered = render_run(storage, run_uri, record, strict)
    for name, text in ((MARKDOWN, rendered.markdown), (HTML, rendered.html)):
        uri = join(run_uri, name)
        storage.write_bytes(uri, text.encode())
        rendered.uris[name] = uri
    return rendered
