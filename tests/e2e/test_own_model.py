"""The README's "Evaluate your own model", run as a user runs it: examples/own_model/evaluate_own_model.py.

A ranker trained with plain LightGBM on its own feature names (a categorical attribute, external tables with a
vector, derived features, aggregations over item and user attributes and over an event column) is evaluated
against the testbed-trained control end to end. The record must show its feature set, parity over every one of
its windowed features, a decision that is not ERROR, and drift with the declared definitions. The same model
without its feature set is refused before anything runs: exit 2, naming the feature, the model and the set.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from testbed.core.feature_check import load_feature_set
from testbed.core.model_text import categorical_indices

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "examples" / "own_model" / "evaluate_own_model.py"


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    work = tmp_path_factory.mktemp("own-model")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "POWERTOOLS_LOG_LEVEL": "WARNING"}
    done = subprocess.run([sys.executable, str(SCRIPT), "--dir", str(work), "--users", "900",
                           "--trees", "40"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600, check=False)
    return work, done


def _run_dir(work: Path) -> Path:
    runs = sorted((work / "runs").iterdir())
    assert len(runs) == 1, runs
    return runs[0]


def test_the_example_runs_end_to_end_with_a_decision(example: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    work, done = example
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    run = json.loads((_run_dir(work) / "run.json").read_text())
    exit_codes = {"PASS": 0, "FAIL": 1, "INCONCLUSIVE": 3}
    assert run["decision"] in exit_codes
    assert f"testbed run exited {exit_codes[run['decision']]}" in done.stdout


def test_the_record_names_the_feature_set_and_the_models_own_features(
        example: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    work, _ = example
    run = json.loads((_run_dir(work) / "run.json").read_text())
    spec = load_feature_set((work / "features.yaml").read_bytes(), "features.yaml")
    candidate, control = run["models"]["candidate"], run["models"]["control"]
    assert candidate["feature_set"]["digest"] == spec.digest()
    assert candidate["feature_set"]["uri"] == str(work / "features.yaml")
    assert "taste_match" in candidate["feature_names"] and "item_category" in candidate["feature_names"]
    assert control["feature_set"]["name"] == "retail-default" and "uri" not in control["feature_set"]
    model = (work / "my_ranker.txt").read_bytes()
    assert [candidate["feature_names"][i] for i in categorical_indices(model)] == ["item_category"]


def test_parity_covers_every_declared_windowed_feature(example: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    work, _ = example
    parity = json.loads((_run_dir(work) / "features" / "parity.json").read_text())
    spec = load_feature_set((work / "features.yaml").read_bytes(), "features.yaml")
    assert parity["mismatches"] == 0
    assert set(spec.groups()) <= set(parity["entities"])  # user_brand, user_item, global, ... all compared
    for group in spec.groups():
        assert parity["entities"][group]["rows_stream"] == parity["entities"][group]["rows_batch"] > 0


def test_drift_reports_declared_features_with_their_definitions(
        example: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    work, _ = example
    drift = json.loads((_run_dir(work) / "drift.json").read_text())
    reported = {f["feature"]: f for f in drift["features"]}
    reported.update({f["feature"]: f for f in drift["skipped"]})
    assert "brand_views_14d" in reported
    by_name = {f["feature"]: f for f in drift["features"]}
    assert by_name["brand_views_14d"]["definition"] == (
        "count of view events by user_id, item.brand in the 14d before the cutoff")


def test_the_model_without_its_feature_set_is_refused_naming_feature_model_and_set(
        example: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    work, _ = example
    manifest = json.loads((work / "manifest.json").read_text())
    del manifest["models"]["candidate"]["features"]
    path = work / "without-features.json"
    path.write_text(json.dumps(manifest))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "testbed", "validate", str(path), "--lake", str(work / "lake")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 2
    message = done.stderr.strip().splitlines()[0]
    assert "brand_views_14d" in message and "my_ranker.txt" in message and "retail-default" in message
    assert "Traceback" not in done.stderr


@pytest.mark.slow  # a second whole run of the example (~23 CPU-s); a FAIL run stays in tests/e2e/test_local_run.py
def test_a_model_taught_the_wrong_thing_fails_its_gates(
        example: tuple[Path, subprocess.CompletedProcess[str]], tmp_path: Path) -> None:
    """The verdict follows quality: the same features and training code, taught to rank what users did NOT go on
    to view or buy first, must FAIL against the control."""
    import lightgbm as lgb
    import numpy as np
    import pyarrow.parquet as pq

    sys.path.insert(0, str(SCRIPT.parent))
    from evaluate_own_model import FEATURES  # the example's own feature list

    work, _ = example
    table = pq.read_table(work / "training.parquet")
    user_ids = table.column("user_id").to_numpy(zero_copy_only=False)
    sizes = np.diff(np.flatnonzero(np.r_[True, user_ids[1:] != user_ids[:-1], True]))
    x = np.column_stack([table.column(n).to_numpy(zero_copy_only=False).astype(np.float64) for n in FEATURES])
    y = (table.column("relevance").to_numpy() == 0).astype(np.float64)  # the labels turned upside down
    booster = lgb.train({"objective": "lambdarank", "num_leaves": 31, "seed": 3, "deterministic": True,
                         "force_row_wise": True, "num_threads": 2, "verbose": -1},
                        lgb.Dataset(x, label=y, group=sizes, feature_name=FEATURES,
                                    categorical_feature=["item_category"]), num_boost_round=60)
    model = tmp_path / "inverted.txt"
    booster.save_model(str(model))
    manifest = json.loads((work / "manifest.json").read_text())
    manifest["name"] = "own-model-inverted"
    manifest["models"]["candidate"].update(uri=str(model), sha256=hashlib.sha256(model.read_bytes()).hexdigest())
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(manifest))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "POWERTOOLS_LOG_LEVEL": "WARNING"}
    done = subprocess.run([sys.executable, "-m", "testbed", "run", str(path), "--lake", str(work / "lake"),
                           "--out", str(tmp_path), "--quiet", "--json"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600, check=False)
    result = json.loads(done.stdout)
    assert (done.returncode, result["decision"]) == (1, "FAIL"), done.stderr[-2000:]
    assert any(g["name"] == "ndcg-not-worse" and g["outcome"] == "fail" for g in result["gates"])
