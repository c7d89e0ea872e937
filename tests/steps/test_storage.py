"""MemoryStorage keeps UriStorage's semantics: create-only writes, sorted listings, the same fingerprint."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from testbed.adapters.storage import MemoryStorage, UriStorage


def test_if_absent_never_replaces() -> None:
    memory = MemoryStorage()
    assert memory.write_bytes("s3://b/k", b"one", if_absent=True)
    assert not memory.write_bytes("s3://b/k", b"two", if_absent=True)
    assert memory.read_bytes("s3://b/k") == b"one"
    assert memory.write_bytes("s3://b/k", b"two")
    assert memory.read_bytes("s3://b/k") == b"two"


def test_missing_objects_and_listings() -> None:
    memory = MemoryStorage()
    with pytest.raises(FileNotFoundError):
        memory.read_bytes("s3://b/nothing")
    for key in ("s3://b/p/z", "s3://b/p/a/b", "s3://b/q/x", "s3://b/p/a/a"):
        memory.write_bytes(key, b"")
    assert list(memory.list_keys("s3://b/p/")) == ["s3://b/p/a/a", "s3://b/p/a/b", "s3://b/p/z"]
    memory.delete(["s3://b/p/z", "s3://b/never"])
    assert not memory.exists("s3://b/p/z") and memory.exists("s3://b/q/x")


def test_json_and_parquet_bytes_match_the_uri_storage(tmp_path: Path) -> None:
    memory, local = MemoryStorage(), UriStorage()
    table = pa.table({"user_id": ["a", "b"], "score": [0.5, 0.25]})
    for storage, root in ((memory, "s3://b/run"), (local, str(tmp_path / "run"))):
        storage.write_json(f"{root}/doc.json", {"b": 1, "a": [1.5, None]})
        storage.write_parquet(f"{root}/t.parquet", table, bulky=True)
    assert memory.read_bytes("s3://b/run/doc.json") == (tmp_path / "run" / "doc.json").read_bytes()
    assert memory.read_bytes("s3://b/run/t.parquet") == (tmp_path / "run" / "t.parquet").read_bytes()
    assert memory.read_parquet("s3://b/run/t.parquet").equals(table)
    assert memory.bulky == {"s3://b/run/t.parquet"}
    assert memory.fingerprint("s3://b/run") == local.fingerprint(str(tmp_path / "run"))


def test_a_storage_without_client_reads_local_paths_only(tmp_path: Path) -> None:
    local = UriStorage()
    local.write_bytes(str(tmp_path / "x"), b"x")
    assert local.read_bytes(str(tmp_path / "x")) == b"x"
    with pytest.raises(ValueError, match="no S3 client"):
        local.read_bytes("s3://b/x")


def test_a_local_fingerprint_does_not_depend_on_where_the_folder_is(tmp_path: Path) -> None:
    storage = UriStorage()
    for root in (tmp_path / "a" / "lake", tmp_path / "b" / "deeper" / "lake"):
        storage.write_bytes(str(root / "events" / "event_date=2026-10-01" / "part-0.parquet"), b"rows")
        storage.write_bytes(str(root / "users" / "part-0.parquet"), b"people")
    assert storage.fingerprint(str(tmp_path / "a" / "lake")) == storage.fingerprint(str(tmp_path / "b/deeper/lake"))
    storage.write_bytes(str(tmp_path / "b" / "deeper" / "lake" / "users" / "part-1.parquet"), b"more")
    assert storage.fingerprint(str(tmp_path / "a" / "lake")) != storage.fingerprint(str(tmp_path / "b/deeper/lake"))
