"""slice/stats.json: what the slice step sampled (testbed.pipeline.slice)."""

from __future__ import annotations

from testbed.record.base import Document, absent


class RowCounts(Document):
    users: int
    events: int
    items: int


class StratumStats(Document):
    users: int
    events: int
    eligible_users: int | None = absent()  # absent for a sampled stratum the population query did not return
    expected_users: float | None = absent()


class InclusionSummary(Document):
    min: float
    mean: float
    max: float


class SliceStats(Document):
    rows: RowCounts
    users: int
    eligible_users: int
    catalogue_size: int
    strategy: str
    seed: int
    strata: dict[str, StratumStats]
    inclusion_probability: InclusionSummary
    masked_columns: list[str]
    content_sha256: str
