"""The one helper the core uses to read a DuckDB result as Arrow."""

from __future__ import annotations

from typing import Any

import duckdb
import pyarrow as pa


def fetch(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | None = None) -> pa.Table:
    return con.sql(sql, params=params or None).to_arrow_table()
