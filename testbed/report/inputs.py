"""Everything a report shows, read from one run record (a local directory or s3://) without ever failing on a
missing part: other steps may not have written their file (no drift in this run, an older record), and the
report must still say what is known. Missing or unreadable inputs are listed in `RunData.missing`. Documents
are read through their testbed.record models, so one that does not fit its model counts as unreadable and the
renderers only see validated data.

Heavy inputs (rankings, slice users, item features) are reduced here to the few numbers the charts need, so the
renderers only see the models and small plain data.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final, Literal, TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import ValidationError

from testbed.adapters.storage import Storage
from testbed.manifest import Manifest
from testbed.record import io
from testbed.record.attribution import AttributionDocument
from testbed.record.base import Decision
from testbed.record.drift import DriftDocument
from testbed.record.evaluation import LatencyDocument, MetricsDocument
from testbed.record.features import ParityDocument
from testbed.record.gates import GatesDocument, GatesFile
from testbed.record.layout import DocumentPath, RunLayout
from testbed.record.run import ErrorRecord, RunFile, RunRecord
from testbed.record.slice import SliceStats
from testbed.record.whatif import WhatIfDocument

T = TypeVar("T")
UNKNOWN: Final = "UNKNOWN"  # the decision of a folder with neither run.json nor gates.json
MODELS = ("control", "candidate")
SCORE_BINS = 30
POPULARITY_BUCKETS = 10


@dataclass
class RunData:
    """A run record as the reports see it: its documents as their testbed.record models. Every part may be None
    (`record` too: a folder whose run.json is missing or unreadable still shows its other documents)."""

    run_uri: str
    record: RunFile | None
    gates: GatesFile | None = None
    metrics: MetricsDocument | None = None
    stats: SliceStats | None = None
    drift: DriftDocument | None = None
    whatif: WhatIfDocument | None = None
    parity: ParityDocument | None = None
    latency: LatencyDocument | None = None
    attribution: AttributionDocument | None = None
    manifest: Manifest | None = None
    inclusion: dict[str, dict[str, float]] | None = None  # stratum -> users, min, mean, max
    scores: dict[str, Any] | None = None  # {"edges": [...], "counts": {model: [...]}, "n": {...}, "mean": {...}}
    popularity: dict[str, Any] | None = None  # {"buckets": n, "share": {model: [...]}, "basis": str, ...}
    missing: list[str] = field(default_factory=list)

    @property
    def run_id(self) -> str:
        return self.record.run_id if self.record is not None else self.run_uri.rstrip("/").rsplit("/", 1)[-1]

    @property
    def decision(self) -> Decision | Literal["UNKNOWN"]:
        """run.json's decision, else gates.json's; UNKNOWN without either."""
        if self.record is not None:
            return self.record.decision
        return self.gates.decision if self.gates is not None else UNKNOWN

    @property
    def reasons(self) -> list[str]:
        if self.record is not None:
            return self.record.reasons
        return self.gates.reasons if self.gates is not None else []

    @property
    def metric_confidence(self) -> float | None:
        """The level of metrics.json's intervals (the manifest's statistics.confidence); None without a manifest."""
        return self.manifest.statistics.confidence if self.manifest is not None else None

    @property
    def warnings(self) -> list[str]:
        """What the decision tolerated (unknown catalogue items below the limit): run.json's, else gates.json's."""
        if isinstance(self.record, RunRecord):
            return self.record.warnings
        return self.gates.warnings if isinstance(self.gates, GatesDocument) else []

    @property
    def k(self) -> int | None:
        return self.metrics.k if self.metrics is not None else None

    @property
    def completed(self) -> RunRecord | None:
        """run.json of a run that got to its record step (None for an ERROR record, or without run.json)."""
        return self.record if isinstance(self.record, RunRecord) else None

    @property
    def failed_step(self) -> str | None:
        return self.record.failed_step if isinstance(self.record, ErrorRecord) else None

    @property
    def gate_table(self) -> GatesDocument | None:
        """gates.json of a run the gate step decided (not the parity row of an ERROR run)."""
        return self.gates if isinstance(self.gates, GatesDocument) else None


def _optional(storage: Storage, uri: str, name: str, missing: list[str], read: Callable[[str], Any]) -> Any:
    """What `read` gives for `uri`, or None with the reason added to `missing` (absent or unreadable)."""
    try:
        if not storage.exists(uri):
            missing.append(name)
            return None
        return read(uri)
    except (OSError, ValueError, pa.ArrowException) as exc:  # JSONDecodeError and ValidationError are ValueErrors
        label = "ValidationError" if isinstance(exc, ValidationError) else type(exc).__name__
        missing.append(f"{name} (unreadable: {label})")
        return None


def _optional_document(storage: Storage, layout: RunLayout, path: DocumentPath[T], missing: list[str]) -> T | None:
    """The document as its model, or None (listed in `missing` by its path inside the run)."""
    name = path.uri.removeprefix(layout.root + "/")
    document: T | None = _optional(storage, path.uri, name, missing, lambda _: io.read(storage, path))
    return document


def _optional_parquet(storage: Storage, uri: str, name: str, missing: list[str],
                      columns: list[str]) -> pa.Table | None:
    table = _optional(storage, uri, name, missing, storage.read_parquet)
    if table is None:
        return None
    absent = [c for c in columns if c not in table.column_names]
    if absent:
        missing.append(f"{name} (no column {', '.join(absent)})")
        return None
    return table


def load_run(storage: Storage, run_uri: str, record: RunFile | None = None, derived: bool = True) -> RunData:
    """Read a run record. `record` is run.json's content when it is not written yet (the record step).
    Without `derived`, only the JSON documents (what summaries and `testbed compare` need)."""
    layout = RunLayout.at(run_uri)
    missing: list[str] = []

    def read(path: DocumentPath[T]) -> T | None:
        return _optional_document(storage, layout, path, missing)

    data = RunData(run_uri=layout.root, record=record if record is not None else read(layout.record),
                   gates=read(layout.gates), metrics=read(layout.metrics), stats=read(layout.slice_stats),
                   drift=read(layout.drift), whatif=read(layout.whatif), parity=read(layout.parity),
                   latency=read(layout.latency), manifest=read(layout.manifest), missing=missing)
    data.attribution = read(layout.attribution)
    if isinstance(data.record, ErrorRecord) or not derived:
        return data  # an errored run has no evaluation worth loading
    users = _optional_parquet(storage, layout.slice_table("users"), "slice/users.parquet", missing,
                              ["inclusion_probability"])
    data.inclusion = inclusion_by_stratum(users) if users is not None else None
    rankings = _optional_parquet(storage, layout.rankings, "rankings.parquet", missing,
                                 ["model", "item_id", "score"])
    if rankings is not None:
        data.scores = score_histograms(rankings)
        items = _optional_parquet(storage, layout.batch_features("item"), "features/batch_item.parquet", missing,
                                  ["item_id"])
        data.popularity = popularity_shares(rankings, items) if items is not None else None
    return data


def inclusion_by_stratum(users: pa.Table) -> dict[str, dict[str, float]]:
    """Users and the min / mean / max inclusion probability per stratum (one "all" row without strata)."""
    if "stratum" not in users.column_names:
        users = users.append_column("stratum", pa.array(["all"] * users.num_rows, pa.string()))
    grouped = users.group_by("stratum").aggregate([("inclusion_probability", "count"),
                                                   ("inclusion_probability", "min"),
                                                   ("inclusion_probability", "mean"),
                                                   ("inclusion_probability", "max")])
    out = {}
    for row in grouped.sort_by("stratum").to_pylist():
        out[str(row["stratum"])] = {"users": int(row["inclusion_probability_count"]),
                                    "min": float(row["inclusion_probability_min"]),
                                    "mean": float(row["inclusion_probability_mean"]),
                                    "max": float(row["inclusion_probability_max"])}
    return out


def score_histograms(rankings: pa.Table, bins: int = SCORE_BINS) -> dict[str, Any] | None:
    """Histogram of each model's recommended-item scores on shared bins (scores that are not finite are
    counted apart: they are the scoring errors)."""
    values = {}
    for model in MODELS:
        scores = rankings.filter(pc.equal(rankings.column("model"), model)).column("score")
        values[model] = np.asarray(scores.to_numpy(zero_copy_only=False), dtype=np.float64)
    finite = {m: v[np.isfinite(v)] for m, v in values.items()}
    pooled = np.concatenate(list(finite.values()))
    if pooled.size == 0:
        return None
    low, high = float(pooled.min()), float(pooled.max())
    if high <= low:
        high = low + 1.0
    edges = np.linspace(low, high, bins + 1)
    return {"edges": [float(e) for e in edges],
            "counts": {m: [int(c) for c in np.histogram(v, bins=edges)[0]] for m, v in finite.items()},
            "n": {m: int(v.size) for m, v in finite.items()},
            "non_finite": {m: int(values[m].size - finite[m].size) for m in MODELS},
            "mean": {m: float(v.mean()) if v.size else None for m, v in finite.items()},
            "median": {m: float(np.median(v)) if v.size else None for m, v in finite.items()}}


def _popularity_columns(items: pa.Table) -> tuple[list[str], str]:
    """The item interaction counts of the longest feature window (views + carts + purchases before the cutoff)."""
    windows = sorted({int(m.group(1)) for c in items.column_names if (m := re.fullmatch(r"i_views_(\d+)d", c))})
    if not windows:
        raise ValueError("no i_views_<N>d column")
    days = windows[-1]
    columns = [c for c in (f"i_views_{days}d", f"i_carts_{days}d", f"i_purchases_{days}d") if c in items.column_names]
    return columns, f"views, carts and purchases in the {days} days before the cutoff"


def popularity_shares(rankings: pa.Table, items: pa.Table,
                      buckets: int = POPULARITY_BUCKETS) -> dict[str, Any] | None:
    """How popular the recommended items are: the catalogue (items with features, plus any recommended item
    without) is ranked by pre-cutoff interactions and cut into `buckets` equal groups, most popular first; per
    model, the share of all recommendations that falls into each group, and the distinct items recommended."""
    try:
        columns, basis = _popularity_columns(items)
    except ValueError:
        return None
    counts = np.zeros(items.num_rows, dtype=np.float64)
    for column in columns:
        counts += np.nan_to_num(np.asarray(items.column(column).to_numpy(zero_copy_only=False), dtype=np.float64))
    popularity = dict(zip(items.column("item_id").to_pylist(), counts.tolist(), strict=True))
    for item in pc.unique(rankings.column("item_id")).to_pylist():
        popularity.setdefault(item, 0.0)
    ordered = sorted(popularity, key=lambda item: (-popularity[item], str(item)))
    bucket_of_position = np.arange(len(ordered)) * buckets // len(ordered)
    catalogue = pa.array([str(item) for item in ordered], pa.string())
    share, distinct = {}, {}
    for model in MODELS:
        recommended = rankings.filter(pc.equal(rankings.column("model"), model)).column("item_id")
        positions = pc.index_in(recommended.cast(pa.string()), value_set=catalogue)
        found = np.asarray(positions.to_numpy(zero_copy_only=False))  # every recommended item is in `catalogue`
        hits = np.bincount(bucket_of_position[found.astype(np.int64)], minlength=buckets).astype(np.float64)
        share[model] = [float(x) for x in (hits / hits.sum() if hits.sum() else hits)]
        distinct[model] = int(pc.count_distinct(recommended).as_py())
    return {"buckets": buckets, "share": share, "distinct_items": distinct, "catalogue_items": len(ordered),
            "basis": basis}
