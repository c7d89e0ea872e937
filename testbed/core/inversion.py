"""Intervals by test inversion: the interval shown next to a gate's decision is the set of limits its own
(multiplicity-adjusted) one-sided tests would not reject.

A statistical gate row is decided by two one-sided BCa tests whose p-values are corrected across the family of
rows (testbed.core.gates). The row's interval is built from those same tests: its lower end is the smallest
null that the pass test (H0: theta <= null) does not reject, its upper end the largest null that the harm test
(H0: theta >= null) does not reject, each with its p-value put through the family's correction while the other
rows' p-values stay as they are. With Bonferroni that is the one-sided bound at alpha / m, with Holm the bound at
the level of the row's step. So, exactly and in floating point, a tested row passes iff its lower end lies above
the pass limit and its harm test rejects iff its upper end lies below the harm limit.

Each end is found by bisection over the doubles in their order (at most 64 steps), so no double is skipped:
the predicates are monotone because the BCa p-value is monotone in the null and a corrected p-value is
monotone in its own p-value.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Sequence

import numpy as np

from testbed.core.bootstrap import BcaTest, Replicates
from testbed.core.stats import Correction, adjust_p_values

_MAGNITUDE = (1 << 63) - 1
_LARGEST = sys.float_info.max


def _order(x: float) -> int:
    """An integer that orders doubles as they compare (-0.0 and 0.0 share 0)."""
    bits = int(np.array(x, dtype=np.float64).view(np.int64))
    return bits if bits >= 0 else -(bits & _MAGNITUDE)


def _double(order: int) -> float:
    magnitude = float(np.array(abs(order), dtype=np.int64).view(np.float64))
    return magnitude if order >= 0 else -magnitude


def first_double_where(holds: Callable[[float], bool]) -> float:
    """The smallest finite double at which a monotone predicate (False, then True) holds; NaN when it holds
    already at the most negative double or not even at the largest one."""
    low, high = _order(-_LARGEST), _order(_LARGEST)
    if holds(-_LARGEST) or not holds(_LARGEST):
        return math.nan
    while high - low > 1:
        middle = (low + high) // 2
        if holds(_double(middle)):
            high = middle
        else:
            low = middle
    return _double(high)


def previous_double(x: float) -> float:
    return x if math.isnan(x) else _double(_order(x) - 1)


def family_rejects(p_values: Sequence[float], index: int, correction: Correction,
                   alpha: float) -> Callable[[float], bool]:
    """Whether test `index` of a family is rejected at `alpha` after the correction, were its p-value p."""
    family = list(p_values)

    def rejects(p: float) -> bool:
        family[index] = p
        return adjust_p_values(family, correction)[index] <= alpha

    return rejects


def inverted_interval(column: Replicates, pass_rejects: Callable[[float], bool],
                      harm_rejects: Callable[[float], bool]) -> tuple[float, float]:
    """[smallest null the pass test does not reject, largest null the harm test does not reject] for one
    statistic (a one-column Replicates). The pass test's p-value at a null is bca_p_greater's, the harm test's
    its complement, as testbed.core.gates computes them; NaN ends when the statistic is undefined."""
    test = BcaTest.of(column)
    if test is None:
        return math.nan, math.nan

    def p_greater(null: float) -> float:
        with np.errstate(over="ignore", invalid="ignore"):
            return test.p_greater(null)

    lower = first_double_where(lambda null: not pass_rejects(p_greater(null)))
    upper = previous_double(first_double_where(lambda null: harm_rejects(1.0 - p_greater(null))))
    return lower, upper
