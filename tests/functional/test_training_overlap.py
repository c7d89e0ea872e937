"""Training/evaluation overlap (issue 16, point 6): a model trained on events of the run's label window is a
warning in validate (and the run's record), or exit 2 with `evaluation.training_overlap: error`; a model without
a recorded window (trained outside the testbed) gets no warning and its overlap is unknown."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from testbed.cli import main
from testbed.invocation import Invocation
from testbed.pipeline.train import train_model
from testbed.pipeline.validate import validate

# the base manifest's label window is [2026-10-17, 2026-10-31): these labels, [2026-10-10, 2026-10-24), overlap it
OVERLAPPING_CUTOFF = datetime(2026, 10, 10, tzinfo=UTC)


@pytest.fixture(scope="module")
def overlapping_model(small_lake: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    path = tmp_path_factory.mktemp("overlap") / "candidate.txt"
    train_model(str(small_lake), path, cutoff=OVERLAPPING_CUTOFF, label_days=14, num_trees=10)
    return {"uri": str(path), "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}


@pytest.fixture(autouse=True)
def _quiet(library_logs_off_stderr: None) -> Iterator[None]:
    yield


def _validate(manifest: dict[str, Any], lake: Path) -> dict[str, Any]:
    return validate(Invocation.outside_lambda(), manifest, str(lake))


def test_a_model_trained_over_the_label_window_is_a_warning(
        manifest_data: dict[str, Any], overlapping_model: dict[str, str], small_lake: Path,
        write_manifest: Callable[..., Path], capsys: pytest.CaptureFixture[str]) -> None:
    manifest_data["models"]["candidate"] = overlapping_model
    result = _validate(manifest_data, small_lake)
    [line] = result["warnings"]
    assert line.startswith(f"models.candidate ({overlapping_model['uri']}) was trained on events of the run's "
                           "label window")
    assert "[2026-10-10T00:00:00+00:00, 2026-10-24T00:00:00+00:00)" in line  # the training labels
    assert "[2026-10-17T00:00:00+00:00, 2026-10-31T00:00:00+00:00)" in line  # the run's label window
    candidate = result["models"]["candidate"]
    assert candidate["training_overlap"] == "overlap"
    assert candidate["training"] == {"features_from": "2026-07-12T00:00:00+00:00",
                                     "cutoff": "2026-10-10T00:00:00+00:00", "label_end": "2026-10-24T00:00:00+00:00"}
    assert result["models"]["control"]["training_overlap"] == "none"  # trained with the default cutoff

    code = main(["validate", str(write_manifest(manifest_data)), "--lake", str(small_lake)])
    out, err = capsys.readouterr()
    assert (code, err) == (0, "")
    assert out.splitlines()[0] == f"warning: {line}"
    assert out.splitlines()[1].startswith("ok: manifest and lake are valid")


def test_training_overlap_error_exits_2_with_one_line(
        manifest_data: dict[str, Any], overlapping_model: dict[str, str], small_lake: Path,
        write_manifest: Callable[..., Path], capsys: pytest.CaptureFixture[str]) -> None:
    manifest_data["models"]["candidate"] = overlapping_model
    manifest_data["evaluation"]["training_overlap"] = "error"
    code = main(["validate", str(write_manifest(manifest_data)), "--lake", str(small_lake)])
    out, err = capsys.readouterr()
    assert (code, out) == (2, "")
    [line] = err.splitlines()
    assert line.startswith("testbed: error: manifest: models.candidate (")
    assert "training labels [2026-10-10T00:00:00+00:00, 2026-10-24T00:00:00+00:00)" in line
    assert "evaluation.training_overlap: error" in line
    assert "testbed train --cutoff" in line  # the hint


def test_the_option_is_left_out_of_the_manifest_digest_at_its_default(manifest_data: dict[str, Any],
                                                                      small_lake: Path) -> None:
    """Declaring the default changes nothing: the same run id as a manifest without the key."""
    plain = _validate(manifest_data, small_lake)["run_id"]
    manifest_data["evaluation"]["training_overlap"] = "warn"
    assert _validate(manifest_data, small_lake)["run_id"] == plain


def test_a_model_without_a_recorded_window_gets_no_warning(
        manifest_data: dict[str, Any], small_models: dict[str, dict[str, str]], small_lake: Path,
        tmp_path: Path, overlapping_model: dict[str, str]) -> None:
    """A plain LightGBM model file (no sidecar), and one whose sidecar describes another file: overlap unknown."""
    plain = tmp_path / "plain.txt"
    shutil.copyfile(small_models["candidate"]["uri"], plain)
    manifest_data["models"]["candidate"] = {"uri": str(plain), "sha256": small_models["candidate"]["sha256"]}
    stale = tmp_path / "stale.txt"
    shutil.copyfile(small_models["control"]["uri"], stale)
    sidecar = json.loads(Path(overlapping_model["uri"] + ".json").read_text())  # an overlapping window...
    Path(str(stale) + ".json").write_text(json.dumps(sidecar))  # ...recorded for another model's bytes
    manifest_data["models"]["control"] = {"uri": str(stale), "sha256": small_models["control"]["sha256"]}
    result = _validate(manifest_data, small_lake)
    assert "warnings" not in result
    for role in ("control", "candidate"):
        assert result["models"][role]["training_overlap"] == "unknown"
        assert "training" not in result["models"][role]
