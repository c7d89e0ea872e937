"""The evaluate step's worst cohorts (testbed.core.cohorts) of the run's primary metric, from its slice files."""

from __future__ import annotations

import math
from dataclasses import asdict
from typing import Any

from testbed.core import cohorts, stats
from testbed.manifest import Manifest
from testbed.pipeline import slice_data
from testbed.pipeline.context import RunContext


def domains(ctx: RunContext, manifest: Manifest,
            sample: stats.PairedSample) -> tuple[str, cohorts.CohortDomains] | None:
    """The primary metric and its cohorts to test; None when the metric has no per-user values (nothing to test
    user by user)."""
    metric = cohorts.primary_metric(manifest.gates, manifest.evaluation.k)
    if metric not in sample.metrics:
        return None
    strata = slice_data.strata(ctx) if manifest.sampling.strata else None
    found = cohorts.families(slice_data.read(ctx, "events", ["user_id", "item_id", "event_time"]),
                             slice_data.read(ctx, "items", ["item_id", "category"]), sample.users.tolist(),
                             manifest.time.cutoff, strata)
    return metric, cohorts.cohort_domains(sample.users.tolist(), found, manifest.evaluation.cohort_min_users)


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
