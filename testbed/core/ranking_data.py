"""Candidates — the same definitions for training and for a run.

testbed.core.ranking_session builds them (and the labels) in DuckDB; the model inputs over them are the
model's feature set's (testbed.core.feature_matrix). Candidates use pre-cutoff data only,
in priority order:
1. the user's own recent items (most recent first, at most half the list),
2. the most popular items of the user's top three categories,
3. the globally most popular items, until `n` candidates.
Popularity counts events in the 30 days before the cutoff. Ties break by item_id, so lists are deterministic.

A model may bring its own candidate stage instead (a candidates table, testbed.core.candidates_table): its pairs are
scored as they are, as candidate source 3, in the user's retrieval order (retrieval_score descending, then item_id).
"""

from __future__ import annotations

POPULARITY_DAYS = 30
TOP_CATEGORIES = 3
SOURCE_STRIDE = 1_000_000  # priority = source * stride + position
TABLE_SOURCE = 3  # the candidate source of a candidates table's pairs (the built-in sources are 0, 1, 2)
CONTROL_PREFIXES = ("i_",)  # the popularity-only baseline sees item features alone
