"""Athena as the engine for deployed runs: the same Trino SQL the local DuckDB engine runs.

Each query is wrapped in UNLOAD to Parquet under a scratch prefix, so results never page through the
GetQueryResults API; they are read back as Parquet. Filter values go in ExecutionParameters as escaped
literals, never into the statement. Polling is bounded by the Lambda invocation's remaining time. A failed query
is classified by Athena's error category and retryable flag (the AthenaError of GetQueryExecution), never by its
message: a USER error is the input's fault (exit 2, as on DuckDB), a retryable one is transient.

`materialise` is a CTAS: Parquet under the scratch prefix, a Glue table in the run's database, deleted again by
`close` (and by teardown if the step dies first).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import pyarrow as pa

from testbed.adapters.storage import Storage
from testbed.errors import QueryInputError, StepError, TestbedError, TransientError

SAFETY_MARGIN_S = 20.0
USER_ERROR_CATEGORY = 2  # AthenaError.ErrorCategory: 1 system, 2 user, 3 other
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


def failure_error(query_id: str, status: dict[str, Any]) -> TestbedError:
    """The typed error of a FAILED or CANCELLED query, from its AthenaError codes."""
    athena_error = status.get("AthenaError") or {}
    reason = status.get("StateChangeReason", status["State"])
    message = f"Athena query {query_id} {status['State'].lower()}: {reason}"
    if athena_error.get("ErrorCategory") == USER_ERROR_CATEGORY:
        return QueryInputError(message)
    if athena_error.get("Retryable"):
        return TransientError(message)
    return StepError(message)


class AthenaEngine:
    """`athena` and `glue` are boto3 clients; `storage` reads the UNLOAD results back; `remaining_s` is the
    invocation's clock, which bounds every wait."""

    preserves_order = False  # UNLOAD splits results over files in no particular order

    def __init__(self, athena: Any, glue: Any, workgroup: str, database: str, scratch_uri: str, *,
                 storage: Storage, remaining_s: Callable[[], float],
                 token: Callable[[], str] = lambda: uuid.uuid4().hex, poll_s: float = 0.5):
        self.athena, self.glue, self.storage = athena, glue, storage
        self.workgroup, self.database, self.scratch_uri = workgroup, database, scratch_uri.rstrip("/")
        self.remaining_s, self.token, self.poll_s = remaining_s, token, poll_s
        self.bytes_scanned = 0
        self.tables: list[str] = []

    def query(self, sql: str, params: Sequence[Any] = ()) -> pa.Table:
        destination = f"{self.scratch_uri}/unload/{self.token()}/"
        self._run(f"UNLOAD ({sql}) TO '{destination}' WITH (format = 'PARQUET', compression = 'ZSTD')", params)
        parts = [self.storage.read_parquet(uri) for uri in self.storage.list_keys(destination)
                 if not uri.endswith("/")]
        return pa.concat_tables(parts, promote_options="default") if parts else pa.table({})

    def materialise(self, table: str, sql: str, params: Sequence[Any] = ()) -> None:
        """CTAS `table` (a name of lowercase letters, digits and `_`) from one SELECT, its Parquet in a fresh
        folder under the scratch prefix (CTAS needs an empty one); a table left by an earlier attempt is dropped
        first."""
        location = f"{self.scratch_uri}/tables/{table}/{self.token()}/"
        drop_table(self.glue, self.database, table)
        self.tables.append(table)
        self._run(f"CREATE TABLE \"{table}\" WITH (format = 'PARQUET', write_compression = 'ZSTD', "
                  f"external_location = '{location}') AS {sql}", params)

    def _run(self, statement: str, params: Sequence[Any]) -> None:
        kwargs: dict[str, Any] = {"QueryString": statement, "WorkGroup": self.workgroup,
                                  "QueryExecutionContext": {"Database": self.database}}
        if params:
            kwargs["ExecutionParameters"] = [literal(p) for p in params]
        try:
            query_id = self.athena.start_query_execution(**kwargs)["QueryExecutionId"]
        except self.athena.exceptions.TooManyRequestsException as exc:  # throttled after botocore's retries
            raise TransientError(f"Athena throttled the query: {exc}") from None
        self._wait(query_id)

    def _wait(self, query_id: str) -> None:
        delay = self.poll_s
        while True:
            execution = self.athena.get_query_execution(QueryExecutionId=query_id)["QueryExecution"]
            state = execution["Status"]["State"]
            if state == "SUCCEEDED":
                self.bytes_scanned += int(execution.get("Statistics", {}).get("DataScannedInBytes", 0))
                return
            if state in ("FAILED", "CANCELLED"):
                raise failure_error(query_id, execution["Status"])
            if self.remaining_s() < SAFETY_MARGIN_S + delay:
                self.athena.stop_query_execution(QueryExecutionId=query_id)
                raise TransientError(f"Athena query {query_id} still running as the Lambda time ran out; stopped")
            time.sleep(delay)
            delay = min(5.0, delay * 1.5)

    def columns(self, dataset: str) -> dict[str, str]:
        table = self.glue.get_table(DatabaseName=self.database, Name=dataset)["Table"]
        cols = table["StorageDescriptor"]["Columns"] + table.get("PartitionKeys", [])
        return {c["Name"]: GLUE_TO_ENGINE.get(c["Type"].lower(), c["Type"].upper()) for c in cols}

    def close(self) -> None:
        """Delete the tables `materialise` created (their files go with the scratch prefix at teardown)."""
        for table in self.tables:
            drop_table(self.glue, self.database, table)
        self.tables = []


def drop_table(glue: Any, database: str, table: str) -> bool:
    """Delete a Glue table; False if it was not there."""
    try:
        glue.delete_table(DatabaseName=database, Name=table)
    except glue.exceptions.EntityNotFoundException:
        return False
    return True
