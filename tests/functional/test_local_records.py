"""Publishing a local run's record into `--out`: create-only, whole folders, a read-only copy left untouched."""

from __future__ import annotations

import json
import os
import shutil
import stat
import threading
from pathlib import Path
from typing import Any

from testbed import local_records
from testbed.adapters.storage import MemoryStorage, dumps
from testbed.cli import main
from tests.unit import report_run

BUCKET = "s3://testbed-local-artifacts"
RUN_ID = report_run.RUN_ID


def _embedded(decision: str, marker: str) -> MemoryStorage:
    """An embedded bucket holding one finished run whose every file names `marker`."""
    run = f"{BUCKET}/runs/{RUN_ID}"
    record = report_run.record_model(decision, [marker]).model_dump(mode="json")
    return MemoryStorage({f"{run}/report.md": marker.encode(), f"{run}/slice/stats.json": dumps({"m": marker}),
                          f"{run}/run.json": dumps(record)})


def _snapshot(root: Path) -> dict[str, tuple[bytes, int]]:
    return {p.relative_to(root).as_posix(): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*")) if p.is_file()}


def _make_read_only(root: Path) -> None:
    for path in [root, *root.rglob("*")]:
        path.chmod(path.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


def test_a_run_folder_lands_whole_and_is_never_rewritten(tmp_path: Path) -> None:
    assert local_records.publish(_embedded("PASS", "first"), BUCKET, RUN_ID, tmp_path) is None
    run_dir = tmp_path / "runs" / RUN_ID
    before = _snapshot(run_dir)
    assert set(before) == {"report.md", "slice/stats.json", "run.json"}
    there = local_records.publish(_embedded("FAIL", "second"), BUCKET, RUN_ID, tmp_path)
    assert there is not None and there.decision == "PASS" and there.reasons == ["first"]
    assert _snapshot(run_dir) == before
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == [RUN_ID]  # no staging folder left


def test_an_error_record_is_replaced_and_its_errors_come_along(tmp_path: Path) -> None:
    run_dir = tmp_path / "runs" / RUN_ID
    (run_dir / "errors").mkdir(parents=True)
    (run_dir / "run.json").write_text(report_run.error_record(RUN_ID, "score", "score: StepError: broke"))
    (run_dir / "errors" / "20261101T120000-abc.json").write_text(
        report_run.error_record(RUN_ID, "score", "score: StepError: broke"))
    (run_dir / "stale.txt").write_text("left by the failed attempt")
    embedded = MemoryStorage()
    local_records.hydrate(embedded, BUCKET, tmp_path)
    assert sorted(embedded.objects) == [f"{BUCKET}/runs/{RUN_ID}/errors/20261101T120000-abc.json",
                                        f"{BUCKET}/runs/{RUN_ID}/run.json"]
    passed = _embedded("PASS", "retry")
    passed.objects.update({k: v for k, v in embedded.objects.items() if "/errors/" in k})
    assert local_records.publish(passed, BUCKET, RUN_ID, tmp_path) is None
    assert json.loads((run_dir / "run.json").read_text())["decision"] == "PASS"
    assert sorted(p.relative_to(run_dir).as_posix() for p in run_dir.rglob("*") if p.is_file()) == [
        "errors/20261101T120000-abc.json", "report.md", "run.json", "slice/stats.json"]
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == [RUN_ID]


def test_of_concurrent_runs_into_one_folder_exactly_one_record_lands_whole(tmp_path: Path) -> None:
    for attempt in range(10):
        out = tmp_path / str(attempt)
        markers = [f"run-{i}" for i in range(4)]
        start, results = threading.Barrier(len(markers)), {}

        def publish(marker: str, out: Path = out, start: threading.Barrier = start,
                    results: dict[str, Any] = results) -> None:
            storage = _embedded("PASS", marker)
            start.wait()
            results[marker] = local_records.publish(storage, BUCKET, RUN_ID, out)

        threads = [threading.Thread(target=publish, args=(m,)) for m in markers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        winners = [m for m, there in results.items() if there is None]
        assert len(winners) == 1, results
        run_dir = out / "runs" / RUN_ID
        (winner,) = winners
        assert json.loads((run_dir / "run.json").read_text())["reasons"] == [winner]
        assert (run_dir / "report.md").read_text() == winner  # no file of another run mixed in
        assert json.loads((run_dir / "slice" / "stats.json").read_text()) == {"m": winner}
        assert all(there.reasons == [winner] for there in results.values() if there is not None)
        assert sorted(p.name for p in (out / "runs").iterdir()) == [RUN_ID]


def test_a_rerun_on_a_read_only_copy_touches_nothing(
        small_lake: Path, manifest_data: dict[str, Any], write_manifest: Any, tmp_path: Path) -> None:
    manifest = write_manifest(manifest_data)
    first = tmp_path / "first"
    assert main(["run", str(manifest), "--lake", str(small_lake), "--out", str(first), "--quiet"]) in (0, 1, 3)
    copy = tmp_path / "copy"
    shutil.copytree(first, copy)
    before = _snapshot(copy)
    (run_dir,) = (copy / "runs").iterdir()
    decision = json.loads((run_dir / "run.json").read_text())["decision"]
    _make_read_only(copy)
    try:
        code = main(["run", str(manifest), "--lake", str(small_lake), "--out", str(copy), "--json"])
    finally:
        for path in [copy, *copy.rglob("*")]:
            path.chmod(path.stat().st_mode | stat.S_IWUSR)
    assert _snapshot(copy) == before  # every byte and every mtime
    assert sorted(os.listdir(copy / "runs")) == [run_dir.name]
    assert code == {"PASS": 0, "FAIL": 1, "INCONCLUSIVE": 3}[decision]
