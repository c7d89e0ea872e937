"""The what-if step on a real slice with the session's two small models: scoring identical to the score step."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from testbed.core import metrics
from testbed.core.whatif import pick_users
from testbed.errors import ManifestError
from testbed.pipeline import slice_data
from testbed.pipeline.score import run_score
from testbed.pipeline.whatif import run_whatif
from tests.functional.test_drift import manifest_data, prepare_run

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = [{"name": "cold-30", "kind": "cold_start_items", "items": 30},
             {"name": "grocery-down-50", "kind": "price_shift", "category": "grocery", "fraction": -0.5}]


@pytest.fixture(scope="module")
def scored(small_lake: Path, small_models: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Any:
    data = manifest_data(whatif={"scenarios": SCENARIOS, "max_users": 150, "seed": 5})
    data["models"] = small_models
    ctx, manifest = prepare_run(str(tmp_path_factory.mktemp("whatif") / "runs" / "w-000000000001"),
                                small_lake, data)
    run_score(ctx, manifest)
    labels = slice_data.labels(ctx, manifest)  # what evaluate writes; the what-if step builds them alike
    summary = run_whatif(ctx, manifest)
    return ctx, manifest, labels, summary, json.loads((Path(ctx.run_uri) / "whatif.json").read_text())


def test_whatif_shape_and_the_graceful_verdict(scored: Any) -> None:
    _, _, _, summary, document = scored
    assert summary == {"scenarios": 2, "more_graceful": document["more_graceful"]}
    assert document["users"] == 150 and document["k"] == 10
    assert document["more_graceful"] in ("control", "candidate", None)
    assert set(document["graceful_by"]["mean_relative_change"]) == {"control", "candidate"}
    assert [s["name"] for s in document["scenarios"]] == ["cold-30", "grocery-down-50"]
    cold, price = document["scenarios"]
    assert cold["kind"] == "cold_start_items" and cold["params"]["items"] == 30
    assert cold["params"]["candidate_rows_added"] > 150  # every user gets the new items of their categories
    assert price["params"] == {"category": "grocery", "fraction": -0.5}
    for scenario in document["scenarios"]:
        for role in ("control", "candidate"):
            model, base, delta = (scenario[key][role] for key in ("models", "baseline", "deltas_vs_baseline"))
            assert {"ndcg@10", "recall@10", "coverage@10", "new_item_share@10", "affected_item_share@10"} <= set(model)
            assert delta["ndcg@10"] == pytest.approx(model["ndcg@10"] - base["ndcg@10"])
            assert base["new_item_share@10"] == 0.0
    assert price["models"]["control"]["new_item_share@10"] == 0.0
    assert 0 < price["baseline"]["control"]["affected_item_share@10"] < 1  # grocery items hold some slots


def test_whatif_baseline_scores_exactly_like_the_score_step(scored: Any) -> None:
    ctx, _, labels, _, document = scored
    users = ctx.storage.read_parquet(ctx.uri("slice", "users.parquet")).column("user_id").to_pylist()
    chosen = pa.array(pick_users(users, document["users"], np.random.default_rng(document["seed"])), pa.string())
    rankings = ctx.storage.read_parquet(ctx.uri("scores", "shard-00000.parquet"))
    subset = rankings.filter(pc.is_in(rankings.column("user_id"), value_set=chosen))
    sub_labels = labels.filter(pc.is_in(labels.column("user_id"), value_set=chosen))
    catalogue = ctx.storage.read_json(ctx.uri("slice", "stats.json"))["catalogue_size"]
    expected = metrics.aggregate(metrics.per_user_metrics(subset, sub_labels, 10), subset, 10, catalogue)["models"]
    baseline = document["scenarios"][1]["baseline"]  # the price scenario: catalogue size unchanged
    for role in ("control", "candidate"):
        for name in ("ndcg@10", "recall@10", "mrr@10", "coverage@10", "users"):
            assert baseline[role][name] == pytest.approx(expected[role]["all"][name], rel=1e-12)


def test_whatif_is_deterministic(scored: Any) -> None:
    ctx, manifest, _, _, document = scored
    run_whatif(ctx, manifest)
    assert json.loads((Path(ctx.run_uri) / "whatif.json").read_text()) == document


def test_an_unknown_category_is_a_manifest_error(scored: Any) -> None:
    ctx, manifest, _, _, _ = scored
    spec = manifest.whatif
    scenario = spec.scenarios[1].model_copy(update={"category": "spaceships"})
    bad = manifest.model_copy(update={"whatif": spec.model_copy(update={"scenarios": [scenario]})})
    with pytest.raises(ManifestError, match=r"whatif\.scenarios\.0\.category: .*'spaceships'"):
        run_whatif(ctx, bad)


def test_no_whatif_block_writes_nothing(scored: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    ctx, manifest, _, _, _ = scored
    plain = manifest.model_copy(update={"whatif": None})
    touched: list[str] = []
    for name in ("read_json", "read_parquet", "read_bytes", "write_json", "write_parquet"):
        monkeypatch.setattr(ctx.storage, name, lambda uri, *_, _name=name, **__: touched.append(f"{_name} {uri}"))
    assert run_whatif(ctx, plain) == {"scenarios": 0, "skipped": "the manifest has no whatif block"}
    assert touched == []


def test_the_evaluate_handler_does_not_import_lightgbm() -> None:
    """The evaluate Lambda has no LightGBM layer: the what-if step, which scores, has it."""
    code = ("import sys; sys.path.insert(0, '.'); import functions.evaluate.handler; "
            "print('lightgbm' in sys.modules, 'scipy' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
