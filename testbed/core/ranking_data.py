"""Candidates — the same definitions for training and for a run.

testbed.core.ranking_session builds them (and the labels) in DuckDB; the model inputs over them are the
model's feature set's (testbed.core.feature_matrix). Candidates use pre-cutoff data only,
in priority order:
1. the user's own recent items (most recent first, at most half the list),
2. the most popular items of the user's top three categories,
3. the globally most popular items, until `n` candidates.
Popularity counts events in the 30 days before the cutoff. Ties break by item_id, so lists are deterministic.

The built-in stage is a list of generators with quotas (`Generator`); the list above, `default_generators(n)`, is
the default. A declared list may reorder them, change their quotas and add `co_occurrence`: the items that share
pre-cutoff sessions (baskets) with the user's own recent items, most shared first. Each generator offers its top
`quota` items; an item offered by several belongs to the first; the first `n` in list order are the candidates.

A model may bring its own candidate stage instead (a candidates table, testbed.core.candidates_table): its pairs are
scored as they are, as candidate source 3, in the user's retrieval order (retrieval_score descending, then item_id).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

POPULARITY_DAYS = 30
TOP_CATEGORIES = 3
SOURCE_STRIDE = 1_000_000  # priority = source * stride + position
TABLE_SOURCE = 3  # the candidate source of a candidates table's pairs (the built-in sources are 0, 1, 2)

GeneratorKind = Literal["recent_items", "category_top", "global_top", "co_occurrence"]
SOURCES: dict[str, int] = {"recent_items": 0, "category_top": 1, "global_top": 2, "co_occurrence": 4}
"""Each generator's candidate source (the candidate-source feature); 3 is a candidates table's."""


@dataclass(frozen=True)
class Generator:
    """One generator of the built-in stage: it offers its top `quota` items per user (None: the list's n)."""

    kind: GeneratorKind
    quota: int | None = None


def default_generators(n: int) -> tuple[Generator, ...]:
    """The stage every model has unless its manifest declares another: recent items (half the list), then the
    top categories' best-sellers, then global best-sellers."""
    return (Generator("recent_items", max(1, n // 2)), Generator("category_top"), Generator("global_top"))


CONTROL_PREFIXES = ("i_",)  # the popularity-only baseline sees item features alone
