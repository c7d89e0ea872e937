"""Feature parity: the stream-built and batch-built tables must hold the same keys and the same values.

Each table is compared on its own key columns (a feature set's `table_keys()`; a table with no keys is one
row). Counts compare exactly. Floats compare within
|stream - batch| <= FLOAT_TOLERANCE + RELATIVE_TOLERANCE × |batch|: money (revenue in exact cents) and recency
come from integers by the same IEEE operations on both paths, so the absolute term alone covers them; a sum
or mean of a float input (price, a numeric column) is added up in a different order by DuckDB's parallel
aggregation than by the fold, which moves the last bits in proportion to the value's size, hence the
relative term (a few ulps of 2**-52 ≈ 2.2e-16; any real difference is far larger). Missing on one side (a key
the other path lacks, or a null where the other has a value) is a mismatch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import duckdb
import pyarrow as pa

from testbed.core.duck import fetch

FLOAT_TOLERANCE = 1e-9
RELATIVE_TOLERANCE = 1e-12
MAX_EXAMPLES = 20


@dataclass
class ParityReport:
    rows_stream: int = 0
    rows_batch: int = 0
    mismatches: int = 0
    features_mismatched: dict[str, int] = field(default_factory=dict)
    examples: list[dict[str, Any]] = field(default_factory=list)
    entities: dict[str, dict[str, int]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"rows_stream": self.rows_stream, "rows_batch": self.rows_batch, "mismatches": self.mismatches,
                "float_tolerance": FLOAT_TOLERANCE, "features_mismatched": self.features_mismatched,
                "examples": self.examples, "entities": self.entities}


def _differs(column: str, floating: bool) -> str:
    s, b = f's."{column}"', f'b."{column}"'
    if floating:
        return (f"(({s} IS NULL) <> ({b} IS NULL)"
                f" OR abs({s} - {b}) > {FLOAT_TOLERANCE} + {RELATIVE_TOLERANCE} * abs({b}))")
    return f"({s} IS DISTINCT FROM {b})"


def _clean(value: Any) -> Any:
    return None if isinstance(value, float) and math.isnan(value) else value


def _differing_rows(con: duckdb.DuckDBPyConnection, stream: pa.Table, batch: pa.Table, keys: list[str],
                    features: list[str]) -> pa.Table:
    """The rows of the full outer join on `keys` that are missing on one side or differ in a feature."""
    for alias, table in (("s", stream), ("b", batch)):  # a marker column tells a missing row from null keys
        con.register(f"{alias}_table", table)
        con.execute(f"CREATE OR REPLACE TEMP VIEW {alias} AS SELECT *, TRUE AS __present FROM {alias}_table")
    join = " AND ".join(f's."{k}" = b."{k}"' for k in keys) or "TRUE"
    flags = "".join(f", {_differs(c, pa.types.is_floating(batch.schema.field(c).type))} AS \"d_{c}\""
                    for c in features)
    key_cols = "".join(f'coalesce(s."{k}", b."{k}") AS "{k}", ' for k in keys)
    values = "".join(f', s."{c}" AS "s_{c}", b."{c}" AS "b_{c}"' for c in features)
    presence = "s.__present IS NULL AS only_batch, b.__present IS NULL AS only_stream"
    con.execute(f"CREATE OR REPLACE TEMP TABLE cmp AS SELECT {key_cols}{presence}{flags}{values} "
                f"FROM s FULL OUTER JOIN b ON {join}")
    any_diff = " OR ".join(["only_batch", "only_stream", *(f'"d_{c}"' for c in features)])
    order = " ORDER BY " + ", ".join(f'"{k}"' for k in keys) if keys else ""
    return fetch(con, f"SELECT * FROM cmp WHERE {any_diff}{order}")


def compare_entity(entity: str, stream: pa.Table, batch: pa.Table, report: ParityReport, *,
                   keys: Sequence[str], con: duckdb.DuckDBPyConnection | None = None) -> None:
    """Add one table's comparison (full outer join on its key columns) to `report`, in `con` if given (its
    temp names s, b, cmp are overwritten) or a connection of its own."""
    keys = list(keys)
    features = [c for c in batch.column_names if c not in keys]
    if sorted(stream.column_names) != sorted(batch.column_names):
        raise ValueError(f"{entity}: stream columns {stream.column_names} differ from batch {batch.column_names}")
    own = con is None
    con = duckdb.connect() if con is None else con
    try:
        bad = _differing_rows(con, stream, batch, keys, features)
    finally:
        if own:
            con.close()
    report.rows_stream += stream.num_rows
    report.rows_batch += batch.num_rows
    report.mismatches += bad.num_rows
    report.entities[entity] = {"rows_stream": stream.num_rows, "rows_batch": batch.num_rows,
                               "mismatches": bad.num_rows}
    for row in bad.to_pylist():
        if row["only_batch"] or row["only_stream"]:  # the whole row is missing on one side
            seen = {True: "present", False: "absent"}
            differing = [(f"{entity}:<row only in {'batch' if row['only_batch'] else 'stream'}>",
                          seen[bool(row["only_stream"])], seen[bool(row["only_batch"])])]
        else:
            differing = [(c, _clean(row[f"s_{c}"]), _clean(row[f"b_{c}"])) for c in features if row[f"d_{c}"]]
        for feature, stream_value, batch_value in differing:
            report.features_mismatched[feature] = report.features_mismatched.get(feature, 0) + 1
            if len(report.examples) < MAX_EXAMPLES:
                report.examples.append({"entity": entity, "key": {k: row[k] for k in keys}, "feature": feature,
                                        "stream": stream_value, "batch": batch_value})


def compare(stream: Mapping[str, pa.Table], batch: Mapping[str, pa.Table],
            keys: Mapping[str, Sequence[str]]) -> ParityReport:
    """Compare every table; `keys` maps table → key columns (a feature set's `FeatureSet.table_keys()`).
    A table present on one side only is an error."""
    tables = dict(keys)
    for side, given in (("stream", stream), ("batch", batch)):
        if set(given) != set(tables):
            raise ValueError(f"{side} tables {sorted(given)} are not the expected {sorted(tables)}")
    report = ParityReport()
    con = duckdb.connect()
    try:
        for entity, key_columns in tables.items():
            compare_entity(entity, stream[entity], batch[entity], report, keys=key_columns, con=con)
    finally:
        con.close()
    return report
