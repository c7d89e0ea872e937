"""Sample-ratio check: did the slice draw as many users per stratum as its inclusion probabilities promise?

Expected users of a stratum = the sum of the inclusion probabilities of its eligible users (the slice step
records it as `expected_users` in slice/stats.json, next to the observed `users`). Pearson's statistic
X^2 = sum over strata of (observed - expected)^2 / expected is compared with chi-squared on as many degrees
of freedom as strata with expected > 0 (each stratum's count is a sum of independent Bernoulli draws, close
to Poisson; the Poisson variance is an upper bound, so the check is conservative when probabilities are near
1). Fixed-size designs (`stratified`, rate 1.0) must match exactly and give X^2 = 0; a stratum with users but
nothing expected is impossible and fails outright. p < alpha (0.001 by default) fails the check.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from testbed.core.special import chi2_sf

METHOD = "pearson chi-squared, observed vs expected users per stratum"


@dataclass(frozen=True)
class SampleRatio:
    statistic: float
    dof: int
    p_value: float
    alpha: float
    observed: int
    expected: float
    strata: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.p_value >= self.alpha

    def worst(self) -> str | None:
        """The stratum contributing most to the statistic."""
        if not self.strata:
            return None
        return max(self.strata, key=lambda s: (self.strata[s]["contribution"], s))

    def as_dict(self) -> dict[str, Any]:
        def finite(x: float) -> float | None:
            return x if math.isfinite(x) else None

        strata = {label: {**row, "contribution": finite(row["contribution"])} for label, row in self.strata.items()}
        return {"statistic": finite(self.statistic), "dof": self.dof, "p_value": self.p_value, "alpha": self.alpha,
                "method": METHOD, "observed": self.observed, "expected": self.expected,
                "outcome": "pass" if self.passed else "fail", "strata": strata}


def sample_ratio_test(strata: Mapping[str, Mapping[str, Any]], alpha: float = 0.001) -> SampleRatio:
    """From slice/stats.json "strata": {label: {"users", "expected_users", "eligible_users", ...}}."""
    if not 0 < alpha < 1:
        raise ValueError("alpha must be in (0, 1)")
    rows: dict[str, dict[str, Any]] = {}
    statistic, dof = 0.0, 0
    for label in sorted(strata):
        row = strata[label]
        observed, expected = int(row.get("users", 0)), float(row.get("expected_users") or 0.0)
        if expected > 0:
            contribution = (observed - expected) ** 2 / expected
            dof += 1
        else:
            contribution = 0.0 if observed == 0 else math.inf
        statistic += contribution
        rows[label] = {"observed": observed, "expected": expected, "eligible": row.get("eligible_users"),
                       "contribution": contribution}
    p = 0.0 if math.isinf(statistic) else chi2_sf(statistic, dof)
    return SampleRatio(statistic, dof, p, alpha, sum(r["observed"] for r in rows.values()),
                       round(sum(r["expected"] for r in rows.values()), 6), rows)
