"""Run records between a local `--out` folder and the local runner's embedded bucket.

Before a run, every record already in `<out>/runs/` goes into the embedded bucket (its run.json and errors/), so
the workflow sees it as a deployed run would: a final record is reported, never redone. After the run, the
run's folder is published create-only, like the S3 path's conditional put: the whole folder is written under a
temporary name next to it and renamed into place, under a lock on `runs/` so the check for a record and the
rename are one step. A folder that holds a final record (PASS, FAIL,
INCONCLUSIVE) is never touched, not even rewritten with the same bytes, so a rerun works on a read-only copy
and, of two runs racing into one folder, exactly one record lands whole; the other reports it. Only an ERROR
record (or a folder without a record) is replaced, by moving it aside first.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

from testbed.adapters.storage import Storage, UriStorage
from testbed.errors import LocalWriteError
from testbed.record import io
from testbed.record.layout import RunLayout
from testbed.record.run import RunFile, RunRecord

RECORD = "run.json"
ERRORS = "errors"


def recorded(run_dir: Path) -> RunFile | None:
    """The record in a local run folder, if it has one."""
    return io.read_if_present(UriStorage(), RunLayout.at(str(run_dir)).record)


def hydrate(storage: Storage, bucket_root: str, out: Path) -> None:
    """Copy each local record (run.json and errors/) into the embedded bucket, under `<bucket_root>/runs/`."""
    for record in sorted((out / "runs").glob(f"*/{RECORD}")):
        run_dir = record.parent
        if run_dir.name.startswith("."):  # another run's folder being published
            continue
        for path in [record, *sorted((run_dir / ERRORS).glob("*.json"))]:
            relative = path.relative_to(run_dir).as_posix()
            storage.write_bytes(f"{bucket_root}/runs/{run_dir.name}/{relative}", path.read_bytes())


def publish(storage: Storage, bucket_root: str, run_id: str, out: Path) -> RunRecord | None:
    """Copy the run's folder out of the embedded bucket into `<out>/runs/<run_id>`, create-only. Returns None
    when this run's folder landed, or the final record that was there first (then nothing was written)."""
    runs, target = out / "runs", out / "runs" / run_id
    existing = recorded(target)
    if isinstance(existing, RunRecord):
        return existing
    prefix = f"{bucket_root}/runs/{run_id}/"
    try:
        runs.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{run_id}.", suffix=".partial", dir=runs))
    except OSError as exc:
        raise LocalWriteError(f"cannot write the run record under {runs}: {exc.strerror or exc}") from None
    try:
        for uri in storage.list_keys(prefix):
            path = staging / uri[len(prefix):]
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(storage.read_bytes(uri))
        return _rename_into_place(staging, target)
    except OSError as exc:
        raise LocalWriteError(f"cannot write the run record {target}: {exc.strerror or exc}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # gone already when the rename succeeded


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """Hold an exclusive lock on `folder` (threads and processes; the kernel drops it if the holder dies)."""
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)


def _rename_into_place(staging: Path, target: Path) -> RunRecord | None:
    with _locked(target.parent):  # the check and the rename are one step for every publisher
        there = recorded(target)
        if isinstance(there, RunRecord):
            return there
        aside = target.with_name(f".{target.name}.{uuid.uuid4().hex}.replaced")
        if target.exists():  # an ERROR record, or a folder without one: this run replaces it
            os.rename(target, aside)
        os.rename(staging, target)
        shutil.rmtree(aside, ignore_errors=True)
    return None
