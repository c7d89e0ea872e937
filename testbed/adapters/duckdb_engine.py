"""DuckDB standing in for Athena: the same Trino-dialect SQL, transpiled by sqlglot, over the lake's Parquet.

A query DuckDB rejects for the values it was given (a conversion or binder error: a filter value that does not
fit its column) raises QueryInputError, as Athena's USER errors do, so both engines give the same exit code.
"""

from __future__ import annotations

import functools
import tempfile
import threading
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import sqlglot

from testbed.adapters.local_files import files_under
from testbed.adapters.storage import Storage, is_s3
from testbed.core.duck import fetch
from testbed.errors import LakeError, QueryInputError

# DuckDB lacks Trino's from_base; base 16 is all the sampling hash needs (FIELD-NOTES).
_MACROS = ["CREATE OR REPLACE MACRO from_base(s, b) AS CAST('0x' || s AS BIGINT)"]
_transpile_lock = threading.Lock()
_INPUT_ERRORS = (duckdb.ConversionException, duckdb.BinderException)
DATASETS = ("events", "users", "items")


@functools.lru_cache(maxsize=256)
def _transpile_cached(sql: str) -> str:
    return sqlglot.transpile(sql, read="trino", write="duckdb")[0]


def to_duckdb(sql: str) -> str:
    """Trino → DuckDB SQL (cached; sqlglot is not documented as thread-safe, so serialise it)."""
    with _transpile_lock:
        return _transpile_cached(sql)


def mirror_s3_lake(storage: Storage, lake: str, dates: tuple[date, date] | None) -> Path:
    """Copy an s3:// lake (only the event partitions in `dates`) to a local cache directory."""
    target = Path(tempfile.mkdtemp(prefix="testbed-lake-"))
    wanted = None
    if dates:
        days = (dates[1] - dates[0]).days + 1
        wanted = {f"event_date={(dates[0] + timedelta(d)).isoformat()}" for d in range(days)}
    for uri in storage.list_keys(lake.rstrip("/") + "/"):
        relative = uri[len(lake.rstrip("/")) + 1:]
        parts = relative.split("/")
        if parts[0] == "events" and wanted is not None and (len(parts) < 3 or parts[1] not in wanted):
            continue
        path = target / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(storage.read_bytes(uri))
    return target


def _ignored(relative: Path) -> bool:
    """Hidden and bookkeeping files (`.crc`, `_SUCCESS`), as Hive and Spark ignore them."""
    return any(part.startswith((".", "_")) for part in relative.parts)


def dataset_files(root: Path, dataset: str) -> list[Path]:
    """A dataset's Parquet files through any symbolic links; a data file that is not `.parquet` is refused."""
    folder = root / dataset
    files = files_under(folder) if folder.is_dir() else []
    for path in files:
        relative = path.relative_to(root)
        if path.suffix != ".parquet" and not _ignored(relative):
            raise LakeError(f"lake {relative}: not a Parquet file (a {dataset}/ data file must end in .parquet)")
    parquet = [path for path in files if path.suffix == ".parquet"]
    if dataset == "events":
        for path in parquet:
            _check_partition(path.relative_to(root))
    if not parquet:
        raise LakeError(f"lake {root}: dataset {dataset}/ is missing or has no Parquet files")
    return parquet


def _check_partition(relative: Path) -> None:
    """`events/event_date=YYYY-MM-DD/...`: a file elsewhere would be dropped by every partition filter."""
    key, _, value = relative.parts[1].partition("=") if len(relative.parts) > 2 else ("", "", "")
    try:
        valid = key == "event_date" and date.fromisoformat(value).isoformat() == value
    except ValueError:
        valid = False
    if not valid:
        raise LakeError(f"lake {relative}: not in an event_date=YYYY-MM-DD partition folder")


def _sql_list(paths: list[Path]) -> str:
    return "[" + ", ".join("'" + str(p).replace("'", "''") + "'" for p in paths) + "]"


class DuckDBEngine:
    """Registers `events`, `users` and `items` views over a lake root and runs Trino SQL on them."""

    preserves_order = True

    def __init__(self, lake: str, event_dates: tuple[date, date] | None = None, threads: int | None = None,
                 storage: Storage | None = None):
        """An s3:// lake is mirrored through `storage` first."""
        root = Path(lake)
        if is_s3(lake):
            if storage is None:
                raise ValueError(f"{lake}: an s3:// lake needs the storage to mirror it from")
            root = mirror_s3_lake(storage, lake, event_dates)
        self.root = root
        self.con = duckdb.connect(config={"threads": threads} if threads else {})
        self.con.execute("SET TimeZone = 'UTC'")
        for macro in _MACROS:
            self.con.execute(macro)
        self._register(root)

    def file_columns(self, dataset: str) -> Iterator[tuple[str, dict[str, str]]]:
        """(file relative to the lake, column name → DuckDB type) per Parquet file of a dataset.

        The dataset views read with union_by_name, which quietly fills a column missing from one file and
        widens a column one file types differently (an integer user_id among strings becomes a string).
        """
        for path in self._paths[dataset]:
            rows = self.con.execute(f"DESCRIBE SELECT * FROM read_parquet({_sql_list([path])})").fetchall()
            yield str(path.relative_to(self.root)), {str(row[0]): str(row[1]) for row in rows}

    def _register(self, root: Path) -> None:
        """One view per dataset over the explicit list of its Parquet files (the ones the fingerprint hashed)."""
        self._paths = {dataset: dataset_files(root, dataset) for dataset in DATASETS}
        self._files = {dataset: _sql_list(paths) for dataset, paths in self._paths.items()}
        for dataset in DATASETS:
            options = "hive_partitioning = true, hive_types = {'event_date': DATE}, " if dataset == "events" else ""
            try:  # union_by_name reads every file's footer here
                self.con.execute(f"CREATE VIEW {dataset} AS SELECT * FROM read_parquet({self._files[dataset]}, "
                                 f"{options}union_by_name = true)")
            except duckdb.Error as exc:
                raise LakeError(f"lake {dataset}/: unreadable Parquet ({str(exc).splitlines()[0][:300]})") from None

    def query(self, sql: str, params: tuple[Any, ...] | list[Any] = ()) -> pa.Table:
        """Run one Trino-dialect statement with `?` parameters; return an Arrow table."""
        try:
            return fetch(self.con, to_duckdb(sql), list(params))
        except _INPUT_ERRORS as exc:
            raise QueryInputError(str(exc).splitlines()[0]) from None

    def materialise(self, table: str, sql: str, params: tuple[Any, ...] | list[Any] = ()) -> None:
        """Run one Trino-dialect SELECT once into a temp table `table` that later statements read (replaced if
        there, gone at close)."""
        name = '"' + table.replace('"', '""') + '"'
        try:
            self.con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS {to_duckdb(sql)}", list(params))
        except _INPUT_ERRORS as exc:
            raise QueryInputError(str(exc).splitlines()[0]) from None

    def columns(self, dataset: str) -> dict[str, str]:
        """Column name → DuckDB type of a lake dataset."""
        rows = self.con.execute(f"DESCRIBE SELECT * FROM {dataset}").fetchall()
        return {row[0]: str(row[1]) for row in rows}

    def close(self) -> None:
        self.con.close()
