"""Every path of a run: the run root `<artifacts>/runs/<run_id>/` and the scratch prefix
`<scratch root>/<run_id>/` (Athena output, shard plans, stream chunks), deleted by teardown. The scratch root is
TESTBED_SCRATCH_URI when set (deployed: a bucket without Object Lock) and `<artifacts>/scratch` otherwise."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

from testbed.adapters import storage
from testbed.manifest import Manifest
from testbed.record import documents
from testbed.record.attribution import AttributionDocument, ShardAttribution
from testbed.record.claim import RunClaim
from testbed.record.documents import DocumentKind
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
SLICE_TABLES = ("users", "events", "items", "population_events")
FEATURE_ENTITIES = ("user", "item", "user_category")
MARKDOWN_REPORT, HTML_REPORT = "report.md", "report.html"


@dataclass(frozen=True)
class DocumentPath(Generic[T]):
    """Where one JSON document is and what model it holds (testbed.record.io reads and writes it)."""

    uri: str
    kind: DocumentKind[T]


def scratch_prefix(artifacts: str, run_id: str, scratch_root: str | None = None) -> str:
    """The run's scratch prefix: under `scratch_root` when one is configured, else under `<artifacts>/scratch`."""
    return storage.join(scratch_root or storage.join(artifacts, "scratch"), run_id)


def shard_name(index: int) -> str:
    return f"shard-{index:05d}"


@dataclass(frozen=True)
class RunLayout:
    root: str  # `<artifacts>/runs/<run_id>` for every run the pipeline writes
    run_id: str
    artifacts: str  # the root the scratch prefix is under unless scratch_root is given
    scratch_root: str | None = None  # TESTBED_SCRATCH_URI

    @classmethod
    def of(cls, artifacts: str, run_id: str, scratch_root: str | None = None) -> RunLayout:
        return cls(storage.join(artifacts, "runs", run_id), run_id, artifacts.rstrip("/"), scratch_root)

    @classmethod
    def at(cls, run_uri: str, scratch_root: str | None = None) -> RunLayout:
        """The layout of the run whose root is `run_uri`; a record copied elsewhere (any folder named after
        its run) reads the same way."""
        root = run_uri.rstrip("/")
        parent, _, run_id = root.rpartition("/")
        return cls(root, run_id, root.rpartition("/runs/")[0] if "/runs/" in root else parent, scratch_root)

    def uri(self, *parts: str) -> str:
        return storage.join(self.root, *parts)

    def _doc(self, kind: DocumentKind[T], *parts: str) -> DocumentPath[T]:
        return DocumentPath(self.uri(*parts), kind)

    # documents
    @property
    def manifest(self) -> DocumentPath[Manifest]:
        return self._doc(documents.MANIFEST, "manifest.json")

    @property
    def slice_stats(self) -> DocumentPath[SliceStats]:
        return self._doc(documents.SLICE_STATS, "slice", "stats.json")

    @property
    def parity(self) -> DocumentPath[ParityDocument]:
        return self._doc(documents.PARITY, "features", "parity.json")

    @property
    def stream_stats(self) -> DocumentPath[StreamStats]:
        return self._doc(documents.STREAM_STATS, "features", "stream_stats.json")

    @property
    def replay(self) -> DocumentPath[ReplayDocument]:
        return self._doc(documents.REPLAY, "replay.json")

    @property
    def metrics(self) -> DocumentPath[MetricsDocument]:
        return self._doc(documents.METRICS, "metrics.json")

    @property
    def latency(self) -> DocumentPath[LatencyDocument]:
        return self._doc(documents.LATENCY, "latency.json")

    @property
    def attribution(self) -> DocumentPath[AttributionDocument]:
        return self._doc(documents.ATTRIBUTION, "attribution.json")

    @property
    def drift(self) -> DocumentPath[DriftDocument]:
        return self._doc(documents.DRIFT, "drift.json")

    @property
    def whatif(self) -> DocumentPath[WhatIfDocument]:
        return self._doc(documents.WHATIF, "whatif.json")

    @property
    def gates(self) -> DocumentPath[GatesFile]:
        return self._doc(documents.GATES, "gates.json")

    @property
    def record(self) -> DocumentPath[RunFile]:
        return self._doc(documents.RUN, "run.json")

    @property
    def claim(self) -> DocumentPath[RunClaim]:
        return self._doc(documents.CLAIM, "claim.json")

    def shard_result(self, index: int) -> DocumentPath[ShardResult]:
        return self._doc(documents.SHARD_RESULT, "scores", f"{shard_name(index)}.result.json")

    def shard_latency(self, index: int) -> DocumentPath[ShardLatency]:
        return self._doc(documents.SHARD_LATENCY, "scores", f"{shard_name(index)}.latency.json")

    def shard_error(self, index: int) -> DocumentPath[ShardError]:
        return self._doc(documents.SHARD_ERROR, "scores", f"{shard_name(index)}.error.json")

    def shard_attribution(self, index: int) -> DocumentPath[ShardAttribution]:
        return self._doc(documents.SHARD_ATTRIBUTION, "attribution", f"{shard_name(index)}.json")

    @property
    def shard_attributions(self) -> str:
        """The prefix every shard's attribution sums are under."""
        return self.uri("attribution")

    def error(self, name: str) -> DocumentPath[ErrorRecord]:
        """errors/<name>.json, one per failure (name: UTC time without colons and a short hash)."""
        return self._doc(documents.ERROR, "errors", f"{name}.json")

    def shard_plan(self, index: int) -> DocumentPath[ShardPlan]:
        return DocumentPath(self.scratch("shards", f"{shard_name(index)}.json"), documents.SHARD_PLAN)

    # tables and other files
    def slice_table(self, name: str) -> str:
        """slice/<users|events|items|population_events>.parquet (SLICE_TABLES); population_events is every lake
        user's pre-cutoff events the lake-population features and the candidates' popularity read, no user_id"""
        return self.uri("slice", f"{name}.parquet")

    @property
    def item_popularity(self) -> str:
        """slice/item_popularity.parquet: the extract's events per item in the popularity window (item_id, events;
        testbed.core.beyond_accuracy.item_popularity); derived from population_events, so not in the slice digest"""
        return self.uri("slice", "item_popularity.parquet")

    @property
    def user_history(self) -> str:
        """slice/user_history.parquet: each user's pre-cutoff events and top category (user_id, events,
        top_category; testbed.core.cohorts.user_history, the worst cohorts'); derived, so not in the slice digest"""
        return self.uri("slice", "user_history.parquet")

    def batch_features(self, entity: str) -> str:
        return self.uri("features", f"batch_{entity}.parquet")

    def stream_features(self, entity: str) -> str:
        return self.uri("features", f"stream_{entity}.parquet")

    def shard_scores(self, index: int) -> str:
        return self.uri("scores", f"{shard_name(index)}.parquet")

    def shard_variant_scores(self, index: int) -> str:
        """The shard's top K of every seed variant (models named `control#1`, ...); never part of rankings.parquet."""
        return self.uri("seed_variants", f"{shard_name(index)}.parquet")

    @property
    def variant_scores(self) -> str:
        return self.uri("seed_variants")

    def shard_candidates(self, index: int) -> str:
        """The shard's candidate sets: every (model, user_id, item_id) a model with a candidate stage scored."""
        return self.uri("candidates", f"{shard_name(index)}.parquet")

    @property
    def candidates(self) -> str:
        return self.uri("candidates")

    @property
    def scores(self) -> str:
        """The prefix every shard's files are under."""
        return self.uri("scores")

    @property
    def errors(self) -> str:
        return self.uri("errors")

    @property
    def rankings(self) -> str:
        return self.uri("rankings.parquet")

    @property
    def labels(self) -> str:
        return self.uri("labels.parquet")

    @property
    def per_user(self) -> str:
        return self.uri("evaluation", "per_user.parquet")

    def report(self, name: str) -> str:
        """MARKDOWN_REPORT or HTML_REPORT"""
        return self.uri(name)

    # the scratch prefix
    def scratch(self, *parts: str) -> str:
        return storage.join(scratch_prefix(self.artifacts, self.run_id, self.scratch_root), *parts)

    @property
    def shard_plans(self) -> str:
        return self.scratch("shards")

    def stream_chunk(self, number: int) -> str:
        return self.scratch("stream", f"chunk-{number:06d}.parquet")
