"""Small numpy helpers shared by the scorer, training and the metrics."""

from __future__ import annotations

import numpy as np


def group_starts(sorted_keys: np.ndarray) -> np.ndarray:
    """Start offset of each run of equal keys (input sorted), plus the total length at the end."""
    if len(sorted_keys) == 0:
        return np.array([0])
    change = np.flatnonzero(sorted_keys[1:] != sorted_keys[:-1]) + 1
    return np.concatenate([[0], change, [len(sorted_keys)]])
