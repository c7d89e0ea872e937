"""Batch SQL for a feature set's windowed aggregations: one DuckDB-dialect source, Athena (Trino) via sqlglot.

One statement per feature table (`FeatureSet.groups()`) over the slice's `events`, `items` and `users`:
the events in [cutoff - the table's longest window, cutoff), LEFT JOINed to their item and user when a key,
input or predicate names `item.x` / `user.x`, grouped by the keys (null → ''); each aggregation is one
aggregate with `FILTER (WHERE its window, event types, predicates)`, so a key seen by any event in the table's
longest window has a row even when a feature's own filter keeps none of its events. Semantics are
`testbed.core.feature_spec`'s; `testbed.core.feature_fold` is the independent numpy implementation they are
checked against.

A table whose aggregations count the lake's population (`Aggregation.reads == "lake"`: no user in keys, input
or `where`) reads `population_events` instead of `events`: the slice step's extract of every lake user's
pre-cutoff events (no user_id), so an item's popularity does not depend on which users were sampled.

Identifiers are validated names, quoted anyway. Every filter value (event types, `where` values) is a `?`
parameter with an explicit type (`CAST(? AS DOUBLE)`): comparisons then promote the way SQL's types say on
both engines, whatever the driver infers for a bare `?`. Times are rendered from the validated cutoff.
Trino has no epoch-microseconds function, so `epoch_us(t)` becomes `round(to_unixtime(t) * 1e6)`: exact to
the microsecond while |t| < 2^31 s (before 2038; the double's error there stays under 0.4 µs).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import duckdb
import pyarrow as pa
import sqlglot
from sqlglot import exp

from testbed.core.duck import fetch
from testbed.core.feature_spec import (
    REVENUE,
    US_PER_DAY,
    Aggregation,
    EventFilter,
    FeatureSet,
    column_source,
    epoch_us,
    key_column,
)
from testbed.core.slice_sql import quote

Dialect = Literal["duckdb", "trino"]
ALIAS = {"event": "e", "item": "i", "user": "u"}
BINARY = {"eq": "=", "ne": "<>", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}
DOUBLE = "CAST({} AS DOUBLE)"
REVENUE_CENTS = 'CAST(round(coalesce(e."price", 0) * coalesce(e."quantity", 1) * 100) AS BIGINT)'  # half away from 0


@dataclass(frozen=True)
class GroupQuery:
    sql: str
    params: tuple[Any, ...]  # bound in order of the `?` marks


def column_ref(name: str) -> str:
    """`item.brand` → i."brand", `price` → e."price" (the aliases of the statement's FROM)."""
    entity, column = column_source(name)
    return f"{ALIAS[entity]}.{quote(column)}"


def typed_param(value: object, params: list[Any]) -> str:
    """A `?` mark cast to the SQL type of the bound value (bool is checked before int: it is one)."""
    params.append(value)
    sql_type = ("BOOLEAN" if isinstance(value, bool) else "BIGINT" if isinstance(value, int)
                else "DOUBLE" if isinstance(value, float) else "VARCHAR")
    return f"CAST(? AS {sql_type})"


def predicate(flt: EventFilter, params: list[Any]) -> str:
    """One `where` predicate as the segment filters render it (testbed.core.slice_sql), values bound."""
    col = column_ref(flt.column)
    values = flt.value if isinstance(flt.value, list) else [flt.value]  # the model checked each op's arity
    if flt.op in BINARY:
        return f"{col} {BINARY[flt.op]} {typed_param(values[0], params)}"
    if flt.op in ("in", "not_in"):
        marks = ", ".join(typed_param(v, params) for v in values)
        return f"{col} {'IN' if flt.op == 'in' else 'NOT IN'} ({marks})"
    if flt.op == "between":
        return f"{col} BETWEEN {typed_param(values[0], params)} AND {typed_param(values[1], params)}"
    return f"{col} IS {'NULL' if flt.op == 'is_null' else 'NOT NULL'}"


def timestamp_literal(us: int) -> str:
    moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=us)
    return f"CAST('{moment.strftime('%Y-%m-%d %H:%M:%S.%f')}+00:00' AS TIMESTAMPTZ)"


def _aggregate(agg: Aggregation, cutoff_us: int, longest_us: int, params: list[Any]) -> str:
    """One aggregation's SELECT item; the `?` values of each FILTER it writes are appended to `params`."""
    bound: list[Any] = []
    conditions = []
    if agg.window_us < longest_us:
        conditions.append(f'e."event_time" >= {timestamp_literal(cutoff_us - agg.window_us)}')
    if agg.events:
        conditions.append(f'e."event_type" IN ({", ".join(typed_param(t, bound) for t in agg.events)})')
    conditions += [predicate(flt, bound) for flt in agg.where]
    revenue = agg.input == REVENUE
    value = REVENUE_CENTS if revenue else DOUBLE.format(column_ref(agg.input)) if agg.input else ""
    if agg.operation in ("mean", "last") and agg.input and not revenue:
        conditions.append(f"{value} IS NOT NULL")  # mean's count and last's latest row skip nulls
    clause = f" FILTER (WHERE {' AND '.join(conditions)})" if conditions else ""

    def filtered(call: str) -> str:  # mean writes its filter twice: bind its values twice
        params.extend(bound)
        return call + clause

    def money(cents: str) -> str:  # per-event or summed cents as dollars, the fold's exact float division
        return f"{DOUBLE.format(cents)} / CAST(100 AS DOUBLE)"

    op = agg.operation
    if op == "count":
        return filtered("COUNT(*)")
    if op == "count_distinct":
        return filtered(f"COUNT(DISTINCT {column_ref(str(agg.input))})")
    if op in ("days_since_first", "days_since_last"):
        moment = filtered(f"{'MIN' if op == 'days_since_first' else 'MAX'}(e.\"event_time\")")
        return f"{DOUBLE.format(f'{cutoff_us} - epoch_us({moment})')} / {DOUBLE.format(US_PER_DAY)}"
    if op == "sum":
        total = filtered(f"SUM({value})")
        return money(f"coalesce({total}, 0)") if revenue else f"coalesce({total}, CAST(0 AS DOUBLE))"
    if op == "mean":
        total = money(filtered(f"SUM({value})")) if revenue else filtered(f"SUM({value})")
        count = filtered("COUNT(*)")
        return f"{total} / {DOUBLE.format(f'nullif({count}, 0)')}"
    if op in ("min", "max"):
        extreme = filtered(f"{op.upper()}({value})")
        return money(extreme) if revenue else extreme
    latest = filtered(f'arg_max({value}, ROW(e."event_time", e."event_id"))')  # ties at one time: larger id
    return money(latest) if revenue else latest


def _trino_epoch_us(node: exp.Expression) -> exp.Expression:
    """DuckDB's epoch_us(t) as Trino's CAST(round(to_unixtime(t) * 1000000) AS BIGINT)."""
    if isinstance(node, exp.Anonymous) and node.name.lower() == "epoch_us":
        micros = exp.Mul(this=exp.TimeToUnix(this=node.expressions[0]), expression=exp.Literal.number(1_000_000))
        return exp.cast(exp.Round(this=micros), exp.DataType.build("BIGINT"))
    return node


def group_sql(aggs: list[Aggregation], cutoff_us: int) -> tuple[str, tuple[Any, ...]]:
    """One feature table's statement in DuckDB's dialect, and its parameters; it reads `population_events`
    when the table counts the lake's population, else `events`."""
    keys = aggs[0].group_keys
    longest = max(a.window_us for a in aggs)
    params: list[Any] = []
    items = [f"coalesce(CAST({column_ref(k)} AS VARCHAR), '') AS {quote(key_column(k))}" for k in keys]
    items += [f"{_aggregate(a, cutoff_us, longest, params)} AS {quote(a.name)}" for a in aggs]
    named = [*keys, *(a.input or "" for a in aggs), *(f.column for a in aggs for f in a.where)]
    entities = {column_source(n)[0] for n in named if n and n != REVENUE}
    joins = "".join(f" LEFT JOIN {table} AS {ALIAS[entity]} ON {ALIAS[entity]}.\"{entity}_id\" = e.\"{entity}_id\""
                    for entity, table in (("item", "items"), ("user", "users")) if entity in entities)
    positions = ", ".join(str(i + 1) for i in range(len(keys)))
    grouping = f" GROUP BY {positions} ORDER BY {positions}" if keys else ""
    window = (f'e."event_time" >= {timestamp_literal(cutoff_us - longest)}'
              f' AND e."event_time" < {timestamp_literal(cutoff_us)}')
    source = "population_events" if aggs[0].reads == "lake" else "events"
    sql = f"SELECT {', '.join(items)} FROM {source} AS e{joins} WHERE {window}{grouping}"
    return sql, tuple(params)


def batch_queries(spec: FeatureSet, cutoff_us: int, dialect: Dialect) -> dict[str, GroupQuery]:
    """Each feature table's statement and parameters, in `dialect`, tables as in `spec.groups()`."""
    out = {}
    for name, aggs in spec.groups().items():
        sql, params = group_sql(aggs, cutoff_us)
        if dialect == "trino":
            sql = sqlglot.parse_one(sql, read="duckdb").transform(_trino_epoch_us).sql(dialect="trino")
        out[name] = GroupQuery(sql=sql, params=params)
    return out


def batch_tables(events: pa.Table, items: pa.Table, users: pa.Table, spec: FeatureSet, cutoff: datetime, *,
                 population: pa.Table | None = None) -> dict[str, pa.Table]:
    """The feature tables of `spec` as of `cutoff`, computed by DuckDB; the lake-population tables over
    `population` (the slice's population extract), or over `events` when they are the lake's own (training)."""
    queries = batch_queries(spec, epoch_us(cutoff), "duckdb")
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        for name, table in (("events", events), ("items", items), ("users", users),
                            ("population_events", events if population is None else population)):
            con.register(name, table)
        return {name: fetch(con, q.sql, list(q.params)) for name, q in queries.items()}
    finally:
        con.close()
