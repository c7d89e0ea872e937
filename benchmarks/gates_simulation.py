"""Simulations behind the gates' acceptance figures: A/A false failures, power at the reported n, coverage, speed.

    python benchmarks/gates_simulation.py [--aa 500] [--power 400] [--coverage 1000] [--seed 20261031]

Prints one JSON document on stdout (progress on stderr). tests/unit/test_stats_simulation.py (marked slow)
runs the same functions with the acceptance thresholds.

The user model has exactly known population means, so every "true delta" below is exact, not estimated:
- a user has a tier (bronze/silver/gold: 55/30/15 %) and a type, heavy with probability 15/35/70 % by tier;
- per model, the user misses (every metric 0) with probability 45 % (light) / 15 % (heavy); otherwise
  ndcg ~ Beta(0.8, 3.2) / Beta(2, 3), hit_rate = 1 and revenue ~ LogNormal(2.0 / 3.0, 1);
- the candidate reuses the control's draw with probability 0.6 (paired values are correlated and often
  tied, as real per-user metrics are), else draws afresh: control and candidate are exchangeable, so the
  true mean difference is exactly 0 (A/A) in every tier and metric;
- a harmed candidate additionally misses with probability q: every metric's true delta is -q x its mean.
Slices are Poisson samples: uniform at one rate, or "revenue-weighted" (heavy users kept at 0.8, light at
0.2), where users carry weights 1 / probability and the unweighted mean is biased.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from testbed.core import gates, stats  # noqa: E402
from testbed.core.bootstrap import bca_interval  # noqa: E402
from testbed.manifest import Gate  # noqa: E402

METRICS = ("ndcg@10", "hit_rate@10", "revenue@10")
TIERS = ("tier=bronze", "tier=silver", "tier=gold")
TIER_SHARE = np.array([0.55, 0.30, 0.15])
HEAVY_SHARE = np.array([0.15, 0.35, 0.70])  # P(heavy | tier)
MISS = np.array([0.45, 0.15])  # light, heavy
NDCG_AB = np.array([[0.8, 3.2], [2.0, 3.0]])
REVENUE_MU = np.array([2.0, 3.0])
SHARED = 0.6
RESAMPLES = 2000
MARGIN = 0.01


def type_means() -> np.ndarray:
    """(type, metric) exact means of one model's values."""
    hit = 1 - MISS
    return np.column_stack([hit * NDCG_AB[:, 0] / NDCG_AB.sum(axis=1), hit, hit * np.exp(REVENUE_MU + 0.5)])


def true_means(tier: int | None = None) -> np.ndarray:
    """Exact control means per metric, over all users or within one tier."""
    heavy = float(TIER_SHARE @ HEAVY_SHARE) if tier is None else float(HEAVY_SHARE[tier])
    return np.array([1 - heavy, heavy]) @ type_means()


def harm_for_ndcg(ndcg_harm: float) -> float:
    """The extra miss probability q that lowers the population's mean ndcg by exactly `ndcg_harm`."""
    return ndcg_harm / float(true_means()[0])


@dataclass(frozen=True)
class Users:
    tier: np.ndarray
    heavy: np.ndarray
    control: np.ndarray  # (n, 3)
    candidate: np.ndarray


def _values(heavy: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    t = heavy.astype(int)
    hit = rng.random(heavy.size) >= MISS[t]
    ndcg = rng.beta(NDCG_AB[t, 0], NDCG_AB[t, 1])
    revenue = rng.lognormal(REVENUE_MU[t], 1.0)
    return np.column_stack([hit * ndcg, hit * 1.0, hit * revenue])


def draw_users(n: int, rng: np.random.Generator, harm_q: float = 0.0) -> Users:
    tier = rng.choice(3, size=n, p=TIER_SHARE)
    heavy = rng.random(n) < HEAVY_SHARE[tier]
    control = _values(heavy, rng)
    fresh = _values(heavy, rng)
    candidate = np.where((rng.random(n) < SHARED)[:, None], control, fresh)
    if harm_q:
        candidate = candidate * (rng.random(n) >= harm_q)[:, None]
    return Users(tier, heavy, control, candidate)


def poisson_sample(users: Users, probability: np.ndarray, rng: np.random.Generator) -> stats.PairedSample:
    keep = rng.random(users.tier.size) < probability
    labels = np.array(TIERS, dtype=object)[users.tier[keep]]
    return stats.PairedSample(METRICS, np.arange(int(keep.sum())).astype(str).astype(object), labels,
                              1.0 / probability[keep], users.control[keep], users.candidate[keep])


def probabilities(users: Users, design: str) -> np.ndarray:
    if design == "uniform":
        return np.full(users.tier.size, 0.35)
    return np.where(users.heavy, 0.8, 0.2)


def _inputs(comparisons: dict[str, stats.Comparison]) -> gates.GateInputs:
    return gates.GateInputs(comparisons=comparisons, aggregates={"control": {}, "candidate": {}}, latency_ms={},
                            error_rate={}, strata=[s for s in comparisons if s != "all"])


DEMO_GATES = [  # the example manifests' comparative gates
    Gate(name="ndcg-not-worse", kind="non_inferiority", metric="ndcg@10", margin=MARGIN, scope="per_stratum"),
    Gate(name="hit-rate-not-worse", kind="non_inferiority", metric="hit_rate@10", margin=0.02),
    Gate(name="revenue-not-worse", kind="non_inferiority", metric="revenue@10", margin=0.1, margin_type="relative"),
]
BOUNDARY_GATES = [Gate(name="ndcg-no-harm", kind="non_inferiority", metric="ndcg@10", margin=0.0)]
POWER_GATE = Gate(name="ndcg-not-worse", kind="non_inferiority", metric="ndcg@10", margin=MARGIN)


def aa(reps: int, seed: int, population: int = 6000) -> dict[str, Any]:
    """A/A on a revenue-weighted slice with the demo gates, and at a harm limit of 0 (the test's size)."""
    rng = np.random.default_rng(seed)
    outcomes: dict[str, dict[str, int]] = {"demo_gates": {}, "boundary": {}}
    rows_failed = 0
    users_seen = []
    for rep in range(reps):
        users = draw_users(population, rng)
        sample = poisson_sample(users, probabilities(users, "revenue_weighted"), rng)
        users_seen.append(sample.n)
        comparisons = stats.compare_strata(sample, RESAMPLES, seed + rep, fixed_stratum_sizes=False)
        for name, chosen in (("demo_gates", DEMO_GATES), ("boundary", BOUNDARY_GATES)):
            results = gates.evaluate(chosen, _inputs(comparisons))
            decision = gates.decide(results)[0]
            outcomes[name][decision] = outcomes[name].get(decision, 0) + 1
            if name == "demo_gates":
                rows_failed += sum(r.outcome == "fail" for r in results)
    return {
        "repetitions": reps, "alpha": 0.05, "correction": "holm", "mean_users": float(np.mean(users_seen)),
        "demo_gates": {"gates": [g.name for g in DEMO_GATES], "rows": 6, "decisions": outcomes["demo_gates"],
                       "fail_rate": outcomes["demo_gates"].get("FAIL", 0) / reps, "rows_failed": rows_failed},
        "boundary": {"gates": ["ndcg@10 non-inferiority, margin 0 (true delta on the limit)"],
                     "decisions": outcomes["boundary"], "fail_rate": outcomes["boundary"].get("FAIL", 0) / reps,
                     "pass_rate": outcomes["boundary"].get("PASS", 0) / reps},
    }


def _single(n: int, rng: np.random.Generator, harm_q: float, seed: int) -> gates.GateResult:
    users = draw_users(n, rng, harm_q)
    sample = poisson_sample(users, np.ones(n), rng)
    comparisons = {"all": stats.compare(sample, RESAMPLES, stats.stratum_rng(seed, "all"))}
    [result] = gates.evaluate([POWER_GATE], _inputs(comparisons))
    return result


def power(reps: int, seed: int, pilot_users: int = 200_000) -> dict[str, Any]:
    """Harm = 2 x margin. The tool's required_n from a pilot slice, then FAIL rate over slices of that size.

    required_n projects from the pilot's observed effect, so its accuracy is the pilot's: a large pilot
    (200k users: distance to the limit known to ~4 %) shows the calibration, not the pilot's luck.
    """
    rng = np.random.default_rng(seed)
    q = harm_for_ndcg(2 * MARGIN)
    pilot = _single(pilot_users, rng, q, seed)
    need = pilot.required_n
    assert need is not None
    decisions: dict[str, int] = {}
    half: dict[str, int] = {}
    for rep in range(reps):
        out = _single(need, rng, q, seed + 1 + rep).outcome
        decisions[out] = decisions.get(out, 0) + 1
        out_half = _single(max(2, need // 2), rng, q, seed + 100_000 + rep).outcome
        half[out_half] = half.get(out_half, 0) + 1
    return {"repetitions": reps, "true_delta": -2 * MARGIN, "margin": MARGIN, "power_target": 0.9,
            "pilot": {"users": pilot_users, "observed": pilot.observed, "outcome": pilot.outcome, "mde": pilot.mde,
                      "required_n": need},
            "at_required_n": {"users": need, "outcomes": decisions, "fail_rate": decisions.get("fail", 0) / reps},
            "at_half_required_n": {"users": max(2, need // 2), "outcomes": half,
                                   "fail_rate": half.get("fail", 0) / reps}}


def coverage(reps: int, seed: int, population: int = 6000) -> dict[str, Any]:
    """95% BCa intervals of the paired delta (all metrics) and the relative delta, vs the exact true values."""
    rng = np.random.default_rng(seed)
    q = harm_for_ndcg(0.02)
    truth = -q * true_means()
    out: dict[str, Any] = {"repetitions": reps, "nominal": 0.95, "true_delta": dict(zip(METRICS, truth.tolist(),
                                                                                        strict=True))}
    for design in ("uniform", "revenue_weighted"):
        hits = {"delta": np.zeros(3), "relative": np.zeros(3), "unweighted_point_inside": np.zeros(3)}
        sizes = []
        for rep in range(reps):
            users = draw_users(population, rng, q)
            sample = poisson_sample(users, probabilities(users, design), rng)
            sizes.append(sample.n)
            cmp = stats.compare(sample, RESAMPLES, stats.stratum_rng(seed + rep, design))
            lo, hi = bca_interval(cmp.delta, 0.025)
            hits["delta"] += (lo <= truth) & (truth <= hi)
            rlo, rhi = bca_interval(cmp.relative, 0.025)
            hits["relative"] += (rlo <= -q) & (-q <= rhi)
            plain = (sample.candidate - sample.control).mean(axis=0)
            hits["unweighted_point_inside"] += (lo <= plain) & (plain <= hi)
        out[design] = {"mean_users": float(np.mean(sizes)),
                       **{k: dict(zip(METRICS, (v / reps).round(4).tolist(), strict=True)) for k, v in hits.items()}}
    return out


def timing(users: int = 20_000, metrics: int = 8, strata: int = 3, seed: int = 1) -> dict[str, Any]:
    """Seconds for compare_strata (every metric, "all" plus each stratum) at RESAMPLES resamples."""
    rng = np.random.default_rng(seed)
    control = rng.beta(0.8, 3, (users, metrics))
    candidate = np.clip(control + rng.normal(0, 0.05, (users, metrics)), 0, 1)
    labels = np.array([f"tier={i}" for i in range(strata)], dtype=object)[rng.integers(0, strata, users)]
    sample = stats.PairedSample(tuple(f"m{i}@10" for i in range(metrics)), np.arange(users).astype(str),
                                labels, 1 / rng.uniform(0.1, 1, users), control, candidate)
    out: dict[str, Any] = {"users": users, "metrics": metrics, "strata": strata, "resamples": RESAMPLES,
                           "cpu_count": os.cpu_count()}
    for fixed in (False, True):
        t0 = time.perf_counter()
        comparisons = stats.compare_strata(sample, RESAMPLES, seed, fixed_stratum_sizes=fixed)
        t1 = time.perf_counter()
        for cmp in comparisons.values():
            stats.delta_summaries(cmp, 0.95)
        t2 = time.perf_counter()
        key = "stratified_resampling" if fixed else "iid_resampling"
        out[key] = {"bootstrap_s": round(t1 - t0, 3), "summaries_s": round(t2 - t1, 3)}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--aa", type=int, default=500)
    parser.add_argument("--power", type=int, default=400)
    parser.add_argument("--coverage", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=20261031)
    args = parser.parse_args(argv)
    result: dict[str, Any] = {}
    for name, run in (("timing", timing), ("aa", lambda: aa(args.aa, args.seed)),
                      ("power", lambda: power(args.power, args.seed + 1)),
                      ("coverage", lambda: coverage(args.coverage, args.seed + 2))):
        print(f"gates_simulation: {name} ...", file=sys.stderr)
        t0 = time.perf_counter()
        result[name] = run()
        result[name]["seconds"] = round(time.perf_counter() - t0, 1)
    print(json.dumps(result, indent=2, default=lambda v: None if isinstance(v, float) and math.isnan(v) else v))
    return 0


if __name__ == "__main__":
    sys.exit(main())
