"""The local PII key file: created atomically, and a bad one is exit 2 naming the file (never the variable)."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest

from testbed import pii_key
from testbed.cli import main
from testbed.errors import LocalWriteError, PiiKeyFileError


def test_a_new_key_is_64_hex_digits_private_and_kept(tmp_path: Path) -> None:
    key = pii_key.ensure_key(tmp_path)
    path = pii_key.key_path(tmp_path)
    assert len(key) == 64 and int(key, 16) >= 0
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert pii_key.ensure_key(tmp_path) == key
    assert sorted(p.name for p in path.parent.iterdir()) == ["pii.key"]  # no temporary file left


def test_a_failed_write_leaves_no_key_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_fsync = os.fsync

    def disk_full(descriptor: int) -> None:
        real_fsync(descriptor)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(LocalWriteError, match="No space left on device") as caught:
        pii_key.ensure_key(tmp_path)
    assert str(pii_key.key_path(tmp_path)) in str(caught.value)
    assert list(pii_key.key_path(tmp_path).parent.iterdir()) == []
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert len(pii_key.ensure_key(tmp_path)) == 64  # the next run makes a whole key


def test_an_existing_key_is_never_replaced(tmp_path: Path) -> None:
    path = pii_key.key_path(tmp_path)
    path.parent.mkdir(parents=True)
    path.write_text("ab" * 32 + "\n")
    pii_key.create_key(path)  # a concurrent run that lost the race to create it
    assert path.read_text() == "ab" * 32 + "\n"


@pytest.mark.parametrize(("content", "problem"), [
    (b"", "is empty"), (b"0123abcd", "holds 8 characters"), (b"z" * 64, "holds 64 characters"),
    (b"\xff" * 64, "unreadable")])
def test_a_bad_key_file_is_an_input_error_naming_it(tmp_path: Path, content: bytes, problem: str) -> None:
    path = pii_key.key_path(tmp_path)
    path.parent.mkdir(parents=True)
    path.write_bytes(content)
    with pytest.raises(PiiKeyFileError, match=problem) as caught:
        pii_key.ensure_key(tmp_path)
    assert str(path) in str(caught.value) and caught.value.exit_code == 2
    assert path.read_bytes() == content


def test_run_with_an_empty_key_file_exits_2_naming_the_file(
        tmp_path: Path, manifest_data: dict[str, Any], write_manifest: Any, small_lake: Path,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("TESTBED_PII_SECRET")
    out = tmp_path / "out"
    pii_key.key_path(out).parent.mkdir(parents=True)
    pii_key.key_path(out).write_bytes(b"")
    code = main(["run", str(write_manifest(manifest_data)), "--lake", str(small_lake), "--out", str(out), "--quiet"])
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert str(pii_key.key_path(out)) in line and "TESTBED_PII_SECRET" not in line.split("(next:")[0]
    assert not (out / "runs").exists()
