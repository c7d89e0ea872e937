"""Step 6: candidates per user from pre-cutoff data, scored by both models; top K and request latencies.

A run may split users into shards (the deployed workflow maps over them); each shard writes its own
`scores/shard-NNNNN.parquet` and latency file, and the evaluate step merges them. Its counts and timings go to
`scores/shard-NNNNN.result.json` (the record and the benchmarks sum them); it returns only that key and counts.
Seed variants of the models (manifest `seed_variants`) are ranked on their model's inputs into
`seed_variants/shard-NNNNN.parquet`, apart from the two models' rankings and never timed. The what-if step ranks
through the same functions (`load_models`, `candidate_matrix`, `rank`). A model given as a rankings file
(manifest kind rankings) is not scored: its lists for the shard's users are written as they are, untimed.
Every scored model's candidate set (the pairs it scored) goes to `candidates/shard-NNNNN.parquet`: evaluate
measures the candidate stage's recall on it against the labels, which this step never reads.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from testbed.adapters.storage import Storage
from testbed.core import attribution, model_inputs, rankings_lists, training_variance
from testbed.core import candidates_table as core_candidates
from testbed.core.arrays import group_starts
from testbed.core.feature_matrix import MatrixInputs
from testbed.core.model_inputs import FeatureInputs
from testbed.core.ranking_data import Generator
from testbed.core.ranking_session import RankingSession
from testbed.core.roles import ROLES
from testbed.core.sampling import uniform_draw
from testbed.core.scoring import LoadedModel, RequestTimings, load_model, per_request_latency_ms, top_k
from testbed.errors import ModelArtifactError
from testbed.manifest import Manifest, ModelRef, SeedVariant
from testbed.pipeline import candidates_table, feature_sets, rankings_file, slice_data
from testbed.pipeline.context import RunContext
from testbed.pipeline.feature_sets import ModelFeatures
from testbed.record import io
from testbed.record.attribution import ShardAttribution
from testbed.record.scores import ModelShardLatency, ShardError, ShardLatency, ShardResult
from testbed.record.steps import ScoreResult


def shard_users(ctx: RunContext, index: int, count: int) -> pa.Table:
    users = ctx.storage.read_parquet(ctx.layout.slice_table("users")).column("user_id").to_pylist()
    return pa.table({"user_id": pa.array(sorted(users)[index::count], pa.string())})


def latency_groups(user_ids: np.ndarray, starts: np.ndarray, sample: int, seed: int) -> np.ndarray:
    """A deterministic sample of user groups to time: the users with the smallest draws."""
    users = user_ids[starts[:-1]]
    draws = np.array([uniform_draw(seed, str(u)) for u in users])
    return np.sort(np.argsort(draws, kind="stable")[:sample])


def record_shard_failure(ctx: RunContext, index: int, exc: Exception) -> None:
    """Leave the shard's error where evaluate looks, so a failed shard can never pass unnoticed."""
    io.write(ctx.storage, ctx.layout.shard_error(index), ShardError(error=type(exc).__name__, message=str(exc)))


def columns_for(values: np.ndarray, names: list[str], wanted: list[str]) -> np.ndarray:
    """The model's columns in its own order; the matrix itself when they already match (no copy)."""
    if wanted == names:
        return values
    return np.ascontiguousarray(values[:, [names.index(n) for n in wanted]])


def _load(storage: Storage, manifest: Manifest, sets: dict[str, ModelFeatures], role: str, *, name: str, where: str,
          ref: ModelRef | SeedVariant) -> LoadedModel:
    data = storage.read_bytes(ref.uri)
    if hashlib.sha256(data).hexdigest() != ref.sha256:
        raise ModelArtifactError(f"manifest: {where}.sha256: {ref.uri} changed since validation")
    model = load_model(name, data, where)
    feature_sets.check_model(sets[role], manifest, role, model.features, data)
    return model


def load_models(storage: Storage, manifest: Manifest, sets: dict[str, ModelFeatures]) -> list[LoadedModel]:
    """The LightGBM models (a rankings file is not scored), after re-checking the SHA-256 that validate checked,
    each on its own feature set."""
    return [_load(storage, manifest, sets, role, name=role, where=f"models.{role}", ref=getattr(manifest.models, role))
            for role in manifest.models.roles_of("lightgbm")]


def load_seed_variants(storage: Storage, manifest: Manifest, sets: dict[str, ModelFeatures]) -> list[LoadedModel]:
    """Every model's seed variants (testbed.core.training_variance names them), checked as `load_models` checks."""
    return [_load(storage, manifest, sets, role, name=training_variance.variant_name(role, i + 1),
                  where=f"models.{role}.seed_variants.{i}", ref=variant)
            for role in ROLES for i, variant in enumerate(getattr(manifest.models, role).seed_variants)]


def feature_inputs(ctx: RunContext, manifest: Manifest, sets: dict[str, ModelFeatures]) -> FeatureInputs:
    """The run's feature set with the slice's catalogue and users, the batch tables and the external tables."""
    spec = feature_sets.union(sets)
    return FeatureInputs(spec, MatrixInputs(
        items=slice_data.read(ctx, "items"), users=slice_data.read(ctx, "users"),
        aggregations=slice_data.batch_features(ctx, spec), external=feature_sets.external_tables(ctx.storage, spec),
        cutoff=manifest.time.cutoff))


@dataclass(frozen=True)
class CandidateMatrix:
    """A session's candidate rows, sorted by user and item, and each model's input matrix over them."""

    user_ids: pa.Array
    item_ids: pa.Array
    by_role: dict[str, np.ndarray]


CANDIDATES_SCHEMA = pa.schema([("model", pa.string()), ("user_id", pa.string()), ("item_id", pa.string())])
RANKED_SCHEMA = pa.schema([("user_id", pa.string()), ("model", pa.string()), ("rank", pa.int32()),
                           ("item_id", pa.string()), ("score", pa.float64())])


@dataclass(frozen=True)
class Ranked:
    rankings: pa.Table  # user_id, model, rank, item_id, score
    scores: dict[str, np.ndarray]  # per role, one per candidate row
    predict_seconds: dict[str, float]


def candidate_matrix(session: RankingSession, models: list[LoadedModel], inputs: FeatureInputs) -> CandidateMatrix:
    """The model inputs of the session's candidates, built once for both models."""
    used = [n for n in inputs.spec.names() if any(n in m.features for m in models)]
    pairs, values = model_inputs.for_candidates(session, inputs, used)
    return CandidateMatrix(pairs.column("user_id").combine_chunks(), pairs.column("item_id").combine_chunks(),
                           {m.role: columns_for(values, used, m.features) for m in models})


def rank(matrix: CandidateMatrix, models: list[LoadedModel], k: int) -> Ranked:
    """The models' scores and each user's top k (the score step's and the what-ifs' rankings)."""
    parts, scores, seconds = [RANKED_SCHEMA.empty_table()] if not models else [], {}, {}
    for model in models:
        t0 = time.perf_counter()
        scores[model.role] = (np.asarray(model.booster.predict(matrix.by_role[model.role])) if len(matrix.user_ids)
                              else np.empty(0))
        seconds[model.role] = round(time.perf_counter() - t0, 4)
        ranked = top_k(matrix.user_ids, matrix.item_ids, scores[model.role], k)
        parts.append(ranked.add_column(1, "model", pa.array([model.role] * ranked.num_rows, pa.string())))
    return Ranked(pa.concat_tables(parts), scores, seconds)


def candidate_sets(matrix: CandidateMatrix, models: list[LoadedModel]) -> pa.Table:
    """model, user_id, item_id of every candidate row each model scored (its candidate stage's output)."""
    parts = [pa.table([pa.array([m.role] * len(matrix.user_ids), pa.string()), matrix.user_ids, matrix.item_ids],
                      schema=CANDIDATES_SCHEMA) for m in models]
    return pa.concat_tables(parts) if parts else CANDIDATES_SCHEMA.empty_table()


def given_rankings(ctx: RunContext, manifest: Manifest, users: pa.Table) -> pa.Table:
    """The shard's users' lists from every rankings file (manifest kind rankings), rank and score as given."""
    ids = users.column("user_id").combine_chunks()
    parts = [rankings_lists.for_users(rankings_file.read(ctx.storage, manifest, role)[0], ids, role)
             for role in manifest.models.roles_of("rankings")]
    return pa.concat_tables(parts).cast(RANKED_SCHEMA) if parts else RANKED_SCHEMA.empty_table()


def write_attribution(ctx: RunContext, manifest: Manifest, models: list[LoadedModel], matrix: CandidateMatrix,
                      ranked: Ranked, *, starts: np.ndarray, shard: tuple[int, int]) -> tuple[int, float]:
    """The shard's TreeSHAP sums over its part of the attribution sample (testbed.core.attribution), written
    after the rankings and the timed requests, so neither sees the extra work; returns the users it sampled and
    the seconds it took."""
    t0 = time.perf_counter()
    index, count = shard
    size = attribution.shard_sample_size(manifest.evaluation.attribution_users, count, len(starts) - 1)
    if not size:
        return 0, 0.0
    groups = attribution.sample_groups(matrix.user_ids.to_numpy(zero_copy_only=False), starts, size,
                                       attribution.attribution_seed(manifest.sampling.seed))
    sums = attribution.shard_sums(models, matrix.by_role, ranked.scores, starts, groups, k=manifest.evaluation.k)
    io.write(ctx.storage, ctx.layout.shard_attribution(index), ShardAttribution.model_validate(vars(sums)))
    return sums.users, round(time.perf_counter() - t0, 4)


BUILT_IN = "built-in"


def declared_generators(manifest: Manifest, role: str) -> tuple[Generator, ...] | None:
    """The role's declared built-in generators (None: the default list)."""
    declared = getattr(manifest.models, role).generators
    return None if declared is None else tuple(Generator(g.kind, g.quota) for g in declared)


def stage_key(manifest: Manifest, role: str) -> str:
    """BUILT_IN, a candidates table's SHA-256 or the declared generators: models with equal keys share a stage."""
    ref = getattr(manifest.models, role)
    if ref.candidates is not None:
        return str(ref.candidates.sha256)
    generators = declared_generators(manifest, role)
    return BUILT_IN if generators is None else repr(generators)


def stages_of(manifest: Manifest, models: list[LoadedModel]) -> dict[str, list[LoadedModel]]:
    """The scored models by candidate stage (stage_key), in model order. Without scored models: the default
    built-in stage alone (the shard's users)."""
    out: dict[str, list[LoadedModel]] = {}
    for model in models:
        out.setdefault(stage_key(manifest, model.role), []).append(model)
    return out or {BUILT_IN: []}


@dataclass(frozen=True)
class StageScores:
    """One candidate stage's matrix, the scores and top K of its models, and their timed requests."""

    models: list[LoadedModel]
    matrix: CandidateMatrix
    starts: np.ndarray
    ranked: Ranked
    timings: dict[str, RequestTimings]

    @property
    def users(self) -> np.ndarray:
        return np.asarray(self.matrix.user_ids.to_numpy(zero_copy_only=False))[self.starts[:-1]]


def stage_matrices(ctx: RunContext, manifest: Manifest, stages: dict[str, list[LoadedModel]], inputs: FeatureInputs,
                   members: pa.Table) -> dict[str, CandidateMatrix]:
    """Each stage's candidates of the shard's users and its models' inputs over them."""
    tables = {getattr(manifest.models, role).candidates.sha256: candidates_table.read(ctx.storage, manifest, role)[0]
              for role in candidates_table.roles(manifest)}
    ids = members.column("user_id").combine_chunks()
    out = {}
    with slice_data.session(ctx) as session:  # closed (DuckDB's tables gone) before the models predict
        session.prepare(manifest.time.cutoff, manifest.features.windows_days)
        for key, models in stages.items():
            if key in tables:
                session.given_candidates(members, core_candidates.for_users(tables[key], ids))
            else:
                generators = declared_generators(manifest, models[0].role) if models else None
                session.candidates(members, manifest.evaluation.candidates_per_user, generators)
            out[key] = candidate_matrix(session, models, inputs)  # a variant reads its model's features
    return out


def score_stage(manifest: Manifest, models: list[LoadedModel], matrix: CandidateMatrix) -> StageScores:
    """Rank the stage's candidates with its models, then time their requests on a sample of its users."""
    user_ids = matrix.user_ids.to_numpy(zero_copy_only=False)
    starts = group_starts(user_ids)
    sample = latency_groups(user_ids, starts, manifest.evaluation.latency_sample_users, manifest.sampling.seed)
    ranked = rank(matrix, models, manifest.evaluation.k)
    return StageScores(models, matrix, starts, ranked, per_request_latency_ms(models, matrix.by_role, starts, sample))


def model_latency(stage: StageScores, role: str) -> ModelShardLatency:
    scores, timings = stage.ranked.scores[role], stage.timings[role]
    return ModelShardLatency(
        ms=timings.wall_ms.round(4).tolist(), cpu_ms=timings.cpu_ms.round(4).tolist(),
        errors=int(np.add.reduceat(np.isnan(scores), stage.starts[:-1]).astype(bool).sum()) if len(scores) else 0)


def merged(stages: list[StageScores]) -> Ranked:
    """The stages' rankings, scores and predict times together."""
    return Ranked(pa.concat_tables([stage.ranked.rankings.cast(RANKED_SCHEMA) for stage in stages]),
                  {role: v for stage in stages for role, v in stage.ranked.scores.items()},
                  {role: v for stage in stages for role, v in stage.ranked.predict_seconds.items()})


def variant_rankings(variants: list[LoadedModel], scored: dict[str, StageScores], k: int) -> pa.Table:
    """The seed variants' top K, each on its model's stage and inputs, through the same ranking."""
    stage_of = {m.role: stage for stage in scored.values() for m in stage.models}
    parts = []
    for stage in scored.values():
        mine = [v for v in variants if stage_of[training_variance.role_of(v.role)] is stage]
        if mine:
            inputs_of = {v.role: stage.matrix.by_role[training_variance.role_of(v.role)] for v in mine}
            parts.append(rank(CandidateMatrix(stage.matrix.user_ids, stage.matrix.item_ids, inputs_of), mine,
                              k).rankings)
    return pa.concat_tables(parts)


def run_score(ctx: RunContext, manifest: Manifest, shard_index: int = 0, shard_count: int = 1) -> dict[str, Any]:
    """Score one shard; its numbers go to its result document and only their key and counts are returned. Models
    on different candidate stages are scored and timed each on its own candidates (their timings do not pair)."""
    started = time.perf_counter()
    sets = feature_sets.by_role(ctx.storage, manifest)
    models = load_models(ctx.storage, manifest, sets)
    variants = load_seed_variants(ctx.storage, manifest, sets)
    inputs = feature_inputs(ctx, manifest, sets)
    members = shard_users(ctx, shard_index, shard_count)
    stages = stages_of(manifest, models)
    matrices = stage_matrices(ctx, manifest, stages, inputs, members)
    scored = {key: score_stage(manifest, stage_models, matrices[key]) for key, stage_models in stages.items()}
    latency = {role: ModelShardLatency(ms=[], errors=0) for role in manifest.models.roles_of("rankings")}
    latency |= {m.role: model_latency(stage, m.role) for stage in scored.values() for m in stage.models}
    one = next(iter(scored.values())) if len(scored) == 1 else None
    ranked = one.ranked if one is not None else merged(list(scored.values()))
    given = given_rankings(ctx, manifest, members)
    rankings = pa.concat_tables([ranked.rankings.cast(RANKED_SCHEMA), given]) if given.num_rows else ranked.rankings
    sets_scored = pa.concat_tables([candidate_sets(stage.matrix, stage.models) for stage in scored.values()])
    ctx.storage.write_parquet(ctx.layout.shard_candidates(shard_index), sets_scored, bulky=True)
    ctx.storage.write_parquet(ctx.layout.shard_scores(shard_index), rankings, bulky=True)
    paired = one is not None and len(models) == len(ROLES)  # TreeSHAP and paired timings compare two models
    attributed, attribution_seconds = (write_attribution(ctx, manifest, models, one.matrix, one.ranked,
                                                         starts=one.starts, shard=(shard_index, shard_count))
                                       if paired and one is not None else (0, 0.0))
    if variants:  # kept apart from rankings.parquet
        ctx.storage.write_parquet(ctx.layout.shard_variant_scores(shard_index),
                                  variant_rankings(variants, scored, manifest.evaluation.k), bulky=True)
    users = int(len(np.unique(np.concatenate([stage.users for stage in scored.values()]))))
    rows = int(sum(len(stage.matrix.user_ids) for stage in scored.values()))
    io.write(ctx.storage, ctx.layout.shard_latency(shard_index), ShardLatency(
        users=users, control=latency["control"], candidate=latency["candidate"], paired=paired,
        measured_in="lambda" if ctx.invocation.settings.lambda_runtime else "local"))
    result = ctx.layout.shard_result(shard_index)
    io.write(ctx.storage, result, ShardResult(
        shard=shard_index, users=users, candidate_rows=rows, predict_seconds=ranked.predict_seconds,
        attribution_users=attributed, attribution_seconds=attribution_seconds,
        seconds=round(time.perf_counter() - started, 3)))
    return ScoreResult(shard=shard_index, result=result.uri, users=users, candidate_rows=rows).model_dump(mode="json")
