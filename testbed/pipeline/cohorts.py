"""The evaluate step's worst cohorts (testbed.core.cohorts) of the run's primary metric, from its slice files."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

import pyarrow as pa

from testbed.core import cohorts, stats
from testbed.manifest import Manifest


def domains(manifest: Manifest, sample: stats.PairedSample, history: pa.Table,
            strata: Mapping[str, str]) -> tuple[str, cohorts.CohortDomains] | None:
    """The primary metric and its cohorts to test, from the slice's user history (cohorts.user_history) and
    strata; None when the metric has no per-user values (nothing to test user by user)."""
    metric = cohorts.primary_metric(manifest.gates, manifest.evaluation.k)
    if metric not in sample.metrics:
        return None
    found = cohorts.families(history, sample.users.tolist(), strata or None)
    return metric, cohorts.cohort_domains(sample.users.tolist(), found, manifest.evaluation.cohort_min_users)


def _finite(value: Any) -> Any:
    """`value` with every non-finite float, at any depth, as None (JSON null)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, tuple | list):
        return [_finite(v) for v in value]
    if isinstance(value, dict):
        return {key: _finite(v) for key, v in value.items()}
    return value


def as_document(report: cohorts.CohortReport) -> dict[str, Any]:
    """metrics.json's `cohorts` block (record.evaluation.WorstCohorts), non-finite values as null."""
    return _finite(asdict(report))
