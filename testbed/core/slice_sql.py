"""Render the slice as SQL in the Athena (Trino) dialect, with filter values as `?` parameters.

The sampling (every eligible user with its stratum, inclusion probability and whether it was drawn) is one
statement, materialised once per slice (a DuckDB temp table, an Athena CTAS) as `sampled_table(run_id)`. The
sampled users (with inclusion probability), their events in [start, end) and the eligible users per stratum read
that table; the catalogue rows those events or the population extract touch are kept from the whole catalogue
(`CATALOGUE_SQL`, `slice_tables.touched_items`) rather than found by scanning the events twice more.
`plain_statements` gives the same users, events and items as single statements that each recompute the sampling
(validate and drift, which keep the touched catalogue rows the same way, and the bare-DuckDB benchmark baseline).
The sampling's own columns are namespaced (`INTERNAL_PREFIX`) so that no lake column used as a stratum can collide
with them. Column names are checked against the lake and quoted; values are bound; times are rendered from
validated datetimes.

The population extract takes no parameters: every lake user's events in
[max(start, cutoff - the longest lake-population window), cutoff), whatever the segment and the sample, with
only the columns the lake-population aggregations and the candidates' popularity read, and no user_id. Item
and category statistics are then the lake's, as production serves them, not the sampled users'.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from testbed.core.feature_spec import US_PER_DAY, FeatureSet
from testbed.core.lake_contract import revenue_cents_sql
from testbed.core.ranking_data import POPULARITY_DAYS
from testbed.core.sampling import REVENUE_FLOOR_SHARE, head_rate, uniform_draw_sql
from testbed.manifest import Filter, Manifest

Params = list[Any]
INTERNAL_PREFIX = "_tb_"  # the slice SQL's own columns; a stratum column with this prefix is refused at validate
ADDED_USER_COLUMNS = ("inclusion_probability", "stratum")  # published in slice/users.parquet next to users/'s own
POPULATION_COLUMNS = ("item_id", "event_time", "event_type")  # what the candidates' popularity reads
SAMPLED_TABLE_PREFIX = "tb_sampled_"  # + a hash of the run id: the Glue tables the slice step may create
CATALOGUE_SQL = "SELECT i.* FROM items i ORDER BY i.item_id"  # what slice_tables.touched_items filters


@dataclass(frozen=True)
class PopulationExtract:
    """Every lake user's events in [start, cutoff), projected to `columns` (never user_id)."""

    start: datetime
    columns: tuple[str, ...]


def population_extract(manifest: Manifest, spec: FeatureSet | None = None) -> PopulationExtract:
    """What the run's lake-population aggregations (`spec`'s) and the candidates' popularity read."""
    t = manifest.time
    longest = max(spec.longest_lake_window_us() if spec else 0, POPULARITY_DAYS * US_PER_DAY)
    extra = sorted((spec.lake_event_columns() if spec else set()) - set(POPULATION_COLUMNS))
    return PopulationExtract(max(t.start, t.cutoff - timedelta(microseconds=longest)),
                             (*POPULATION_COLUMNS, *extra))


@dataclass(frozen=True)
class SliceQueries:
    sampling: str  # every eligible user: id, strata, _tb_inclusion_probability, _tb_selected; materialised once
    params: tuple[Any, ...]  # bound to `sampling`: the segment filter values, in order
    users: str  # the statements below read the materialised sampling and take no parameters
    events: str
    population: str  # eligible users per stratum (for sample-ratio checks and inclusion probabilities)
    population_events: str  # the population extract
    catalogue: str  # every items/ row by item_id: the step keeps those the events or the extract touch


def sampled_table(run_id: str) -> str:
    """The name of a run's materialised sampling: lowercase hex only (a valid Glue table name whatever the run
    id), with a fixed prefix that IAM grants and teardown match."""
    return SAMPLED_TABLE_PREFIX + hashlib.sha256(run_id.encode()).hexdigest()[:24]


def quote(identifier: str) -> str:
    """Quote an identifier that was already validated against the lake's columns."""
    return '"' + identifier.replace('"', '""') + '"'


def ts_literal(value: datetime) -> str:
    return f"TIMESTAMP '{value.strftime('%Y-%m-%d %H:%M:%S.%f')}'"


def partition_range(start: datetime, end: datetime) -> tuple[date, date]:
    """Event-date partitions that can hold events in [start, end)."""
    last = (end - timedelta(microseconds=1)).date()
    return start.date(), last


def _predicate(flt: Filter, params: Params) -> str:
    col = f"u.{quote(flt.column)}"
    binary = {"eq": "=", "ne": "<>", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}
    if flt.op in binary:
        params.append(flt.value)
        return f"{col} {binary[flt.op]} ?"
    if flt.op in ("in", "not_in"):
        assert isinstance(flt.value, list)
        params.extend(flt.value)
        marks = ", ".join("?" for _ in flt.value)
        return f"{col} {'IN' if flt.op == 'in' else 'NOT IN'} ({marks})"
    if flt.op == "between":
        assert isinstance(flt.value, list)
        params.extend(flt.value)
        return f"{col} BETWEEN ? AND ?"
    return f"{col} IS {'NULL' if flt.op == 'is_null' else 'NOT NULL'}"


def partition_predicate(alias: str, start: datetime, end: datetime) -> str:
    first, last = partition_range(start, end)
    # Partition bounds as 'YYYY-MM-DD' strings: Glue projects event_date as a string, DuckDB reads it as a date
    # and casts the literal; both prune partitions.
    return f"{alias}.event_date BETWEEN '{first.isoformat()}' AND '{last.isoformat()}'"


def window_predicate(alias: str, start: datetime, end: datetime) -> str:
    return (f"{partition_predicate(alias, start, end)}"
            f" AND {alias}.event_time >= {ts_literal(start)} AND {alias}.event_time < {ts_literal(end)}")




def _double(value: float) -> str:
    """A DOUBLE literal: bare decimals are DECIMAL in Trino and DuckDB."""
    return f"CAST({float(value)!r} AS DOUBLE)"


def _probability(manifest: Manifest) -> str:
    s = manifest.sampling
    rate = _double(s.rate)
    if s.strategy == "uniform":
        return f"{rate} AS _tb_inclusion_probability, _tb_draw < {rate} AS _tb_selected"
    if s.strategy == "revenue_weighted":
        floor = _double(s.rate * REVENUE_FLOOR_SHARE)
        prob = (f"CASE WHEN _tb_total_revenue_cents = 0 THEN {rate} ELSE LEAST(CAST(1.0 AS DOUBLE), GREATEST({floor}, "
                f"{rate} * CAST(_tb_revenue_cents AS DOUBLE) * CAST(_tb_n_eligible AS DOUBLE) / "
                f"CAST(_tb_total_revenue_cents AS DOUBLE))) END")
        return f"{prob} AS _tb_inclusion_probability, _tb_draw < {prob} AS _tb_selected"
    if s.strategy == "head_tail":
        heavy = f"_tb_activity_rank <= CAST(ceil({s.head_share!r} * _tb_n_eligible) AS BIGINT)"
        prob = f"CASE WHEN {heavy} THEN {_double(head_rate(s.rate, s.head_rate))} ELSE {rate} END"
        return f"{prob} AS _tb_inclusion_probability, _tb_draw < {prob} AS _tb_selected"
    take = f"GREATEST(1, CAST(ceil({rate} * _tb_stratum_size) AS BIGINT))"
    return (f"CAST({take} AS DOUBLE) / CAST(_tb_stratum_size AS DOUBLE) AS _tb_inclusion_probability, "
            f"_tb_stratum_rank <= {take} AS _tb_selected")


def _sampling_cte(manifest: Manifest, params: Params) -> tuple[str, list[str]]:
    """The CTEs up to `probabilities` (one row per eligible user) and the quoted strata columns."""
    t, s = manifest.time, manifest.sampling
    where = " AND ".join(_predicate(f, params) for f in manifest.segment.filters) or "TRUE"
    strata = [quote(c) for c in s.strata]
    strata_select = "".join(f", u.{c}" for c in strata)
    strata_cols = "".join(f", {c}" for c in strata)
    partition_by = f"PARTITION BY {', '.join(strata)} " if strata else ""
    revenue = revenue_cents_sql("e", manifest.evaluation.vocabulary())  # what revenue_weighted weighs
    cte = f"""WITH segment_users AS (
  SELECT u.user_id{strata_select} FROM users u WHERE {where}
),
pre_cutoff AS (
  SELECT e.user_id, COUNT(*) AS _tb_pre_events, SUM({revenue}) AS _tb_revenue_cents
  FROM events e
  WHERE {window_predicate('e', t.start, t.cutoff)}
  GROUP BY e.user_id
),
eligible AS (
  SELECT su.user_id{''.join(f', su.{c}' for c in strata)},
    coalesce(p._tb_pre_events, 0) AS _tb_pre_events, coalesce(p._tb_revenue_cents, 0) AS _tb_revenue_cents,
    {uniform_draw_sql(s.seed, 'su.user_id')} AS _tb_draw
  FROM segment_users su LEFT JOIN pre_cutoff p ON p.user_id = su.user_id
  WHERE coalesce(p._tb_pre_events, 0) >= {int(s.min_events_per_user)}
),
ranked AS (
  SELECT el.*,
    COUNT(*) OVER () AS _tb_n_eligible,
    SUM(_tb_revenue_cents) OVER () AS _tb_total_revenue_cents,
    ROW_NUMBER() OVER (ORDER BY _tb_pre_events DESC, user_id) AS _tb_activity_rank,
    COUNT(*) OVER ({partition_by}) AS _tb_stratum_size,
    ROW_NUMBER() OVER ({partition_by}ORDER BY _tb_draw, user_id) AS _tb_stratum_rank
  FROM eligible el
),
probabilities AS (
  SELECT user_id{strata_cols}, _tb_pre_events, _tb_revenue_cents, _tb_draw, {_probability(manifest)}
  FROM ranked
)"""
    return cte, strata


def _reading(manifest: Manifest, extract: PopulationExtract, strata: list[str], sampled: str) -> dict[str, str]:
    """The users, events, items and population statements over `sampled` (a relation shaped like
    `probabilities`)."""
    t = manifest.time
    chosen = f"(SELECT user_id, _tb_inclusion_probability FROM {sampled} WHERE _tb_selected)"
    users = (f"SELECT u.*, s._tb_inclusion_probability AS inclusion_probability FROM users u JOIN {chosen} s"
             f" ON s.user_id = u.user_id\nORDER BY u.user_id")
    events = (f"SELECT e.* FROM events e JOIN {chosen} s ON s.user_id = e.user_id"
              f"\nWHERE {window_predicate('e', t.start, t.end)}\nORDER BY e.user_id, e.event_time, e.event_id")
    window = window_predicate("e", t.start, t.end)
    population_window = window_predicate("e", extract.start, t.cutoff)
    items = (f"SELECT i.* FROM items i WHERE i.item_id IN (\n  SELECT e.item_id FROM events e"
             f" JOIN {chosen} s ON s.user_id = e.user_id\n  WHERE {window}\n  UNION\n"
             f"  SELECT e.item_id FROM events e WHERE {population_window})\nORDER BY i.item_id")
    keys = ", ".join(strata)
    group = f"{keys}, " if strata else ""
    population = (f"SELECT {group}COUNT(*) AS _tb_eligible_users,"
                  f" SUM(_tb_inclusion_probability) AS _tb_expected_users,"
                  f" SUM(CASE WHEN _tb_selected THEN 1 ELSE 0 END) AS _tb_sampled_users\nFROM {sampled}"
                  + (f"\nGROUP BY {keys}\nORDER BY {keys}" if strata else ""))
    return {"users": users, "events": events, "items": items, "population": population}


def render(manifest: Manifest, extract: PopulationExtract | None = None,
           sampled: str = SAMPLED_TABLE_PREFIX + "local") -> SliceQueries:
    """The slice statements for a manifest whose columns were already checked against the lake, reading the
    sampling materialised as table `sampled`; `extract` defaults to what the candidates alone read."""
    extract = extract or population_extract(manifest)
    params: Params = []
    cte, strata = _sampling_cte(manifest, params)
    keep = "".join(f", {c}" for c in strata)
    sampling = f"{cte}\nSELECT user_id{keep}, _tb_inclusion_probability, _tb_selected FROM probabilities"
    reading = _reading(manifest, extract, strata, quote(sampled))
    return SliceQueries(sampling=sampling, params=tuple(params), users=reading["users"], events=reading["events"],
                        population=reading["population"], population_events=population_events_sql(manifest, extract),
                        catalogue=CATALOGUE_SQL)


def population_events_sql(manifest: Manifest, extract: PopulationExtract) -> str:
    """The population extract's statement (no parameters), in a total order."""
    columns = ", ".join(f"e.{quote(c)}" for c in extract.columns)
    return (f"SELECT {columns} FROM events e WHERE {window_predicate('e', extract.start, manifest.time.cutoff)}\n"
            f"ORDER BY {', '.join(str(i + 1) for i in range(len(extract.columns)))}")


def plain_statements(manifest: Manifest, extract: PopulationExtract | None = None) -> tuple[dict[str, str], Params]:
    """The users, events, items and population statements each with the sampling inline (no materialised table),
    and their parameters (bound to each statement): what `render`'s statements produce, the plain way."""
    params: Params = []
    cte, strata = _sampling_cte(manifest, params)
    reading = _reading(manifest, extract or population_extract(manifest), strata, "probabilities")
    return {name: f"{cte}\n{sql}" for name, sql in reading.items()}, params
