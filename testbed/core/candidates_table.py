"""A model's candidates from the user's own retrieval stage (manifest `models.<role>.candidates`): the table's
contract, checked on its Arrow table.

A candidates table holds one row per (user, candidate item) as of the cutoff: `user_id` (string), `item_id`
(string), an optional `retrieval_score` (number: the retrieval stage's own score, higher first) and an optional
`source` (string: which retriever found it). A user has at most evaluation.candidates_per_user rows and no item
twice. Every broken rule raises CandidatesTableError naming the table and one example row. testbed.core.rankings_lists
is the same kind of check for precomputed top-K lists.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from testbed.core.rankings_lists import example, first_row, repeated_row
from testbed.errors import CandidatesTableError

REQUIRED = ("user_id", "item_id")
COLUMNS = ("user_id", "item_id", "retrieval_score", "source")


def _kind_ok(column: str, kind: pa.DataType) -> bool:
    if column == "retrieval_score":
        return bool(pa.types.is_floating(kind) or pa.types.is_integer(kind) or pa.types.is_decimal(kind)
                    or pa.types.is_null(kind))
    return bool(pa.types.is_string(kind) or pa.types.is_large_string(kind)
                or (column == "source" and pa.types.is_null(kind)))


def _column(table: pa.Table, name: str, kind: pa.DataType) -> pa.ChunkedArray | pa.Array:
    return pc.cast(table.column(name), kind) if name in table.column_names else pa.nulls(table.num_rows, kind)


def checked_candidates(table: pa.Table, per_user: int, source: str) -> pa.Table:
    """The candidates as user_id, item_id, retrieval_score (float64), source (string; both null when the table
    has none), sorted by user and item; CandidatesTableError("<source>: <rule> (example row: ...)") on the first
    rule broken."""
    for column in REQUIRED:
        if column not in table.column_names:
            raise CandidatesTableError(f"{source}: required column {column} is missing (columns: user_id, item_id, "
                                       "optional retrieval_score, source)")
    for column in COLUMNS:
        if column in table.column_names and not _kind_ok(column, table.schema.field(column).type):
            wanted = "a number" if column == "retrieval_score" else "a string"
            raise CandidatesTableError(f"{source}: column {column} has type {table.schema.field(column).type}, "
                                       f"expected {wanted}")
    if table.num_rows == 0:
        raise CandidatesTableError(f"{source}: the table has no rows (a retrieval stage must give someone a "
                                   "candidate)")
    candidates = pa.table({"user_id": _column(table, "user_id", pa.string()),
                           "item_id": _column(table, "item_id", pa.string()),
                           "retrieval_score": _column(table, "retrieval_score", pa.float64()),
                           "source": _column(table, "source", pa.string())})
    candidates = candidates.sort_by([("user_id", "ascending"), ("item_id", "ascending")])
    for column in REQUIRED:
        if (row := first_row(candidates, pc.is_null(candidates.column(column)))) is not None:
            raise CandidatesTableError(f"{source}: null {column} (example row: {example(row)})")
    if (row := repeated_row(candidates, list(REQUIRED))) is not None:
        raise CandidatesTableError(f"{source}: duplicate (user_id, item_id) (example row: {example(row)})")
    sizes = candidates.group_by("user_id").aggregate([([], "count_all")])
    crowded = sizes.filter(pc.greater(sizes.column("count_all"), per_user))
    if crowded.num_rows:
        user = crowded.sort_by("user_id").column("user_id")[0].as_py()
        row = first_row(candidates, pc.equal(candidates.column("user_id"), user))
        raise CandidatesTableError(f"{source}: more than evaluation.candidates_per_user={per_user} candidates for "
                                   f"a user (example row: {example(row or {})})")
    return candidates


def for_users(candidates: pa.Table, users: pa.Array) -> pa.Table:
    """The candidates of `users` (a shard's members)."""
    return candidates.filter(pc.is_in(candidates.column("user_id"), value_set=users))
