"""Lake columns named like the slice's own columns (issue 11, case 7).

Before: a users/ column named draw, selected, stratum or inclusion_probability used as a stratum replaced the
seeded columns of the sampling SQL (or duplicated a published one). Now the SQL's own columns are namespaced,
so such a stratum samples exactly as under any other name, and the published columns of slice/users.parquet
(inclusion_probability, stratum) cannot come from the lake: exit 2 at validate, naming the column.
"""

from __future__ import annotations

import copy
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from testbed.adapters.duckdb_engine import DuckDBEngine
from testbed.core.slice_sql import SAMPLED_TABLE_PREFIX, render
from testbed.manifest import parse_manifest
from tests.conftest import BASE_MANIFEST
from tests.functional.test_input_errors import assert_one_line_error, call

MODELS = {"control": {"uri": "c", "sha256": "0" * 64}, "candidate": {"uri": "d", "sha256": "0" * 64}}


def lake_with_tier_named(small_lake: Path, target: Path, name: str) -> Path:
    """A copy of the lake whose users/ carry loyalty_tier a second time, under `name`."""
    shutil.copytree(small_lake, target)
    for path in (target / "users").rglob("*.parquet"):
        table = pq.read_table(path)
        pq.write_table(table.append_column(name, table.column("loyalty_tier")), path)
    return target


def sampled_users(lake: Path, strata: list[str], strategy: str) -> list[tuple[str, float]]:
    data = copy.deepcopy(BASE_MANIFEST) | {"models": MODELS}
    data["sampling"] = {"strategy": strategy, "rate": 0.3, "seed": 5, "strata": strata, "min_events_per_user": 1}
    queries = render(parse_manifest(data))
    engine = DuckDBEngine(str(lake))
    try:
        engine.materialise(SAMPLED_TABLE_PREFIX + "local", queries.sampling, queries.params)
        users = engine.query(queries.users)
    finally:
        engine.close()
    return list(zip(users.column("user_id").to_pylist(), users.column("inclusion_probability").to_pylist(),
                    strict=True))


@pytest.mark.parametrize("name", ["draw", "selected", "stratum_rank", "stratum_size", "pre_events"])
@pytest.mark.parametrize("strategy", ["stratified", "uniform"])
def test_a_stratum_named_like_an_internal_column_samples_as_any_other(
        name: str, strategy: str, small_lake: Path, tmp_path: Path) -> None:
    lake = lake_with_tier_named(small_lake, tmp_path / "lake", name)
    assert sampled_users(lake, [name], strategy) == sampled_users(small_lake, ["loyalty_tier"], strategy)


@pytest.mark.parametrize("name", ["inclusion_probability", "stratum"])
def test_a_users_column_named_like_a_published_slice_column_is_exit_2(
        name: str, small_lake: Path, tmp_path: Path, manifest_data: dict[str, Any],
        write_manifest: Callable[..., Path], capsys: pytest.CaptureFixture[str]) -> None:
    lake = lake_with_tier_named(small_lake, tmp_path / "lake", name)
    code, out, err = call(["validate", str(write_manifest(manifest_data)), "--lake", str(lake)], capsys)
    assert (code, out) == (2, "")
    assert_one_line_error(err, "users/", repr(name), "reserved")


def test_a_stratum_with_the_internal_prefix_is_exit_2(
        small_lake: Path, tmp_path: Path, manifest_data: dict[str, Any], write_manifest: Callable[..., Path],
        capsys: pytest.CaptureFixture[str]) -> None:
    lake = lake_with_tier_named(small_lake, tmp_path / "lake", "_tb_draw")
    manifest_data["sampling"] |= {"strategy": "stratified", "strata": ["_tb_draw"]}
    code, _, err = call(["validate", str(write_manifest(manifest_data)), "--lake", str(lake)], capsys)
    assert code == 2
    assert_one_line_error(err, "sampling.strata.0", "'_tb_draw'")
