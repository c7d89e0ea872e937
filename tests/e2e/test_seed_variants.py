"""Training variance as evidence (issue 16, point 3): seed variants of the models, declared in the manifest, are
scored in the run and metrics.json reports how much each gated delta moves between retrains; the reports show it
next to the sampling interval, and every report says what the intervals cover."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from testbed.local import run_local
from testbed.pipeline.train import train_model
from tests.conftest import MODEL_FEATURE_SETS

pytestmark = pytest.mark.slow  # trains three more models and runs them (~70 CPU-s); `.ci/run` runs -m slow


@pytest.fixture(scope="module")
def variants(small_lake: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict[str, str]]]:
    """The small models retrained identically but for the LightGBM seed: two of the candidate, one of the control."""
    root = tmp_path_factory.mktemp("seed-variants")
    out: dict[str, list[dict[str, str]]] = {}
    for role, seeds in (("control", (2,)), ("candidate", (2, 3))):
        for seed in seeds:
            path = root / f"{role}-seed{seed}.txt"
            train_model(str(small_lake), path, feature_set=MODEL_FEATURE_SETS[role], num_trees=30, seed=seed)
            out.setdefault(role, []).append({"uri": str(path), "sha256": hashlib.sha256(path.read_bytes()).hexdigest()})
    return out


def _run(manifest: dict[str, Any], lake: Path, root: Path) -> Path:
    root.mkdir()
    path = root / "manifest.json"
    path.write_text(json.dumps(manifest))
    return run_local(path, str(lake), root / "out").run_dir


def test_seed_variants_give_a_deterministic_spread_next_to_the_interval(
        manifest_data: dict[str, Any], variants: dict[str, list[dict[str, str]]], small_lake: Path,
        tmp_path: Path) -> None:
    for role, declared in variants.items():
        manifest_data["models"][role]["seed_variants"] = declared
    first, second = (_run(manifest_data, small_lake, tmp_path / name) for name in ("first", "second"))
    metrics = json.loads((first / "metrics.json").read_text())
    variance = metrics["training_variance"]
    assert variance == json.loads((second / "metrics.json").read_text())["training_variance"]  # deterministic

    models = manifest_data["models"]
    assert variance["retrains"] == [  # retrain i pairs the i-th variants; a model without one takes part itself
        {"control": models["control"]["sha256"], "candidate": models["candidate"]["sha256"]},
        {"control": variants["control"][0]["sha256"], "candidate": variants["candidate"][0]["sha256"]},
        {"control": models["control"]["sha256"], "candidate": variants["candidate"][1]["sha256"]}]
    assert list(variance["metrics"]) == ["ndcg@10"]  # the gated metric
    spread = variance["metrics"]["ndcg@10"]
    assert len(spread["deltas"]) == 3
    assert spread["deltas"][0] == pytest.approx(metrics["deltas"]["all"]["ndcg@10"]["delta"], abs=1e-12)
    assert spread["std"] > 0
    assert spread["min"] == min(spread["deltas"]) < spread["max"] == max(spread["deltas"])
    print(f"seed-to-seed spread of the ndcg@10 delta: {spread}")  # the figure the report quotes

    rankings = pq.read_table(first / "rankings.parquet")
    assert sorted(pc.unique(rankings.column("model")).to_pylist()) == ["candidate", "control"]
    record = json.loads((first / "run.json").read_text())
    assert [v["sha256"] for v in record["models"]["candidate"]["seed_variants"]] == [
        v["sha256"] for v in variants["candidate"]]

    shown = f"±{spread['std']:.4f}"
    markdown = (first / "report.md").read_text()
    assert f"moves by {shown} between retrains" in markdown
    assert "over users only" in markdown
    assert f"moves by {shown} between retrains" in (first / "report.html").read_text()
