"""The model inputs of candidate pairs under a feature set: one float64 row per pair, one column per feature.

One DuckDB query joins each pair to what its features read: its item and user rows, the aggregation tables
(by their keys; an attribute key of a missing item or user, or a null one, is '' as on the aggregation
side), the external tables as of the cutoff (per key the latest row strictly before it) and the pair's own
priority. Only identifiers the feature set declares (validated names, quoted) appear in the SQL; the cutoff
is a bound parameter and every value stays in the registered Arrow tables. Categorical codes, vectors and
derived features are computed in numpy afterwards. Rows are sorted by (user_id, item_id).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from testbed.core.duck import fetch
from testbed.core.feature_check import derived_trees, evaluation_order
from testbed.core.feature_expr import evaluate, references
from testbed.core.feature_spec import (
    ZERO_WHEN_EMPTY,
    Aggregation,
    Attribute,
    Context,
    ExternalColumn,
    ExternalTable,
    FeatureSet,
    epoch_us,
    key_column,
)
from testbed.core.ranking_data import SOURCE_STRIDE
from testbed.errors import FeatureSetError

Declaration = Aggregation | Attribute | Context | tuple[ExternalTable, ExternalColumn]


@dataclass(frozen=True)
class MatrixInputs:
    """What the features of a slice read besides the pairs. `external` tables are read and checksum-verified
    by the caller; `aggregations` are the batch tables, one per `FeatureSet.groups()` name (the lake-population
    ones computed over the lake's users, the rest over the slice's)."""

    items: pa.Table
    users: pa.Table
    aggregations: Mapping[str, pa.Table]
    external: Mapping[str, pa.Table]
    cutoff: datetime


def _q(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _key_value(key: str) -> str:
    """The pair's value of an aggregation key, spelled as on the aggregation side."""
    if key == "user_id":
        return "c.user_id"
    if key == "item_id":
        return "c.item_id"
    entity, _, column = key.partition(".")
    return f"coalesce({'it' if entity == 'item' else 'us'}.{_q(column)}, '')"


def needed_features(spec: FeatureSet, names: list[str]) -> set[str]:
    """`names` and everything their derived features read, transitively."""
    trees = derived_trees(spec)
    out: set[str] = set()
    stack = list(names)
    while stack:
        name = stack.pop()
        if name not in out:
            out.add(name)
            stack.extend(references(trees[name]) if name in trees else ())
    return out


class _Query:
    """The SELECT list and joins for the base (non-derived) features, with the tables they need registered."""

    def __init__(self, con: duckdb.DuckDBPyConnection, inputs: MatrixInputs) -> None:
        self.con, self.inputs = con, inputs
        self.select: list[str] = []
        self.outputs: list[tuple[str, Declaration]] = []  # (feature name, its declaration) per selected column
        self.joins: dict[str, str] = {}

    def column(self, sql: str, name: str, declaration: Declaration) -> None:
        self.select.append(f"{sql} AS v{len(self.select)}")
        self.outputs.append((name, declaration))

    def aggregation(self, agg: Aggregation) -> None:
        group = agg.table
        table = self.inputs.aggregations.get(group)
        if table is None:
            raise ValueError(f"no aggregation table {group} for feature {agg.name}")
        if agg.name not in table.column_names:
            raise ValueError(f"aggregation table {group} has no column {agg.name}")
        alias = f"a_{group}"
        if alias not in self.joins:
            self.con.register(f"agg_{group}", table)
            on = " AND ".join(f"{alias}.{_q(key_column(k))} = {_key_value(k)}" for k in agg.group_keys) or "TRUE"
            self.joins[alias] = f"LEFT JOIN agg_{group} {alias} ON {on}"
        value = f"{alias}.{_q(agg.name)}"
        self.column(f"CAST({f'coalesce({value}, 0)' if agg.operation in ZERO_WHEN_EMPTY else value} AS DOUBLE)",
                    agg.name, agg)

    def attribute(self, attr: Attribute) -> None:
        value = f"{'it' if attr.entity == 'item' else 'us'}.{_q(attr.column)}"
        self.column(value if attr.type == "categorical" else f"CAST({value} AS DOUBLE)", attr.name, attr)

    def external(self, index: int, table: ExternalTable, column: ExternalColumn) -> None:
        alias = f"x{index}"
        if alias not in self.joins:
            data = self.inputs.external.get(table.name)
            if data is None:
                raise ValueError(f"external table {table.name} was not given")
            self.con.register(f"ext_{index}", data)
            keys = ", ".join(_q(k) for k in table.keys)
            latest = (f"SELECT * FROM (SELECT *, rank() OVER (PARTITION BY {keys} ORDER BY "
                      f"{_q(table.timestamp)} DESC) AS r_ FROM ext_{index} WHERE epoch_us({_q(table.timestamp)}) < $1)"
                      " WHERE r_ = 1")
            self.con.execute(f"CREATE OR REPLACE TEMP TABLE latest_{index} AS {latest}",
                             [epoch_us(self.inputs.cutoff)]).fetchall()
            tied = self.con.execute(f"SELECT COUNT(*) FROM (SELECT {keys} FROM latest_{index} GROUP BY {keys} "
                                    "HAVING COUNT(*) > 1)").fetchall()[0][0]
            if tied:
                raise FeatureSetError(f"external table {table.name}: {tied} key(s) have two rows at their "
                                      f"latest {table.timestamp} before the cutoff")
            on = " AND ".join(f"{alias}.{_q(k)} = c.{k}" for k in table.keys)
            self.joins[alias] = f"LEFT JOIN latest_{index} {alias} ON {on}"
        value = f"{alias}.{_q(column.column)}"
        self.column(value if column.type == "vector" else f"CAST({value} AS DOUBLE)", column.name, (table, column))

    def run(self) -> pa.Table:
        columns = ", ".join(["c.user_id", "c.item_id", *self.select])
        joins = "\n".join(self.joins.values())
        return fetch(self.con, f"""
SELECT {columns}
FROM pairs c
LEFT JOIN items it ON it.item_id = c.item_id
LEFT JOIN users us ON us.user_id = c.user_id
{joins}
ORDER BY c.user_id, c.item_id""")


def _vector(values: pa.ChunkedArray, table: ExternalTable, column: ExternalColumn) -> np.ndarray:
    """A list column as rows × length float64 (a null list is a NaN row); another length is an error."""
    length = int(column.length or 0)
    array = values.combine_chunks()
    out = np.full((len(array), length), np.nan)
    valid = array.is_valid()
    present = array.filter(valid)
    wrong = pc.not_equal(pc.list_value_length(present), length)
    if pc.any(wrong).as_py():
        found = pc.list_value_length(present).filter(wrong)[0].as_py()
        raise FeatureSetError(f"external table {table.name}: column {column.column}: a row holds {found} values, "
                              f"the feature set declares length {length}")
    flat = pc.list_flatten(present).cast(pa.float64()).to_numpy(zero_copy_only=False)
    out[valid.to_numpy(zero_copy_only=False)] = flat.reshape(len(present), length)
    return out


def _scalar(values: pa.ChunkedArray, declaration: Declaration) -> np.ndarray:
    if isinstance(declaration, Attribute) and declaration.categories is not None:
        codes = pc.index_in(values.cast(pa.string()), value_set=pa.array(declaration.categories, pa.string()))
        values = codes.cast(pa.float64())
    return np.asarray(values.to_numpy(zero_copy_only=False), dtype=np.float64)  # NULL → NaN


def _base_values(spec: FeatureSet, needed: set[str], pairs: pa.Table,
                 inputs: MatrixInputs) -> tuple[pa.Table, list[tuple[str, Declaration]]]:
    """The joined rows (user_id, item_id, then one column per needed base feature) and what each column is."""
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.register("pairs", pairs)
        con.register("items", inputs.items)
        con.register("users", inputs.users)
        query = _Query(con, inputs)
        for agg in spec.aggregations:
            if agg.name in needed:
                query.aggregation(agg)
        for attr in spec.attributes:
            if attr.name in needed:
                query.attribute(attr)
        for index, table in enumerate(spec.external):
            for column in table.features:
                if column.name in needed:
                    query.external(index, table, column)
        for context in spec.context:
            if context.name in needed:
                query.column(f"CAST(floor(c.priority / {SOURCE_STRIDE}) AS DOUBLE)", context.name, context)
        return query.run(), query.outputs
    finally:
        con.close()


def feature_matrix(spec: FeatureSet, names: list[str], pairs: pa.Table,
                   inputs: MatrixInputs) -> tuple[pa.Table, np.ndarray]:
    """(keys [user_id, item_id], n_pairs × len(names) C-contiguous float64, NULL → NaN) for `pairs`
    (user_id, item_id, priority), rows sorted by (user_id, item_id), columns in `names` order."""
    declared = set(spec.names())
    unknown = [n for n in names if n not in declared]
    if unknown:
        raise FeatureSetError(f"feature set {spec.name}: no feature {unknown[0]}")
    vectors = [n for n in names if n in spec.vectors()]
    if vectors:
        raise FeatureSetError(f"feature set {spec.name}: {vectors[0]} is a vector, not a model input")
    needed = needed_features(spec, names)
    result, outputs = _base_values(spec, needed, pairs, inputs)
    scalars: dict[str, np.ndarray] = {}
    vector_values: dict[str, np.ndarray] = {}
    for i, (name, declaration) in enumerate(outputs):
        values = result.column(2 + i)
        if isinstance(declaration, tuple) and declaration[1].type == "vector":
            vector_values[name] = _vector(values, *declaration)
        else:
            scalars[name] = _scalar(values, declaration)
    trees = derived_trees(spec)
    for name in evaluation_order(trees, needed):
        scalars[name] = evaluate(trees[name], scalars, vector_values, rows=result.num_rows)
    out = np.empty((result.num_rows, len(names)), dtype=np.float64)
    for j, name in enumerate(names):
        out[:, j] = scalars[name]
    return result.select(["user_id", "item_id"]), out
