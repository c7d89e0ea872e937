"""Everything a report shows, read from one run record (a local directory or s3://) without ever failing on a
missing part: other steps may not have written their file (no drift in this run, an older record), and the
report must still say what is known. Missing or unreadable inputs are listed in `RunData.missing`. Documents
are read through their testbed.record models, so one that does not fit its model counts as unreadable and the
renderers only see validated data.

Heavy inputs (rankings, slice users, item features) are reduced here to the few numbers the charts need, so the
renderers only see small plain data.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import ValidationError

from testbed.adapters.storage import Storage
from testbed.record import io
from testbed.record.layout import DocumentPath, RunLayout

MODELS = ("control", "candidate")
SCORE_BINS = 30
POPULARITY_BUCKETS = 10


def documents(layout: RunLayout) -> dict[str, DocumentPath[Any]]:
    """RunData's field name -> the document it holds."""
    return {"run": layout.record, "gates": layout.gates, "metrics": layout.metrics, "stats": layout.slice_stats,
            "drift": layout.drift, "whatif": layout.whatif, "parity": layout.parity, "latency": layout.latency,
            "manifest": layout.manifest}


@dataclass
class RunData:
    """A run record as the reports see it. Every part but `record` may be None."""

    run_uri: str
    record: dict[str, Any]
    gates: dict[str, Any] | None = None
    metrics: dict[str, Any] | None = None
    stats: dict[str, Any] | None = None
    drift: dict[str, Any] | None = None
    whatif: dict[str, Any] | None = None
    parity: dict[str, Any] | None = None
    latency: dict[str, Any] | None = None
    manifest: dict[str, Any] | None = None
    inclusion: dict[str, dict[str, float]] | None = None  # stratum -> users, min, mean, max
    scores: dict[str, Any] | None = None  # {"edges": [...], "counts": {model: [...]}, "n": {...}, "mean": {...}}
    popularity: dict[str, Any] | None = None  # {"buckets": n, "share": {model: [...]}, "basis": str, ...}
    missing: list[str] = field(default_factory=list)

    @property
    def run_id(self) -> str:
        return str(self.record.get("run_id") or self.run_uri.rstrip("/").rsplit("/", 1)[-1])

    @property
    def decision(self) -> str:
        return str(self.record.get("decision") or (self.gates or {}).get("decision") or "UNKNOWN")

    @property
    def reasons(self) -> list[str]:
        reasons = self.record.get("reasons")
        if reasons is None and self.gates:
            reasons = self.gates.get("reasons")
        return [str(r) for r in reasons or []]

    @property
    def k(self) -> int | None:
        k = (self.metrics or {}).get("k")
        return int(k) if isinstance(k, int) else None


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


def _optional_document(storage: Storage, path: DocumentPath[Any], name: str,
                       missing: list[str]) -> dict[str, Any] | None:
    """The document's validated JSON data, or None (listed in `missing`)."""
    document = _optional(storage, path.uri, name, missing, lambda _: io.read(storage, path))
    return None if document is None else io.to_json(path, document)


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


def load_run(storage: Storage, run_uri: str, record: dict[str, Any] | None = None, derived: bool = True) -> RunData:
    """Read a run record. `record` is the run.json content when it is not written yet (the record step).
    Without `derived`, only the JSON documents (what summaries and `testbed compare` need)."""
    run_uri = run_uri.rstrip("/")
    layout = RunLayout.at(run_uri)
    missing: list[str] = []
    parts = {name: _optional_document(storage, path, path.uri.removeprefix(run_uri + "/"), missing)
             for name, path in documents(layout).items() if not (name == "run" and record is not None)}
    data = RunData(run_uri=run_uri, record=record if record is not None else (parts.pop("run", None) or {}),
                   missing=missing, **{k: v for k, v in parts.items() if k != "run"})
    if data.record.get("decision") == "ERROR" or not derived:
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
