"""Shared fixtures: one small generated lake and two small trained models per test session."""

from __future__ import annotations

import copy
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pytest

from testbed.core.generate import LakeSpec, generate_lake
from testbed.pipeline.train import train_model

SMALL_LAKE = LakeSpec(users=1500, days=120, seed=11)
PII_SECRET = "test-secret-0123456789abcdef"


@pytest.fixture(autouse=True, scope="session")
def _pii_secret() -> None:
    os.environ["TESTBED_PII_SECRET"] = PII_SECRET


@pytest.fixture(scope="session")
def small_lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("lake")
    generate_lake(root, SMALL_LAKE)
    return root


@pytest.fixture(scope="session")
def small_models(small_lake: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, str]]:
    """{role: {uri, sha256}} for a popularity-only control and a full-feature candidate (few trees: fast)."""
    root = tmp_path_factory.mktemp("models")
    out = {}
    for role, feature_set in (("control", "control"), ("candidate", "full")):
        path = root / f"{role}.txt"
        train_model(str(small_lake), path, feature_set=feature_set, num_trees=30)
        out[role] = {"uri": str(path), "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
    return out


BASE_MANIFEST: dict[str, Any] = {
    "name": "small-test",
    "segment": {"name": "everyone", "filters": []},
    "time": {"start": "2026-08-02T00:00:00Z", "cutoff": "2026-10-17T00:00:00Z", "end": "2026-10-31T00:00:00Z"},
    "sampling": {"strategy": "uniform", "rate": 0.5, "seed": 3, "min_events_per_user": 1},
    "evaluation": {"k": 10, "candidates_per_user": 50, "latency_sample_users": 20},
    "gates": [
        {"name": "ndcg-not-worse", "kind": "non_inferiority", "metric": "ndcg@10", "margin": 0.02},
        {"name": "latency-p95", "kind": "latency", "percentile": 95, "bound": 1000},
    ],
    "pii": {"mask": ["email"]},
}


@pytest.fixture
def manifest_data(small_models: dict[str, dict[str, str]]) -> dict[str, Any]:
    """A valid manifest for the small lake; tests change a copy."""
    data = copy.deepcopy(BASE_MANIFEST)
    data["models"] = copy.deepcopy(small_models)
    return data


@pytest.fixture
def write_manifest(tmp_path: Path):  # type: ignore[no-untyped-def]
    def write(data: dict[str, Any], name: str = "manifest.json") -> Path:
        path = tmp_path / name
        path.write_text(json.dumps(data))
        return path

    return write
