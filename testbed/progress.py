"""Step progress of a run on stderr, for the CLI only (never imported by a handler).

On a terminal: a live table (rich) of every step with its state, the rows it processed and its time, the
running step's clock ticking. Anywhere else (CI logs, pipes): one plain line when a step starts and one when
it ends. `--quiet` shows nothing. Both take the (step, index, total, result) callbacks that
testbed.adapters.executions.follow makes; result is None when a step starts.
"""

from __future__ import annotations

import sys
import time
from types import TracebackType
from typing import IO, Any, Self

from testbed.cli_support import say

# A step's rows: the sum of its *_rows counts, else the first of these it reports.
ROW_KEYS = ("events", "records", "records_read", "published", "rows", "users")


def rows_of(result: dict[str, Any] | None) -> int | None:
    """How many rows a step processed, from what its handler returned."""
    if not result:
        return None
    counts = {k: v for k, v in result.items() if isinstance(v, int) and not isinstance(v, bool)}
    named = [v for k, v in counts.items() if k.endswith("_rows")]
    if named:
        return sum(named)
    for key in ROW_KEYS:
        if key in counts:
            return counts[key]
    return None


def detail_of(result: dict[str, Any]) -> str:
    """Up to four short key=value facts of a step's result (what the plain log line shows)."""
    shown = {k: v for k, v in result.items() if k != "elapsed_s" and not isinstance(v, bool)
             and (isinstance(v, int) or (isinstance(v, str) and len(v) < 40))}
    return ", ".join(f"{k}={v}" for k, v in list(shown.items())[:4])


class Display:
    """A display on stderr as a context manager: leaving the block always stops it (`close`), even on an error,
    so a live display never stays drawn over the error line."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        return None


class Progress(Display):
    """The callback interface, showing nothing (--quiet); also a context manager so a live display always stops.
    Every kind remembers the error type a failed step reported (`failed_error`): the CLI's hint uses it, since
    the error that reaches the CLI from the workflow keeps only its message."""

    failed_error: str | None = None

    def __call__(self, step: str, index: int, total: int, result: dict[str, Any] | None) -> None:
        self.note(result)

    def note(self, result: dict[str, Any] | None) -> None:
        if result and "failed" in result and self.failed_error is None:
            self.failed_error = str(result["failed"])


class PlainProgress(Progress):
    """One line per step start and end: CI logs keep them in order and nothing is redrawn."""

    def __call__(self, step: str, index: int, total: int, result: dict[str, Any] | None) -> None:
        self.note(result)
        if result is None:
            say(f"[{index}/{total}] {step} ...")
        elif "failed" in result:
            say(f"[{index}/{total}] {step} failed ({result['failed']})")
        else:
            rows = rows_of(result)
            say(f"[{index}/{total}] {step} done in {float(result.get('elapsed_s', 0.0)):.1f}s"
                + (f", {rows:,} rows" if rows is not None else "") + f" ({detail_of(result)})")


class LiveProgress(Progress):
    """A table redrawn in place (rich.live) with a row per step: state, rows, seconds; the running step's
    seconds come from this process's clock until its handler reports its own time."""

    def __init__(self, stream: IO[str] | None = None, steps: tuple[str, ...] = ()):
        from rich.console import Console

        # a given stream (tests) is drawn as a terminal; stderr is one only when it is a TTY
        self.console = Console(file=stream or sys.stderr, force_terminal=True if stream is not None else None)
        self.steps: dict[str, dict[str, Any]] = {s: {"state": "waiting"} for s in steps}
        self.started = time.monotonic()
        self.live: Any = None

    def __call__(self, step: str, index: int, total: int, result: dict[str, Any] | None) -> None:
        self.note(result)
        row = self.steps.setdefault(step, {"state": "waiting"})
        now = time.monotonic()
        if result is None:
            row.update(state="running", since=now)
        elif "failed" in result:
            row.update(state="failed", seconds=now - row.get("since", now), detail=str(result["failed"]))
        else:
            row.update(state="done", rows=rows_of(result), detail=detail_of(result),
                       seconds=float(result.get("elapsed_s", now - row.get("since", now))))
        if self.live is None:
            from rich.live import Live

            self.live = Live(console=self.console, get_renderable=self.table, refresh_per_second=8,
                             redirect_stdout=False, redirect_stderr=False)
            self.live.start()
        self.live.refresh()

    def table(self) -> Any:
        from rich.spinner import Spinner
        from rich.table import Table

        table = Table(box=None, pad_edge=False, show_edge=False, header_style="bold")
        for name, justify in (("step", "left"), ("state", "left"), ("rows", "right"), ("time", "right"),
                              ("detail", "left")):
            table.add_column(name, justify=justify)  # type: ignore[arg-type]
        now = time.monotonic()
        marks = {"done": "[green]✓ done[/]", "failed": "[red]✗ failed[/]", "waiting": "[dim]· waiting[/]"}
        for name, row in self.steps.items():
            state: Any = marks.get(row["state"])
            seconds = row.get("seconds")
            if row["state"] == "running":
                state, seconds = Spinner("dots", text="running", style="cyan"), now - row["since"]
            rows = row.get("rows")
            table.add_row(name, state, f"{rows:,}" if rows is not None else "",
                          f"{seconds:.1f}s" if seconds is not None else "", f"[dim]{row.get('detail', '')}[/]")
        table.add_row("[bold]elapsed[/]", "", "", f"[bold]{now - self.started:.1f}s[/]", "")
        return table

    def close(self) -> None:
        if self.live is not None:
            self.live.refresh()
            self.live.stop()
            self.live = None


def is_terminal(stream: IO[str], dumb_terminal: bool = False) -> bool:
    return bool(getattr(stream, "isatty", lambda: False)()) and not dumb_terminal


def make_progress(quiet: bool = False, steps: tuple[str, ...] = (), dumb_terminal: bool = False) -> Progress:
    """Nothing with --quiet; the live table on a terminal (unless TERM=dumb); plain lines otherwise (CI, pipes,
    files)."""
    if quiet:
        return Progress()
    if is_terminal(sys.stderr, dumb_terminal):
        return LiveProgress(steps=steps)
    return PlainProgress()
