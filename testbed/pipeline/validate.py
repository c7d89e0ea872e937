"""Step 1: validate the manifest against the schema, the lake and the model files; derive the run id."""

from __future__ import annotations

import hashlib
from typing import Any

import duckdb
from botocore.exceptions import ClientError

from testbed.adapters.engines import Engine, make_engine
from testbed.adapters.storage import Storage
from testbed.core import lake_contract, ranking_data
from testbed.core.model_text import ModelTextError, check_model_text
from testbed.core.scoring import load_model
from testbed.core.slice_sql import partition_range, window_predicate
from testbed.errors import LakeError, ManifestError, ModelArtifactError
from testbed.invocation import Invocation
from testbed.manifest import Manifest, parse_manifest
from testbed.pipeline import claim
from testbed.record import io
from testbed.record.claim import ExecutionRef
from testbed.record.layout import RunLayout
from testbed.record.run import ModelProvenance, RunRecord
from testbed.record.steps import ValidatedRun
from testbed.settings import code_version

_NUMERIC = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "DOUBLE", "FLOAT", "HUGEINT", "UBIGINT", "UINTEGER")


def check_schema(engine: Engine) -> dict[str, dict[str, str]]:
    """Every required column is present with an accepted type; returns the lake's columns per dataset."""
    found: dict[str, dict[str, str]] = {}
    for dataset, required in lake_contract.REQUIRED.items():
        try:
            columns = engine.columns(dataset)
        except (duckdb.Error, ClientError) as exc:
            raise LakeError(f"lake {dataset}/: unreadable Parquet ({str(exc).splitlines()[0][:120]})") from None
        for column, (accepted, human) in required.items():
            if column not in columns:
                raise LakeError(f"lake {dataset}/: required column {column} ({human}) is missing")
            if not lake_contract.type_accepted(columns[column], accepted):
                raise LakeError(f"lake {dataset}/: column {column} has type {columns[column]}, expected {human}")
        per_file = getattr(engine, "file_missing_column", None)  # Glue tables have one schema; files may not
        missing = per_file(dataset, [c for c in required if c != "event_date"]) if per_file else None
        if missing:
            raise LakeError(f"lake {missing[0]}: required column {missing[1]} is missing from this file")
        found[dataset] = columns
    return found


def check_rows(engine: Engine, manifest: Manifest) -> None:
    window = window_predicate("e", manifest.time.start, manifest.time.end)
    for dataset, column, problem, sql in lake_contract.row_checks(window):
        rows = engine.query(sql).to_pylist()
        if rows:
            example = next(iter(rows[0].values()))
            raise LakeError(f"lake {dataset}/: column {column}: {problem} (example: {example!r})")
    count = engine.query(f"SELECT COUNT(*) AS n FROM events e WHERE {window}").column(0)[0].as_py()
    if count == 0:
        raise LakeError(f"lake events/: no events between time.start {manifest.time.start.isoformat()} "
                        f"and time.end {manifest.time.end.isoformat()}")


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


def check_model_file(data: bytes, source: str) -> None:
    """Parse the model's whole structure first: LightGBM's own parser aborts the process on a tree cut short."""
    try:
        check_model_text(data)
    except ModelTextError as exc:
        raise ModelArtifactError(f"{source}: not a LightGBM text model ({exc})") from None


def resolve_models(storage: Storage, manifest: Manifest) -> dict[str, ModelProvenance]:
    """Read each model file, check its SHA-256, and check it is a LightGBM model on features we produce."""
    available = [name for name, _ in ranking_data.model_features(manifest.features.windows_days)]
    out = {}
    for role in ("control", "candidate"):
        ref = getattr(manifest.models, role)
        try:
            data = storage.read_bytes(ref.uri)
        except (OSError, ClientError):
            raise ModelArtifactError(f"manifest: models.{role}.uri: model file not found: {ref.uri}") from None
        actual = hashlib.sha256(data).hexdigest()
        if actual != ref.sha256:
            raise ModelArtifactError(f"manifest: models.{role}.sha256: checksum mismatch for {ref.uri} "
                                     f"(file has {actual[:12]}…, manifest says {ref.sha256[:12]}…)")
        source = f"manifest: models.{role}.uri ({ref.uri})"
        check_model_file(data, source)
        model = load_model(role, data, available, source)
        out[role] = ModelProvenance(uri=ref.uri, sha256=actual, bytes=len(data), features=len(model.features))
    return out


def run_id_for(manifest: Manifest, lake_fingerprint: str, code: str) -> str:
    seed = f"{manifest.canonical_json()}\n{lake_fingerprint}\n{code}".encode()
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
        check_rows(engine, manifest)
    finally:
        engine.close()
    models = resolve_models(storage, manifest)
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
        execution=execution.id if execution is not None and existing is None else None,
    ).model_dump(mode="json")
