"""`testbed validate --lake` says what a lake cannot measure, one line each: no prices, no purchase or add_to_cart
events, return lines (quantity <= 0). The lake stays valid (exit 0)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from testbed.cli import main

REVENUE_GATE = {"name": "revenue-not-worse", "kind": "non_inferiority", "metric": "revenue@10", "margin": 0.05,
                "margin_type": "relative", "role": "guardrail"}


def _rewrite(lake: Path, dataset: str, edit: Callable[[pa.Table], pa.Table]) -> None:
    for path in sorted((lake / dataset).rglob("*.parquet")):
        pq.write_table(edit(pq.read_table(path, partitioning=None)), path)


def _null_prices(table: pa.Table) -> pa.Table:
    i = table.schema.get_field_index("price")
    return table.set_column(i, table.schema.field(i), pa.nulls(table.num_rows, table.schema.field(i).type))


def _without(event_type: str) -> Callable[[pa.Table], pa.Table]:
    return lambda table: table.filter(pc.not_equal(table.column("event_type"), event_type))


def _validate(lake: Path, manifest: dict[str, Any], write_manifest: Callable[..., Path],
              capsys: pytest.CaptureFixture[str]) -> list[str]:
    manifest["gates"] = [*manifest["gates"], REVENUE_GATE]
    code = main(["validate", str(write_manifest(manifest)), "--lake", str(lake)])
    out = capsys.readouterr().out
    assert code == 0, out
    return [line for line in out.splitlines() if line.startswith("note: ")]


@pytest.fixture
def lake(small_lake: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "lake"
    shutil.copytree(small_lake, copy)
    return copy


def test_the_generated_lake_can_measure_everything(lake: Path, manifest_data: dict[str, Any],
                                                   write_manifest: Callable[..., Path],
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    assert _validate(lake, manifest_data, write_manifest, capsys) == []


def test_a_lake_without_prices_says_revenue_cannot_be_estimated(lake: Path, manifest_data: dict[str, Any],
                                                                write_manifest: Callable[..., Path],
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    _rewrite(lake, "events", _null_prices)
    _rewrite(lake, "items", _null_prices)
    [line] = _validate(lake, manifest_data, write_manifest, capsys)
    assert line.startswith("note: the lake has no prices (items.price and events.price are all null): revenue@10 "
                           "and aov@10 cannot be estimated; gate revenue-not-worse will be INCONCLUSIVE; features ")
    assert "uc_revenue_7d" in line and line.endswith("will be all zero or empty")


def test_a_lake_without_purchases_or_carts_says_so(lake: Path, manifest_data: dict[str, Any],
                                                   write_manifest: Callable[..., Path],
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    _rewrite(lake, "events", lambda t: _without("add_to_cart")(_without("purchase")(t)))
    lines = _validate(lake, manifest_data, write_manifest, capsys)
    assert lines[0] == ("note: no purchase in the label window has a price and a quantity above 0: revenue@10 and "
                        "aov@10 cannot be estimated; gate revenue-not-worse will be INCONCLUSIVE")
    assert lines[1].startswith("note: the lake has no purchase events in the window: purchase grades no label; "
                               "features ")
    assert lines[2].startswith("note: the lake has no add_to_cart events in the window: add_to_cart grades no label")
    assert lines[3:] == ["note: no purchase line with a quantity above 0 in the label window: nobody converts; "
                         "conversion@10 and aov@10 cannot be estimated"]


def test_a_lake_without_views_says_click_through_cannot_be_estimated(lake: Path, manifest_data: dict[str, Any],
                                                                     write_manifest: Callable[..., Path],
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    _rewrite(lake, "events", _without("view"))
    manifest_data["gates"] = [*manifest_data["gates"], {"name": "ctr", "kind": "non_inferiority",
                                                        "metric": "click_through@10", "margin": 0.02}]
    assert _validate(lake, manifest_data, write_manifest, capsys) == [
        "note: no click event (view) in the label window: click_through@10 cannot be estimated; gate ctr will be "
        "INCONCLUSIVE"]


def test_return_lines_are_counted_and_said_to_be_ignored(lake: Path, manifest_data: dict[str, Any],
                                                         write_manifest: Callable[..., Path],
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    """Every purchase line of the lake's October 1 partition becomes a return (quantity -1)."""
    def returned(table: pa.Table) -> pa.Table:
        purchase = pc.equal(table.column("event_type"), "purchase")
        i = table.schema.get_field_index("quantity")
        quantity = pc.if_else(purchase, pa.scalar(-1, table.schema.field(i).type), table.column(i))
        return table.set_column(i, table.schema.field(i), quantity)

    partition = lake / "events" / "event_date=2026-10-01"
    purchases = sum(pc.sum(pc.equal(pq.read_table(p, partitioning=None).column("event_type"), "purchase")).as_py()
                    for p in partition.glob("*.parquet"))
    assert purchases > 0
    for path in partition.glob("*.parquet"):
        pq.write_table(returned(pq.read_table(path, partitioning=None)), path)
    assert _validate(lake, manifest_data, write_manifest, capsys) == [
        f"note: {purchases} purchase lines with quantity <= 0 (returns) in the window: ignored for labels and revenue"]
