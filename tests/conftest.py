"""Shared fixtures: one small generated lake and two small trained models per test session (built once and
shared by the xdist workers of a session)."""

from __future__ import annotations

import copy
import fcntl
import hashlib
import json
import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from testbed.core.generate import LakeSpec, generate_lake
from testbed.observability import logger
from testbed.pipeline.train import train_model

SMALL_LAKE = LakeSpec(users=1500, days=120, seed=11)
PII_SECRET = "test-secret-0123456789abcdef"


# The order xdist hands test files out in (pyproject: --dist loadfile --no-loadscope-reorder): the own-model example
# first (it makes its own lake, so the other worker builds the shared one meanwhile), then the files of whole runs,
# and the many quick unit files last, so that both workers finish together.
FILE_ORDER = ("tests/e2e/test_own_model.py", "tests/e2e/", "tests/functional/", "tests/infra/", "tests/layers/",
              "tests/steps/", "tests/unit/")


def _file_rank(item: pytest.Item) -> int:
    return next((rank for rank, prefix in enumerate(FILE_ORDER) if item.nodeid.startswith(prefix)), len(FILE_ORDER))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=_file_rank)  # stable: each file's tests keep their order


@pytest.fixture(autouse=True, scope="session")
def _pii_secret() -> None:
    os.environ["TESTBED_PII_SECRET"] = PII_SECRET


@pytest.fixture(autouse=True, scope="session")
def _logger_on_the_session_stdout() -> None:
    """Create the shared Powertools logger before any test captures output: its handler keeps the stream it was
    created with, and a capsys stream is closed once its test ends (later writes and setStream would fail)."""
    logger()


@pytest.fixture
def library_logs_off_stderr() -> Iterator[None]:
    """A root handler of its own, so that library warnings never reach stderr, which the test reads whole."""
    handler = logging.NullHandler()
    logging.getLogger().addHandler(handler)
    yield
    logging.getLogger().removeHandler(handler)


def built_once(tmp_path_factory: pytest.TempPathFactory, name: str, build: Callable[[Path], object]) -> Path:
    """A folder `build` fills, made once per test session: the xdist workers of one session share it (the first
    to need it builds it under a lock, the others wait and reuse it; every build here is deterministic)."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        root = tmp_path_factory.mktemp(name)
        build(root)
        return root
    shared = tmp_path_factory.getbasetemp().parent  # this session's folder, above each worker's own
    root, done = shared / name, shared / f"{name}.built"
    with open(shared / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            root.mkdir(exist_ok=True)  # a worker that failed half-way left no marker
            build(root)
            done.touch()
    return root


@pytest.fixture(scope="session")
def small_lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return built_once(tmp_path_factory, "lake", lambda root: generate_lake(root, SMALL_LAKE))


MODEL_FEATURE_SETS = {"control": "control", "candidate": "full"}


@pytest.fixture(scope="session")
def small_models(small_lake: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, str]]:
    """{role: {uri, sha256}} for a popularity-only control and a full-feature candidate (few trees: fast)."""
    def train(root: Path) -> None:
        for role, feature_set in MODEL_FEATURE_SETS.items():
            train_model(str(small_lake), root / f"{role}.txt", feature_set=feature_set, num_trees=30)

    root = built_once(tmp_path_factory, "models", train)
    paths = {role: root / f"{role}.txt" for role in MODEL_FEATURE_SETS}
    return {role: {"uri": str(path), "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
            for role, path in paths.items()}


# attribution_users 0 turns TreeSHAP off: only the runs whose tests read attribution.json ask for it (ATTRIBUTION).
ATTRIBUTION = {"attribution_users": 20}
BASE_MANIFEST: dict[str, Any] = {
    "name": "small-test",
    "segment": {"name": "everyone", "filters": []},
    "time": {"start": "2026-08-02T00:00:00Z", "cutoff": "2026-10-17T00:00:00Z", "end": "2026-10-31T00:00:00Z"},
    "sampling": {"strategy": "uniform", "rate": 0.5, "seed": 3, "min_events_per_user": 1},
    "evaluation": {"k": 10, "candidates_per_user": 50, "latency_sample_users": 20, "attribution_users": 0},
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
