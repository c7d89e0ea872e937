"""The unknown-item shares (testbed.core.catalogue) and what they do to the decision (testbed.core.gates)."""

from __future__ import annotations

import pyarrow as pa
import pytest

from testbed.core.catalogue import UnknownItems, count_unknown, notes, percent
from testbed.core.gates import GateResult, decide

LIMIT = 0.01
REASON_TAIL = "; fix the catalogue or raise evaluation.max_unknown_item_share"


def _unknown(events_share: float, label_items_share: float) -> UnknownItems:
    return UnknownItems(events=1, events_share=events_share, items=1, label_items=1,
                        label_items_share=label_items_share)


def _row(outcome: str) -> GateResult:
    return GateResult("ndcg", "non_inferiority", "ndcg@10", "all", 0.0, None, -0.02, 0.01, outcome, 100, "why")


def test_shares_count_events_distinct_items_and_label_items() -> None:
    events = pa.chunked_array([["a", "b", "x", "x"], ["y", "a", "b", "a"]])
    labels = pa.array(["a", "x", "b", "b", "a"])
    unknown = count_unknown(events, labels, pa.array(["a", "b", "c"], pa.large_string()))
    assert unknown == UnknownItems(events=3, events_share=3 / 8, items=2, label_items=1, label_items_share=1 / 5)


def test_no_events_or_labels_share_nothing() -> None:
    empty = pa.array([], pa.string())
    assert count_unknown(empty, empty, pa.array(["a"])) == UnknownItems(0, 0.0, 0, 0, 0.0)


def test_percent_never_rounds_a_missing_row_away() -> None:
    assert (percent(0.0), percent(0.00001), percent(0.0123), percent(1.0)) == ("0.00%", "<0.01%", "1.23%", "100.00%")


@pytest.mark.parametrize(("events", "labels"), [(0.02, 0.0), (0.0, 0.011), (0.3, 0.25)])
def test_either_share_above_the_limit_blocks(events: float, labels: float) -> None:
    blockers, warnings = notes(_unknown(events, labels), LIMIT)
    assert warnings == []
    assert blockers == [f"{percent(events)} of events ({percent(labels)} of label items) name items missing from "
                        f"items/ (limit 1.00%){REASON_TAIL}"]


def test_a_share_at_or_below_the_limit_warns() -> None:
    assert notes(_unknown(0.01, 0.004), LIMIT) == (
        [], ["1.00% of events (0.40% of label items) name items missing from items/ (limit 1.00%)"])


def test_a_complete_catalogue_says_nothing() -> None:
    assert notes(UnknownItems(0, 0.0, 0, 0, 0.0), LIMIT) == ([], [])


def test_a_blocker_makes_a_passing_run_inconclusive_but_a_failed_gate_stays_fail() -> None:
    assert decide([_row("pass")], 100, ["catalogue"]) == ("INCONCLUSIVE", ["catalogue"])
    decision, reasons = decide([_row("fail")], 100, ["catalogue"])
    assert decision == "FAIL" and "catalogue" not in reasons
    assert decide([_row("pass")], 100) == ("PASS", [])
