"""Inverse-probability weights make a revenue_weighted slice estimate the population (acceptance, slow).

The population values come from a whole local run on a rate-1.0 slice of the small lake: every eligible
user, each with weight 1. The real slicer then draws revenue_weighted slices (rate 0.3, 40 seeds) of the
same segment; the paired comparison of those users' per-user metrics (taken from the population run, so
only the sampling differs), weighted by 1 / inclusion probability, must hold the population's delta inside
its 95% interval about as often as an interval should, and the weighting must matter: the unweighted means
of the same users are biased where the sampling favoured big spenders.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from testbed.core import stats
from testbed.invocation import Invocation
from testbed.local import run_local
from testbed.manifest import parse_manifest
from testbed.pipeline import slice_data
from testbed.pipeline.context import RunContext
from testbed.pipeline.slice import run_slice
from tests.conftest import BASE_MANIFEST

SEEDS = range(1, 41)


def _manifest(models: dict[str, dict[str, str]], sampling: dict[str, Any], name: str) -> dict[str, Any]:
    data = copy.deepcopy(BASE_MANIFEST)
    data.update(name=name, models=copy.deepcopy(models), sampling=sampling)
    return data


@pytest.fixture(scope="module")
def population(small_lake: Path, small_models: dict[str, dict[str, str]],
               tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("population")
    path = root / "manifest.json"
    path.write_text(json.dumps(_manifest(small_models, {"strategy": "uniform", "rate": 1.0, "seed": 3,
                                                        "min_events_per_user": 1}, "population")))
    result = run_local(path, str(small_lake), root / "out")
    return {"dir": result.run_dir, "per_user": pq.read_table(result.run_dir / "evaluation" / "per_user.parquet"),
            "metrics": json.loads((result.run_dir / "metrics.json").read_text())}


def _slice_probabilities(small_lake: Path, models: dict[str, dict[str, str]], root: Path,
                         seed: int) -> dict[str, float]:
    manifest = parse_manifest(_manifest(models, {"strategy": "revenue_weighted", "rate": 0.3, "seed": seed,
                                                 "min_events_per_user": 1}, f"weighted-{seed}"))
    ctx = RunContext(run_id=f"weighted-{seed}", run_uri=str(root / "runs" / f"weighted-{seed}"), lake=str(small_lake),
                     invocation=Invocation.outside_lambda())
    run_slice(ctx, manifest)
    return slice_data.inclusion_probabilities(ctx)


@pytest.mark.slow
def test_revenue_weighted_slices_cover_the_population_delta(population: dict[str, Any], small_lake: Path,
                                                             small_models: dict[str, dict[str, str]],
                                                             tmp_path: Path) -> None:
    per_user: pa.Table = population["per_user"]
    names = [c for c in per_user.column_names if "@" in c]
    truth = np.array([population["metrics"]["deltas"]["all"][m]["delta"] for m in names])
    assert all(d["weighted"] is False for d in population["metrics"]["deltas"]["all"].values())
    covered, weighted_error, plain_error = [], [], []
    for seed in SEEDS:
        probabilities = _slice_probabilities(small_lake, small_models, tmp_path, seed)
        assert 0.003 < min(probabilities.values()) < max(probabilities.values()) <= 1.0  # really unequal
        sampled = per_user.filter(pc.is_in(per_user.column("user_id"), pa.array(list(probabilities))))
        sample = stats.paired_sample(sampled, {}, probabilities, names)
        summary = stats.delta_summaries(stats.compare(sample, 2000, stats.stratum_rng(seed, "all")), 0.95)
        lo, hi = (np.array([summary[m]["interval"][i] for m in names]) for i in (0, 1))
        covered.append((lo <= truth) & (truth <= hi))
        weighted_error.append(np.array([summary[m]["delta"] for m in names]) - truth)
        plain_error.append((sample.candidate - sample.control).mean(axis=0) - truth)
    rate = float(np.mean(covered))
    bias, plain_bias = np.mean(weighted_error, axis=0), np.mean(plain_error, axis=0)
    print(f"\n{len(SEEDS)} revenue_weighted slices: 95% intervals cover the rate-1.0 delta in {rate:.3f} "
          f"(per metric {dict(zip(names, np.mean(covered, axis=0).round(3).tolist(), strict=True))}); "
          f"mean error weighted {dict(zip(names, bias.round(4).tolist(), strict=True))}, "
          f"unweighted {dict(zip(names, plain_bias.round(4).tolist(), strict=True))}")
    assert rate >= 0.88  # nominal 0.95; a few heavily weighted users carry these small slices
    # the weights remove the bias of the unweighted means: revenue (sampled by it) and hit rate
    for metric in ("revenue@10", "hit_rate@10"):
        j = names.index(metric)
        assert abs(bias[j]) < abs(plain_bias[j]) / 3
