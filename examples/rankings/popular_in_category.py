"""A ranker that is not LightGBM: each user's top K are the most bought items of the category they interacted
with most before the cutoff (popularity by segment), written as a rankings file the testbed judges as it is.

    python examples/rankings/popular_in_category.py LAKE --cutoff 2026-10-17T00:00:00Z --k 10 --out lists.parquet

It reads only events before the cutoff, so its lists know nothing of the label window; the file's Parquet
metadata says so (`as_of` = the cutoff), which `testbed validate` compares with time.cutoff. Then, in the
manifest: `models: {candidate: {kind: rankings, uri: lists.parquet, sha256: <sha256sum lists.parquet>}}`.
"""

from __future__ import annotations

import argparse
import hashlib
from datetime import datetime
from pathlib import Path

import duckdb
import pyarrow.parquet as pq

# Interactions weigh by intent; ties break on item_id so the lists are reproducible.
LISTS_SQL = """
WITH history AS (
    SELECT e.user_id, e.item_id, i.category,
           CASE e.event_type WHEN 'purchase' THEN 3 WHEN 'add_to_cart' THEN 2 ELSE 1 END AS weight
    FROM read_parquet($events, hive_partitioning = true) e JOIN read_parquet($items) i USING (item_id)
    WHERE e.event_time < $cutoff
),
top_category AS (
    SELECT user_id, arg_max(category, total) AS category
    FROM (SELECT user_id, category, CAST(SUM(weight) AS DOUBLE) AS total FROM history GROUP BY user_id, category)
    GROUP BY user_id
),
popular AS (
    SELECT category, item_id,
           ROW_NUMBER() OVER (PARTITION BY category ORDER BY SUM(weight) DESC, item_id) AS position,
           CAST(SUM(weight) AS DOUBLE) AS score
    FROM history GROUP BY category, item_id
)
SELECT t.user_id, CAST(p.position AS INTEGER) AS rank, p.item_id, p.score
FROM top_category t JOIN popular p USING (category)
WHERE p.position <= $k
ORDER BY t.user_id, rank
"""


def write_lists(lake: Path, cutoff: datetime, k: int, out: Path) -> str:
    """Write the lists to `out` and return the file's SHA-256 (what the manifest pins)."""
    with duckdb.connect() as db:
        table = db.sql(LISTS_SQL, params={"events": str(lake / "events" / "**" / "*.parquet"),
                                          "items": str(lake / "items" / "*.parquet"), "cutoff": cutoff,
                                          "k": k}).to_arrow_table()
    table = table.replace_schema_metadata({"as_of": cutoff.isoformat()})
    pq.write_table(table, out)
    return hashlib.sha256(out.read_bytes()).hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("lake", type=Path)
    parser.add_argument("--cutoff", type=datetime.fromisoformat, required=True)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    print(write_lists(args.lake, args.cutoff, args.k, args.out))


if __name__ == "__main__":
    main()
