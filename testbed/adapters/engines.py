"""Pick the query engine from the settings: Athena when deployed (engine athena), else DuckDB over the same Parquet."""

from __future__ import annotations

from datetime import date
from typing import Any, Protocol

import pyarrow as pa

from testbed.adapters.athena_engine import AthenaEngine
from testbed.adapters.duckdb_engine import DuckDBEngine
from testbed.invocation import Invocation


class Engine(Protocol):
    preserves_order: bool  # does a result keep the statement's ORDER BY?

    def query(self, sql: str, params: Any = ()) -> pa.Table: ...

    def materialise(self, table: str, sql: str, params: Any = ()) -> None: ...  # dropped by close()

    def columns(self, dataset: str) -> dict[str, str]: ...

    def close(self) -> None: ...


def make_engine(invocation: Invocation, lake: str, event_dates: tuple[date, date] | None = None,
                scratch_uri: str | None = None) -> Engine:
    """Athena writes results under `scratch_uri` (the run's ephemeral prefix) and polls within the invocation's
    time; DuckDB needs neither."""
    settings = invocation.settings
    if settings.engine == "athena":
        if not scratch_uri:
            raise ValueError("the Athena engine needs a scratch prefix for query results")
        clients = invocation.clients
        return AthenaEngine(clients.client("athena"), clients.client("glue"), str(settings.athena_workgroup),
                            str(settings.glue_database), scratch_uri, storage=invocation.storage,
                            remaining_s=invocation.remaining_s)
    return DuckDBEngine(lake, event_dates, storage=invocation.storage)
