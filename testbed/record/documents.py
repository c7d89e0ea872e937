"""Every JSON document of a run record: its name (the schema file's stem), where it lives and its model."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import TypeAdapter

from testbed.manifest import Manifest
from testbed.record.attribution import AttributionDocument, ShardAttribution
from testbed.record.claim import RunClaim
from testbed.record.drift import DriftDocument
from testbed.record.evaluation import LatencyDocument, MetricsDocument
from testbed.record.features import ParityDocument, StreamStats
from testbed.record.gates import GatesFile
from testbed.record.replay import ReplayDocument
from testbed.record.run import ErrorRecord, RunFile
from testbed.record.scores import ShardError, ShardLatency, ShardPlan, ShardResult
from testbed.record.slice import SliceStats
from testbed.record.whatif import WhatIfDocument

T = TypeVar("T")


@dataclass(frozen=True)
class DocumentKind(Generic[T]):
    name: str
    path: str  # inside the run root (or the run's scratch prefix); NNNNN is a shard number
    description: str
    adapter: TypeAdapter[T]


MANIFEST = DocumentKind(
    "manifest", "manifest.json",
    "The canonical manifest (defaults filled in, times in UTC).",
    TypeAdapter(Manifest))
SLICE_STATS = DocumentKind(
    "slice-stats", "slice/stats.json",
    "What the slice step sampled, per stratum.",
    TypeAdapter(SliceStats))
PARITY = DocumentKind(
    "parity", "features/parity.json",
    "Stream-built vs batch-built features.",
    TypeAdapter(ParityDocument))
STREAM_STATS = DocumentKind(
    "stream-stats", "features/stream_stats.json",
    "What the consume step read and folded.",
    TypeAdapter(StreamStats))
REPLAY = DocumentKind(
    "replay", "replay.json",
    "What the replay step published to the run's stream.",
    TypeAdapter(ReplayDocument))
SHARD_RESULT = DocumentKind(
    "shard-result", "scores/shard-NNNNN.result.json",
    "What one scoring shard scored and how long it took.",
    TypeAdapter(ShardResult))
SHARD_LATENCY = DocumentKind(
    "shard-latency", "scores/shard-NNNNN.latency.json",
    "One scoring shard's timed requests.",
    TypeAdapter(ShardLatency))
SHARD_ERROR = DocumentKind(
    "shard-error", "scores/shard-NNNNN.error.json",
    "Why a scoring shard failed.",
    TypeAdapter(ShardError))
SHARD_ATTRIBUTION = DocumentKind(
    "shard-attribution", "attribution/shard-NNNNN.json",
    "One scoring shard's TreeSHAP sums over its sampled users.",
    TypeAdapter(ShardAttribution))
SHARD_PLAN = DocumentKind(
    "shard-plan", "<artifacts>/scratch/<run_id>/shards/shard-NNNNN.json",
    "One shard of the scoring plan that the workflow's Map lists.",
    TypeAdapter(ShardPlan))
METRICS = DocumentKind(
    "metrics", "metrics.json",
    "Metrics per model and stratum, and the paired deltas.",
    TypeAdapter(MetricsDocument))
LATENCY = DocumentKind(
    "latency", "latency.json",
    "Scoring latency and errors per model.",
    TypeAdapter(LatencyDocument))
ATTRIBUTION = DocumentKind(
    "attribution", "attribution.json",
    "Which features drive each model's scores and the difference between their rankings (TreeSHAP).",
    TypeAdapter(AttributionDocument))
DRIFT = DocumentKind(
    "drift", "drift.json",
    "Feature drift of the slice against its baseline.",
    TypeAdapter(DriftDocument))
WHATIF = DocumentKind(
    "whatif", "whatif.json",
    "Catalogue what-if scenarios (only for a manifest with a whatif block).",
    TypeAdapter(WhatIfDocument))
GATES = DocumentKind(
    "gates", "gates.json",
    "Every gate row and the decision, or the failed parity gate of an ERROR run.",
    TypeAdapter[GatesFile](GatesFile))
RUN = DocumentKind(
    "run", "run.json",
    "The run record: a completed run's record, or an ERROR record.",
    TypeAdapter[RunFile](RunFile))
CLAIM = DocumentKind(
    "claim", "claim.json",
    "Which workflow execution holds the run; taken by validate before anything is provisioned.",
    TypeAdapter(RunClaim))
ERROR = DocumentKind(
    "error", "errors/<time>-<hash>.json",
    "One failure of a run.",
    TypeAdapter(ErrorRecord))

ALL: tuple[DocumentKind[Any], ...] = (MANIFEST, SLICE_STATS, PARITY, STREAM_STATS, REPLAY, SHARD_RESULT,
                                      SHARD_LATENCY, SHARD_ERROR, SHARD_ATTRIBUTION, SHARD_PLAN, METRICS, LATENCY,
                                      ATTRIBUTION, DRIFT, WHATIF, GATES, RUN, CLAIM, ERROR)
