"""Parity of stream-built and batch-built feature tables: missing rows and differing values are both named."""

from __future__ import annotations

import pyarrow as pa

from testbed.core import parity

ITEM_FEATURES = ["i_views_7d", "i_carts_7d", "i_purchases_7d", "i_revenue_7d", "i_days_since_last_event",
                 "i_days_since_last_purchase"]


def _items(ids: list[str], views: int, revenue: float) -> pa.Table:
    columns: dict[str, list[object]] = {"item_id": ids}
    for name in ITEM_FEATURES:
        floating = "revenue" in name or "days" in name
        columns[name] = [revenue if floating else views] * len(ids)
    return pa.table(columns)


def test_rows_missing_on_either_side_are_mismatches_named_in_examples() -> None:
    report = parity.ParityReport()
    parity.compare_entity("item", _items(["a", "b"], 1, 2.0), _items(["a", "c"], 1, 2.0), report, keys=["item_id"])
    assert (report.rows_stream, report.rows_batch, report.mismatches) == (2, 2, 2)
    assert report.features_mismatched == {"item:<row only in stream>": 1, "item:<row only in batch>": 1}
    assert [(e["key"], e["stream"], e["batch"]) for e in report.examples] == [
        ({"item_id": "b"}, "present", "absent"), ({"item_id": "c"}, "absent", "present")]
    assert {e["feature"] for e in report.examples} <= set(report.features_mismatched)


def test_values_differ_beyond_the_float_tolerance_only() -> None:
    report = parity.ParityReport()
    close = _items(["a"], 1, 2.0 + parity.FLOAT_TOLERANCE / 2)
    parity.compare_entity("item", close, _items(["a"], 1, 2.0), report, keys=["item_id"])
    assert report.mismatches == 0
    parity.compare_entity("item", _items(["a"], 2, 2.01), _items(["a"], 1, 2.0), report, keys=["item_id"])
    assert report.mismatches == 1
    assert set(report.features_mismatched) == set(ITEM_FEATURES)  # counts and floats all differ
    first = report.examples[0]
    assert (first["feature"], first["stream"], first["batch"]) == ("i_views_7d", 2, 1)


def test_tables_compare_on_their_own_keys_and_a_keyless_table_is_one_row() -> None:
    stream = {"brand": pa.table({"brand": ["", "b"], "n": [1, 2]}), "global": pa.table({"g": [3.0]})}
    batch = {"brand": pa.table({"brand": ["", "b"], "n": [1, 3]}), "global": pa.table({"g": [3.0]})}
    report = parity.compare(stream, batch, {"brand": ["brand"], "global": []})
    assert (report.mismatches, report.features_mismatched) == (1, {"n": 1})
    assert report.examples == [{"entity": "brand", "key": {"brand": "b"}, "feature": "n", "stream": 2, "batch": 3}]
    assert parity.compare(stream, stream, {"brand": ["brand"], "global": []}).mismatches == 0
    empty = {"brand": stream["brand"], "global": pa.table({"g": pa.array([], pa.float64())})}
    assert parity.compare(empty, stream, {"brand": ["brand"], "global": []}).features_mismatched == {
        "global:<row only in batch>": 1}


def test_float_tolerance_grows_with_the_value() -> None:
    big = 1e6
    within = {"t": pa.table({"k": ["a"], "x": [big + big * parity.RELATIVE_TOLERANCE / 2]})}
    beyond = {"t": pa.table({"k": ["a"], "x": [big + big * 1e-10]})}
    exact = {"t": pa.table({"k": ["a"], "x": [big]})}
    assert parity.compare(within, exact, {"t": ["k"]}).mismatches == 0
    assert parity.compare(beyond, exact, {"t": ["k"]}).mismatches == 1
