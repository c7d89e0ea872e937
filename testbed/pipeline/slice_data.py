"""Load a run's slice from storage into a DuckDB connection as `events`, `users` and `items`."""

from __future__ import annotations

import duckdb
import pyarrow as pa

from testbed.adapters import storage
from testbed.core import ranking_data
from testbed.manifest import Manifest
from testbed.pipeline.context import RunContext


def connect(ctx: RunContext, datasets: tuple[str, ...] = ("events", "users", "items")) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    for name in datasets:
        con.register(name, storage.read_parquet(ctx.uri("slice", f"{name}.parquet")))
    return con


def labels(ctx: RunContext, manifest: Manifest) -> pa.Table:
    """The slice's labels from the label window [cutoff, end), graded by the manifest's relevance."""
    con = connect(ctx, ("events",))
    try:
        return ranking_data.labels(con, manifest.time.cutoff, manifest.time.end,
                                   manifest.evaluation.relevance.model_dump())
    finally:
        con.close()


def read(ctx: RunContext, name: str) -> pa.Table:
    return storage.read_parquet(ctx.uri("slice", f"{name}.parquet"))


def inclusion_probabilities(ctx: RunContext) -> dict[str, float]:
    """user_id → inclusion probability of every sampled user (its inverse weights population estimates)."""
    users = storage.read_parquet(ctx.uri("slice", "users.parquet")).select(["user_id", "inclusion_probability"])
    return dict(zip(users.column("user_id").to_pylist(), users.column("inclusion_probability").to_pylist(),
                    strict=True))


def strata(ctx: RunContext) -> dict[str, str]:
    """user_id → stratum label of every sampled user."""
    users = storage.read_parquet(ctx.uri("slice", "users.parquet")).select(["user_id", "stratum"])
    return dict(zip(users.column("user_id").to_pylist(), users.column("stratum").to_pylist(), strict=True))


def register_features(con: duckdb.DuckDBPyConnection, ctx: RunContext) -> dict[str, pa.Table]:
    tables = {}
    for entity in ("user", "item", "user_category"):
        tables[entity] = storage.read_parquet(ctx.uri("features", f"batch_{entity}.parquet"))
        con.register(f"f_{entity}", tables[entity])
    return tables
