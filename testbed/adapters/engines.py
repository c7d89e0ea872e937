"""Pick the query engine for a lake. Locally (and in tests) that is DuckDB over the same Parquet."""

from __future__ import annotations

from datetime import date

from testbed.adapters.duckdb_engine import DuckDBEngine


def make_engine(lake: str, event_dates: tuple[date, date] | None = None) -> DuckDBEngine:
    return DuckDBEngine(lake, event_dates)
