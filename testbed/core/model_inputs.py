"""The inputs of a ranking model for the candidate pairs of a session: one path for training and for a run."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pyarrow as pa

from testbed.core import feature_matrix
from testbed.core.feature_spec import FeatureSet
from testbed.core.ranking_session import RankingSession


@dataclass(frozen=True)
class FeatureInputs:
    """What the model inputs are built from, besides the candidates and the catalogue."""

    spec: FeatureSet
    tables: dict[str, pa.Table]  # the batch aggregation tables, one per key set
    external: dict[str, pa.Table]  # external feature tables by name, checksums already checked
    users: pa.Table  # the users' attributes
    cutoff: datetime


def for_candidates(session: RankingSession, inputs: FeatureInputs, items: pa.Table,
                   names: list[str]) -> tuple[pa.Table, np.ndarray]:
    """(candidate pairs sorted by user, item; their float64 inputs for `names`, NULL → NaN)."""
    pairs = session.candidate_pairs()
    values = feature_matrix.model_inputs(pairs, items, inputs.users, inputs.tables, inputs.external,
                                         inputs.cutoff, inputs.spec, names)
    return pairs, values
