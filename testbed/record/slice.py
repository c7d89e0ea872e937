"""slice/stats.json: what the slice step sampled (testbed.pipeline.slice)."""

from __future__ import annotations

from testbed.record.base import Document, absent


class RowCounts(Document):
    users: int
    events: int
    items: int  # the catalogue rows the slice's events or the population extract touch
    population_events: int | None = absent()  # the population extract's rows (absent in older records)


class StratumStats(Document):
    users: int
    events: int
    eligible_users: int | None = absent()  # absent for a sampled stratum the population query did not return
    expected_users: float | None = absent()


class InclusionSummary(Document):
    min: float
    mean: float
    max: float


class UnknownItemStats(Document):
    """Slice events and label items whose item is not in the lake's items/ (testbed.core.catalogue)."""

    events: int
    events_share: float
    items: int  # distinct unknown items among the events
    label_items: int  # label-window user-item pairs with relevance > 0
    label_items_share: float


class SliceStats(Document):
    rows: RowCounts
    users: int
    eligible_users: int
    catalogue_size: int
    unknown_items: UnknownItemStats
    strategy: str
    seed: int
    strata: dict[str, StratumStats]
    inclusion_probability: InclusionSummary
    masked_columns: list[str]
    content_sha256: str
