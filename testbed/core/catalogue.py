"""Events and label items that name an item missing from the lake's items/ (the catalogue).

Such rows are never silent: the slice step counts them, and the gate step turns a share above
`evaluation.max_unknown_item_share` into an INCONCLUSIVE reason and a smaller, non-zero share into a warning.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias

import pyarrow as pa
import pyarrow.compute as pc

Column: TypeAlias = pa.Array | pa.ChunkedArray
LIMIT_SETTING = "evaluation.max_unknown_item_share"


@dataclass(frozen=True)
class UnknownItems:
    events: int  # slice events whose item is not in items/
    events_share: float
    items: int  # distinct unknown items those events name
    label_items: int  # label-window user-item pairs with relevance > 0 whose item is not in items/
    label_items_share: float

    def exceeds(self, limit: float) -> bool:
        return self.events_share > limit or self.label_items_share > limit

    def line(self, limit: float) -> str:
        head = (f"{percent(self.events_share)} of events ({percent(self.label_items_share)} of label items) name "
                f"items missing from items/ (limit {percent(limit)})")
        return f"{head}; fix the catalogue or raise {LIMIT_SETTING}" if self.exceeds(limit) else head


def percent(share: float) -> str:
    """A share as a percentage with two decimals; a non-zero share never rounds down to 0.00%."""
    return "<0.01%" if 0 < share < 0.00005 else f"{share:.2%}"


def _unknown(items: Column, catalogue: Column) -> pa.Array:
    known = pa.array(pc.unique(catalogue)).cast(items.type)  # one id type, however each table stores it
    return pc.invert(pc.is_in(items, value_set=known, skip_nulls=True))


def count_unknown(event_items: Column, label_items: Column, catalogue: Column) -> UnknownItems:
    """`event_items`: the item of every slice event; `label_items`: the item of every relevant label pair;
    `catalogue`: the item ids the slice found in items/."""
    unknown_events = _unknown(event_items, catalogue)
    n_events = int(pc.sum(unknown_events).as_py() or 0)
    n_labels = int(pc.sum(_unknown(label_items, catalogue)).as_py() or 0)
    distinct = len(pc.unique(pc.filter(event_items, unknown_events))) if n_events else 0
    return UnknownItems(events=n_events, events_share=n_events / len(event_items) if len(event_items) else 0.0,
                        items=distinct, label_items=n_labels,
                        label_items_share=n_labels / len(label_items) if len(label_items) else 0.0)


def notes(unknown: UnknownItems, limit: float) -> tuple[list[str], list[str]]:
    """(reasons that make the run INCONCLUSIVE, warnings): at most one line, in one of the two."""
    if unknown.exceeds(limit):
        return [unknown.line(limit)], []
    if unknown.events or unknown.label_items:
        return [], [unknown.line(limit)]
    return [], []
