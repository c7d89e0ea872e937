"""The interval next to a gate's decision is the one the decision used: entirely past the limit iff PASS (FAIL)."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from testbed.core import gates, stats
from testbed.core.inversion import first_double_where, previous_double
from testbed.manifest import Gate

STRATA = ("tier=bronze", "tier=gold", "tier=silver")


def _inputs(deltas: tuple[float, ...], n: int, sd: float, seed: int, resamples: int = 400) -> gates.GateInputs:
    """Two metrics; stratum i's per-user deltas of ndcg@10 have mean deltas[i] (recall@10: half of it)."""
    rng = np.random.default_rng(seed)
    labels = np.array([STRATA[i % len(STRATA)] for i in range(n)], dtype=object)
    control = rng.uniform(0.2, 0.4, (n, 2))
    shift = np.array([deltas[STRATA.index(label)] for label in labels])
    candidate = control + np.column_stack([shift, shift / 2]) + rng.normal(0, sd, (n, 2))
    sample = stats.PairedSample(("ndcg@10", "recall@10"), np.array([f"u{i:04d}" for i in range(n)], dtype=object),
                                labels, np.ones(n), control, candidate)
    comparisons = stats.compare_strata(sample, resamples, seed=seed, fixed_stratum_sizes=False)
    return gates.GateInputs(comparisons=comparisons, aggregates={"control": {}, "candidate": {}}, latency_ms={},
                            error_rate={}, strata=[s for s in comparisons if s != "all"])


def _harm_limit(row: gates.GateResult) -> float:
    assert row.threshold is not None
    return 0.0 if row.kind == "superiority" else row.threshold


def _consistent(rows: list[gates.GateResult]) -> None:
    tested = [r for r in rows if r.correction is not None]
    assert tested
    for row in tested:
        assert row.interval is not None and row.threshold is not None
        low, high = row.interval
        passed = low > row.threshold
        assert (row.outcome == "pass") == passed, row.reason
        assert (row.outcome == "fail") == (not passed and high < _harm_limit(row)), row.reason


def test_a_row_whose_unadjusted_interval_excludes_the_limit_shows_the_adjusted_one_that_does_not() -> None:
    """Nine rows under Holm: the bronze row's unadjusted 90 % interval lies above the limit (p < 0.05), its
    Holm-adjusted p does not reach alpha, so it is INCONCLUSIVE, and the interval it shows reaches the limit."""
    gate = Gate.model_validate({"name": "g", "kind": "non_inferiority", "metric": "ndcg@10", "margin": 0.01,
                                "scope": "per_stratum"})
    others = [Gate.model_validate({"name": f"g{i}", "kind": "non_inferiority", "metric": "recall@10",
                                   "margin": 0.01, "scope": "per_stratum"}) for i in range(2)]
    rows = gates.evaluate([gate, *others], _inputs((-0.007, -0.01, -0.01), 1800, 0.05, 3, resamples=2000))
    bronze = next(r for r in rows if r.name == "g" and r.stratum == "tier=bronze")
    assert bronze.p_value is not None and bronze.p_value <= 0.05 < (bronze.p_adjusted or 1.0)
    assert bronze.outcome == "inconclusive"
    assert bronze.interval_unadjusted is not None and bronze.interval_unadjusted[0] > -0.01
    assert bronze.interval is not None and bronze.interval[0] <= -0.01
    assert bronze.correction == "holm" and "holm-adjusted; unadjusted [" in bronze.reason
    _consistent(rows)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(deltas=st.tuples(*[st.floats(-0.03, 0.03)] * 3), n=st.integers(30, 240), sd=st.floats(0.01, 0.1),
       seed=st.integers(0, 2**16), kinds=st.lists(st.sampled_from(["non_inferiority", "superiority", "threshold"]),
                                                  min_size=1, max_size=3),
       margin=st.floats(0.0, 0.02), alpha=st.sampled_from([0.01, 0.05, 0.1, 0.2]),
       correction=st.sampled_from(["holm", "bonferroni", "none"]), relative=st.booleans())
def test_interval_entirely_past_the_limit_iff_the_row_passes_or_fails(
        deltas: tuple[float, float, float], n: int, sd: float, seed: int, kinds: list[str], margin: float,
        alpha: float, correction: stats.Correction, relative: bool) -> None:
    manifest_gates = []
    for i, kind in enumerate(kinds):
        spec: dict[str, object] = {"name": f"g{i}", "kind": kind, "metric": ("ndcg@10", "recall@10")[i % 2],
                                   "alpha": alpha, "scope": "per_stratum"}
        if kind == "threshold":
            spec["bound"] = 0.3 + margin
        else:
            spec.update(margin=margin, margin_type="relative" if relative else "absolute")
        manifest_gates.append(Gate.model_validate(spec))
    rows = gates.evaluate(manifest_gates, _inputs(deltas, n, sd, seed),
                          gates.GateSettings(correction=correction))
    _consistent(rows)
    for row in rows:
        if correction == "none" and row.correction is not None:
            assert row.interval == row.interval_unadjusted


def test_no_correction_shows_the_unadjusted_interval_and_it_is_close_to_the_bca_interval() -> None:
    inputs = _inputs((0.0, 0.0, 0.0), 600, 0.05, 1, resamples=2000)
    gate = Gate.model_validate({"name": "g", "kind": "non_inferiority", "metric": "ndcg@10", "margin": 0.01})
    [row] = gates.evaluate([gate], inputs, gates.GateSettings(correction="none"))
    assert row.interval == row.interval_unadjusted and "CI [" in row.reason and "(unadjusted)" in row.reason
    low, high = stats.delta_summaries(inputs.comparisons["all"], 0.9)["ndcg@10"]["interval"]
    assert row.interval is not None
    assert math.isclose(row.interval[0], low, abs_tol=5e-4) and math.isclose(row.interval[1], high, abs_tol=5e-4)


def test_first_double_where_finds_the_exact_boundary() -> None:
    assert first_double_where(lambda x: x >= 0.3) == 0.3
    assert first_double_where(lambda x: x > 0.3) == math.nextafter(0.3, math.inf)
    assert first_double_where(lambda x: x >= -2.5) == -2.5
    assert math.isnan(first_double_where(lambda x: True)) and math.isnan(first_double_where(lambda x: False))
    assert previous_double(1.0) == math.nextafter(1.0, -math.inf)
