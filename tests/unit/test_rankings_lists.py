"""Rankings files (manifest kind rankings): the lists' contract (testbed.core.rankings_lists), the manifest's
refusals, the leak date from Parquet metadata, and latency gates that are never a pass on such a model.
Whole runs and the lake checks (unknown items, leaks) are in tests/e2e/test_rankings_file.py."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from testbed.core import gates, rankings_lists
from testbed.errors import ManifestError, RankingsFileError
from testbed.manifest import Gate, parse_manifest
from tests.conftest import BASE_MANIFEST

SHA = "a" * 64
SOURCE = "manifest: models.candidate.uri (lists.parquet)"


def _lists(**columns: Any) -> pa.Table:
    base: dict[str, Any] = {"user_id": ["u1", "u1", "u2"], "rank": pa.array([1, 2, 1], pa.int64()),
                            "item_id": ["a", "b", "a"], "score": [0.9, 0.5, 0.7]}
    base.update(columns)
    return pa.table({name: value for name, value in base.items() if value is not None})


def test_good_lists_come_back_sorted_with_int32_ranks_and_a_null_score_when_absent() -> None:
    table = _lists(user_id=["u2", "u1", "u1"], item_id=["a", "b", "a"], rank=pa.array([1, 2, 1]), score=None)
    lists = rankings_lists.checked_lists(table, 10, SOURCE)
    assert lists.column("user_id").to_pylist() == ["u1", "u1", "u2"]
    assert lists.column("rank").to_pylist() == [1, 2, 1] and lists.schema.field("rank").type == pa.int32()
    assert lists.column("score").null_count == 3


@pytest.mark.parametrize(("table", "says"), [
    (_lists(rank=pa.array([1, 1, 1])), "duplicate rank for a user (example row: user_id='u1', rank=1, item_id='a')"),
    (_lists(item_id=["a", "a", "a"]), "duplicate item for a user (example row: user_id='u1', rank=1, item_id='a')"),
    (_lists(rank=pa.array([0, 1, 1])), "rank below 1 (ranks start at 1; example row: user_id='u1', rank=0"),
    (_lists(rank=pa.array([1, 11, 1])), "rank beyond evaluation.k=10 (example row: user_id='u1', rank=11"),
    (_lists(rank=pa.array([1, 3, 1])), "a user's ranks skip a number (they must run 1, 2, ..., n; example row: "
                                       "user_id='u1'"),
    (_lists(item_id=None), "required column item_id is missing"),
    (_lists(user_id=None), "required column user_id is missing"),
    (_lists(rank=pa.array([1.0, 2.0, 1.0])), "column rank has type double, expected an integer"),
    (_lists(user_id=pa.array([1, 1, 2])), "column user_id has type int64, expected a string"),
    (_lists(score=["high", "low", "mid"]), "column score has type string, expected a number"),
    (_lists(item_id=["a", None, "a"]), "null item_id (example row: user_id='u1', rank=2, item_id=None)"),
    (_lists().slice(0, 0), "the file has no rows"),
])
def test_a_broken_rule_is_one_line_naming_the_file_and_an_example_row(table: pa.Table, says: str) -> None:
    with pytest.raises(RankingsFileError) as caught:
        rankings_lists.checked_lists(table, 10, SOURCE)
    message = str(caught.value)
    assert message.startswith(f"{SOURCE}: ") and says in message and "\n" not in message


def test_unknown_items_and_a_shards_users() -> None:
    lists = rankings_lists.checked_lists(_lists(), 10, SOURCE)
    assert rankings_lists.unknown_item(lists, pa.array(["a", "b"])) is None
    assert rankings_lists.unknown_item(lists, pa.array(["a"])) == {"user_id": "u1", "rank": 2, "item_id": "b",
                                                                   "score": 0.5}
    mine = rankings_lists.for_users(lists, pa.array(["u2"]), "candidate")
    assert mine.column_names == list(rankings_lists.COLUMNS)
    assert mine.to_pylist() == [{"user_id": "u2", "model": "candidate", "rank": 1, "item_id": "a", "score": 0.7}]


@pytest.mark.parametrize(("metadata", "expected"), [
    ({b"as_of": b"2026-10-17T00:00:00Z"}, ("as_of", datetime(2026, 10, 17, tzinfo=UTC))),
    ({b"created_at": b"2026-10-20T12:00:00"}, ("created_at", datetime(2026, 10, 20, 12, tzinfo=UTC))),
    ({b"as_of": b"yesterday"}, None),
    ({b"pandas": b"{}"}, None),
    (None, None),
])
def test_the_lists_own_date_comes_from_the_parquet_metadata(metadata: dict[bytes, bytes] | None,
                                                          expected: tuple[str, datetime] | None) -> None:
    assert rankings_lists.declared_as_of(metadata) == expected


def _manifest(candidate: dict[str, Any], **changes: Any) -> dict[str, Any]:
    data = copy.deepcopy(BASE_MANIFEST)
    data["models"] = {"control": {"uri": "control.txt", "sha256": SHA}, "candidate": candidate}
    data.update(changes)
    return data


@pytest.mark.parametrize(("extra", "field"), [
    ({"features": {"uri": "f.yaml", "sha256": SHA}}, "models.candidate: features: a rankings file"),
    ({"seed_variants": [{"uri": "v.txt", "sha256": "b" * 64}]}, "models.candidate: seed_variants: a rankings file"),
    ({"kind": "xgboost"}, "models.candidate.kind: Input should be 'lightgbm' or 'rankings'"),
])
def test_the_manifest_refuses_model_fields_on_a_rankings_file(extra: dict[str, Any], field: str) -> None:
    with pytest.raises(ManifestError, match=field):
        parse_manifest(_manifest({"kind": "rankings", "uri": "lists.parquet", "sha256": SHA, **extra}))


def test_a_rankings_file_cannot_meet_a_masked_user_id() -> None:
    with pytest.raises(ManifestError, match="models.candidate.kind: a rankings file lists raw user_ids"):
        parse_manifest(_manifest({"kind": "rankings", "uri": "lists.parquet", "sha256": SHA},
                                 pii={"mask": ["email", "user_id"]}))


def test_kind_lightgbm_is_the_default_and_leaves_the_canonical_form_as_it_was() -> None:
    manifest = parse_manifest(_manifest({"uri": "candidate.txt", "sha256": SHA}))
    assert manifest.models.roles_of("lightgbm") == ["control", "candidate"]
    assert all("kind" not in model for model in json.loads(manifest.canonical_json())["models"].values())
    given = parse_manifest(_manifest({"kind": "rankings", "uri": "lists.parquet", "sha256": SHA}))
    assert given.models.roles_of("rankings") == ["candidate"]
    assert json.loads(given.canonical_json())["models"]["candidate"]["kind"] == "rankings"


@pytest.mark.parametrize("gate", [
    {"name": "p95", "kind": "latency", "bound": 100},
    {"name": "errors", "kind": "error_rate", "bound": 0.01},
    {"name": "ratio", "kind": "latency_ratio", "bound": 2.0},
])
def test_a_timing_gate_on_a_rankings_file_is_not_measurable_never_a_pass(gate: dict[str, Any]) -> None:
    timed = np.full(50, 1.0)
    inputs = gates.GateInputs(comparisons={}, aggregates={}, latency_ms={"control": timed, "candidate": timed},
                              error_rate={"control": 0.0, "candidate": 0.0}, latency_trusted=True,
                              latency_paired=True, untimed=("candidate",))
    (row,) = gates.evaluate([Gate.model_validate(gate)], inputs)
    assert row.outcome == "inconclusive" and row.role == "goal"
    assert row.reason.startswith("not measurable: candidate is a rankings file")
