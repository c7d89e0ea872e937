"""Pick the query engine: Athena when deployed (TESTBED_ENGINE=athena), else DuckDB over the same Parquet."""

from __future__ import annotations

import os
from datetime import date
from typing import Any, Protocol

import pyarrow as pa

from testbed.adapters.athena_engine import AthenaEngine
from testbed.adapters.duckdb_engine import DuckDBEngine


class Engine(Protocol):
    preserves_order: bool  # does a result keep the statement's ORDER BY?

    def query(self, sql: str, params: Any = ()) -> pa.Table: ...

    def columns(self, dataset: str) -> dict[str, str]: ...

    def close(self) -> None: ...


def make_engine(lake: str, event_dates: tuple[date, date] | None = None, scratch_uri: str | None = None) -> Engine:
    """Athena writes results under `scratch_uri` (the run's ephemeral prefix); DuckDB needs none."""
    if os.environ.get("TESTBED_ENGINE") == "athena":
        if not scratch_uri:
            raise ValueError("the Athena engine needs a scratch prefix for query results")
        return AthenaEngine(os.environ["TESTBED_ATHENA_WORKGROUP"], os.environ["TESTBED_GLUE_DATABASE"], scratch_uri)
    return DuckDBEngine(lake, event_dates)
