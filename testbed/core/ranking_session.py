"""One DuckDB connection holding a slice's tables, and every query the ranking code runs over them.

Order matters and is enforced: register the inputs (the constructor) → `prepare(cutoff, windows)` (the
pre-cutoff events) → `candidates(users, n)` (or `given_candidates(users, table)`) → `candidate_pairs()` →
`pair_relevance(labels)`. `labels` and `event_rows` read the events alone and need no step before them. Calling
a step early raises SessionOrderError naming what is missing. The temp-table names are this module's alone.

What the candidates are is testbed.core.ranking_data's; the model inputs over the candidate pairs are
testbed.core.feature_matrix's.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from types import TracebackType

import duckdb
import numpy as np
import pyarrow as pa

from testbed.core.duck import fetch
from testbed.core.event_types import DEFAULT_VOCABULARY, EventVocabulary, type_in_sql
from testbed.core.feature_spec import US_PER_DAY, epoch_us
from testbed.core.lake_contract import click_sql, conversion_line_sql, revenue_cents_sql
from testbed.core.ranking_data import (
    POPULARITY_DAYS,
    SOURCE_STRIDE,
    SOURCES,
    TABLE_SOURCE,
    TOP_CATEGORIES,
    Generator,
    default_generators,
)


class SessionOrderError(RuntimeError):
    """A session step was called before the step it reads from."""


class RankingSession:
    """The slice's events and items (and, optionally, its batch feature tables) in one DuckDB connection."""

    def __init__(self, events: pa.Table, items: pa.Table | None = None, population: pa.Table | None = None):
        """`population` (item_id, event_type, event_time of every lake user: the slice's population extract) is
        what item popularity counts; without it, `events` are the population (training reads the lake's)."""
        self._con = duckdb.connect()
        self._con.execute("SET TimeZone = 'UTC'")
        self._con.register("events", events)
        self._con.register("population", events if population is None else population)
        self._has_items = items is not None
        if items is not None:
            self._con.register("items", items)
        self._window: tuple[datetime, list[int]] | None = None
        self._has_candidates = self._has_snapshot = self._has_pairs = False

    def __enter__(self) -> RankingSession:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self._con.close()

    def _require(self, ready: bool, step: str, needs: str) -> None:
        if not ready:
            raise SessionOrderError(f"RankingSession.{step} needs {needs} first")

    def _prepared(self, step: str) -> tuple[datetime, list[int]]:
        if self._window is None:
            raise SessionOrderError(f"RankingSession.{step} needs prepare(cutoff, windows) first")
        return self._window

    def use_items(self, items: pa.Table) -> None:
        """Swap the catalogue the matrix and the cold candidates join (pre-cutoff history keeps its own)."""
        self._con.register("items", items)
        self._has_items = True

    def prepare(self, cutoff: datetime, windows: list[int]) -> None:
        """The events before the cutoff (within the longest window) with category and cents, and the
        population's (what item popularity counts)."""
        self._require(self._has_items, "prepare", "an items table")
        cutoff_us = epoch_us(cutoff)
        oldest = cutoff_us - max(windows) * US_PER_DAY
        self._con.execute(f"""
CREATE OR REPLACE TEMP TABLE pre_events AS
SELECT e.user_id, e.item_id, e.event_type, coalesce(i.category, '') AS category,
       epoch_us(e.event_time) AS t_us, {revenue_cents_sql('e')} AS revenue_cents
FROM events e LEFT JOIN items i ON i.item_id = e.item_id
WHERE epoch_us(e.event_time) < {cutoff_us} AND epoch_us(e.event_time) >= {oldest}""")
        self._con.execute(f"""
CREATE OR REPLACE TEMP TABLE population_events AS
SELECT p.item_id, coalesce(i.category, '') AS category, epoch_us(p.event_time) AS t_us
FROM population p LEFT JOIN items i ON i.item_id = p.item_id
WHERE epoch_us(p.event_time) < {cutoff_us} AND epoch_us(p.event_time) >= {oldest}""")
        self._window = (cutoff, list(windows))
        self._has_candidates = self._has_snapshot = self._has_pairs = False

    def candidates(self, users: pa.Table, n: int, generators: Sequence[Generator] | None = None) -> None:
        """At most `n` candidates for each user of `users` (a `user_id` column), and their pre-cutoff history:
        each of `generators` offers its top `quota` items, an item offered twice belongs to the earlier one, and
        the first `n` in list order are kept (None: testbed.core.ranking_data default_generators). Priority = the
        generator's source * SOURCE_STRIDE + the item's position in it."""
        cutoff, windows = self._prepared("candidates")
        steps = tuple(generators) if generators is not None else default_generators(n)
        self._con.register("score_users", users)
        self._con.execute("""
CREATE OR REPLACE TEMP TABLE user_item AS
SELECT user_id, item_id, COUNT(*) AS ui_events, MAX(t_us) AS ui_last_us,
       COUNT(*) FILTER (WHERE event_type = 'purchase') AS ui_purchases
FROM pre_events WHERE user_id IN (SELECT user_id FROM score_users) GROUP BY user_id, item_id""")
        since = epoch_us(cutoff) - POPULARITY_DAYS * US_PER_DAY
        ranked = {"recent_items": f"""SELECT user_id, item_id, pos FROM (SELECT user_id, item_id,
    ROW_NUMBER() OVER (PARTITION BY user_id ORDER BY ui_last_us DESC, item_id) AS pos FROM user_item)
  WHERE pos <= {n}""",
                  "category_top": f"""SELECT uc.user_id, ct.item_id,
    (ct.pos - 1) * {TOP_CATEGORIES} + uc.cat_rank AS pos
  FROM user_categories uc JOIN category_top ct ON ct.category = uc.category""",
                  "global_top": "SELECT su.user_id, gt.item_id, gt.pos FROM score_users su CROSS JOIN global_top gt",
                  "co_occurrence": f"""SELECT user_id, item_id, pos FROM (SELECT user_id, item_id,
    ROW_NUMBER() OVER (PARTITION BY user_id ORDER BY score DESC, item_id) AS pos FROM co_scores) WHERE pos <= {n}"""}
        sources = "\n  UNION ALL\n  ".join(  # each generator's top `quota` (its positions may skip numbers)
            f"SELECT user_id, item_id, {i * SOURCE_STRIDE} + pos AS step_pos, {SOURCES[g.kind] * SOURCE_STRIDE} + pos "
            f"AS priority FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY user_id ORDER BY pos) AS offered "
            f"FROM ({ranked[g.kind]})) WHERE offered <= {g.quota if g.quota is not None else n}"
            for i, g in enumerate(steps))
        declared = {g.kind for g in steps}
        co_occurrence = self._co_occurrence_sql(cutoff, windows) if "co_occurrence" in declared else ""
        self._con.execute(f"""
CREATE OR REPLACE TEMP TABLE candidates AS
WITH popularity AS (
  SELECT item_id, category, COUNT(*) AS n FROM population_events WHERE t_us >= {since} GROUP BY item_id, category
),
category_top AS (
  SELECT * FROM (SELECT item_id, category,
    ROW_NUMBER() OVER (PARTITION BY category ORDER BY n DESC, item_id) AS pos FROM popularity) WHERE pos <= {n}
),
global_top AS (
  SELECT * FROM (SELECT item_id, ROW_NUMBER() OVER (ORDER BY SUM(n) DESC, item_id) AS pos
                 FROM popularity GROUP BY item_id) WHERE pos <= {n}
),
user_categories AS (
  SELECT * FROM (SELECT user_id, category,
    ROW_NUMBER() OVER (PARTITION BY user_id ORDER BY COUNT(*) DESC, category) AS cat_rank
    FROM pre_events WHERE user_id IN (SELECT user_id FROM score_users) GROUP BY user_id, category)
  WHERE cat_rank <= {TOP_CATEGORIES}
),{co_occurrence}
sources AS (
  {sources}
),
deduplicated AS (  -- an item offered by several generators belongs to the first
  SELECT user_id, item_id, MIN(step_pos) AS step_pos, arg_min(priority, step_pos) AS priority
  FROM sources GROUP BY user_id, item_id
)
SELECT user_id, item_id, priority FROM (
  SELECT *, ROW_NUMBER() OVER (PARTITION BY user_id ORDER BY step_pos, item_id) AS r FROM deduplicated)
WHERE r <= {n}""")
        self._has_candidates, self._has_snapshot, self._has_pairs = True, False, False

    @staticmethod
    def _co_occurrence_sql(cutoff: datetime, windows: list[int]) -> str:
        """co_scores: per user and item, the pre-cutoff sessions (within the longest window) the item shares
        with each of the user's own items, summed; the user's own items are seeds, not excluded."""
        cutoff_us = epoch_us(cutoff)
        oldest = cutoff_us - max(windows) * US_PER_DAY
        return f"""
co_sessions AS (
  SELECT DISTINCT session_id, item_id FROM events
  WHERE session_id IS NOT NULL AND epoch_us(event_time) < {cutoff_us} AND epoch_us(event_time) >= {oldest}
),
co_pairs AS (
  SELECT a.item_id AS seed, b.item_id, COUNT(*) AS together
  FROM co_sessions a JOIN co_sessions b ON a.session_id = b.session_id AND a.item_id <> b.item_id
  GROUP BY a.item_id, b.item_id
),
co_scores AS (
  SELECT ui.user_id, p.item_id, SUM(p.together) AS score
  FROM user_item ui JOIN co_pairs p ON p.seed = ui.item_id GROUP BY ui.user_id, p.item_id
),"""

    def given_candidates(self, users: pa.Table, table: pa.Table) -> None:
        """The candidates of a model's own retrieval stage (`table`: user_id, item_id, retrieval_score) for each user
        of `users`, in place of the built-in stage's; their priority is testbed.core.ranking_data TABLE_SOURCE's,
        in the user's retrieval order."""
        self._prepared("given_candidates")
        self._con.register("score_users", users)
        self._con.register("given_candidates", table)
        self._con.execute(f"""
CREATE OR REPLACE TEMP TABLE candidates AS
SELECT user_id, item_id, {TABLE_SOURCE * SOURCE_STRIDE}
       + ROW_NUMBER() OVER (PARTITION BY user_id ORDER BY retrieval_score DESC NULLS LAST, item_id) AS priority
FROM given_candidates WHERE user_id IN (SELECT user_id FROM score_users)""")
        self._has_candidates, self._has_snapshot, self._has_pairs = True, False, False

    def snapshot_candidates(self) -> None:
        """Keep the candidate lists as they are now, for `restore_candidates` (the what-if baseline)."""
        self._require(self._has_candidates, "snapshot_candidates", "candidates(users, n)")
        self._con.execute("CREATE OR REPLACE TEMP TABLE base_candidates AS SELECT * FROM candidates")
        self._has_snapshot = True

    def restore_candidates(self) -> None:
        self._require(self._has_snapshot, "restore_candidates", "snapshot_candidates()")
        self._con.execute("CREATE OR REPLACE TEMP TABLE candidates AS SELECT * FROM base_candidates")
        self._has_pairs = False

    def add_category_candidates(self, item_ids: list[str], priority: int) -> int:
        """Append the given items of each user's top categories to the candidates; returns rows added.

        Each user's added items rank after `priority` in item_id order; `items` must hold the items.
        """
        self._require(self._has_candidates, "add_category_candidates", "candidates(users, n)")
        self._con.register("cold_ids", pa.table({"item_id": pa.array(item_ids, pa.string())}))
        before = self._con.execute("SELECT COUNT(*) FROM candidates").fetchone()
        self._con.execute(f"""
INSERT INTO candidates
WITH user_categories AS (
  SELECT * FROM (SELECT user_id, category,
    ROW_NUMBER() OVER (PARTITION BY user_id ORDER BY COUNT(*) DESC, category) AS cat_rank
    FROM pre_events WHERE user_id IN (SELECT user_id FROM score_users) GROUP BY user_id, category)
  WHERE cat_rank <= {TOP_CATEGORIES}
)
SELECT uc.user_id, it.item_id, {priority} + ROW_NUMBER() OVER (PARTITION BY uc.user_id ORDER BY it.item_id)
FROM user_categories uc JOIN items it ON it.category = uc.category
WHERE it.item_id IN (SELECT item_id FROM cold_ids)""")
        after = self._con.execute("SELECT COUNT(*) FROM candidates").fetchone()
        self._has_pairs = False
        return int(after[0] if after else 0) - int(before[0] if before else 0)

    def candidate_pairs(self) -> pa.Table:
        """user_id, item_id, priority of every candidate whose item is in the catalogue, sorted by user, item:
        the rows of the model inputs (testbed.core.feature_matrix)."""
        self._prepared("candidate_pairs")
        self._require(self._has_candidates, "candidate_pairs", "candidates(users, n)")
        self._con.execute("""
CREATE OR REPLACE TEMP TABLE pairs AS
SELECT c.user_id, c.item_id, c.priority FROM candidates c JOIN items it ON it.item_id = c.item_id
ORDER BY c.user_id, c.item_id""")
        self._has_pairs = True
        return fetch(self._con, "SELECT user_id, item_id, priority FROM pairs")

    def pair_relevance(self, labels: pa.Table) -> np.ndarray:
        """Each candidate pair's relevance in `labels` (0 where the pair has no label), rows as in
        `candidate_pairs()`."""
        self._require(self._has_pairs, "pair_relevance", "candidate_pairs()")
        self._con.register("train_labels", labels)
        return fetch(self._con, """SELECT coalesce(l.relevance, 0) FROM pairs p
        LEFT JOIN train_labels l ON l.user_id = p.user_id AND l.item_id = p.item_id
        ORDER BY p.user_id, p.item_id""").column(0).to_numpy().astype(np.float64)

    def labels(self, cutoff: datetime, end: datetime, vocabulary: EventVocabulary) -> pa.Table:
        """user_id, item_id, relevance (max declared grade over the user's label-window events), revenue
        (conversions), purchased (a conversion line with quantity above 0: what conversion@K counts), clicked (an
        event of a click type: what click_through@K counts). One row per (user, item) with any of them."""
        grade = " ".join(f"WHEN '{t.name}' THEN {int(t.relevance)}" for t in vocabulary.types)
        graded = f"CASE event_type {grade} ELSE 0 END"
        if vocabulary.conversions:  # a return line (quantity <= 0) grades nothing
            graded = (f"CASE WHEN {type_in_sql('event_type', vocabulary.conversions)} AND NOT "
                      f"{conversion_line_sql('', vocabulary)} THEN 0 ELSE {graded} END")
        return fetch(self._con, f"""
SELECT user_id, item_id, relevance, revenue, purchased, clicked FROM (
  SELECT user_id, item_id, CAST(MAX({graded}) AS INTEGER) AS relevance,
         CAST(SUM({revenue_cents_sql('', vocabulary)}) AS DOUBLE) / 100.0 AS revenue,
         coalesce(bool_or({conversion_line_sql('', vocabulary)}), false) AS purchased,
         coalesce(bool_or({click_sql('', vocabulary)}), false) AS clicked
  FROM events WHERE epoch_us(event_time) >= {epoch_us(cutoff)} AND epoch_us(event_time) < {epoch_us(end)}
  GROUP BY user_id, item_id)
WHERE relevance > 0 OR revenue > 0 OR purchased OR clicked
ORDER BY user_id, item_id""")

    def event_rows(self, start: datetime, cutoff: datetime, windows: list[int],
                   vocabulary: EventVocabulary = DEFAULT_VOCABULARY) -> pa.Table:
        """One row per event from the feature window's start on, with drift's event-level fields.

        `pre_cutoff` marks the feature window [max(start, cutoff - longest window), cutoff); `conversion` the
        events of the vocabulary's conversion types (the rows of drift's quantity and revenue).
        """
        self._require(self._has_items, "event_rows", "an items table")
        since = max(start, cutoff - timedelta(days=max(windows)))
        return fetch(self._con, f"""
SELECT e.user_id, strftime(e.event_time, '%Y-%m-%d') AS day,
  epoch_us(e.event_time) < {epoch_us(cutoff)} AS pre_cutoff,
  CAST(e.price AS DOUBLE) AS price,
  CAST(e.price AS DOUBLE) / nullif(CAST(i.price AS DOUBLE), 0) AS price_index,
  CAST(coalesce(e.quantity, 1) AS DOUBLE) AS quantity,
  CAST(coalesce(e.price, 0) * coalesce(e.quantity, 1) AS DOUBLE) AS revenue,
  e.event_type, coalesce({type_in_sql('e.event_type', vocabulary.conversions)}, false) AS conversion,
  coalesce(i.category, '<none>') AS category
FROM events e LEFT JOIN items i ON i.item_id = e.item_id
WHERE epoch_us(e.event_time) >= {epoch_us(since)}
ORDER BY e.user_id, e.event_time, e.event_id""")

