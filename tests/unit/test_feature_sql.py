"""Batch SQL of declared aggregations: bound values, both dialects, and the old built-in features' numbers
(frozen digests, tests/unit/frozen_reference.py)."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import sqlglot
from pydantic import ValidationError

from testbed.adapters.duckdb_engine import to_duckdb
from testbed.core import feature_fold, feature_sql, parity
from testbed.core.duck import fetch
from testbed.core.feature_spec import EventFilter, FeatureSet, epoch_us
from testbed.core.generate import LakeSpec, generate_lake
from tests.unit import frozen_reference
from tests.unit.feature_sets import C, event_table, retail_like_spec, wide_spec

EVIL = ["it's", "'; DROP TABLE x; --", 'say "hi"', "naïve ☃ 🛒", "\\' OR 1=1 --"]
EVIL_NUMBERS = [123456.789, 987654321]


def evil_spec() -> FeatureSet:
    where = [{"column": "item.brand", "op": "in", "value": EVIL[:3]},
             {"column": "user.region", "op": "ne", "value": EVIL[3]},
             {"column": "price", "op": "between", "value": [EVIL_NUMBERS[0], EVIL_NUMBERS[1]]}]
    return FeatureSet.model_validate({"name": "evil", "aggregations": [
        {"name": "n", "keys": ["user_id", "item.brand"], "operation": "count", "window": "7d", "events": [EVIL[4]]},
        {"name": "m", "keys": ["user_id", "item.brand"], "operation": "mean", "input": "price", "window": "12h",
         "where": where},
        {"name": "l", "keys": ["user.region"], "operation": "last", "input": "revenue", "window": "30d",
         "where": [{"column": "event_type", "op": "not_in", "value": EVIL}]},
        {"name": "g", "operation": "days_since_first", "window": "1d",
         "where": [{"column": "item.category", "op": "eq", "value": EVIL[1]}]},
    ]})


@pytest.mark.parametrize("dialect", ["duckdb", "trino"])
def test_filter_values_are_bound_never_pasted(dialect: feature_sql.Dialect) -> None:
    queries = feature_sql.batch_queries(evil_spec(), epoch_us(C), dialect)
    assert list(queries) == ["global", "region", "user_brand"]
    for query in queries.values():
        sqlglot.parse_one(query.sql, read=dialect)
        for value in [*EVIL, *map(str, EVIL_NUMBERS), "DROP", "hi", "☃"]:
            assert value not in query.sql
        assert query.sql.count("?") == len(query.params)
    assert queries["user_brand"].params == (EVIL[4], *EVIL[:3], EVIL[3], *EVIL_NUMBERS, *EVIL[:3], EVIL[3],
                                            *EVIL_NUMBERS)  # mean's filter is written (and bound) twice
    assert queries["region"].params == tuple(EVIL)


def test_evil_values_run_as_data_and_match_the_fold() -> None:
    log = event_table([("x1", "u1", "i1", EVIL[4], C - timedelta(hours=1), 1.0, 1),
                  ("x2", "u2", "i1", "view", C - timedelta(hours=2), 200000.0, 1)])
    items = pa.table({"item_id": ["i1"], "category": [EVIL[1]], "price": [1.0], "brand": [EVIL[0]]})
    users = pa.table({"user_id": ["u1", "u2"], "region": [EVIL[3], "eu"]})
    batch = feature_sql.batch_tables(log, items, users, evil_spec(), C)
    assert batch == feature_fold.fold(log, items, users, evil_spec(), C)
    assert batch["user_brand"].to_pylist() == [{"user_id": "u1", "brand": EVIL[0], "n": 1, "m": None},
                                               {"user_id": "u2", "brand": EVIL[0], "n": 0, "m": 200000.0}]
    assert batch["region"].to_pylist() == [{"region": "eu", "l": 200000.0}, {"region": EVIL[3], "l": None}]
    assert batch["global"].to_pylist() == [{"g": 2 / 24}]


def test_column_names_cannot_carry_sql() -> None:
    for column in ['price"; --', "item.x y", "events.price", "a'b"]:
        with pytest.raises(ValidationError):
            EventFilter(column=column, op="is_null")


def test_one_statement_per_table_joining_only_what_it_names() -> None:
    queries = feature_sql.batch_queries(retail_like_spec(), epoch_us(C), "duckdb")
    assert list(queries) == ["global", "item", "user", "user_category", "user_item"]
    assert "JOIN" not in queries["user"].sql and "JOIN" not in queries["global"].sql
    assert "LEFT JOIN items" in queries["user_category"].sql and "users" not in queries["user_category"].sql


FROZEN = frozen_reference.load()["batch_tables"]


def _lake(root: Path) -> tuple[pa.Table, pa.Table, pa.Table, datetime]:
    generate_lake(root, LakeSpec(**FROZEN["lake"]))
    log = pq.read_table(root / "events").drop_columns(["event_date"])
    log = log.set_column(log.schema.get_field_index("event_time"), "event_time",
                         pc.cast(log.column("event_time"), pa.timestamp("us", tz="UTC")))
    return log, pq.read_table(root / "items"), pq.read_table(root / "users"), datetime.fromisoformat(FROZEN["cutoff"])


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> tuple[pa.Table, pa.Table, pa.Table, datetime]:
    return _lake(tmp_path_factory.mktemp("lake"))


def test_retail_like_spec_reproduces_the_built_in_features(lake: tuple[Any, ...]) -> None:
    """Batch SQL and fold give the old built-in tables (user, item, user_category) bit for bit: same rows in
    the same order, same column names and types, same values."""
    log, items, users, cutoff = lake
    spec = retail_like_spec(tuple(FROZEN["windows"]))
    new = feature_sql.batch_tables(log, items, users, spec, cutoff)
    folded = feature_fold.fold(log, items, users, spec, cutoff)
    for entity, expected in FROZEN["tables"].items():
        assert expected["rows"] > 100
        assert frozen_reference.table_digest(new[entity]) == expected, entity
        assert frozen_reference.table_digest(folded[entity]) == expected, entity


def test_trino_statements_read_back_into_duckdb_give_the_same_tables(lake: tuple[Any, ...]) -> None:
    """The Trino SQL, transpiled back the way the local Athena stand-in does, computes the same values
    (checks the dialect-specific rewrites, e.g. epoch microseconds through to_unixtime). Means of prices are
    summed in another order by another plan, hence parity's tolerance rather than equality."""
    log, items, users, cutoff = lake
    spec = wide_spec(40)
    expected = feature_sql.batch_tables(log, items, users, spec, cutoff)
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    for name, table in (("events", log), ("population_events", log), ("items", items), ("users", users)):
        con.register(name, table)
    queries = feature_sql.batch_queries(spec, epoch_us(cutoff), "trino")
    got = {name: fetch(con, to_duckdb(q.sql), list(q.params)) for name, q in queries.items()}
    con.close()
    report = parity.compare(got, expected, spec.table_keys())
    assert report.mismatches == 0, report.examples
    assert report.rows_batch > 1000
    assert all(got[name].schema == table.schema for name, table in expected.items())
