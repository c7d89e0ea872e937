"""Step 7: merge scored shards, build labels, compute metrics per model and stratum, paired deltas, latency.

It runs beside the drift and what-if steps (testbed.steps: the concurrent steps); it reads only the run's
own files, never the lake."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from testbed.core import cohorts as core_cohorts
from testbed.core import list_change, metrics, training_variance
from testbed.core.beyond_accuracy import ItemStats
from testbed.core.latency import latency_summary
from testbed.core.roles import ROLES
from testbed.core.stats import delta_summaries
from testbed.errors import ERRORS_BY_NAME, StepError
from testbed.manifest import Manifest
from testbed.pipeline import cohorts, paired, rankings_file, slice_data
from testbed.pipeline.attribution import write_attribution
from testbed.pipeline.context import RunContext
from testbed.record import documents, io
from testbed.record.evaluation import LatencyDocument, MetricsDocument
from testbed.record.layout import DocumentPath
from testbed.record.steps import EvaluateResult

RANKING_COLUMNS = ("user_id", "model", "rank", "item_id", "score")


def check_shards(ctx: RunContext, keys: list[str]) -> None:
    """Fail closed unless every planned shard was scored; re-raise a shard's own error when it left one."""
    for key in keys:
        if key.endswith(".error.json"):
            failure = io.read(ctx.storage, DocumentPath(key, documents.SHARD_ERROR))
            raise ERRORS_BY_NAME.get(failure.error, StepError)(failure.message)
    planned = [k.rsplit("/", 1)[1].removesuffix(".json") for k in ctx.storage.list_keys(ctx.layout.shard_plans + "/")]
    scored = {k.rsplit("/", 1)[1].removesuffix(".parquet") for k in keys if k.endswith(".parquet")}
    missing = [name for name in planned if name not in scored]
    if missing or not planned:
        raise StepError(f"scoring produced no result for {missing[0] if missing else 'any shard'}")


def merge_shards(ctx: RunContext) -> tuple[pa.Table, list[dict[str, Any]]]:
    keys = list(ctx.storage.list_keys(ctx.layout.scores + "/"))
    check_shards(ctx, keys)
    parts = [ctx.storage.read_parquet(k) for k in keys if k.endswith(".parquet")]
    latency_paths = [DocumentPath(k, documents.SHARD_LATENCY) for k in keys if k.endswith(".latency.json")]
    latency = [io.to_json(path, io.read(ctx.storage, path)) for path in latency_paths]
    rankings = pa.concat_tables(parts).select(list(RANKING_COLUMNS))
    order = pc.sort_indices(rankings, [("model", "ascending"), ("user_id", "ascending"), ("rank", "ascending")])
    return rankings.take(order), latency


def paired_deltas(ctx: RunContext, manifest: Manifest, per_user: pa.Table,
                  strata: dict[str, str]) -> tuple[dict[str, Any], core_cohorts.CohortReport | None]:
    """Candidate minus control per metric, overall and per stratum, on the users both models were judged on:
    weighted by 1 / inclusion probability, with BCa bootstrap intervals (testbed.core.stats); and from the same
    resamples the worst cohorts of the primary metric (None when it has no per-user values)."""
    s = manifest.statistics
    sample = paired.sample(ctx, manifest, per_user)
    wanted = cohorts.domains(manifest, sample, ctx.storage.read_parquet(ctx.layout.user_history), strata)
    metric, domains = wanted if wanted is not None else (None, None)
    by_stratum, deltas = paired.with_domains(manifest, sample, metric, domains.rows if domains else {})
    worst = (core_cohorts.worst_cohorts(deltas, metric, domains, confidence=s.confidence, correction=s.correction)
             if metric is not None and domains is not None else None)
    return {stratum: delta_summaries(cmp, s.confidence) for stratum, cmp in by_stratum.items()}, worst


def _sha256_of(manifest: Manifest, name: str) -> str:
    ref = getattr(manifest.models, training_variance.role_of(name))
    index = name.partition(training_variance.VARIANT_SEPARATOR)[2]
    return ref.seed_variants[int(index) - 1].sha256 if index else ref.sha256


def variant_rankings(ctx: RunContext) -> pa.Table:
    """Every shard's seed-variant top K; fails closed unless each scored shard left its variants' file."""
    keys = sorted(k for k in ctx.storage.list_keys(ctx.layout.variant_scores + "/") if k.endswith(".parquet"))
    shards = [k for k in ctx.storage.list_keys(ctx.layout.scores + "/") if k.endswith(".parquet")]
    if len(keys) != len(shards):
        raise StepError(f"scoring left seed-variant rankings for {len(keys)} of {len(shards)} shards")
    return pa.concat_tables([ctx.storage.read_parquet(k) for k in keys]).select(list(RANKING_COLUMNS))


def candidate_sets(ctx: RunContext, manifest: Manifest) -> metrics.CandidateSets:
    """Every shard's candidate sets (the pairs each scored model scored); fails closed unless each scored shard
    left its file. A rankings file has no candidate stage: its candidate metrics are not applicable."""
    keys = sorted(k for k in ctx.storage.list_keys(ctx.layout.candidates + "/") if k.endswith(".parquet"))
    shards = [k for k in ctx.storage.list_keys(ctx.layout.scores + "/") if k.endswith(".parquet")]
    if len(keys) != len(shards):
        raise StepError(f"scoring left candidate sets for {len(keys)} of {len(shards)} shards")
    pairs = [ctx.storage.read_parquet(k, dictionary=["model", "user_id", "item_id"]) for k in keys]
    return metrics.CandidateSets(pa.concat_tables(pairs),
                                 manifest.evaluation.candidates_per_user,
                                 tuple(manifest.models.roles_of("lightgbm")))


def item_stats(ctx: RunContext, items: pa.Table) -> ItemStats:
    """The pre-cutoff population popularity and the category of each item (the beyond-accuracy metrics')."""
    return ItemStats.from_popularity(ctx.storage.read_parquet(ctx.layout.item_popularity), items)


def retrain_spread(ctx: RunContext, manifest: Manifest, labels: pa.Table, per_user: pa.Table,
                   items: ItemStats) -> dict[str, Any] | None:
    """metrics.json's training_variance: each gated metric's delta on all users per retrain (None without seed
    variants); testbed.core.training_variance defines the retrains and the spread."""
    counts = {role: len(getattr(manifest.models, role).seed_variants) for role in ROLES}
    if not any(counts.values()):
        return None
    retrained = metrics.per_user_metrics(variant_rankings(ctx), labels, manifest.evaluation.k, items)
    # a retrain scores its model's candidates: the candidate-stage metrics do not move between retrains
    gated = sorted({g.metric for g in manifest.gates if g.metric and g.metric in retrained.column_names})
    pairs = training_variance.retrain_pairs(counts["control"], counts["candidate"])
    spreads = training_variance.spreads(pa.concat_tables([per_user.select(retrained.column_names), retrained]),
                                        pairs, gated,
                                        slice_data.inclusion_probabilities(ctx))
    return {"stratum": "all", "method": training_variance.METHOD,
            "retrains": [{"control": _sha256_of(manifest, c), "candidate": _sha256_of(manifest, d)} for c, d in pairs],
            "metrics": {name: spread.as_dict() for name, spread in spreads.items()}}


def rankings_coverage(ctx: RunContext, manifest: Manifest) -> dict[str, Any] | None:
    """Per rankings-file role: slice users with and without a list, and the file's users outside the slice."""
    given = manifest.models.roles_of("rankings")
    if not given:
        return None
    users = ctx.storage.read_parquet(ctx.layout.slice_table("users"), ["user_id"]).column("user_id")
    out = {}
    for role in given:
        listed = pc.unique(rankings_file.read(ctx.storage, manifest, role)[0].column("user_id"))
        covered = int(pc.sum(pc.is_in(users, value_set=listed)).as_py() or 0)
        out[role] = {"slice_users": len(users), "covered_users": covered, "uncovered_users": len(users) - covered,
                     "users_outside_slice": len(listed) - covered}
    return out


def run_evaluate(ctx: RunContext, manifest: Manifest) -> dict[str, Any]:
    k = manifest.evaluation.k
    rankings, latency_shards = merge_shards(ctx)
    ctx.storage.write_parquet(ctx.layout.rankings, rankings)
    catalogue = slice_data.read(ctx, "items", ["item_id", "category"])
    labels = slice_data.labels(ctx, manifest)
    ctx.storage.write_parquet(ctx.layout.labels, labels)
    strata = slice_data.strata(ctx) if manifest.sampling.strata else {}
    stats = io.read(ctx.storage, ctx.layout.slice_stats)
    items = item_stats(ctx, catalogue)
    candidates = candidate_sets(ctx, manifest)
    per_user = metrics.per_user_metrics(rankings, labels, k, items, candidates)
    ctx.storage.write_parquet(ctx.layout.per_user, per_user)
    summary = metrics.aggregate(per_user, rankings, k, stats.catalogue_size, strata or None,
                                candidates_per_user=candidates.per_user)
    spread = retrain_spread(ctx, manifest, labels, per_user, items)
    deltas, worst = paired_deltas(ctx, manifest, per_user, strata)
    document = MetricsDocument.model_validate({
        "k": k,
        "models": summary["models"],
        "excluded_users": summary["excluded_users"],
        "deltas": deltas,
        "interval": paired.interval_label(manifest),
        **({"training_variance": spread} if spread is not None else {}),
        "list_change": list_change.summarise(list_change.per_user_change(rankings, k), k, strata or None),
        **({"cohorts": cohorts.as_document(worst)} if worst is not None else {}),
        "rankings_coverage": rankings_coverage(ctx, manifest),
    })
    io.write(ctx.storage, ctx.layout.metrics, document)
    io.write(ctx.storage, ctx.layout.latency, LatencyDocument.model_validate(latency_summary(latency_shards)))
    write_attribution(ctx, manifest)
    evaluated = summary["models"]["control"]["all"].get("users", 0)
    return EvaluateResult(users_evaluated=evaluated, rankings_rows=rankings.num_rows,
                          labels_rows=labels.num_rows).model_dump(mode="json")
