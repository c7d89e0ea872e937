"""The paired comparisons of a run, built the same way by the evaluate and the gate steps.

Both steps need the bootstrap of the per-user metrics (evaluate for metrics.json's intervals, gate for the
tests at each gate's margin). Recomputing it from evaluation/per_user.parquet with the same seed gives the
same resamples in both, so intervals agree to the bit, without shipping replicate matrices between steps.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from testbed.core import metrics, stats
from testbed.manifest import Manifest
from testbed.pipeline import slice_data
from testbed.pipeline.context import RunContext


def bootstrap_seed(manifest: Manifest) -> int:
    seed = manifest.statistics.bootstrap_seed
    return manifest.sampling.seed if seed is None else seed


def fixed_stratum_sizes(manifest: Manifest) -> bool:
    """Whether the slice drew a fixed number of users per stratum (then users are resampled within strata)."""
    return manifest.sampling.strategy == "stratified"


def _not_applicable(manifest: Manifest, column: str) -> bool:
    """The candidate-stage metrics have no delta when a model is a rankings file (it has no candidate stage)."""
    return metrics.metric_named(column).cut_off == "candidates_per_user" and bool(manifest.models.roles_of("rankings"))


def sample(ctx: RunContext, manifest: Manifest, per_user: pa.Table) -> stats.PairedSample:
    """Both models' per-user values of every metric on the same users, with strata and 1 / inclusion weights;
    ratio metrics (aov@K) are recomputed as ratios of sums in every resample."""
    strata = slice_data.strata(ctx) if manifest.sampling.strata else {}
    probabilities = slice_data.inclusion_probabilities(ctx)
    names = [c for c in per_user.column_names if "@" in c and not _not_applicable(manifest, c)]
    k = manifest.evaluation.k
    ratios = [stats.Ratio(m.at(k), m.numerator.at(k), m.denominator.at(k)) for m in metrics.RATIO_METRICS
              if m.numerator.at(k) in names and m.denominator.at(k) in names]  # per_user's metrics only
    return stats.paired_sample(per_user, strata, probabilities, names, ratios)


def with_domains(manifest: Manifest, paired_sample: stats.PairedSample, metric: str | None,
                 domains: dict[str, np.ndarray]) -> tuple[dict[str, stats.Comparison], dict[str, stats.DomainDelta]]:
    """`comparisons` (the same numbers) and `metric`'s paired delta in each of `domains` from the same resamples."""
    return stats.compare_strata_and_domains(
        paired_sample, manifest.statistics.resamples, bootstrap_seed(manifest), fixed_stratum_sizes(manifest),
        domain_metrics=(metric,) if metric and domains else (), domains=domains if metric else {})


def comparisons(ctx: RunContext, manifest: Manifest, per_user: pa.Table) -> dict[str, stats.Comparison]:
    """"all" and every stratum: weighted (1 / inclusion probability) paired bootstrap of every metric."""
    return stats.compare_strata(sample(ctx, manifest, per_user), manifest.statistics.resamples,
                                bootstrap_seed(manifest), fixed_stratum_sizes=fixed_stratum_sizes(manifest))


def interval_label(manifest: Manifest) -> str:
    s = manifest.statistics
    return (f"{s.confidence:.0%} BCa bootstrap of the paired per-user delta ({s.resamples} resamples of users, "
            f"seed {bootstrap_seed(manifest)}), users weighted by 1 / inclusion probability; p_value two-sided "
            "for delta = 0; t_interval: weighted paired Student-t cross-check")
