"""Each model's feature set, read and checked once per step: its file (SHA-256 checked), or the default set.

A model without `features` in the manifest uses the testbed's retail-default set for `features.windows_days`.
A run computes the union of both models' sets once (feature_spec.merged); each model takes its own columns.
External feature tables are read here too, each checked against the SHA-256 its set declares.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa
import pyarrow.parquet as pq

from testbed.adapters.storage import Storage
from testbed.core.feature_check import check_model_features, load_feature_set
from testbed.core.feature_spec import FeatureSet, merged
from testbed.core.model_text import categorical_indices
from testbed.core.retail_default import retail_default
from testbed.core.roles import ROLES
from testbed.errors import FeatureSetError
from testbed.manifest import Manifest
from testbed.pipeline.checked_read import read_checked
from testbed.record.run import FeatureSetProvenance


@dataclass(frozen=True)
class ModelFeatures:
    spec: FeatureSet
    provenance: FeatureSetProvenance


def _read(storage: Storage, uri: str, sha256: str, field: str, what: str) -> bytes:
    return read_checked(storage, uri, sha256, field=field, what=what, says="the reference says",
                        error=FeatureSetError)


def for_model(storage: Storage, manifest: Manifest, role: str) -> ModelFeatures:
    ref = getattr(manifest.models, role).features
    if ref is None:
        spec = retail_default(manifest.features.windows_days)
        return ModelFeatures(spec, FeatureSetProvenance(name=spec.name, digest=spec.digest()))
    field = f"manifest: models.{role}.features"
    data = _read(storage, ref.uri, ref.sha256, field, "feature set file")
    spec = load_feature_set(data, f"feature set {ref.uri}")
    return ModelFeatures(spec, FeatureSetProvenance(name=spec.name, digest=spec.digest(), uri=ref.uri,
                                                    sha256=ref.sha256))


def by_role(storage: Storage, manifest: Manifest) -> dict[str, ModelFeatures]:
    """Both models' sets, each file read and checked once: a step that needs them several ways passes these on."""
    return {role: for_model(storage, manifest, role) for role in ROLES}


def run_set(storage: Storage, manifest: Manifest) -> FeatureSet:
    """The features a run computes: the union of both models' sets."""
    return union(by_role(storage, manifest))


def union(sets: dict[str, ModelFeatures]) -> FeatureSet:
    """The union of both models' sets (feature_spec.merged); a name declared twice must mean one feature."""
    try:
        return merged(sets["control"].spec, sets["candidate"].spec)
    except ValueError as exc:
        raise FeatureSetError(f"manifest: models: {str(exc).splitlines()[0]}") from None


def source_of(features: ModelFeatures) -> str:
    """How error messages name a model's feature set: its file, or the default set's name."""
    return features.provenance.uri or features.spec.name


def external_columns(tables: dict[str, pa.Table]) -> dict[str, dict[str, str]]:
    """Each external table's columns and their Arrow type names (what check_against_lake reads)."""
    return {name: {f.name: str(f.type) for f in table.schema} for name, table in tables.items()}


def external_tables(storage: Storage, spec: FeatureSet) -> dict[str, pa.Table]:
    """Every external table of the set, read whole after its SHA-256 check (values are data, never SQL)."""
    out = {}
    for i, table in enumerate(spec.external):
        field = f"feature set {spec.name}: external.{i} ({table.name})"
        data = _read(storage, table.uri, table.sha256, field, "external feature table")
        try:
            out[table.name] = pq.read_table(pa.BufferReader(data))
        except pa.ArrowInvalid as exc:
            raise FeatureSetError(f"{field}.uri: not a Parquet file: {table.uri} ({str(exc)[:80]})") from None
    return out


def check_model(features: ModelFeatures, manifest: Manifest, role: str, feature_names: list[str],
                text: bytes) -> None:
    """The model's feature set declares every model feature, and its categoricals are the model's."""
    ref = getattr(manifest.models, role)
    where = f"models.{role}.features" if ref.features else f"the default set ({features.spec.name})"
    check_model_features(features.spec, feature_names, categorical_indices(text),
                         f"manifest: models.{role}.uri ({ref.uri})", where)
