"""The run id comes from content (issue 14): the same lake, models, feature set and manifest copied to two
folders, each run from its own working directory, give one run id, and `testbed compare` says every input
is the same."""

from __future__ import annotations

import copy
import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from testbed.cli import main
from testbed.core.retail_default import SHIPPED
from tests.conftest import BASE_MANIFEST

pytestmark = pytest.mark.usefixtures("library_logs_off_stderr")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _copy_inputs(root: Path, lake: Path, models: dict[str, dict[str, str]]) -> Path:
    """lake/, models/, features/ and manifest.json under root; the manifest names its files relatively."""
    shutil.copytree(lake, root / "lake")
    (root / "models").mkdir()
    (root / "features").mkdir()
    shutil.copy(SHIPPED, root / "features" / "candidate.yaml")
    manifest: dict[str, Any] = copy.deepcopy(BASE_MANIFEST)
    manifest["models"] = {}
    for role, ref in models.items():
        shutil.copy(ref["uri"], root / "models" / f"{role}.txt")
        manifest["models"][role] = {"uri": f"models/{role}.txt", "sha256": ref["sha256"]}
    manifest["models"]["candidate"]["features"] = {"uri": "features/candidate.yaml",
                                                   "sha256": _sha256(root / "features" / "candidate.yaml")}
    path = root / "manifest.json"
    path.write_text(json.dumps(manifest))
    return path


def _run_from(root: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Path:
    """`testbed run manifest.json --lake lake --out out` from inside root, by relative paths only."""
    monkeypatch.chdir(root)
    code = main(["run", "manifest.json", "--lake", "lake", "--out", "out", "--quiet"])
    err = capsys.readouterr().err
    assert code in (0, 1, 3), err
    runs = sorted((root / "out" / "runs").iterdir())
    assert len(runs) == 1, runs
    return runs[0]


def test_same_inputs_in_two_folders_give_one_run_id_and_compare_says_same(
        small_lake: Path, small_models: dict[str, dict[str, str]], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    first, second = tmp_path / "first", tmp_path / "elsewhere" / "second"
    second.parent.mkdir()
    for root in (first, second):
        root.mkdir()
        _copy_inputs(root, small_lake, small_models)
    run_a, run_b = (_run_from(root, monkeypatch, capsys) for root in (first, second))

    assert run_a.name == run_b.name
    records = [json.loads((run / "run.json").read_text()) for run in (run_a, run_b)]
    assert records[0]["manifest_digest"] == records[1]["manifest_digest"]
    assert records[0]["lake_fingerprint"] == records[1]["lake_fingerprint"]
    assert records[0]["models"]["control"]["uri"] != records[1]["models"]["control"]["uri"]  # kept for people

    assert main(["compare", str(run_a), str(run_b), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["same_inputs"] == {"manifest": True, "lake": True, "code": True, "models": True, "slice": True}
    assert main(["compare", str(run_a), str(run_b)]) == 0
    inputs = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("inputs"))
    assert "different" not in inputs and inputs.count("same") == 5, inputs
