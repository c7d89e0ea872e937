"""Read a run's slice from storage: its tables, a RankingSession over them, its labels, weights and strata."""

from __future__ import annotations

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from testbed.core.feature_spec import FeatureSet
from testbed.core.ranking_session import RankingSession
from testbed.manifest import Manifest
from testbed.pipeline.context import RunContext


def connect(ctx: RunContext, datasets: tuple[str, ...] = ("events", "users", "items")) -> duckdb.DuckDBPyConnection:
    """A bare DuckDB connection with the named slice tables (the replay step's payload query)."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    for name in datasets:
        con.register(name, ctx.storage.read_parquet(ctx.layout.slice_table(name)))
    return con


# the events columns RankingSession.labels reads
LABEL_INPUTS = ["user_id", "item_id", "event_type", "event_time", "quantity", "price"]


def labels(ctx: RunContext, manifest: Manifest) -> pa.Table:
    """The slice's labels from the label window [cutoff, end), graded by the manifest's declared event types."""
    with RankingSession(read(ctx, "events", LABEL_INPUTS)) as ranking:
        return ranking.labels(manifest.time.cutoff, manifest.time.end, manifest.evaluation.vocabulary())


def session(ctx: RunContext) -> RankingSession:
    """The slice's events and items in a ranking session (candidates, labels, event rows), with the population
    extract for the candidates' item popularity."""
    return RankingSession(read(ctx, "events"), read(ctx, "items"), read(ctx, "population_events"))


def batch_features(ctx: RunContext, spec: FeatureSet) -> dict[str, pa.Table]:
    """The batch feature tables the features step wrote, one per key set of the run's feature set."""
    return {group: ctx.storage.read_parquet(ctx.layout.batch_features(group)) for group in spec.groups()}


def read(ctx: RunContext, name: str, columns: list[str] | None = None) -> pa.Table:
    return ctx.storage.read_parquet(ctx.layout.slice_table(name), columns)


def schema(ctx: RunContext, name: str) -> pa.Schema:
    """A slice table's columns and types, from its Parquet footer (no rows decoded)."""
    return pq.read_schema(pa.BufferReader(ctx.storage.read_bytes(ctx.layout.slice_table(name))))


def inclusion_probabilities(ctx: RunContext) -> dict[str, float]:
    """user_id → inclusion probability of every sampled user (its inverse weights population estimates)."""
    users = ctx.storage.read_parquet(ctx.layout.slice_table("users")).select(["user_id", "inclusion_probability"])
    return dict(zip(users.column("user_id").to_pylist(), users.column("inclusion_probability").to_pylist(),
                    strict=True))


def strata(ctx: RunContext) -> dict[str, str]:
    """user_id → stratum label of every sampled user."""
    users = ctx.storage.read_parquet(ctx.layout.slice_table("users")).select(["user_id", "stratum"])
    return dict(zip(users.column("user_id").to_pylist(), users.column("stratum").to_pylist(), strict=True))
