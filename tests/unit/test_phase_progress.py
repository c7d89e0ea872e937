"""Progress of long work in phases (testbed.phase_progress) and the tree callback of core training."""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime

import numpy as np
import pytest

from testbed.core import training
from testbed.phase_progress import LivePhaseProgress, PhaseProgress, PlainPhaseProgress, make_phase_progress

TREE_LINE = re.compile(r"^train: trees (\d+)/100 \((\d+) %\), \d+\.\ds(, ETA \d+\.\ds)?$")


def _train_like(progress: PhaseProgress, trees: int = 100) -> None:
    """The calls train_model makes, in its order."""
    progress.begin("reading lake")
    progress.end("reading lake", {"events": 183998, "users": 4573})
    progress.begin("building training matrix")
    progress.end("building training matrix", {"rows": 265200, "users": 2652})
    progress.begin("boosting")
    for done in range(1, trees + 1):
        progress.trees(done, trees)
    progress.end("boosting", {"trees": trees})


def test_plain_lines_follow_the_phases_with_a_tree_line_per_tenth(capsys: pytest.CaptureFixture[str]) -> None:
    with PlainPhaseProgress("train") as progress:
        _train_like(progress)
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.splitlines()
    assert lines[:5] == ["train: reading lake ...",
                         "train: reading lake done in 0.0s (183,998 events, 4,573 users)",
                         "train: building training matrix ...",
                         "train: building training matrix done in 0.0s (265,200 rows, 2,652 users)",
                         "train: boosting ..."]
    assert lines[-1] == "train: boosting done in 0.0s (100 trees)"
    tree_lines = [TREE_LINE.match(line) for line in lines[5:-1]]
    assert all(tree_lines) and 1 <= len(tree_lines) <= 12
    done = [int(m.group(1)) for m in tree_lines if m]
    assert done == sorted(done) and done[-1] == 100
    assert [int(m.group(2)) for m in tree_lines if m] == list(range(10, 101, 10))
    assert "ETA" in lines[6] and "ETA" not in lines[-2]  # the last tree line has nothing left to estimate


def test_plain_lines_for_few_trees_show_each_one(capsys: pytest.CaptureFixture[str]) -> None:
    progress = PlainPhaseProgress("train")
    progress.begin("boosting")
    for done in range(1, 4):
        progress.trees(done, 3)
    assert [ln.split(" (")[0] for ln in capsys.readouterr().err.splitlines()[1:]] == [
        "train: trees 1/3", "train: trees 2/3", "train: trees 3/3"]


def test_quiet_shows_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    progress = make_phase_progress("train", quiet=True)
    assert type(progress) is PhaseProgress
    with progress:
        _train_like(progress)
    assert capsys.readouterr() == ("", "")


def test_non_terminal_gets_plain_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stderr", io.StringIO())
    assert isinstance(make_phase_progress("train"), PlainPhaseProgress)


def test_live_line_renders_phases_and_trees_on_a_terminal() -> None:
    stream = io.StringIO()
    with LivePhaseProgress("train", stream=stream) as progress:
        progress.begin("reading lake")
        progress.end("reading lake", {"events": 183998, "users": 4573})
        progress.begin("boosting")
        for done in range(1, 51):
            progress.trees(done, 100)
        assert "50/100 trees" in stream.getvalue() and "train: boosting" in stream.getvalue()  # the line, live
        progress.end("boosting", {"trees": 100})
    screen = stream.getvalue()
    assert "\x1b[" in screen  # drawn as a terminal, redrawn in place
    assert "train: reading lake in" in screen and "183,998 events, 4,573 users" in screen
    assert "train: boosting in" in screen and "100 trees" in screen


def _tiny_ranking_data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(5)
    groups = np.full(40, 25)
    x = rng.normal(size=(int(groups.sum()), 4))
    y = (x[:, 0] + rng.normal(scale=0.5, size=len(x)) > 1).astype(int)
    return x, y, groups


def test_the_tree_callback_counts_every_tree_and_leaves_the_model_byte_identical() -> None:
    x, y, groups = _tiny_ranking_data()
    names = ["a", "b", "c", "d"]
    cfg = training.TrainingConfig(cutoff=datetime(2026, 1, 1, tzinfo=UTC), label_end=datetime(2026, 1, 15, tzinfo=UTC),
                                  num_trees=20)
    heard: list[tuple[int, int]] = []
    watched = training.train(x, y, groups, names, cfg, on_tree=lambda done, total: heard.append((done, total)))
    unwatched = training.train(x, y, groups, names, cfg)
    assert heard == [(done, 20) for done in range(1, 21)]
    assert watched.model_to_string().encode() == unwatched.model_to_string().encode()
