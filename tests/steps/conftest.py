"""Step logic on a MemoryStorage: a run under s3://art/runs/<run_id>, no moto, no files."""

from __future__ import annotations

from pathlib import Path

import pytest

from testbed.adapters.storage import MemoryStorage
from testbed.invocation import Invocation
from testbed.pipeline.context import RunContext
from tests.unit import report_run

ARTIFACTS = "s3://art"


@pytest.fixture
def memory() -> MemoryStorage:
    return MemoryStorage()


@pytest.fixture
def ctx(memory: MemoryStorage) -> RunContext:
    run_id = report_run.RUN_ID
    return RunContext(run_id, f"{ARTIFACTS}/runs/{run_id}", "/lake", Invocation.on(memory))


def load_fixture_run(memory: MemoryStorage, ctx: RunContext, tmp_path: Path) -> None:
    """The report fixture's run record (tests.unit.report_run), minus run.json, copied into `memory`."""
    root = report_run.write_run(tmp_path)
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        relative = path.relative_to(root).as_posix()
        if relative != "run.json":
            memory.write_bytes(ctx.layout.uri(relative), path.read_bytes())
