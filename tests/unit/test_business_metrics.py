"""Business KPIs (conversion@K, aov@K, click_through@K, revenue_per_user@K): hand-computed values, aov's
ratio-of-sums bootstrap, its gates, and (slow) its interval coverage by simulation."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pytest

from testbed.core import gates, metrics, stats
from testbed.core.bootstrap import bca_interval, resample_counts
from testbed.core.metrics import aggregate, aov_at_k, metric_named, per_user_metrics
from testbed.manifest import Gate

K = 2
# user -> item -> (relevance, revenue, purchased, clicked)
LABELS = {
    "u1": {"a": (3, 10.0, True, True), "b": (1, 0.0, False, True), "c": (3, 5.0, True, False)},
    "u2": {"a": (1, 0.0, False, True), "d": (3, 8.0, True, False)},
    "u3": {"e": (2, 0.0, False, False)},
    "u4": {"f": (3, 0.0, True, True)},  # bought without a price: converts, no revenue
}
LISTS = {
    "m": {"u1": ["a", "c", "b"], "u2": ["a", "x"], "u3": ["e", "d"], "u4": ["y", "f"]},
}


def _labels() -> pa.Table:
    rows = [(u, i, *v) for u, items in LABELS.items() for i, v in items.items()]
    names = ("user_id", "item_id", "relevance", "revenue", "purchased", "clicked")
    return pa.table({n: [r[j] for r in rows] for j, n in enumerate(names)})


def _rankings() -> pa.Table:
    rows = [(m, u, r + 1, i) for m, users in LISTS.items() for u, items in users.items() for r, i in enumerate(items)]
    return pa.table({"model": [r[0] for r in rows], "user_id": [r[1] for r in rows], "rank": [r[2] for r in rows],
                     "item_id": [r[3] for r in rows]})


def test_conversion_and_click_through_by_hand() -> None:
    table = per_user_metrics(_rankings(), _labels(), K)
    rows = {r["user_id"]: r for r in table.to_pylist()}
    # u1 top 2 = a (bought, clicked), c (bought): converts, clicks, revenue 15
    # u2 top 2 = a (clicked), x: no conversion, clicks, revenue 0 (d is not recommended)
    # u3 top 2 = e, d (d is u2's purchase, not u3's): neither
    # u4 top 2 = y, f (bought at no price, clicked): converts, clicks, revenue 0
    assert {u: (r["conversion@2"], r["click_through@2"], r["revenue@2"]) for u, r in rows.items()} == {
        "u1": (1.0, 1.0, 15.0), "u2": (0.0, 1.0, 0.0), "u3": (0.0, 0.0, 0.0), "u4": (1.0, 1.0, 0.0)}
    group = aggregate(table, _rankings(), K, catalogue_size=10)["models"]["m"]["all"]
    assert group["conversion@2"] == 0.5 and group["click_through@2"] == 0.75
    # aov = revenue of the 4 users / converting users = (15 + 0 + 0 + 0) / 2
    assert group["aov@2"] == 7.5
    assert group["revenue@2"] == 15.0 / 4  # revenue per user: over every evaluated user


def test_aov_is_a_weighted_ratio_of_sums_and_undefined_without_converters() -> None:
    revenue, converted = np.array([10.0, 0.0, 12.0, 4.0]), np.array([1.0, 0.0, 1.0, 1.0])
    assert aov_at_k(revenue, converted) == pytest.approx(26 / 3)
    weights = np.array([1.0, 3.0, 2.0, 4.0])
    # (1 x 10 + 2 x 12 + 4 x 4) / (1 + 2 + 4) = 50 / 7, not the weighted mean of the per-user ratios' own weights
    assert aov_at_k(revenue, converted, weights) == pytest.approx(50 / 7)
    assert math.isnan(aov_at_k(np.zeros(3), np.zeros(3)))
    assert metric_named("aov@10") is metrics.AOV and metrics.AOV.paired and not metrics.AOV.has_per_user_values
    assert metrics.AOV.numerator is metrics.REVENUE and metrics.AOV.denominator is metrics.CONVERSION
    assert metrics.AOV.value.__doc__ and "=" in metrics.AOV.value.__doc__  # formula in the docstring


def test_revenue_per_user_is_an_alias_of_revenue() -> None:
    assert metric_named("revenue_per_user@10") is metrics.REVENUE
    assert metrics.canonical_name("revenue_per_user@10") == "revenue@10"
    assert metrics.canonical_name("ndcg@10") == "ndcg@10"
    gate = Gate.model_validate({"name": "rev", "kind": "non_inferiority", "metric": "revenue_per_user@10",
                                "margin": 0.1, "margin_type": "relative"})
    assert gate.metric == "revenue@10"  # the records carry the registered name
    with pytest.raises(ValueError, match="unknown metric"):
        Gate.model_validate({"name": "x", "kind": "non_inferiority", "metric": "revenue_per_visit@10", "margin": 1})


# ----------------------------------------------------------------------------------------------- the bootstrap


def _business_sample(n: int, seed: int, lift: float = 1.0, conv: tuple[float, float] = (0.3, 0.3),
                     weights: np.ndarray | None = None) -> stats.PairedSample:
    """Per-user (revenue@10, conversion@10) of both models: a converting user spends a Gamma basket (mean 50),
    the candidate's baskets are `lift` times the control's in sum (a lognormal factor per user), its
    conversion rate conv[1] on the same latent draw."""
    rng = np.random.default_rng(seed)
    latent, basket = rng.uniform(size=n), rng.gamma(2.0, 25.0, n)
    conv_c, conv_d = (latent < conv[0]).astype(float), (latent < conv[1]).astype(float)
    control = np.column_stack([conv_c * basket, conv_c])
    factor = rng.lognormal(0.0, 0.5, n)
    if conv_d.any():
        factor *= (conv_d * basket).sum() / (conv_d * basket * factor).sum()  # exactly `lift` on the sample
    candidate = np.column_stack([conv_d * basket * lift * factor, conv_d])
    return stats.PairedSample(("revenue@10", "conversion@10"), np.array([f"u{i}" for i in range(n)], dtype=object),
                              np.full(n, "all", dtype=object), np.ones(n) if weights is None else weights,
                              control, candidate, (stats.Ratio("aov@10", "revenue@10", "conversion@10"),))


def test_the_ratio_is_recomputed_in_every_resample_and_jackknife_sample() -> None:
    weights = np.random.default_rng(5).uniform(1, 4, 60)
    sample = _business_sample(60, seed=3, lift=1.2, weights=weights)
    cmp = stats.compare(sample, 50, np.random.default_rng(9))
    j = cmp.column("aov@10")
    assert cmp.metrics == ("revenue@10", "conversion@10", "aov@10")
    assert cmp.control.estimate[j] == pytest.approx(aov_at_k(sample.control[:, 0], sample.control[:, 1], weights))
    # the same draws by hand: each resample's ratio of weighted sums
    counts = resample_counts([np.arange(60)], 60, 50, np.random.default_rng(9))
    cw = counts * weights
    expected = (cw @ sample.candidate[:, 0]) / (cw @ sample.candidate[:, 1]) - \
        (cw @ sample.control[:, 0]) / (cw @ sample.control[:, 1])
    raw = cmp.delta.boot[:, j]  # widened by the small-sample factor around the estimate
    factor = cmp.widening["delta"][j]
    assert (raw - cmp.delta.estimate[j]) / factor + cmp.delta.estimate[j] == pytest.approx(expected)
    # leave-one-out: the ratio of the remaining users' sums
    keep = np.arange(60) != 7
    loo = aov_at_k(sample.control[keep, 0], sample.control[keep, 1], weights[keep])
    centre = cmp.control.jack[:, j].mean()
    assert (cmp.control.jack[7, j] - centre) / cmp.widening["control"][j] + centre == pytest.approx(loo)
    summary = stats.delta_summaries(cmp, 0.95)["aov@10"]
    lo, hi = summary["interval"]
    assert lo < summary["delta"] < hi and summary["delta"] == pytest.approx(cmp.delta.estimate[j])


def test_strata_get_their_own_ratio() -> None:
    sample = _business_sample(200, seed=4, lift=1.1)
    sample = stats.PairedSample(sample.metrics, sample.users, np.array(["tier=a", "tier=b"] * 100, dtype=object),
                                sample.weights, sample.control, sample.candidate, sample.ratios)
    out = stats.compare_strata(sample, 200, seed=1, fixed_stratum_sizes=False)
    for label in ("tier=a", "tier=b"):
        mask = sample.strata == label
        j = out[label].column("aov@10")
        assert out[label].candidate.estimate[j] == pytest.approx(
            aov_at_k(sample.candidate[mask, 0], sample.candidate[mask, 1]))


def test_no_converting_user_leaves_the_ratio_undefined() -> None:
    sample = _business_sample(100, seed=2, conv=(0.0, 0.3))
    cmp = stats.compare(sample, 200, np.random.default_rng(1))
    summary = stats.delta_summaries(cmp, 0.95)["aov@10"]
    assert summary["control"] is None and summary["delta"] is None and summary["interval"] == [None, None]
    assert summary["candidate"] == pytest.approx(aov_at_k(sample.candidate[:, 0], sample.candidate[:, 1]))


# ----------------------------------------------------------------------------------------------- the gates


def _aov_gate_inputs(sample: stats.PairedSample) -> gates.GateInputs:
    return gates.GateInputs(comparisons={"all": stats.compare(sample, 1000, np.random.default_rng(3))},
                            aggregates={}, latency_ms={}, error_rate={})


@pytest.mark.parametrize(("lift", "outcome"), [(1.0, "pass"), (0.8, "fail"), (0.96, "inconclusive")])
def test_aov_gate(lift: float, outcome: str) -> None:
    gate = Gate.model_validate({"name": "aov", "kind": "non_inferiority", "metric": "aov@10", "margin": 0.05,
                                "margin_type": "relative"})
    [row] = gates.evaluate([gate], _aov_gate_inputs(_business_sample(3000, seed=7, lift=lift)))
    assert row.outcome == outcome, row.reason
    assert row.observed == pytest.approx(lift - 1) and row.metric == "aov@10"
    assert row.interval is not None and row.p_value is not None


@pytest.mark.parametrize(("conv", "who"), [((0.0, 0.3), "the control has"), ((0.3, 0.0), "the candidate has"),
                                           ((0.0, 0.0), "the control and the candidate have")])
def test_aov_gate_without_converting_users_is_inconclusive(conv: tuple[float, float], who: str) -> None:
    gate = Gate.model_validate({"name": "aov", "kind": "non_inferiority", "metric": "aov@10", "margin": 1.0})
    [row] = gates.evaluate([gate], _aov_gate_inputs(_business_sample(200, seed=1, conv=conv)))
    assert row.outcome == "inconclusive"
    assert row.reason.startswith(f"aov@10 is undefined: {who} no user with conversion@10 > 0 among the 200 users")
    assert gates.decide([row])[0] == "INCONCLUSIVE"


def test_aov_gate_with_resamples_lacking_converters_is_inconclusive() -> None:
    sample = _business_sample(40, seed=1, conv=(0.03, 0.3))  # one converting control user among 40
    assert sample.control[:, 1].sum() == 1
    gate = Gate.model_validate({"name": "aov", "kind": "non_inferiority", "metric": "aov@10", "margin": 1.0,
                                "min_users": 10})
    [row] = gates.evaluate([gate], _aov_gate_inputs(sample))
    assert row.outcome == "inconclusive"
    assert "some bootstrap resamples of the 40 users hold no user with conversion@10 > 0" in row.reason


# ----------------------------------------------------------------------------------------------- coverage


def _draw(n: int, rng: np.random.Generator, weighted: bool) -> stats.PairedSample:
    """Users of a population with known AOV: latent conversion (control 30 %, candidate 36 %), a Gamma(2, 25)
    basket (mean 50) the candidate lifts by 10 %; weighted: inclusion 0.25 for baskets under 40, else 0.9
    (Poisson sampling from n draws), users weighted by 1 / probability."""
    latent, basket = rng.uniform(size=n), rng.gamma(2.0, 25.0, n)
    if weighted:
        p = np.where(basket < 40, 0.25, 0.9)
        kept = rng.uniform(size=n) < p
        latent, basket, w = latent[kept], basket[kept], 1 / p[kept]
    else:
        w = np.ones(n)
    conv_c, conv_d = (latent < 0.30).astype(float), (latent < 0.36).astype(float)
    m = latent.size
    return stats.PairedSample(("revenue@10", "conversion@10"), np.arange(m).astype(str),
                              np.full(m, "all", dtype=object), w,
                              np.column_stack([conv_c * basket, conv_c]),
                              np.column_stack([conv_d * basket * 1.1, conv_d]),
                              (stats.Ratio("aov@10", "revenue@10", "conversion@10"),))


@pytest.mark.slow
@pytest.mark.parametrize("weighted", [False, True])
def test_aov_intervals_cover_the_true_value(weighted: bool) -> None:
    """True AOV: control 50 (the basket's mean, independent of conversion), candidate 55, delta 5. The value's
    interval covers in 93-97 % (the issue's acceptance). The delta's under-covers a little: 92.0 % (uniform) at this
    seed, 92-95 % over other seeds and sizes (about 93.5 % pooled), when about 300 converters drive it; its floor
    here is that measurement, not the nominal band (README, Metrics)."""
    reps, rng = 1000, np.random.default_rng(20261101 + weighted)
    hits = {"control": 0, "delta": 0}
    for rep in range(reps):
        cmp = stats.compare(_draw(1000, rng, weighted), 1000, stats.stratum_rng(rep, "aov"))
        j = cmp.column("aov@10")
        for key, truth in (("control", 50.0), ("delta", 5.0)):
            lo, hi = bca_interval(getattr(cmp, key), 0.025)
            hits[key] += bool(lo[j] <= truth <= hi[j])
    assert 0.93 <= hits["control"] / reps <= 0.97, ("control", weighted, hits["control"] / reps)
    assert 0.91 <= hits["delta"] / reps <= 0.97, ("delta", weighted, hits["delta"] / reps)


def test_business_kpis_the_slice_cannot_estimate_are_inconclusive() -> None:
    """No revenue: revenue and aov rows say why; no purchase / no click flag: conversion (and aov) / click_through."""
    from testbed.manifest import parse_manifest
    from testbed.pipeline.gate import unestimable
    from tests.conftest import BASE_MANIFEST

    manifest = parse_manifest({**BASE_MANIFEST, "models": {r: {"uri": f"/m/{r}.txt", "sha256": "0" * 64}
                                                           for r in ("control", "candidate")}})
    labels = pa.table({"user_id": ["u1"], "item_id": ["i1"], "relevance": [1], "revenue": [0.0],
                       "purchased": [False], "clicked": [True]})
    why = unestimable(labels, manifest)
    assert list(why) == ["revenue", "conversion"]
    assert why["conversion"].startswith("conversion cannot be estimated: no label-window purchase line [2026-10-17")
    assert list(unestimable(labels.set_column(5, "clicked", pa.array([False])), manifest)) == [
        "revenue", "conversion", "click_through"]
    sample = _business_sample(200, seed=1)
    inputs = gates.GateInputs(comparisons={"all": stats.compare(sample, 200, np.random.default_rng(3))},
                              aggregates={}, latency_ms={}, error_rate={},
                              unestimable={"conversion": why["conversion"]})
    [row] = gates.evaluate([Gate.model_validate({"name": "aov", "kind": "non_inferiority", "metric": "aov@10",
                                                 "margin": 1.0})], inputs)
    assert row.outcome == "inconclusive" and row.reason == f"aov@10 needs conversion@10: {why['conversion']}"
