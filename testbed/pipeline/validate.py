"""Step 1: validate the manifest against the schema, the lake and the model files; derive the run id."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import duckdb
import pyarrow.compute as pc
from botocore.exceptions import ClientError

from testbed.adapters.engines import Engine, make_engine
from testbed.adapters.storage import Storage
from testbed.core import lake_contract
from testbed.core.drift import EVENT_FIELDS
from testbed.core.feature_check import check_against_lake, check_event_types
from testbed.core.feature_spec import FeatureSet
from testbed.core.model_text import ModelTextError, check_model_text
from testbed.core.roles import ROLES
from testbed.core.scoring import load_model
from testbed.core.slice_sql import (
    ADDED_USER_COLUMNS,
    INTERNAL_PREFIX,
    partition_predicate,
    partition_range,
    plain_statements,
    window_predicate,
)
from testbed.errors import LakeError, ManifestError, ModelArtifactError, QueryInputError, TimeWindowError
from testbed.invocation import Invocation
from testbed.manifest import Manifest, parse_manifest
from testbed.pipeline import candidates_table, claim, feature_sets, rankings_file
from testbed.pipeline.checked_read import read_checked
from testbed.pipeline.validate_lake_capabilities import lake_limitations
from testbed.pipeline.validate_pii import check_unmasked_pii
from testbed.pipeline.validate_training import check_training
from testbed.record import io
from testbed.record.claim import ExecutionRef
from testbed.record.layout import RunLayout
from testbed.record.run import ModelProvenance, RunRecord, SeedVariantProvenance
from testbed.record.steps import ValidatedRun
from testbed.settings import Settings, code_version

_NUMERIC = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "DOUBLE", "FLOAT", "HUGEINT", "UBIGINT", "UINTEGER")


@contextmanager
def _reading(dataset: str) -> Iterator[None]:
    """An engine that cannot read a dataset's files (corrupt, empty, cut short, not Parquet) is a lake error."""
    try:
        yield
    except (duckdb.Error, ClientError) as exc:
        raise LakeError(f"lake {dataset}/: unreadable Parquet ({str(exc).splitlines()[0][:300]})") from None


def _check_file(file: str, columns: dict[str, str], required: dict[str, tuple[tuple[str, ...], str]]) -> None:
    for column, (accepted, human) in required.items():
        if column == "event_date":  # from the folder name, not the file
            continue
        if column not in columns:
            raise LakeError(f"lake {file}: required column {column} is missing from this file")
        if not lake_contract.type_accepted(columns[column], accepted):
            raise LakeError(f"lake {file}: column {column} has type {columns[column]} in this file, expected {human}")


def check_schema(engine: Engine) -> dict[str, dict[str, str]]:
    """Every required column is present with an accepted type; returns the lake's columns per dataset."""
    found: dict[str, dict[str, str]] = {}
    for dataset, required in lake_contract.REQUIRED.items():
        with _reading(dataset):
            columns = engine.columns(dataset)
        for column, (accepted, human) in required.items():
            if column not in columns:
                raise LakeError(f"lake {dataset}/: required column {column} ({human}) is missing")
            if not lake_contract.type_accepted(columns[column], accepted):
                raise LakeError(f"lake {dataset}/: column {column} has type {columns[column]}, expected {human}")
        per_file = getattr(engine, "file_columns", None)  # Glue tables have one schema; files may not
        with _reading(dataset):
            for file, file_columns in per_file(dataset) if per_file else ():
                _check_file(file, file_columns, required)
        found[dataset] = columns
    return found


def check_rows(engine: Engine, manifest: Manifest) -> None:
    window = window_predicate("e", manifest.time.start, manifest.time.end)
    partitions = partition_predicate("e", manifest.time.start, manifest.time.end)
    for dataset, column, problem, sql in lake_contract.row_checks(window, partitions,
                                                                      manifest.evaluation.vocabulary()):
        with _reading(dataset):
            rows = engine.query(sql).to_pylist()
        if rows:
            (shown, example), *beside = rows[0].items()
            if manifest.pii.masks(shown):  # e.g. a masked user_id: name the problem, never the value
                raise LakeError(f"lake {dataset}/: column {column}: {problem} (example withheld: {shown} is masked)")
            more = "".join(f", {name} {value!r}" for name, value in beside if not manifest.pii.masks(name))
            raise LakeError(f"lake {dataset}/: column {column}: {problem} (example: {example!r}{more})")
    with _reading("events"):
        count = engine.query(f"SELECT COUNT(*) AS n FROM events e WHERE {window}").column(0)[0].as_py()
    if count == 0:
        raise TimeWindowError(f"manifest: time: the lake has no events between time.start "
                              f"{manifest.time.start.isoformat()} and time.end {manifest.time.end.isoformat()}")


def check_segment(engine: Engine, manifest: Manifest) -> None:
    """The segment selects eligible users and the sampling keeps some: otherwise the slice step would fail."""
    statements, params = plain_statements(manifest)
    try:
        with _reading("users"):
            population = engine.query(statements["population"], params)
    except QueryInputError as exc:  # either engine: a filter value that does not fit its column
        raise ManifestError(f"manifest: segment.filters: a value does not fit its column "
                            f"({str(exc).splitlines()[0][:100]})") from None
    eligible = int(pc.sum(population.column("_tb_eligible_users")).as_py() or 0)
    sampled = int(pc.sum(population.column("_tb_sampled_users")).as_py() or 0)
    if eligible == 0:
        raise ManifestError(f"manifest: segment: {manifest.segment.name!r} selects no eligible user (none with at "
                            f"least sampling.min_events_per_user={manifest.sampling.min_events_per_user} events in "
                            "[time.start, time.cutoff)); widen segment.filters or the time window")
    if sampled == 0:
        raise ManifestError(f"manifest: sampling: keeps none of the {eligible} eligible users of segment "
                            f"{manifest.segment.name!r}; raise sampling.rate")


def check_reserved_columns(manifest: Manifest, columns: dict[str, dict[str, str]]) -> None:
    """No lake column may take the place of a column the slice adds or computes (issue 11, case 7)."""
    for column in ADDED_USER_COLUMNS:
        if column in columns["users"]:
            raise LakeError(f"lake users/: column {column!r} is reserved: the slice adds its own {column} "
                            "to users.parquet; rename the lake column")
    for i, column in enumerate(manifest.sampling.strata):
        if column.startswith(INTERNAL_PREFIX):
            raise ManifestError(f"manifest: sampling.strata.{i}: column {column!r} uses the prefix "
                                f"{INTERNAL_PREFIX!r} reserved for the slice's own columns")


def check_manifest_columns(manifest: Manifest, columns: dict[str, dict[str, str]]) -> None:
    users = columns["users"]
    for i, flt in enumerate(manifest.segment.filters):
        if flt.column not in users:
            raise ManifestError(f"manifest: segment.filters.{i}.column: unknown users/ column {flt.column!r}")
        values = flt.value if isinstance(flt.value, list) else [flt.value]
        if users[flt.column].upper() in _NUMERIC and any(isinstance(v, str) for v in values):
            raise ManifestError(f"manifest: segment.filters.{i}.value: column {flt.column} is numeric, "
                                f"got a string")
    for i, column in enumerate(manifest.sampling.strata):
        if column not in users:
            raise ManifestError(f"manifest: sampling.strata.{i}: unknown users/ column {column!r}")
    everywhere = set().union(*(set(c) for c in columns.values()))
    explicit = "mask" in manifest.pii.model_fields_set
    for i, column in enumerate(manifest.pii.mask):
        if column not in everywhere and explicit:
            raise ManifestError(f"manifest: pii.mask.{i}: column {column!r} is in no lake dataset")
    for i, column in enumerate(manifest.pii.allow):
        if column not in everywhere:
            raise ManifestError(f"manifest: pii.allow.{i}: column {column!r} is in no lake dataset")


def check_model_file(data: bytes, source: str) -> None:
    """Parse the model's whole structure first: LightGBM's own parser aborts the process on a tree cut short."""
    try:
        check_model_text(data)
    except ModelTextError as exc:
        raise ModelArtifactError(f"{source}: not a LightGBM text model ({exc})") from None


def _model_file(storage: Storage, manifest: Manifest, sets: dict[str, feature_sets.ModelFeatures], role: str, *,
                where: str, uri: str, sha256: str) -> tuple[bytes, list[str]]:
    """A model file's bytes and feature names, after checking its SHA-256, that it is a LightGBM model, and that
    it reads its role's feature set; `where` is its manifest field (models.control, ...)."""
    data = read_checked(storage, uri, sha256, field=f"manifest: {where}", what="model file", says="manifest says",
                        error=ModelArtifactError)
    source = f"manifest: {where}.uri ({uri})"
    check_model_file(data, source)
    model = load_model(role, data, source)
    feature_sets.check_model(sets[role], manifest, role, model.features, data)
    return data, model.features


def resolve_models(storage: Storage, manifest: Manifest,
                   sets: dict[str, feature_sets.ModelFeatures]) -> tuple[dict[str, ModelProvenance], list[str]]:
    """Read each LightGBM model file (and its seed variants), check its SHA-256, check it is a LightGBM model on
    its feature set's features, and check its recorded training window against the run's label window.
    Returns the provenance by role and the training-overlap warnings."""
    out, warnings = {}, []
    for role in manifest.models.roles_of("lightgbm"):
        ref = getattr(manifest.models, role)
        data, features = _model_file(storage, manifest, sets, role, where=f"models.{role}", uri=ref.uri,
                                     sha256=ref.sha256)
        variants = []
        for i, variant in enumerate(ref.seed_variants):
            where = f"models.{role}.seed_variants.{i}"
            extra, extra_features = _model_file(storage, manifest, sets, role, where=where, uri=variant.uri,
                                                     sha256=variant.sha256)
            if extra_features != features:
                raise ModelArtifactError(f"manifest: {where}.uri ({variant.uri}): a seed variant must read the "
                                         f"same features as models.{role}, in the same order")
            variants.append(SeedVariantProvenance(uri=variant.uri, sha256=variant.sha256, bytes=len(extra)))
        training = check_training(storage, manifest, role, ref.uri, ref.sha256)
        warnings += [training.warning] if training.warning else []
        out[role] = ModelProvenance(uri=ref.uri, sha256=ref.sha256, bytes=len(data), features=len(features),
                                    feature_names=features, feature_set=sets[role].provenance,
                                    training=training.record(), training_overlap=training.overlap,
                                    seed_variants=variants)
    return out, warnings


def check_feature_set(storage: Storage, manifest: Manifest, columns: dict[str, dict[str, str]],
                      sets: dict[str, feature_sets.ModelFeatures]) -> None:
    """Each model's feature set against the declared event types and the lake's columns, its external tables
    against their own, and the drift thresholds against the features drift reports on."""
    declared = manifest.evaluation.vocabulary().names
    for features in sets.values():
        check_event_types(features.spec, declared, feature_sets.source_of(features))
        external = feature_sets.external_columns(feature_sets.external_tables(storage, features.spec))
        check_against_lake(features.spec, columns, feature_sets.source_of(features), external)
    spec = feature_sets.union(sets)
    known = {a.name for a in spec.aggregations} | set(EVENT_FIELDS)
    for name in manifest.drift.features:
        if name not in known:
            raise ManifestError(f"manifest: drift.features.{name}: unknown feature (drift reports on the feature "
                                f"set's aggregations and the event fields, e.g. {', '.join(sorted(known)[:3])})")


def check_feature_file_against_lake(settings: Settings, spec: FeatureSet, lake: str, source: str) -> None:
    """`testbed features check --lake`: every column the set reads exists in the lake with a fitting type."""
    invocation = Invocation.outside_lambda(settings)
    engine = make_engine(invocation, lake)
    try:
        columns = check_schema(engine)
    finally:
        engine.close()
    external = feature_sets.external_columns(feature_sets.external_tables(invocation.storage, spec))
    check_against_lake(spec, columns, source, external)


def run_id_for(manifest: Manifest, lake_fingerprint: str, code: str) -> str:
    """From content only: the manifest's content form (model and feature set SHA-256s, no paths), the lake's
    fingerprint (relative file names and content hashes) and the code version."""
    seed = f"{manifest.content_json()}\n{lake_fingerprint}\n{code}".encode()
    return f"{manifest.name}-{hashlib.sha256(seed).hexdigest()[:12]}"


def validate(invocation: Invocation, raw_manifest: Any, lake: str, artifacts: str | None = None,
             execution: ExecutionRef | None = None) -> dict[str, Any]:
    """Everything `testbed validate` and the validate step check. Raises InputError subclasses. In a workflow
    `execution`, a run without a final record is claimed for it first (RunInProgressError if another holds it)."""
    storage = invocation.storage
    manifest = parse_manifest(raw_manifest)
    fingerprint = storage.fingerprint(lake)
    code = code_version()
    run_id = run_id_for(manifest, fingerprint, code)
    layout = RunLayout.of(artifacts, run_id, invocation.settings.scratch_uri) if artifacts is not None else None
    scratch = layout.scratch("validate") if layout else None
    engine = make_engine(invocation, lake, partition_range(manifest.time.start, manifest.time.end), scratch)
    try:
        columns = check_schema(engine)
        check_manifest_columns(manifest, columns)
        check_reserved_columns(manifest, columns)
        check_unmasked_pii(engine, manifest, columns)
        check_rows(engine, manifest)
        check_segment(engine, manifest)
        sets = feature_sets.by_role(storage, manifest)
        limitations = lake_limitations(engine, manifest, [features.spec for features in sets.values()])
        given = {role: rankings_file.check(engine, storage, manifest, role)
                 for role in manifest.models.roles_of("rankings")}
        retrieved = {role: candidates_table.check(engine, storage, manifest, role)
                     for role in candidates_table.roles(manifest)}
    finally:
        engine.close()
    check_feature_set(storage, manifest, columns, sets)
    scored, warnings = resolve_models(storage, manifest, sets)
    for role, (summary, _) in retrieved.items():
        scored[role] = scored[role].model_copy(update={"candidates": summary})
    models = {role: scored[role] if role in scored else given[role][0] for role in ROLES}
    warnings += [warning for role in given for warning in given[role][1]]
    warnings += [warning for role in retrieved for warning in retrieved[role][1]]
    existing = None
    if layout is not None:
        previous = io.read_if_present(storage, layout.record)
        if isinstance(previous, RunRecord):  # a final decision; an ERROR record may be retried
            existing = previous.decision
        else:
            if execution is not None:
                claim.take(storage, layout, execution, previous)
            io.write(storage, layout.manifest, manifest)
    return ValidatedRun(
        run_id=run_id, lake=lake, manifest_digest=manifest.digest(), lake_fingerprint=fingerprint,
        code_version=code, models=models, existing_decision=existing,
        bytes_scanned=int(getattr(engine, "bytes_scanned", 0)), run_uri=layout.root if layout else None,
        execution=execution.id if execution is not None and existing is None else None, warnings=warnings,
        limitations=limitations,
    ).model_dump(mode="json")
