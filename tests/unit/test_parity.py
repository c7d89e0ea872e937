"""Parity of stream-built and batch-built feature tables: missing rows and differing values are both named."""

from __future__ import annotations

import pyarrow as pa

from testbed.core import parity
from testbed.core.features import feature_columns


def _items(ids: list[str], views: int, revenue: float) -> pa.Table:
    columns: dict[str, list[object]] = {"item_id": ids}
    for name in feature_columns("item", [7]):
        floating = "revenue" in name or "days" in name
        columns[name] = [revenue if floating else views] * len(ids)
    return pa.table(columns)


def test_rows_missing_on_either_side_are_mismatches_named_in_examples() -> None:
    report = parity.ParityReport()
    parity.compare_entity("item", _items(["a", "b"], 1, 2.0), _items(["a", "c"], 1, 2.0), report)
    assert (report.rows_stream, report.rows_batch, report.mismatches) == (2, 2, 2)
    assert report.features_mismatched == {"item:<row only in stream>": 1, "item:<row only in batch>": 1}
    assert [(e["key"], e["stream"], e["batch"]) for e in report.examples] == [
        ({"item_id": "b"}, "present", "absent"), ({"item_id": "c"}, "absent", "present")]
    assert {e["feature"] for e in report.examples} <= set(report.features_mismatched)


def test_values_differ_beyond_the_float_tolerance_only() -> None:
    report = parity.ParityReport()
    close = _items(["a"], 1, 2.0 + parity.FLOAT_TOLERANCE / 2)
    parity.compare_entity("item", close, _items(["a"], 1, 2.0), report)
    assert report.mismatches == 0
    parity.compare_entity("item", _items(["a"], 2, 2.01), _items(["a"], 1, 2.0), report)
    assert report.mismatches == 1
    assert set(report.features_mismatched) == set(feature_columns("item", [7]))  # counts and floats all differ
    first = report.examples[0]
    assert (first["feature"], first["stream"], first["batch"]) == ("i_views_7d", 2, 1)
