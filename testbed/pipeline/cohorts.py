"""The evaluate step's worst cohorts (testbed.core.cohorts) of the run's primary metric, from its slice files."""

from __future__ import annotations

import math
from dataclasses import asdict
from typing import Any

import numpy as np
import pyarrow as pa

from testbed.core import cohorts
from testbed.manifest import Manifest
from testbed.pipeline import paired, slice_data
from testbed.pipeline.context import RunContext


def resampling_groups(sample_strata: np.ndarray, fixed_sizes: bool) -> list[np.ndarray] | None:
    """Index arrays of each sampling stratum when the slice drew a fixed number per stratum, else None."""
    if not fixed_sizes:
        return None
    labels = sorted(set(sample_strata.tolist()))
    return [np.flatnonzero(sample_strata == label) for label in labels] if len(labels) > 1 else None


def worst_cohorts(ctx: RunContext, manifest: Manifest, per_user: pa.Table) -> cohorts.CohortReport | None:
    """None when the primary metric has no per-user column (nothing to test user by user)."""
    metric = cohorts.primary_metric(manifest.gates, manifest.evaluation.k)
    if metric not in per_user.column_names:
        return None
    sample = paired.sample(ctx, manifest, per_user)
    strata = slice_data.strata(ctx) if manifest.sampling.strata else None
    found = cohorts.families(slice_data.read(ctx, "events", ["user_id", "item_id", "event_time"]),
                             slice_data.read(ctx, "items", ["item_id", "category"]), sample.users.tolist(),
                             manifest.time.cutoff, strata)
    s = manifest.statistics
    return cohorts.worst_cohorts(
        sample, metric, found, min_users=manifest.evaluation.cohort_min_users, resamples=s.resamples,
        seed=paired.bootstrap_seed(manifest), confidence=s.confidence, correction=s.correction,
        resampling_groups=resampling_groups(sample.strata, paired.fixed_stratum_sizes(manifest)))


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, tuple | list):
        return [_finite(v) for v in value]
    return value


def as_document(report: cohorts.CohortReport) -> dict[str, Any]:
    """metrics.json's `cohorts` block (record.evaluation.WorstCohorts), non-finite values as null."""
    out = {key: _finite(value) for key, value in asdict(report).items() if key != "worst"}
    out["worst"] = [{key: _finite(value) for key, value in asdict(f).items()} for f in report.worst]
    return out
