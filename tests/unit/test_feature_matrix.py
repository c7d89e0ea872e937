"""The model inputs of candidate pairs under a feature set: joins, defaults, as-of rows, codes, vectors, the
old built-in matrix's numbers (frozen digests, tests/unit/frozen_reference.py), and values that stay data."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from testbed.core import feature_matrix as fm
from testbed.core import feature_sql
from testbed.core.feature_matrix import MatrixInputs, feature_matrix
from testbed.core.feature_spec import FeatureSet, epoch_us
from testbed.core.generate import LakeSpec, generate_lake
from testbed.core.ranking_session import RankingSession
from testbed.core.retail_default import retail_default
from testbed.errors import FeatureSetError
from tests.unit import frozen_reference

CUTOFF = datetime(2026, 10, 1, tzinfo=UTC)
NAN = np.nan
EVIL = "it's\"; DROP TABLE items; --"
SPEC = FeatureSet.model_validate({
    "name": "hand",
    "aggregations": [
        {"name": "u_views", "keys": ["user_id"], "operation": "count", "window": "7d"},
        {"name": "i_mean_price", "keys": ["item_id"], "operation": "mean", "input": "price", "window": "7d"},
        {"name": "ub_views", "keys": ["item.brand", "user_id"], "operation": "count", "window": "7d"},
        {"name": "g_n", "operation": "count", "window": "7d"},
        {"name": "r_views", "keys": ["user.region"], "operation": "count", "window": "7d"},
    ],
    "attributes": [
        {"name": "i_price", "entity": "item", "column": "price"},
        {"name": "i_brand", "entity": "item", "column": "brand", "type": "categorical",
         "categories": ["b", "a", EVIL]},
        {"name": "i_sale", "entity": "item", "column": "sale", "type": "boolean"},
    ],
    "external": [
        {"name": "emb", "uri": "emb.parquet", "sha256": "0" * 64, "keys": ["item_id"], "timestamp": "ts",
         "features": [{"name": "i_vec", "column": "vec", "type": "vector", "length": 2},
                      {"name": "i_score", "column": "score"}]},
        {"name": "uemb", "uri": "uemb.parquet", "sha256": "1" * 64, "keys": ["user_id"], "timestamp": "ts",
         "features": [{"name": "u_vec", "column": "vec", "type": "vector", "length": 2}]},
    ],
    "derived": [
        {"name": "d_cos", "expr": "cosine(u_vec, i_vec)"},
        {"name": "d_dot", "expr": "dot(u_vec, i_vec)"},
        {"name": "d_ratio", "expr": "u_views / g_n"},
        {"name": "d_twice", "expr": "d_ratio * 2"},
    ],
    "context": [{"name": "src", "value": "candidate_source"}],
})
PAIRS = pa.table({"user_id": ["u3", "u1", "u2", "u1", "u2"], "item_id": ["i2", "i2", "i3", "i1", "i1"],
                  "priority": pa.array([1, 1_000_003, 7, 5, 2_000_001], pa.int64())})
ITEMS = pa.table({"item_id": ["i1", "i2"], "category": ["shoes", "home"], "price": [10.0, 20.0],
                  "brand": ["a", None], "sale": [True, False]})
USERS = pa.table({"user_id": ["u1", "u2"], "region": ["north", None]})
AGGREGATIONS = {
    "user": pa.table({"user_id": ["u1"], "u_views": pa.array([3], pa.int64())}),
    "item": pa.table({"item_id": ["i1"], "i_mean_price": [9.5]}),
    "user_brand": pa.table({"user_id": ["u1", "u1", "u2"], "brand": ["a", "", "a"],
                            "ub_views": pa.array([2, 4, 1], pa.int64())}),
    "global": pa.table({"g_n": pa.array([10], pa.int64())}),
    "region": pa.table({"region": ["north", ""], "r_views": pa.array([5, 7], pa.int64())}),
}
TS = pa.timestamp("us", tz="UTC")
VECTORS = pa.list_(pa.float64())
EXTERNAL = {
    "emb": pa.table({
        "item_id": ["i1", "i1", "i1", "i1", "i2"],
        "ts": pa.array([CUTOFF - timedelta(days=2), CUTOFF - timedelta(days=1), CUTOFF, CUTOFF + timedelta(days=1),
                        CUTOFF - timedelta(days=1)], TS),
        "vec": pa.array([[1.0, 0.0], [0.0, 1.0], [5.0, 5.0], [7.0, 7.0], None], VECTORS),
        "score": [1.0, 2.0, 99.0, 100.0, None],
    }),
    "uemb": pa.table({"user_id": ["u1", "u2"], "ts": pa.array([CUTOFF - timedelta(days=3),
                                                                CUTOFF - timedelta(hours=1)], TS),
                      "vec": pa.array([[3.0, 4.0], [0.0, 0.0]], VECTORS)}),
}
INPUTS = MatrixInputs(ITEMS, USERS, AGGREGATIONS, EXTERNAL, CUTOFF)
# rows: (u1,i1) (u1,i2) (u2,i1) (u2,i3: no item) (u3: no user, i2)
EXPECTED = {
    "u_views": [3, 3, 0, 0, 0],  # a missing row counts 0
    "i_mean_price": [9.5, NAN, 9.5, NAN, NAN],  # ... but a mean is null
    "ub_views": [2, 4, 1, 0, 0],  # i2's null brand and the unknown i3 key as '': (u1,'') has a row, (u2,'') not
    "g_n": [10, 10, 10, 10, 10],
    "r_views": [5, 5, 7, 7, 7],  # u2's null region and the unknown u3 key as ''
    "i_price": [10, 20, 10, NAN, 20],
    "i_brand": [1, NAN, 1, NAN, NAN],
    "i_sale": [1, 0, 1, NAN, 0],
    "i_score": [2, NAN, 2, NAN, NAN],  # the row at the cutoff and the one after it do not count
    "d_cos": [0.8, NAN, NAN, NAN, NAN],  # u2's zero vector has no direction
    "d_dot": [4, NAN, 0, NAN, NAN],
    "d_ratio": [0.3, 0.3, 0, 0, 0],
    "d_twice": [0.6, 0.6, 0, 0, 0],
    "src": [0, 1, 2, 0, 0],
}


def test_hand_computed_joins_defaults_codes_and_vectors() -> None:
    names = list(EXPECTED)
    keys, values = feature_matrix(SPEC, names, PAIRS, INPUTS)
    assert keys.to_pydict() == {"user_id": ["u1", "u1", "u2", "u2", "u3"], "item_id": ["i1", "i2", "i1", "i3", "i2"]}
    assert values.flags.c_contiguous and values.dtype == np.float64
    for j, name in enumerate(names):
        assert np.array_equal(values[:, j], np.array(EXPECTED[name], dtype=float), equal_nan=True), name


def test_columns_come_in_the_requested_order_and_only_needed_tables_are_read() -> None:
    inputs = MatrixInputs(ITEMS, USERS, {"user": AGGREGATIONS["user"], "global": AGGREGATIONS["global"]}, {}, CUTOFF)
    _, values = feature_matrix(SPEC, ["src", "d_twice"], PAIRS, inputs)
    assert np.array_equal(values, np.array([EXPECTED["src"], EXPECTED["d_twice"]]).T)
    with pytest.raises(ValueError, match="no aggregation table item for feature i_mean_price"):
        feature_matrix(SPEC, ["i_mean_price"], PAIRS, inputs)


def test_requested_names_are_declared_scalars() -> None:
    with pytest.raises(FeatureSetError, match="feature set hand: no feature nope"):
        feature_matrix(SPEC, ["src", "nope"], PAIRS, INPUTS)
    with pytest.raises(FeatureSetError, match="feature set hand: i_vec is a vector, not a model input"):
        feature_matrix(SPEC, ["i_vec"], PAIRS, INPUTS)


def test_a_vector_of_another_length_names_its_table_and_column() -> None:
    bad = EXTERNAL["emb"].set_column(2, "vec", pa.array([[1.0], [0.0, 1.0, 2.0], None, None, None], VECTORS))
    inputs = MatrixInputs(ITEMS, USERS, AGGREGATIONS, {**EXTERNAL, "emb": bad}, CUTOFF)
    with pytest.raises(FeatureSetError, match="external table emb: column vec: a row holds 3 values, the feature "
                                              "set declares length 2"):
        feature_matrix(SPEC, ["d_dot"], PAIRS, inputs)


def test_two_latest_rows_for_one_key_are_an_error() -> None:
    tied = pa.table({"user_id": ["u1", "u1"], "ts": pa.array([CUTOFF - timedelta(days=1)] * 2, TS),
                     "vec": pa.array([[1.0, 0.0], [0.0, 1.0]], VECTORS)})
    inputs = MatrixInputs(ITEMS, USERS, AGGREGATIONS, {**EXTERNAL, "uemb": tied}, CUTOFF)
    with pytest.raises(FeatureSetError, match="external table uemb: 1 key"):
        feature_matrix(SPEC, ["d_dot"], PAIRS, inputs)


class _Recorder:
    """A DuckDB connection that keeps every SQL text it is given."""

    def __init__(self, con: duckdb.DuckDBPyConnection, texts: list[str]) -> None:
        self._con, self._texts = con, texts

    def execute(self, sql: str, params: Any = None) -> Any:
        self._texts.append(sql)
        return self._con.execute(sql, params)

    def sql(self, sql: str, params: Any = None) -> Any:
        self._texts.append(sql)
        return self._con.sql(sql, params=params)

    def register(self, name: str, table: pa.Table) -> None:
        self._con.register(name, table)

    def close(self) -> None:
        self._con.close()


def test_quotes_and_sql_in_values_stay_data(monkeypatch: pytest.MonkeyPatch) -> None:
    texts: list[str] = []
    connect = duckdb.connect
    monkeypatch.setattr(fm.duckdb, "connect", lambda: _Recorder(connect(), texts))
    user, item = "u'1\"; DROP TABLE pairs; --", "i'); SELECT 1; --"
    pairs = pa.table({"user_id": [user], "item_id": [item], "priority": pa.array([1_000_000], pa.int64())})
    items = pa.table({"item_id": [item], "price": [1.0], "brand": [EVIL], "sale": [None], "category": [EVIL]})
    users = pa.table({"user_id": [user], "region": [EVIL]})
    tables = {"user": pa.table({"user_id": [user], "u_views": pa.array([4], pa.int64())}),
              "user_brand": pa.table({"user_id": [user], "brand": [EVIL], "ub_views": pa.array([6], pa.int64())}),
              "region": pa.table({"region": [EVIL], "r_views": pa.array([8], pa.int64())}),
              "global": pa.table({"g_n": pa.array([2], pa.int64())})}
    external = {"emb": pa.table({"item_id": [item], "ts": pa.array([CUTOFF - timedelta(days=1)], TS),
                                 "vec": pa.array([[1.0, 1.0]], VECTORS), "score": [5.0]}),
                "uemb": pa.table({"user_id": [user], "ts": pa.array([CUTOFF - timedelta(days=1)], TS),
                                  "vec": pa.array([[2.0, 3.0]], VECTORS)})}
    names = ["u_views", "ub_views", "r_views", "i_brand", "i_score", "d_dot", "d_ratio", "src"]
    keys, values = feature_matrix(SPEC, names, pairs, MatrixInputs(items, users, tables, external, CUTOFF))
    assert keys.to_pydict() == {"user_id": [user], "item_id": [item]}
    assert values.tolist() == [[4.0, 6.0, 8.0, 2.0, 5.0, 5.0, 2.0, 1.0]]
    pasted = ("DROP", "SELECT 1", EVIL, str(epoch_us(CUTOFF)))
    assert texts and not any(part in text for text in texts for part in pasted)


FROZEN = frozen_reference.load()["matrix"]


def test_retail_default_reproduces_the_session_matrix_bit_for_bit(tmp_path: Path) -> None:
    """The old RankingSession.matrix() of the built-in features, frozen as digests: the retail-default set over
    the batch SQL's aggregation tables gives the same candidate rows and every column's same bits."""
    generate_lake(tmp_path, LakeSpec(**FROZEN["lake"]))
    events, items, users = (pq.read_table(tmp_path / name) for name in ("events", "items", "users"))
    windows, cutoff = FROZEN["windows"], datetime.fromisoformat(FROZEN["cutoff"])
    spec = retail_default(windows)
    expected = FROZEN["digest"]
    names = list(expected["columns"])
    with RankingSession(events, items) as session:
        session.prepare(cutoff, windows)
        session.candidates(users.select(["user_id"]), FROZEN["candidates"])
        pairs = session.candidate_pairs()
    tables = feature_sql.batch_tables(events, items, users, spec, cutoff)
    keys, values = feature_matrix(spec, names, pairs, MatrixInputs(items, users, tables, {}, cutoff))
    assert values.shape == (expected["rows"], len(names)) and expected["rows"] > 1000
    assert frozen_reference.matrix_digest(keys, names, values) == expected
    for j, name in enumerate(names):
        assert np.isfinite(values[:, j]).any(), name
