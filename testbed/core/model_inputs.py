"""The inputs of a ranking model for the candidate pairs of a session: one path for training and for a run."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from testbed.core.feature_matrix import MatrixInputs, feature_matrix
from testbed.core.feature_spec import FeatureSet
from testbed.core.ranking_session import RankingSession


@dataclass(frozen=True)
class FeatureInputs:
    """A feature set and what its features read besides the candidate pairs."""

    spec: FeatureSet
    tables: MatrixInputs

    def with_items(self, items: pa.Table) -> FeatureInputs:
        """The same inputs over another catalogue (a what-if's perturbed one)."""
        return FeatureInputs(self.spec, dataclasses.replace(self.tables, items=items))


def for_candidates(session: RankingSession, inputs: FeatureInputs, names: list[str]) -> tuple[pa.Table, np.ndarray]:
    """(candidate pairs [user_id, item_id] sorted by user, item; their float64 inputs for `names`, NULL → NaN)."""
    return feature_matrix(inputs.spec, names, session.candidate_pairs(), inputs.tables)
