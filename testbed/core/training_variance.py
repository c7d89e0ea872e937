"""How much a delta moves between retrains: the seed-to-seed spread of candidate-minus-control.

The bootstrap intervals resample users: they say how the delta would move with another sample of users, not
with another training of the same models. A manifest may name, per model, `seed_variants`: the same model
retrained identically but for its seed. Retrain 0 is the manifest's pair of models; retrain i (i >= 1) pairs
the control's i-th variant with the candidate's i-th variant, and a model with fewer than i variants takes
part with its manifest model. Each retrain's delta is the same weighted (1 / inclusion probability) mean of
the per-user delta as metrics.json's, on all users, from the same labels. The spread is the minimum, the
maximum and the sample standard deviation (n - 1) of those deltas.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from testbed.core import stats

VARIANT_SEPARATOR = "#"
METHOD = ("retrain 0: the manifest's models; retrain i: each model's i-th seed variant (its manifest model when it "
          "has fewer); delta of each retrain: the weighted mean per-user delta on all users, as metrics.json's; "
          "std: sample standard deviation (n - 1) across retrains")


def variant_name(role: str, index: int) -> str:
    """The `model` name of a role's index-th seed variant (1-based) in per-user tables: `candidate#2`."""
    return f"{role}{VARIANT_SEPARATOR}{index}"


def role_of(name: str) -> str:
    """The role a model name belongs to: `candidate` for `candidate#2` and for `candidate`."""
    return name.partition(VARIANT_SEPARATOR)[0]


def retrain_pairs(control_variants: int, candidate_variants: int) -> list[tuple[str, str]]:
    """(control model, candidate model) of retrain 0, 1, ..., max(variants)."""
    def model(role: str, count: int, i: int) -> str:
        return role if i == 0 or i > count else variant_name(role, i)

    return [(model("control", control_variants, i), model("candidate", candidate_variants, i))
            for i in range(max(control_variants, candidate_variants) + 1)]


@dataclass(frozen=True)
class Spread:
    deltas: list[float]
    relative: list[float]

    @staticmethod
    def _summary(values: list[float]) -> dict[str, float | None]:
        finite = np.array([v for v in values if math.isfinite(v)])
        if finite.size == 0:
            return {"min": None, "max": None, "std": None}
        return {"min": float(finite.min()), "max": float(finite.max()),
                "std": float(finite.std(ddof=1)) if finite.size > 1 else None}

    def as_dict(self) -> dict[str, Any]:
        relative = {f"relative_{k}": v for k, v in self._summary(self.relative).items()}
        clean = [[v if math.isfinite(v) else None for v in values] for values in (self.deltas, self.relative)]
        return {"deltas": clean[0], "relative_deltas": clean[1], **self._summary(self.deltas), **relative}


def _renamed(per_user: pa.Table, control: str, candidate: str) -> pa.Table:
    """The two models' rows, named control and candidate, as stats.paired_sample reads them."""
    rows = per_user.filter(pc.is_in(per_user.column("model"), value_set=pa.array([control, candidate])))
    names = pc.if_else(pc.equal(rows.column("model"), control), "control", "candidate")
    return rows.set_column(rows.column_names.index("model"), "model", names)


def spreads(per_user: pa.Table, pairs: Sequence[tuple[str, str]], metric_names: Sequence[str],
            probabilities: Mapping[str, float] | None) -> dict[str, Spread]:
    """Per metric: each retrain's delta and relative delta (`per_user` holds every model's rows)."""
    deltas: dict[str, list[float]] = {m: [] for m in metric_names}
    relative: dict[str, list[float]] = {m: [] for m in metric_names}
    for control, candidate in pairs:
        sample = stats.paired_sample(_renamed(per_user, control, candidate), {}, probabilities, metric_names)
        total = float(sample.weights.sum())
        with np.errstate(divide="ignore", invalid="ignore"):
            control_mean = (sample.weights @ sample.control) / total
            candidate_mean = (sample.weights @ sample.candidate) / total
        for j, name in enumerate(metric_names):
            delta = float(candidate_mean[j] - control_mean[j])
            deltas[name].append(delta)
            relative[name].append(delta / float(control_mean[j]) if control_mean[j] != 0 else math.nan)
    return {name: Spread(deltas[name], relative[name]) for name in metric_names}
