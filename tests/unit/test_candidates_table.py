"""Candidates tables (manifest models.<role>.candidates, a model's own retrieval stage): the table's contract
(testbed.core.candidates_table), the file checks (testbed.pipeline.candidates_table: checksum, Parquet, unknown
items), the manifest's refusals and the session's given candidates. The exit-2 cases sit beside the rankings
file's (tests/unit/test_rankings_lists.py); the whole run is in tests/e2e/test_candidates_table.py."""

from __future__ import annotations

import copy
import hashlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from testbed.adapters.storage import UriStorage
from testbed.core import candidates_table, rankings_lists
from testbed.core.ranking_data import SOURCE_STRIDE, TABLE_SOURCE
from testbed.core.ranking_session import RankingSession
from testbed.errors import CandidatesTableError, ManifestError
from testbed.manifest import parse_manifest
from testbed.pipeline import candidates_table as candidates_file
from tests.conftest import BASE_MANIFEST

SOURCE = "manifest: models.candidate.candidates.uri (candidates.parquet)"
SHA = "a" * 64


def _manifest_data(candidate: dict[str, Any]) -> dict[str, Any]:
    data = copy.deepcopy(BASE_MANIFEST)
    data["models"] = {"control": {"uri": "control.txt", "sha256": SHA}, "candidate": candidate}
    return data


def _candidates(**columns: Any) -> pa.Table:
    base: dict[str, Any] = {"user_id": ["u2", "u1", "u1"], "item_id": ["a", "b", "a"],
                            "retrieval_score": [0.7, 0.5, 0.9], "source": ["als", "cooc", "als"]}
    base.update(columns)
    return pa.table({name: value for name, value in base.items() if value is not None})


def test_a_good_table_comes_back_sorted_with_nulls_for_the_optional_columns() -> None:
    checked = candidates_table.checked_candidates(_candidates(retrieval_score=None, source=None), 2, SOURCE)
    assert checked.column_names == list(candidates_table.COLUMNS)
    assert [(r["user_id"], r["item_id"]) for r in checked.to_pylist()] == [("u1", "a"), ("u1", "b"), ("u2", "a")]
    assert checked.column("retrieval_score").null_count == 3 and checked.column("source").null_count == 3
    assert candidates_table.checked_candidates(_candidates(retrieval_score=pa.array([1, 2, 3])), 2, SOURCE) \
        .schema.field("retrieval_score").type == pa.float64()


@pytest.mark.parametrize(("table", "says"), [
    (_candidates(item_id=["a", "a", "a"]), "duplicate (user_id, item_id) (example row: user_id='u1', item_id='a')"),
    (_candidates(user_id=["u1", "u1", "u1"], item_id=["a", "b", "c"]),
     "more than evaluation.candidates_per_user=2 candidates for a user (example row: user_id='u1', item_id='a')"),
    (_candidates(item_id=None), "required column item_id is missing"),
    (_candidates(user_id=None), "required column user_id is missing"),
    (_candidates(user_id=pa.array([1, 1, 2])), "column user_id has type int64, expected a string"),
    (_candidates(item_id=pa.array([1, 2, 1])), "column item_id has type int64, expected a string"),
    (_candidates(retrieval_score=["high", "low", "mid"]), "column retrieval_score has type string, expected a number"),
    (_candidates(source=pa.array([1, 2, 3])), "column source has type int64, expected a string"),
    (_candidates(user_id=["u2", None, "u1"]), "null user_id (example row: user_id=None, item_id='b')"),
    (_candidates(item_id=["a", None, "a"]), "null item_id (example row: user_id='u1', item_id=None)"),
    (_candidates().slice(0, 0), "the table has no rows"),
])
def test_a_broken_rule_is_one_line_naming_the_table_and_an_example_row(table: pa.Table, says: str) -> None:
    with pytest.raises(CandidatesTableError) as caught:
        candidates_table.checked_candidates(table, 2, SOURCE)
    message = str(caught.value)
    assert message.startswith(f"{SOURCE}: ") and says in message and "\n" not in message
    assert CandidatesTableError.exit_code == 2


def test_unknown_items_and_a_shards_users() -> None:
    checked = candidates_table.checked_candidates(_candidates(), 2, SOURCE)
    assert rankings_lists.unknown_item(checked, pa.array(["a", "b"])) is None
    assert rankings_lists.unknown_item(checked, pa.array(["a"])) == {
        "user_id": "u1", "item_id": "b", "retrieval_score": 0.5, "source": "cooc"}
    assert candidates_table.for_users(checked, pa.array(["u2"])).column("item_id").to_pylist() == ["a"]


def _manifest_with(path: Path, sha256: str | None = None) -> Any:
    return parse_manifest(_manifest_data({"uri": "candidate.txt", "sha256": SHA, "candidates": {
        "uri": str(path), "sha256": sha256 or hashlib.sha256(path.read_bytes()).hexdigest()}}))


@pytest.mark.parametrize(("write", "says"), [
    (lambda p: p.write_bytes(b"not parquet"), "not a readable Parquet file"),
    (lambda p: pq.write_table(_candidates(), p), "checksum mismatch"),
])
def test_a_file_that_is_not_the_pinned_parquet_is_exit_2_naming_it(tmp_path: Path, write: Any, says: str) -> None:
    path = tmp_path / "candidates.parquet"
    write(path)
    manifest = _manifest_with(path, "0" * 64 if says == "checksum mismatch" else None)
    with pytest.raises(CandidatesTableError) as caught:
        candidates_file.read(UriStorage(), manifest, "candidate")
    assert says in str(caught.value) and "models.candidate.candidates" in str(caught.value)


def test_the_manifest_refuses_candidates_where_they_cannot_apply() -> None:
    table = {"uri": "c.parquet", "sha256": "b" * 64}
    with pytest.raises(ManifestError, match="candidates: a rankings file"):
        parse_manifest(_manifest_data({"kind": "rankings", "uri": "lists.parquet", "sha256": SHA,
                                       "candidates": table}))
    data = _manifest_data({"uri": "candidate.txt", "sha256": SHA, "candidates": table})
    data["pii"] = {"mask": ["user_id"]}
    with pytest.raises(ManifestError, match="models.candidate.candidates: a candidates table lists raw user_ids"):
        parse_manifest(data)


def test_the_session_scores_exactly_the_given_pairs_in_retrieval_order() -> None:
    events = pa.table({"event_id": ["e1"], "event_time": pa.array([datetime(2026, 1, 1, tzinfo=UTC)]),
                       "user_id": ["u1"], "item_id": ["a"], "event_type": ["view"], "session_id": ["s"],
                       "quantity": pa.array([1]), "price": [1.0]})
    items = pa.table({"item_id": ["a", "b", "c"], "category": ["x", "x", "y"], "price": [1.0, 2.0, 3.0]})
    given = candidates_table.checked_candidates(_candidates(user_id=["u1", "u1", "u2"], item_id=["b", "c", "a"],
                                                            retrieval_score=[0.2, 0.9, None]), 5, SOURCE)
    with RankingSession(events, items) as session:
        session.prepare(datetime(2026, 1, 2, tzinfo=UTC), [7])
        session.given_candidates(pa.table({"user_id": ["u1"]}), given)
        pairs = session.candidate_pairs().to_pylist()
    base = TABLE_SOURCE * SOURCE_STRIDE
    assert pairs == [{"user_id": "u1", "item_id": "b", "priority": base + 2},  # u2 is not among the users
                     {"user_id": "u1", "item_id": "c", "priority": base + 1}]
