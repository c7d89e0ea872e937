"""The ranking session: its steps only in order, its inputs checked, and the same answers however it is fed."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
import pytest

from testbed.core.ranking_session import RankingSession, SessionOrderError, compute_features

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


def ready(session: RankingSession) -> RankingSession:
    session.prepare(CUTOFF, [7, 30])
    session.register_features(session.batch_features())
    session.candidates(USERS, 5)
    return session


@pytest.mark.parametrize(("call", "needs"), [
    (lambda s: s.batch_features(), r"batch_features needs prepare\(cutoff, windows\)"),
    (lambda s: s.candidates(USERS, 5), r"candidates needs prepare\(cutoff, windows\)"),
    (lambda s: s.matrix(), r"matrix needs prepare\(cutoff, windows\)"),
    (lambda s: s.matrix_values(["ui_events"]), r"matrix_values needs matrix\(\)"),
    (lambda s: s.matrix_relevance(pa.table({"user_id": [], "item_id": [], "relevance": []})),
     r"matrix_relevance needs matrix\(\)"),
    (lambda s: s.snapshot_candidates(), r"snapshot_candidates needs candidates\(users, n\)"),
    (lambda s: s.restore_candidates(), r"restore_candidates needs snapshot_candidates\(\)"),
    (lambda s: s.add_category_candidates(["i1"], 0), r"add_category_candidates needs candidates\(users, n\)"),
])
def test_a_step_called_too_early_says_what_it_needs(call: Callable[[RankingSession], object], needs: str) -> None:
    with RankingSession(EVENTS, ITEMS) as session, pytest.raises(SessionOrderError, match=needs):
        call(session)


def test_the_matrix_needs_candidates_and_feature_tables() -> None:
    with RankingSession(EVENTS, ITEMS) as session:
        session.prepare(CUTOFF, [7])
        with pytest.raises(SessionOrderError, match=r"matrix needs candidates\(users, n\)"):
            session.matrix()
        session.candidates(USERS, 5)
        with pytest.raises(SessionOrderError, match="matrix needs batch feature tables"):
            session.matrix()


def test_inputs_are_checked() -> None:
    with RankingSession(EVENTS) as session:
        with pytest.raises(SessionOrderError, match="prepare needs an items table"):
            session.prepare(CUTOFF, [7])
        with pytest.raises(SessionOrderError, match="event_rows needs an items table"):
            session.event_rows(CUTOFF - timedelta(days=30), CUTOFF, [7])
        assert session.labels(CUTOFF - timedelta(days=3), CUTOFF, {"view": 1, "purchase": 3}).num_rows == 3
        with pytest.raises(ValueError, match="batch feature tables missing: user_category"):
            session.register_features({"user": pa.table({}), "item": pa.table({})})


def test_a_new_candidate_list_needs_a_new_matrix() -> None:
    with ready(RankingSession(EVENTS, ITEMS)) as session:
        keys, names = session.matrix()
        assert session.matrix_values(names).shape == (keys.num_rows, len(names))
        session.candidates(USERS, 1)
        with pytest.raises(SessionOrderError, match=r"matrix_values needs matrix\(\)"):
            session.matrix_values(names)


def test_a_restored_candidate_list_gives_the_same_matrix() -> None:
    with ready(RankingSession(EVENTS, ITEMS)) as session:
        session.snapshot_candidates()
        keys, names = session.matrix()
        values = session.matrix_values(names)
        assert session.add_category_candidates(["i3"], 1_500_000) == 2  # both users shop home, i3's category
        assert session.matrix()[0].num_rows == keys.num_rows + 2
        session.restore_candidates()
        assert session.matrix()[0].equals(keys)
        assert np.array_equal(session.matrix_values(names), values, equal_nan=True)


def test_given_feature_tables_equal_computed_ones() -> None:
    tables = compute_features(EVENTS, ITEMS, CUTOFF, [7, 30])
    with ready(RankingSession(EVENTS, ITEMS)) as computed, RankingSession(EVENTS, ITEMS, tables) as given:
        given.prepare(CUTOFF, [7, 30])
        given.candidates(USERS, 5)
        a_keys, names = computed.matrix()
        b_keys, _ = given.matrix()
        assert a_keys.equals(b_keys)
        labels = given.labels(CUTOFF, CUTOFF + timedelta(days=7), {"view": 1})
        assert given.matrix_relevance(labels).tolist() == [0.0] * b_keys.num_rows
