"""The record step's reports: report.md and report.html next to the run record (testbed.report renders them).

A rendering problem must never fail a run whose decision is already made: it is logged (with the run id and
step, through the step's Powertools logger) and a minimal report that still carries the decision is written.
The renderers are imported here, inside the guard, so even a missing plotting library only costs the reports.
"""

from __future__ import annotations

from typing import Any

from testbed.observability import logger
from testbed.pipeline.context import RunContext
from testbed.record.run import ReportStatus


def write_run_reports(ctx: RunContext, record: dict[str, Any]) -> ReportStatus:
    """Write both reports for `record` (run.json's content, not written yet). Returns what was written, the
    render seconds and any rendering errors; never raises."""
    try:
        from testbed.report.render import write_reports

        rendered = write_reports(ctx.storage, ctx.run_uri, record)
    except Exception as exc:  # even writing failed: the record itself matters more than its reports
        logger().exception("report not written", extra={"error": f"{type(exc).__name__}: {exc}"})
        return ReportStatus(written=False, files=[], errors=[f"{type(exc).__name__}: {exc}"])
    if rendered.errors:
        logger().warning("report rendered with errors", extra={"errors": rendered.errors})
    return ReportStatus(written=True, files=sorted(rendered.uris), seconds=rendered.seconds, errors=rendered.errors)
