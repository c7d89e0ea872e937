"""Precomputed top-K lists (a model of kind rankings): the file's contract, checked on its Arrow table.

A rankings file holds one row per recommended item: `user_id` (string), `rank` (integer, 1 = first), `item_id`
(string) and an optional `score` (number). Within a user, ranks run 1..n (n <= evaluation.k) and items are
distinct. Every broken rule raises RankingsFileError naming the file and one example row.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.compute as pc

from testbed.errors import RankingsFileError

COLUMNS = ("user_id", "model", "rank", "item_id", "score")  # the score step's rankings, model = the role
AS_OF_KEYS = (b"as_of", b"created_at", b"generated_at")  # Parquet key-value metadata read as the lists' date


def _kind_ok(column: str, kind: pa.DataType) -> bool:
    if column in ("user_id", "item_id"):
        return bool(pa.types.is_string(kind) or pa.types.is_large_string(kind))
    if column == "rank":
        return bool(pa.types.is_integer(kind))
    return bool(pa.types.is_floating(kind) or pa.types.is_integer(kind) or pa.types.is_decimal(kind)
                or pa.types.is_null(kind))


def example(row: dict[str, object]) -> str:
    return ", ".join(f"{key}={value!r}" for key, value in row.items() if key in ("user_id", "rank", "item_id"))


def first_row(table: pa.Table, mask: pa.ChunkedArray | pa.Array) -> dict[str, object] | None:
    """The first row where `mask` holds, or None."""
    hits = table.filter(mask)
    return hits.slice(0, 1).to_pylist()[0] if hits.num_rows else None


def repeated_row(table: pa.Table, keys: list[str]) -> dict[str, object] | None:
    """The first row (in user, rank order) whose `keys` another row shares."""
    counts = table.group_by(keys).aggregate([([], "count_all")])
    repeated = counts.filter(pc.greater(counts.column("count_all"), 1)).drop_columns(["count_all"])
    if not repeated.num_rows:
        return None
    return first_row(table, pc.is_in(_key(table, keys), value_set=_key(repeated, keys).combine_chunks()))


def _key(table: pa.Table, keys: list[str]) -> pa.ChunkedArray:
    return pc.binary_join_element_wise(*[pc.cast(table.column(k), pa.string()) for k in keys], "\x1f")


def checked_lists(table: pa.Table, k: int, source: str) -> pa.Table:
    """The lists as user_id, rank (int32), item_id, score (float64, null when the file has none), sorted by
    user and rank; RankingsFileError("<source>: <rule> (example row: ...)") on the first rule broken."""
    for column in ("user_id", "rank", "item_id"):
        if column not in table.column_names:
            raise RankingsFileError(f"{source}: required column {column} is missing (columns: user_id, rank, "
                                    "item_id, optional score)")
    for column in ("user_id", "rank", "item_id", "score"):
        if column in table.column_names and not _kind_ok(column, table.schema.field(column).type):
            wanted = {"rank": "an integer", "score": "a number"}.get(column, "a string")
            raise RankingsFileError(f"{source}: column {column} has type {table.schema.field(column).type}, "
                                    f"expected {wanted}")
    if table.num_rows == 0:
        raise RankingsFileError(f"{source}: the file has no rows (a model must rank someone)")
    score = (pc.cast(table.column("score"), pa.float64()) if "score" in table.column_names
             else pa.nulls(table.num_rows, pa.float64()))
    lists = pa.table({"user_id": pc.cast(table.column("user_id"), pa.string()),
                      "rank": table.column("rank"), "item_id": pc.cast(table.column("item_id"), pa.string()),
                      "score": score})
    lists = lists.sort_by([("user_id", "ascending"), ("rank", "ascending"), ("item_id", "ascending")])
    for column in ("user_id", "rank", "item_id"):
        if (row := first_row(lists, pc.is_null(lists.column(column)))) is not None:
            raise RankingsFileError(f"{source}: null {column} (example row: {example(row)})")
    rank = lists.column("rank")
    if (row := first_row(lists, pc.less(rank, 1))) is not None:
        raise RankingsFileError(f"{source}: rank below 1 (ranks start at 1; example row: {example(row)})")
    if (row := first_row(lists, pc.greater(rank, k))) is not None:
        raise RankingsFileError(f"{source}: rank beyond evaluation.k={k} (example row: {example(row)})")
    if (row := repeated_row(lists, ["user_id", "rank"])) is not None:
        raise RankingsFileError(f"{source}: duplicate rank for a user (example row: {example(row)})")
    if (row := repeated_row(lists, ["user_id", "item_id"])) is not None:
        raise RankingsFileError(f"{source}: duplicate item for a user (example row: {example(row)})")
    sizes = lists.group_by("user_id").aggregate([("rank", "max"), ([], "count_all")])
    gaps = sizes.filter(pc.not_equal(sizes.column("rank_max"), sizes.column("count_all")))
    if gaps.num_rows:
        user = gaps.sort_by("user_id").column("user_id")[0].as_py()
        row = first_row(lists, pc.equal(lists.column("user_id"), user))
        assert row is not None
        raise RankingsFileError(f"{source}: a user's ranks skip a number (they must run 1, 2, ..., n; example "
                                f"row: {example(row)})")
    return lists.set_column(1, "rank", pc.cast(rank, pa.int32()))


def unknown_item(lists: pa.Table, known: pa.Array) -> dict[str, object] | None:
    """The first row whose item is not in `known` (the lake's items/), or None."""
    return first_row(lists, pc.invert(pc.is_in(lists.column("item_id"), value_set=known)))


def for_users(lists: pa.Table, users: pa.Array, role: str) -> pa.Table:
    """The lists of `users`, in the score step's columns with model = `role`."""
    mine = lists.filter(pc.is_in(lists.column("user_id"), value_set=users))
    return mine.add_column(1, "model", pa.array([role] * mine.num_rows, pa.string())).select(list(COLUMNS))


def declared_as_of(metadata: dict[bytes, bytes] | None) -> tuple[str, datetime] | None:
    """The lists' own date from the Parquet key-value metadata (`as_of`, `created_at` or `generated_at`, ISO-8601;
    a naive time is UTC), as (key, time); None when the file declares none that parses."""
    for key in AS_OF_KEYS:
        raw = (metadata or {}).get(key)
        if raw is None:
            continue
        try:
            when = datetime.fromisoformat(raw.decode().strip().replace("Z", "+00:00"))
        except (UnicodeDecodeError, ValueError):
            continue
        return key.decode(), when.astimezone(UTC) if when.tzinfo else when.replace(tzinfo=UTC)
    return None
