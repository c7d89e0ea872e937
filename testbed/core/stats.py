"""Paired comparisons of per-user metric values (candidate minus control).

The interval is a paired Student-t interval; `p_value` is one-sided for the stated null. This is the
foundation's statistics; bootstrap intervals and inverse-probability weights arrive with the gates issue.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from testbed.core.student_t import t_cdf, t_ppf, t_sf


@dataclass(frozen=True)
class PairedDelta:
    n: int
    control_mean: float
    candidate_mean: float
    delta: float
    relative: float | None
    interval: tuple[float, float]
    std_error: float

    def as_dict(self) -> dict[str, object]:
        return {"n": self.n, "control": self.control_mean, "candidate": self.candidate_mean, "delta": self.delta,
                "relative": self.relative, "interval": list(self.interval), "std_error": self.std_error}


def paired_delta(control: np.ndarray, candidate: np.ndarray, alpha: float = 0.05) -> PairedDelta:
    """Mean of candidate - control with a two-sided (1 - alpha) paired t-interval."""
    if control.shape != candidate.shape:
        raise ValueError("control and candidate must hold the same users")
    n = int(control.size)
    diff = candidate - control
    mean = float(diff.mean()) if n else math.nan
    se = float(diff.std(ddof=1) / math.sqrt(n)) if n > 1 else math.nan
    if n > 1 and se > 0:
        half = t_ppf(1 - alpha / 2, n - 1) * se
        interval = (mean - half, mean + half)
    else:
        interval = (mean, mean) if n > 1 else (math.nan, math.nan)
    control_mean = float(control.mean()) if n else math.nan
    relative = mean / control_mean if n and control_mean != 0 else None
    return PairedDelta(n, control_mean, float(candidate.mean()) if n else math.nan, mean, relative, interval, se)


def one_sided_p(delta: PairedDelta, null_value: float, alternative: str) -> float:
    """p-value of H0: true delta <= null_value (alternative 'greater') or >= null_value ('less')."""
    if delta.n < 2 or not delta.std_error > 0:
        if delta.n < 2:
            return math.nan
        above = delta.delta > null_value
        return 0.0 if above == (alternative == "greater") else 1.0
    t = (delta.delta - null_value) / delta.std_error
    tail = t_sf(t, delta.n - 1) if alternative == "greater" else t_cdf(t, delta.n - 1)
    return float(tail)


def percentile(values: np.ndarray, q: float) -> float:
    return float(np.percentile(values, q)) if values.size else math.nan
