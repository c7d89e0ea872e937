"""Progress of one long piece of work in phases (training a model, generating a lake) on stderr, CLI only.

A phase begins, may count (trees, files) towards a total, and ends with its counts. On a terminal: one line
redrawn in place (rich.live) with the phase, a bar, the count, elapsed seconds and an ETA; each finished phase
stays above it as one line. Anywhere else (CI logs, pipes, files): a plain line when a phase begins and ends,
and one per ~10 % of the count, never one per tree. `--quiet` shows nothing. It fits
testbed.core.training.TrainingProgress.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from typing import IO, Any

from testbed.cli_support import say
from testbed.progress import Display, is_terminal

STEPS_SHOWN = 10  # plain lines per counted phase


def counts_text(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{value:,} {name}" for name, value in counts.items())


class PhaseProgress(Display):
    """Shows nothing (--quiet); the others draw. Keeps the clocks: a phase's start, and the first count's
    time, from which the ETA runs (work before the first count, such as LightGBM binning, is not counted)."""

    def __init__(self, label: str, unit: str = "trees") -> None:
        self.label, self.unit = label, unit
        self.phase, self.since = "", time.monotonic()
        self.done, self.total = 0, 0
        self.first: tuple[float, int] | None = None

    def begin(self, phase: str) -> None:
        self.phase, self.since, self.done, self.total, self.first = phase, time.monotonic(), 0, 0, None
        self.began()

    def end(self, phase: str, counts: Mapping[str, int]) -> None:
        self.ended(phase, time.monotonic() - self.since, counts)

    def trees(self, done: int, total: int) -> None:
        self.advance(done, total)

    def advance(self, done: int, total: int) -> None:
        if self.first is None:
            self.first = (time.monotonic(), done)
        self.done, self.total = done, total
        self.counted()

    def elapsed(self) -> float:
        return time.monotonic() - self.since

    def eta(self) -> float | None:
        """Seconds left at the rate since the first count; None until two counts apart."""
        if self.first is None or self.done <= self.first[1]:
            return None
        rate = (time.monotonic() - self.first[0]) / (self.done - self.first[1])
        return rate * (self.total - self.done)

    def began(self) -> None:
        return None

    def ended(self, phase: str, seconds: float, counts: Mapping[str, int]) -> None:
        return None

    def counted(self) -> None:
        return None


class PlainPhaseProgress(PhaseProgress):
    """Lines for logs: `label: phase ...`, `label: trees 15/150 (10 %), 1.2s, ETA 10.8s`, `label: phase done`."""

    def __init__(self, label: str, unit: str = "trees") -> None:
        super().__init__(label, unit)
        self.shown = 0  # tenths of the total already shown

    def began(self) -> None:
        self.shown = 0
        say(f"{self.label}: {self.phase} ...")

    def counted(self) -> None:
        tenth = self.done * STEPS_SHOWN // self.total if self.total else 0
        if tenth <= self.shown:
            return
        self.shown = tenth
        eta = self.eta()
        say(f"{self.label}: {self.unit} {self.done:,}/{self.total:,} ({100 * self.done // self.total} %), "
            f"{self.elapsed():.1f}s" + (f", ETA {eta:.1f}s" if eta is not None and self.done < self.total else ""))

    def ended(self, phase: str, seconds: float, counts: Mapping[str, int]) -> None:
        say(f"{self.label}: {phase} done in {seconds:.1f}s" + (f" ({counts_text(counts)})" if counts else ""))


class LivePhaseProgress(PhaseProgress):
    """One line redrawn in place (rich.live): spinner, label and phase, a bar and count while counting,
    elapsed seconds and the ETA; a finished phase is printed above it and stays."""

    def __init__(self, label: str, unit: str = "trees", stream: IO[str] | None = None) -> None:
        from rich.console import Console

        super().__init__(label, unit)
        # a given stream (tests) is drawn as a terminal; stderr is one only when it is a TTY
        self.console = Console(file=stream or sys.stderr, force_terminal=True if stream is not None else None)
        self.live: Any = None

    def began(self) -> None:
        if self.live is None:
            from rich.live import Live

            self.live = Live(console=self.console, get_renderable=self.line, refresh_per_second=8,
                             redirect_stdout=False, redirect_stderr=False, transient=True)
            self.live.start()
        self.live.refresh()

    def counted(self) -> None:
        if self.live is not None:
            self.live.refresh()

    def ended(self, phase: str, seconds: float, counts: Mapping[str, int]) -> None:
        self.phase = ""  # cleared and redrawn first: printing redraws the last live line below the finished one
        if self.live is not None:
            self.live.refresh()
        self.console.print(f"[green]✓[/] {self.label}: {phase} in {seconds:.1f}s"
                           + (f" [dim]({counts_text(counts)})[/]" if counts else ""), highlight=False)

    def line(self) -> Any:
        from rich.progress_bar import ProgressBar
        from rich.spinner import Spinner
        from rich.table import Table
        from rich.text import Text

        grid = Table.grid(padding=(0, 1))
        if not self.phase:
            return grid
        cells: list[Any] = [Spinner("dots", style="cyan"), f"{self.label}: {self.phase}"]
        if self.total:
            eta = self.eta()
            cells += [ProgressBar(total=self.total, completed=self.done, width=20),
                      f"{self.done:,}/{self.total:,} {self.unit}"]
            cells.append(f"{self.elapsed():.1f}s" + (f" ETA {eta:.0f}s" if eta is not None else ""))
        else:
            cells.append(f"{self.elapsed():.1f}s")
        # one line whatever the width: a narrow terminal cuts the text short instead of wrapping it
        grid.add_row(*(Text(cell, no_wrap=True, overflow="ellipsis") if isinstance(cell, str) else cell
                       for cell in cells))
        return grid

    def close(self) -> None:
        if self.live is not None:
            self.live.stop()
            self.live = None


def make_phase_progress(label: str, *, unit: str = "trees", quiet: bool = False,
                        dumb_terminal: bool = False) -> PhaseProgress:
    """Nothing with --quiet; the live line on a terminal (unless TERM=dumb); plain lines otherwise."""
    if quiet:
        return PhaseProgress(label, unit)
    if is_terminal(sys.stderr, dumb_terminal):
        return LivePhaseProgress(label, unit)
    return PlainPhaseProgress(label, unit)
