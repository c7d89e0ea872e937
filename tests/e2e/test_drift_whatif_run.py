"""A whole local run whose manifest asks for catalogue what-ifs: drift.json and whatif.json in the record."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_local_run import cli_run, make_manifest
from tests.run_record_check import check_run_files

DRIFT_KEYS = {"feature", "table", "type", "method", "statistic", "threshold", "p_value", "psi", "psi_threshold",
              "drifted", "rank", "strata"}


@pytest.fixture(scope="module")
def run(small_models: dict[str, dict[str, str]], small_lake: Path,
        tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    manifest = make_manifest(
        small_models, name="whatif-run",
        sampling={"strategy": "stratified", "rate": 0.4, "seed": 3, "strata": ["loyalty_tier"]},
        whatif={"scenarios": [{"name": "cold-20", "kind": "cold_start_items", "items": 20},
                              {"name": "books-up-20", "kind": "price_shift", "category": "books", "fraction": 0.2}],
                "max_users": 200})
    code, run_dir = cli_run(manifest, small_lake, tmp_path_factory.mktemp("whatif-run") / "out")
    return {"code": code, "dir": run_dir}


def test_the_record_holds_drift_and_whatif(run: dict[str, Any]) -> None:
    record = json.loads((run["dir"] / "run.json").read_text())
    assert record["decision"] in ("PASS", "FAIL", "INCONCLUSIVE")
    assert {"drift.json", "whatif.json"} <= set(record["artifacts"])
    # written by their own steps, which ran beside evaluate and are timed like every other step
    assert {"evaluate", "drift", "whatif"} <= set(record["step_seconds"])


def test_every_file_of_the_record_is_a_published_document(run: dict[str, Any]) -> None:
    assert {"drift", "whatif", "run", "gates"} <= check_run_files(run["dir"])


def test_drift_json_shape(run: dict[str, Any]) -> None:
    document = json.loads((run["dir"] / "drift.json").read_text())
    assert document["baseline"]["kind"] == "population" and document["baseline"]["rows"] > 0
    assert document["drifted"] == sum(f["drifted"] for f in document["features"]) == 0
    for feature in document["features"]:
        assert DRIFT_KEYS <= set(feature)
        assert feature["method"] in ("ks", "wasserstein", "jensen_shannon", "chi_square")
        assert (feature["p_value"] is None) == (feature["method"] in ("wasserstein", "jensen_shannon"))
    assert {s["stratum"] for s in document["top_strata"]} <= {f"loyalty_tier={t}"
                                                             for t in ("none", "bronze", "silver", "gold")}
    for series in document["daily"].values():
        assert len(series["dates"]) == len(series["psi"]) and series["threshold"] == 0.2
        assert series["retrain_after"] is None or series["retrain_after"] in series["dates"]


def test_whatif_json_shape(run: dict[str, Any]) -> None:
    document = json.loads((run["dir"] / "whatif.json").read_text())
    assert [s["kind"] for s in document["scenarios"]] == ["cold_start_items", "price_shift"]
    assert document["more_graceful"] in ("control", "candidate", None)
    for scenario in document["scenarios"]:
        assert set(scenario["models"]) == set(scenario["deltas_vs_baseline"]) == {"control", "candidate"}
        assert "coverage@10" in scenario["models"]["candidate"] and "new_item_share@10" in scenario["models"]["control"]
