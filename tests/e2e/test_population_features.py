"""Item features do not depend on who was sampled: the same users get the same item and global feature values
and the same rankings from both models at sampling rate 1.0 and at rate 0.3.

Uniform sampling with one seed keeps a user when its draw is below the rate, so the rate-0.3 slice's users are
a subset of the rate-1.0 slice's; the rows of those users are compared. Before the population extract, item
popularity was counted over the sampled users' events only, and both comparisons failed.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from testbed.cli import main
from tests.conftest import BASE_MANIFEST

pytestmark = pytest.mark.slow  # two whole runs (~40 CPU-s); `.ci/run` runs -m slow

ITEM_TABLES = ("batch_item.parquet", "batch_global.parquet")


def _run(models: dict[str, dict[str, str]], rate: float, root: Path) -> Path:
    manifest: dict[str, Any] = copy.deepcopy(BASE_MANIFEST)
    manifest["models"] = copy.deepcopy(models)
    manifest["sampling"] = {**manifest["sampling"], "rate": rate}
    path = root / f"manifest-{rate}.json"
    path.write_text(json.dumps(manifest))
    out = root / f"out-{rate}"
    assert main(["run", str(path), "--lake", str(root / "lake"), "--out", str(out), "--quiet"]) in (0, 1, 3)
    (run,) = (out / "runs").iterdir()
    return run


@pytest.fixture(scope="module")
def runs(small_lake: Path, small_models: dict[str, dict[str, str]],
         tmp_path_factory: pytest.TempPathFactory) -> dict[float, Path]:
    root = tmp_path_factory.mktemp("population")
    (root / "lake").symlink_to(small_lake)
    return {rate: _run(small_models, rate, root) for rate in (1.0, 0.3)}


def _users(run: Path) -> pa.Array:
    return pq.read_table(run / "slice" / "users.parquet").column("user_id").combine_chunks()


def _of_users(table: pa.Table, users: pa.Array) -> pa.Table:
    return table.filter(pc.is_in(table.column("user_id"), value_set=users)).sort_by(
        [("user_id", "ascending"), ("model", "ascending"), ("rank", "ascending")])


def test_the_sampled_users_are_a_subset(runs: dict[float, Path]) -> None:
    full, sampled = set(_users(runs[1.0]).to_pylist()), set(_users(runs[0.3]).to_pylist())
    assert sampled < full and 0.2 * len(full) < len(sampled) < 0.4 * len(full)


@pytest.mark.parametrize("table", ITEM_TABLES)
def test_item_and_global_features_are_the_same_at_both_rates(runs: dict[float, Path], table: str) -> None:
    full, sampled = (pq.read_table(runs[rate] / "features" / table) for rate in (1.0, 0.3))
    assert full.num_rows > 0
    assert sampled.equals(full)


def test_both_models_rank_the_same_users_alike_at_both_rates(runs: dict[float, Path]) -> None:
    users = _users(runs[0.3])
    full, sampled = (_of_users(pq.read_table(runs[rate] / "rankings.parquet"), users) for rate in (1.0, 0.3))
    assert set(sampled.column("model").to_pylist()) == {"control", "candidate"}
    assert sampled.num_rows >= 10 * len(users)
    assert sampled.select(["user_id", "model", "rank", "item_id"]).equals(
        full.select(["user_id", "model", "rank", "item_id"]))
    assert sampled.column("score").to_pylist() == pytest.approx(full.column("score").to_pylist(), abs=1e-12)
