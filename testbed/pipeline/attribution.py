"""The evaluate step's attribution.json: every scoring shard's TreeSHAP sums (attribution/shard-NNNNN.json,
testbed.pipeline.score) merged into the run's means (testbed.core.attribution defines them)."""

from __future__ import annotations

from dataclasses import asdict

from testbed.core import attribution
from testbed.manifest import Manifest
from testbed.pipeline.context import RunContext
from testbed.record import documents, io
from testbed.record.attribution import AttributionDocument
from testbed.record.layout import DocumentPath

METHOD = "TreeSHAP (LightGBM pred_contrib) on a seeded user sample's top-K rows; difference: mean |delta| of " \
         "per-user standardised, centred contributions"


def write_attribution(ctx: RunContext, manifest: Manifest) -> AttributionDocument | None:
    """attribution.json from the shards' sums; None (and no file) when attribution is off or sampled nobody."""
    if not manifest.evaluation.attribution_users:
        return None
    keys = sorted(k for k in ctx.storage.list_keys(ctx.layout.shard_attributions + "/") if k.endswith(".json"))
    parts = [io.read(ctx.storage, DocumentPath(key, documents.SHARD_ATTRIBUTION)) for key in keys]
    if not parts:
        return None
    merged = attribution.merge([attribution.AttributionSums(**part.model_dump()) for part in parts])
    document = AttributionDocument.model_validate({
        "method": METHOD, "seed": attribution.attribution_seed(manifest.sampling.seed),
        "users_requested": manifest.evaluation.attribution_users, "k": manifest.evaluation.k,
        **{key: value for key, value in asdict(merged).items() if key != "features"}})
    io.write(ctx.storage, ctx.layout.attribution, document)
    return document
