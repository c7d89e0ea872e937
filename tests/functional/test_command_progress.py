"""`testbed train` and `testbed generate` show their progress on stderr (plain lines off a terminal), nothing
with --quiet, and the same model either way."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from testbed.cli import main


def _train(lake: Path, out: Path, *extra: str) -> None:
    assert main(["train", "--lake", str(lake), "--out", str(out), "--users-rate", "0.1", "--trees", "40", *extra]) == 0


def test_train_shows_its_phases_and_trees_in_plain_lines_and_nothing_with_quiet(
        small_lake: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        library_logs_off_stderr: None) -> None:
    # 40 trees instead of the command's 150, and a tenth of the users: seconds on a loaded machine
    _train(small_lake, tmp_path / "shown.txt")
    out, err = capsys.readouterr()
    assert out.startswith(f"wrote {tmp_path / 'shown.txt'} (full, ")
    lines = err.splitlines()
    phases = [ln for ln in lines if not ln.startswith("train: trees ")]
    assert phases[0] == "train: reading lake ..."
    assert re.fullmatch(r"train: reading lake done in \d+\.\ds \([\d,]+ events, [\d,]+ users\)", phases[1])
    assert phases[2] == "train: building training matrix ..."
    assert re.fullmatch(r"train: building training matrix done in \d+\.\ds \([\d,]+ rows, [\d,]+ users\)", phases[3])
    assert phases[4] == "train: boosting ..." and re.fullmatch(r"train: boosting done in \d+\.\ds \(40 trees\)",
                                                                phases[5])
    assert phases[6] == "train: writing model ..." and phases[7].startswith("train: writing model done in ")
    trees = [int(re.match(r"train: trees (\d+)/40 ", ln).group(1))  # type: ignore[union-attr]
             for ln in lines if ln.startswith("train: trees ")]
    assert trees == list(range(4, 41, 4))
    assert lines[5].startswith("train: trees 4/40 ") and lines[14].startswith("train: trees 40/40 ")

    _train(small_lake, tmp_path / "quiet.txt", "--quiet")
    out, err = capsys.readouterr()
    assert err == "" and out.startswith("wrote ")
    assert (tmp_path / "quiet.txt").read_bytes() == (tmp_path / "shown.txt").read_bytes()


def test_generate_counts_its_event_files_and_is_silent_with_quiet(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tiny = ["--users", "60", "--days", "40", "--seed", "3"]
    assert main(["generate", "--out", str(tmp_path / "shown"), *tiny]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("wrote ")
    lines = err.splitlines()
    assert lines[0] == "generate: writing the lake ..."
    assert re.fullmatch(r"generate: writing the lake done in \d+\.\ds \([\d,]+ events, \d+ files\)", lines[-1])
    files = [re.fullmatch(r"generate: files (\d+)/(\d+) \(\d+ %\), \d+\.\ds(, ETA \d+\.\ds)?", ln)
             for ln in lines[1:-1]]
    assert all(files) and 1 <= len(files) <= 12
    assert files[-1] is not None and files[-1].group(1) == files[-1].group(2)

    assert main(["generate", "--out", str(tmp_path / "quiet"), *tiny, "--quiet"]) == 0
    assert capsys.readouterr().err == ""
