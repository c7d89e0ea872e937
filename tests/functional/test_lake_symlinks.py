"""Symbolic links in a lake (issue 11, cases 1 and 2): the fingerprint covers exactly what the engine reads.

Before: `events/` as a link was read by DuckDB but ignored by the fingerprint (deleting partitions behind it
kept the run id, so the old PASS record was reused), and a linked partition inside `events/` was skipped by
both (its events silently dropped).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from testbed.adapters.duckdb_engine import DuckDBEngine
from testbed.adapters.local_files import files_under
from testbed.adapters.storage import UriStorage
from testbed.errors import LakeError

LABEL_PARTITION = "event_date=2026-10-20"  # inside the small lake's label window


def copy_lake(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target


def event_count(lake: Path) -> int:
    engine = DuckDBEngine(str(lake))
    try:
        return int(engine.query("SELECT COUNT(*) AS n FROM events").column(0)[0].as_py())
    finally:
        engine.close()


def fingerprint(lake: Path) -> str:
    return UriStorage().fingerprint(str(lake))


def test_a_linked_events_folder_is_fingerprinted_through_the_link(small_lake: Path, tmp_path: Path) -> None:
    elsewhere = copy_lake(small_lake, tmp_path / "elsewhere")
    lake = tmp_path / "lake"
    lake.mkdir()
    for dataset in ("users", "items"):
        shutil.copytree(small_lake / dataset, lake / dataset)
    (lake / "events").symlink_to(elsewhere / "events")
    assert fingerprint(lake) == fingerprint(small_lake)
    before = event_count(lake)
    shutil.rmtree(elsewhere / "events" / LABEL_PARTITION)
    assert event_count(lake) < before
    assert fingerprint(lake) != fingerprint(small_lake)  # a new run id: the old record is not reused


def test_a_linked_partition_is_read_and_fingerprinted(small_lake: Path, tmp_path: Path) -> None:
    lake = copy_lake(small_lake, tmp_path / "lake")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.move(lake / "events" / LABEL_PARTITION, elsewhere / LABEL_PARTITION)
    (lake / "events" / LABEL_PARTITION).symlink_to(elsewhere / LABEL_PARTITION)
    assert event_count(lake) == event_count(small_lake)
    assert fingerprint(lake) == fingerprint(small_lake)
    for path in (elsewhere / LABEL_PARTITION).iterdir():
        path.unlink()
    assert event_count(lake) < event_count(small_lake)
    assert fingerprint(lake) != fingerprint(small_lake)


def test_a_dangling_link_is_refused_naming_it(small_lake: Path, tmp_path: Path) -> None:
    lake = copy_lake(small_lake, tmp_path / "lake")
    (lake / "events" / "event_date=2026-11-30").symlink_to(tmp_path / "gone")
    with pytest.raises(LakeError, match="event_date=2026-11-30: broken symbolic link"):
        fingerprint(lake)
    with pytest.raises(LakeError, match="broken symbolic link"):
        DuckDBEngine(str(lake))


def test_a_link_loop_is_refused_naming_it(tmp_path: Path) -> None:
    (tmp_path / "events" / "event_date=2026-01-01").mkdir(parents=True)
    (tmp_path / "events" / "event_date=2026-01-01" / "again").symlink_to(tmp_path / "events")
    with pytest.raises(LakeError, match="again: symbolic link loops back"):
        files_under(tmp_path)


def test_a_data_file_that_is_not_parquet_is_refused(small_lake: Path, tmp_path: Path) -> None:
    lake = copy_lake(small_lake, tmp_path / "lake")
    (lake / "events" / LABEL_PARTITION / "_SUCCESS").write_bytes(b"")  # bookkeeping files are ignored
    (lake / "events" / LABEL_PARTITION / ".part-0.parquet.crc").write_bytes(b"x")
    assert event_count(lake) == event_count(small_lake)
    (lake / "events" / LABEL_PARTITION / "part-1.csv").write_text("event_id\n1\n")
    with pytest.raises(LakeError, match=f"events/{LABEL_PARTITION}/part-1.csv: not a Parquet file"):
        DuckDBEngine(str(lake))
