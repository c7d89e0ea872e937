"""The ranking session: its steps only in order, its inputs checked, and the same candidate pairs after a
restore."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
import pytest

from testbed.core import feature_sql, model_inputs
from testbed.core.event_types import DEFAULT_VOCABULARY, DeclaredType, EventVocabulary
from testbed.core.feature_matrix import MatrixInputs
from testbed.core.ranking_session import RankingSession, SessionOrderError
from testbed.core.retail_default import retail_default

CUTOFF = datetime(2026, 10, 1, tzinfo=UTC)
USERS = pa.table({"user_id": ["u1", "u2"]})
ITEMS = pa.table({"item_id": ["i1", "i2", "i3"], "category": ["shoes", "home", "home"], "price": [10.0, 20.0, 5.0]})
ROWS = [("u1", "i1", "view", 1), ("u1", "i2", "purchase", 2), ("u2", "i3", "view", 3), ("u2", "i2", "purchase", -2)]
EVENTS = pa.table({
    "event_id": [f"e{i}" for i in range(len(ROWS))], "user_id": [r[0] for r in ROWS], "item_id": [r[1] for r in ROWS],
    "event_type": [r[2] for r in ROWS],
    "event_time": pa.array([CUTOFF - timedelta(days=r[3]) for r in ROWS], pa.timestamp("us", tz="UTC")),
    "price": pa.array([10.0, 20.0, 5.0, 20.0], pa.float64()), "quantity": pa.array([1, 2, 1, 1], pa.int32()),
})


SPEC = retail_default([7, 30])


def graded(**grades: int) -> EventVocabulary:
    """The default vocabulary with these grades (a type not named grades 0)."""
    return EventVocabulary(tuple(DeclaredType(t.name, grades.get(t.name, 0), conversion=t.conversion, click=t.click)
                                 for t in DEFAULT_VOCABULARY.types))
NAMES = SPEC.inputs or []  # what `testbed train` trains on


def ready(session: RankingSession) -> RankingSession:
    session.prepare(CUTOFF, [7, 30])
    session.candidates(USERS, 5)
    return session


def inputs(session: RankingSession) -> tuple[pa.Table, np.ndarray]:
    """The retail-default model inputs of the session's current candidate pairs."""
    tables = feature_sql.batch_tables(EVENTS, ITEMS, USERS, SPEC, CUTOFF)
    features = model_inputs.FeatureInputs(SPEC, MatrixInputs(ITEMS, USERS, tables, {}, CUTOFF))
    return model_inputs.for_candidates(session, features, NAMES)


@pytest.mark.parametrize(("call", "needs"), [
    (lambda s: s.candidates(USERS, 5), r"candidates needs prepare\(cutoff, windows\)"),
    (lambda s: s.candidate_pairs(), r"candidate_pairs needs prepare\(cutoff, windows\)"),
    (lambda s: s.pair_relevance(pa.table({"user_id": [], "item_id": [], "relevance": []})),
     r"pair_relevance needs candidate_pairs\(\)"),
    (lambda s: s.snapshot_candidates(), r"snapshot_candidates needs candidates\(users, n\)"),
    (lambda s: s.restore_candidates(), r"restore_candidates needs snapshot_candidates\(\)"),
    (lambda s: s.add_category_candidates(["i1"], 0), r"add_category_candidates needs candidates\(users, n\)"),
])
def test_a_step_called_too_early_says_what_it_needs(call: Callable[[RankingSession], object], needs: str) -> None:
    with RankingSession(EVENTS, ITEMS) as session, pytest.raises(SessionOrderError, match=needs):
        call(session)


def test_the_pairs_need_candidates() -> None:
    with RankingSession(EVENTS, ITEMS) as session:
        session.prepare(CUTOFF, [7])
        with pytest.raises(SessionOrderError, match=r"candidate_pairs needs candidates\(users, n\)"):
            session.candidate_pairs()


def test_inputs_are_checked() -> None:
    with RankingSession(EVENTS) as session:
        with pytest.raises(SessionOrderError, match="prepare needs an items table"):
            session.prepare(CUTOFF, [7])
        with pytest.raises(SessionOrderError, match="event_rows needs an items table"):
            session.event_rows(CUTOFF - timedelta(days=30), CUTOFF, [7])
        assert session.labels(CUTOFF - timedelta(days=3), CUTOFF, graded(view=1, purchase=3)).num_rows == 3


def test_a_new_candidate_list_needs_new_pairs() -> None:
    with ready(RankingSession(EVENTS, ITEMS)) as session:
        keys, values = inputs(session)
        assert values.shape == (keys.num_rows, len(NAMES)) and NAMES
        session.candidates(USERS, 1)
        with pytest.raises(SessionOrderError, match=r"pair_relevance needs candidate_pairs\(\)"):
            session.pair_relevance(pa.table({"user_id": [], "item_id": [], "relevance": []}))


def test_a_restored_candidate_list_gives_the_same_inputs() -> None:
    with ready(RankingSession(EVENTS, ITEMS)) as session:
        session.snapshot_candidates()
        keys, values = inputs(session)
        assert session.add_category_candidates(["i3"], 1_500_000) == 2  # both users shop home, i3's category
        assert session.candidate_pairs().num_rows == keys.num_rows + 2
        session.restore_candidates()
        again_keys, again = inputs(session)
        assert again_keys.equals(keys)
        assert np.array_equal(again, values, equal_nan=True)


def test_pair_relevance_follows_the_candidate_pairs() -> None:
    with ready(RankingSession(EVENTS, ITEMS)) as session:
        pairs = session.candidate_pairs()
        assert session.pair_relevance(session.labels(CUTOFF, CUTOFF + timedelta(days=7), graded(view=1))).tolist() == [
            0.0] * pairs.num_rows  # no event after the cutoff
        last = pairs.slice(pairs.num_rows - 1).to_pylist()[0]
        labels = pa.table({"user_id": [last["user_id"]], "item_id": [last["item_id"]], "relevance": [3]})
        assert session.pair_relevance(labels).tolist() == [0.0] * (pairs.num_rows - 1) + [3.0]


def test_return_lines_grade_no_label_and_carry_no_revenue() -> None:
    """Purchase lines with quantity -1 or 0 are returns: no label grade from them, no revenue (the view of the
    same item still grades it); a null quantity counts as 1."""
    rows = [("u1", "i1", "purchase", -1), ("u1", "i2", "purchase", 0), ("u1", "i2", "view", None),
            ("u2", "i1", "purchase", 2), ("u2", "i3", "purchase", None), ("u2", "i1", "purchase", -1)]
    events = pa.table({
        "event_id": [f"r{i}" for i in range(len(rows))], "user_id": [r[0] for r in rows],
        "item_id": [r[1] for r in rows], "event_type": [r[2] for r in rows],
        "event_time": pa.array([CUTOFF + timedelta(hours=i) for i in range(len(rows))], pa.timestamp("us", tz="UTC")),
        "price": pa.array([10.0, 20.0, 20.0, 10.0, 5.0, 10.0], pa.float64()),
        "quantity": pa.array([r[3] for r in rows], pa.int32())})
    with RankingSession(events, ITEMS) as session:
        labels = session.labels(CUTOFF, CUTOFF + timedelta(days=1), DEFAULT_VOCABULARY)
    assert labels.to_pylist() == [
        # the view; the 0-quantity line: nothing (not bought)
        {"user_id": "u1", "item_id": "i2", "relevance": 1, "revenue": 0.0, "purchased": False, "clicked": True},
        # the -1 line takes nothing away
        {"user_id": "u2", "item_id": "i1", "relevance": 3, "revenue": 20.0, "purchased": True, "clicked": False},
        {"user_id": "u2", "item_id": "i3", "relevance": 3, "revenue": 5.0, "purchased": True, "clicked": False}]
