"""An s3:// lake for a local run: only the window's event partitions are fetched, byte for byte."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from testbed.adapters.duckdb_engine import mirror_s3_lake
from testbed.adapters.embedded_aws import embedded_aws
from testbed.adapters.storage import UriStorage


def test_mirror_fetches_users_items_and_the_window_partitions(small_lake: Path) -> None:
    files = list(small_lake.rglob("*.parquet"))
    with embedded_aws() as aws:
        aws.client("s3").create_bucket(Bucket="retail-lake")
        storage = UriStorage(aws.client("s3"))
        for path in files:
            key = path.relative_to(small_lake).as_posix()
            storage.write_bytes(f"s3://retail-lake/exports/{key}", path.read_bytes())
        mirror = mirror_s3_lake(storage, "s3://retail-lake/exports", (date(2026, 10, 1), date(2026, 10, 3)))
    fetched = sorted(p.relative_to(mirror).as_posix() for p in mirror.rglob("*.parquet"))
    events = [f for f in fetched if f.startswith("events/")]
    assert {f.split("/")[1] for f in events} == {"event_date=2026-10-01", "event_date=2026-10-02",
                                                 "event_date=2026-10-03"}
    assert any(f.startswith("users/") for f in fetched) and any(f.startswith("items/") for f in fetched)
    for relative in fetched:
        assert (mirror / relative).read_bytes() == (small_lake / relative).read_bytes()
