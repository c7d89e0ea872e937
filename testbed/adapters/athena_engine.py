"""Athena as the engine for deployed runs: the same Trino SQL the local DuckDB engine runs.

Each query is wrapped in UNLOAD to Parquet under a scratch prefix, so results never page through the
GetQueryResults API; they are read back as Parquet. Filter values go in ExecutionParameters as escaped
literals, never into the statement. Polling is bounded by the Lambda invocation's remaining time.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import pyarrow as pa

from testbed.adapters import storage
from testbed.adapters.aws import client
from testbed.adapters.lambda_context import remaining_ms
from testbed.errors import StepError, TransientError

SAFETY_MARGIN_MS = 20_000
GLUE_TO_ENGINE = {"string": "VARCHAR", "timestamp": "TIMESTAMP", "bigint": "BIGINT", "int": "INTEGER",
                  "smallint": "SMALLINT", "tinyint": "TINYINT", "double": "DOUBLE", "float": "FLOAT",
                  "date": "DATE", "boolean": "BOOLEAN"}


def literal(value: Any) -> str:
    """An Athena execution-parameter literal: strings quoted with '' escaping, numbers and booleans as is."""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | float):
        return repr(value)
    return "'" + str(value).replace("'", "''") + "'"


class AthenaEngine:
    preserves_order = False  # UNLOAD splits results over files in no particular order
    def __init__(self, workgroup: str, database: str, scratch_uri: str, *,
                 token: Callable[[], str] = lambda: uuid.uuid4().hex, poll_s: float = 0.5):
        self.workgroup, self.database, self.scratch_uri = workgroup, database, scratch_uri.rstrip("/")
        self.token, self.poll_s = token, poll_s
        self.bytes_scanned = 0

    def query(self, sql: str, params: Sequence[Any] = ()) -> pa.Table:
        destination = f"{self.scratch_uri}/unload/{self.token()}/"
        statement = f"UNLOAD ({sql}) TO '{destination}' WITH (format = 'PARQUET', compression = 'ZSTD')"
        kwargs: dict[str, Any] = {"QueryString": statement, "WorkGroup": self.workgroup,
                                  "QueryExecutionContext": {"Database": self.database}}
        if params:
            kwargs["ExecutionParameters"] = [literal(p) for p in params]
        query_id = client("athena").start_query_execution(**kwargs)["QueryExecutionId"]
        self._wait(query_id)
        parts = [storage.read_parquet(uri) for uri in storage.list_keys(destination) if not uri.endswith("/")]
        return pa.concat_tables(parts, promote_options="default") if parts else pa.table({})

    def _wait(self, query_id: str) -> None:
        athena, delay = client("athena"), self.poll_s
        while True:
            execution = athena.get_query_execution(QueryExecutionId=query_id)["QueryExecution"]
            state = execution["Status"]["State"]
            if state == "SUCCEEDED":
                self.bytes_scanned += int(execution.get("Statistics", {}).get("DataScannedInBytes", 0))
                return
            if state in ("FAILED", "CANCELLED"):
                reason = execution["Status"].get("StateChangeReason", state)
                error = TransientError if "ThrottlingException" in reason or "SlowDown" in reason else StepError
                raise error(f"Athena query {query_id} {state.lower()}: {reason}")
            if remaining_ms() < SAFETY_MARGIN_MS + delay * 1000:
                athena.stop_query_execution(QueryExecutionId=query_id)
                raise TransientError(f"Athena query {query_id} still running as the Lambda time ran out; stopped")
            time.sleep(delay)
            delay = min(5.0, delay * 1.5)

    def columns(self, dataset: str) -> dict[str, str]:
        table = client("glue").get_table(DatabaseName=self.database, Name=dataset)["Table"]
        cols = table["StorageDescriptor"]["Columns"] + table.get("PartitionKeys", [])
        return {c["Name"]: GLUE_TO_ENGINE.get(c["Type"].lower(), c["Type"].upper()) for c in cols}

    def close(self) -> None:
        """Nothing to release: each query is its own Athena execution."""
