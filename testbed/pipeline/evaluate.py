"""Step 7: merge scored shards, build labels, compute metrics per model and stratum, paired deltas, latency.

It runs beside the drift and what-if steps (testbed.steps: the concurrent steps); it reads only the run's
own files, never the lake."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from testbed.adapters import storage
from testbed.core import metrics
from testbed.core.latency import latency_summary
from testbed.core.stats import delta_summaries
from testbed.errors import ERRORS_BY_NAME, StepError
from testbed.manifest import Manifest
from testbed.pipeline import paired, slice_data
from testbed.pipeline.context import RunContext

RANKING_COLUMNS = ("user_id", "model", "rank", "item_id", "score")


def check_shards(ctx: RunContext, keys: list[str]) -> None:
    """Fail closed unless every planned shard was scored; re-raise a shard's own error when it left one."""
    for key in keys:
        if key.endswith(".error.json"):
            failure = storage.read_json(key)
            error_type = ERRORS_BY_NAME.get(failure["error"], StepError)
            raise error_type(failure["message"])
    planned = [k.rsplit("/", 1)[1].removesuffix(".json") for k in storage.list_keys(ctx.scratch("shards") + "/")]
    scored = {k.rsplit("/", 1)[1].removesuffix(".parquet") for k in keys if k.endswith(".parquet")}
    missing = [name for name in planned if name not in scored]
    if missing or not planned:
        raise StepError(f"scoring produced no result for {missing[0] if missing else 'any shard'}")


def merge_shards(ctx: RunContext) -> tuple[pa.Table, list[dict[str, Any]]]:
    keys = list(storage.list_keys(ctx.uri("scores") + "/"))
    check_shards(ctx, keys)
    parts = [storage.read_parquet(k) for k in keys if k.endswith(".parquet")]
    latency = [storage.read_json(k) for k in keys if k.endswith(".latency.json")]
    rankings = pa.concat_tables(parts).select(list(RANKING_COLUMNS))
    order = pc.sort_indices(rankings, [("model", "ascending"), ("user_id", "ascending"), ("rank", "ascending")])
    return rankings.take(order), latency


def paired_deltas(ctx: RunContext, manifest: Manifest, per_user: pa.Table) -> dict[str, Any]:
    """Candidate minus control per metric, overall and per stratum, on the users both models were judged on:
    weighted by 1 / inclusion probability, with BCa bootstrap intervals (testbed.core.stats)."""
    confidence = manifest.statistics.confidence
    return {stratum: delta_summaries(cmp, confidence)
            for stratum, cmp in paired.comparisons(ctx, manifest, per_user).items()}


def run_evaluate(ctx: RunContext, manifest: Manifest) -> dict[str, Any]:
    k = manifest.evaluation.k
    rankings, latency_shards = merge_shards(ctx)
    storage.write_parquet(ctx.uri("rankings.parquet"), rankings)
    labels = slice_data.labels(ctx, manifest)
    storage.write_parquet(ctx.uri("labels.parquet"), labels)
    strata = slice_data.strata(ctx) if manifest.sampling.strata else {}
    stats = storage.read_json(ctx.uri("slice", "stats.json"))
    per_user = metrics.per_user_metrics(rankings, labels, k)
    storage.write_parquet(ctx.uri("evaluation", "per_user.parquet"), per_user)
    summary = metrics.aggregate(per_user, rankings, k, stats["catalogue_size"], strata or None)
    document = {
        "k": k,
        "models": summary["models"],
        "excluded_users": summary["excluded_users"],
        "deltas": paired_deltas(ctx, manifest, per_user),
        "interval": paired.interval_label(manifest),
    }
    storage.write_json(ctx.uri("metrics.json"), document)
    storage.write_json(ctx.uri("latency.json"), latency_summary(latency_shards))
    evaluated = summary["models"]["control"]["all"].get("users", 0)
    return {"users_evaluated": evaluated, "rankings_rows": rankings.num_rows, "labels_rows": labels.num_rows}
