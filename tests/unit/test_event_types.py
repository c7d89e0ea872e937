"""Declared event types (manifest evaluation.event_types, testbed.core.event_types): the malformed vocabularies
that are exit 2 with one line naming the field, the lake check for undeclared types, feature sets that name an
undeclared type, and labels, revenue, clicks and drift rows that follow the declaration. The whole run on an
impression/click/purchase lake is tests/e2e/test_declared_events.py."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb
import pyarrow as pa
import pytest

from testbed.core import lake_contract
from testbed.core.event_types import DEFAULT_VOCABULARY, DeclaredType, EventVocabulary, type_in_sql
from testbed.core.feature_check import check_event_types
from testbed.core.ranking_session import RankingSession
from testbed.core.retail_default import retail_default
from testbed.errors import FeatureSetError, ManifestError
from testbed.manifest import Evaluation, parse_manifest
from tests.conftest import BASE_MANIFEST

CUTOFF = datetime(2026, 10, 1, tzinfo=UTC)
DECLARED = [{"name": "impression", "exposure": True}, {"name": "click", "relevance": 1, "click": True},
            {"name": "purchase", "relevance": 3, "conversion": True}]
VOCABULARY = EventVocabulary((DeclaredType("impression", 0, exposure=True), DeclaredType("click", 1, click=True),
                              DeclaredType("purchase", 3, conversion=True)))


def _manifest(event_types: Any, **evaluation: Any) -> dict[str, Any]:
    data = copy.deepcopy(BASE_MANIFEST)
    data["models"] = {"control": {"uri": "c.txt", "sha256": "0" * 64},
                      "candidate": {"uri": "d.txt", "sha256": "1" * 64}}
    data["evaluation"] = {**data["evaluation"], "event_types": event_types, **evaluation}
    return data


def _declared(**changes: Any) -> list[dict[str, Any]]:
    """DECLARED with the click type's entry changed (a key set to None is removed)."""
    types = copy.deepcopy(DECLARED)
    types[1].update(changes)
    types[1] = {k: v for k, v in types[1].items() if v is not None}
    return types


@pytest.mark.parametrize(("event_types", "evaluation", "says"), [
    ([], {}, "evaluation.event_types: List should have at least 1 item"),
    ("click", {}, "evaluation.event_types: Input should be a valid list"),
    ([*DECLARED, {"name": "click", "relevance": 2}], {}, "evaluation: event_types.3.name: 'click' is declared twice"),
    (_declared(name="Click"), {}, "evaluation.event_types.1.name: String should match pattern"),
    (_declared(name="click'; DROP TABLE events; --"), {}, "evaluation.event_types.1.name: String should match"),
    (_declared(name=None), {}, "evaluation.event_types.1.name: Field required"),
    (_declared(relevance=-1), {}, "evaluation.event_types.1.relevance: Input should be greater than or equal to 0"),
    (_declared(relevance=101), {}, "evaluation.event_types.1.relevance: Input should be less than or equal to 100"),
    (_declared(relevance=1.5), {}, "evaluation.event_types.1.relevance: Input should be a valid integer"),
    (_declared(grade=2), {}, "evaluation.event_types.1.grade: unknown key"),
    (_declared(click="yes"), {}, "evaluation.event_types.1.click: Input should be a valid boolean"),
    (_declared(exposure=True), {}, "evaluation.event_types.1: click: an exposure (shown, not acted on) cannot also "
                                   "be a click"),
    ([{"name": "impression", "exposure": True, "conversion": True, "relevance": 1}], {},
     "evaluation.event_types.0: conversion: an exposure (shown, not acted on) cannot also be a conversion"),
    ([{"name": "impression", "exposure": True}, {"name": "click", "click": True}], {},
     "evaluation: event_types: no type has a relevance above 0, so nothing could be a label"),
    (DECLARED, {"relevance": {"view": 0}}, "evaluation: relevance: give the grades in event_types[].relevance when "
                                           "event_types is declared"),
])
def test_a_malformed_vocabulary_is_one_line_naming_the_field(event_types: Any, evaluation: dict[str, Any],
                                                             says: str) -> None:
    with pytest.raises(ManifestError) as caught:
        parse_manifest(_manifest(event_types, **evaluation))
    message = str(caught.value)
    assert caught.value.exit_code == 2
    assert message.startswith(f"manifest: {says}") and "\n" not in message


def test_a_declared_vocabulary_is_what_the_run_reads_and_survives_the_canonical_manifest() -> None:
    manifest = parse_manifest(_manifest(DECLARED))
    assert manifest.evaluation.vocabulary() == VOCABULARY
    assert parse_manifest(manifest.model_dump(mode="json")) == manifest


def test_without_a_declaration_the_default_three_take_relevance_grades_and_the_manifest_is_unchanged() -> None:
    assert Evaluation().vocabulary() == DEFAULT_VOCABULARY
    assert DEFAULT_VOCABULARY.describe() == "view 1 (click), add_to_cart 2, purchase 3 (conversion)"
    regraded = Evaluation.model_validate({"relevance": {"view": 0, "purchase": 5}}).vocabulary()
    assert regraded.grades == {"view": 0, "add_to_cart": 2, "purchase": 5}
    assert regraded.conversions == ("purchase",) and regraded.clicks == ("view",)
    data = copy.deepcopy(BASE_MANIFEST)
    data["models"] = _manifest(DECLARED)["models"]
    assert "event_types" not in parse_manifest(data).canonical_json()  # run ids of such manifests do not move


def test_names_reach_sql_only_as_checked_literals() -> None:
    with pytest.raises(ValueError, match="does not match"):
        EventVocabulary((DeclaredType("it's", 1),))
    assert type_in_sql("e.event_type", ()) == "FALSE"
    assert type_in_sql("e.event_type", ("click",)) == "e.event_type = 'click'"
    assert type_in_sql("event_type", ("a", "b")) == "event_type IN ('a', 'b')"


@pytest.mark.parametrize(("types", "vocabulary", "example"), [
    (["purchase", "click", "view"], DEFAULT_VOCABULARY, ("e1", "click")),
    (["view", None], DEFAULT_VOCABULARY, ("e1", None)),
    (["click", "impression", "purchase"], VOCABULARY, None),
    (["click", "view"], VOCABULARY, ("e1", "view")),
])
def test_the_lake_check_names_an_undeclared_type_and_its_event(types: list[str | None], vocabulary: EventVocabulary,
                                                               example: tuple[str, str | None] | None) -> None:
    [sql] = [sql for _dataset, column, _problem, sql in lake_contract.row_checks("TRUE", "TRUE", vocabulary)
             if column == "event_type"]
    events = pa.table({"event_id": [f"e{i}" for i in range(len(types))], "event_type": pa.array(types, pa.string())})
    con = duckdb.connect()
    con.register("events", events)
    assert con.execute(sql).fetchone() == example


def test_a_feature_set_naming_an_undeclared_type_is_exit_2_naming_the_feature() -> None:
    check_event_types(retail_default([7]), DEFAULT_VOCABULARY.names, "retail-default")
    with pytest.raises(FeatureSetError) as caught:
        check_event_types(retail_default([7]), VOCABULARY.names, "retail-default")
    assert caught.value.exit_code == 2
    assert str(caught.value) == ("feature set retail-default: aggregations: feature u_views_7d: events: 'view' is "
                                 "not a declared event type (evaluation.event_types: impression, click, purchase)")


ROWS = [  # user, item, type, hours after the cutoff, price, quantity
    ("u1", "i1", "impression", 1, None, None), ("u1", "i1", "click", 2, 10.0, None),
    ("u1", "i2", "impression", 3, None, None),
    ("u1", "i3", "purchase", 4, 5.0, 2), ("u2", "i1", "purchase", 5, 10.0, -1), ("u2", "i1", "click", 6, 10.0, None),
    ("u2", "i4", "store_purchase", 7, 8.0, 1), ("u2", "i5", "impression", -5, None, None),
]


def _events() -> pa.Table:
    return pa.table({
        "event_id": [f"e{i}" for i in range(len(ROWS))], "user_id": [r[0] for r in ROWS],
        "item_id": [r[1] for r in ROWS], "event_type": [r[2] for r in ROWS],
        "event_time": pa.array([CUTOFF + timedelta(hours=r[3]) for r in ROWS], pa.timestamp("us", tz="UTC")),
        "price": pa.array([r[4] for r in ROWS], pa.float64()), "quantity": pa.array([r[5] for r in ROWS], pa.int32()),
        "position": pa.array([3 if r[2] == "impression" else None for r in ROWS], pa.int32())})


def test_labels_take_the_declared_grades_and_exposures_grade_nothing_by_default() -> None:
    with RankingSession(_events()) as session:
        labels = session.labels(CUTOFF, CUTOFF + timedelta(days=1), VOCABULARY)
    assert labels.to_pylist() == [
        {"user_id": "u1", "item_id": "i1", "relevance": 1, "revenue": 0.0, "purchased": False, "clicked": True},
        {"user_id": "u1", "item_id": "i3", "relevance": 3, "revenue": 10.0, "purchased": True, "clicked": False},
        # a return line (quantity -1) grades nothing; the click still does
        {"user_id": "u2", "item_id": "i1", "relevance": 1, "revenue": 0.0, "purchased": False, "clicked": True}]


def test_every_declared_conversion_carries_revenue_and_an_exposure_may_be_graded() -> None:
    vocabulary = EventVocabulary((*VOCABULARY.types[1:], DeclaredType("store_purchase", 2, conversion=True),
                                  DeclaredType("impression", 1, exposure=True)))
    with RankingSession(_events()) as session:
        labels = {(r["user_id"], r["item_id"]): r for r in
                  session.labels(CUTOFF, CUTOFF + timedelta(days=1), vocabulary).to_pylist()}
    assert labels["u2", "i4"] == {"user_id": "u2", "item_id": "i4", "relevance": 2, "revenue": 8.0,
                                  "purchased": True, "clicked": False}
    assert labels["u1", "i2"]["relevance"] == 1 and not labels["u1", "i2"]["clicked"]


def test_drift_rows_mark_the_declared_conversions() -> None:
    items = pa.table({"item_id": ["i1", "i3", "i4"], "category": ["a", "b", "b"], "price": [10.0, 5.0, 8.0]})
    vocabulary = EventVocabulary((*VOCABULARY.types, DeclaredType("store_purchase", 2, conversion=True)))
    with RankingSession(_events(), items) as session:
        rows = session.event_rows(CUTOFF - timedelta(days=1), CUTOFF + timedelta(days=1), [7], vocabulary)
    marked = {t for t, c in zip(rows.column("event_type").to_pylist(), rows.column("conversion").to_pylist(),
                                strict=True) if c}
    assert marked == {"purchase", "store_purchase"}
