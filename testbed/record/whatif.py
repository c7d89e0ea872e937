"""whatif.json: catalogue what-if scenarios, only for a manifest with a `whatif` block (testbed.pipeline.whatif)."""

from __future__ import annotations

from typing import Literal

from testbed.record.base import Document, MetricValues, absent


class ColdStartParams(Document):
    items: int
    candidate_rows_added: int | None = absent()  # only when the scenario added items


class PriceShiftParams(Document):
    category: str
    fraction: float


class Scenario(Document):
    name: str
    kind: Literal["cold_start_items", "price_shift"]
    params: ColdStartParams | PriceShiftParams
    models: dict[str, MetricValues]  # model -> metric -> value under the scenario
    baseline: dict[str, MetricValues]  # model -> metric -> value on the catalogue as it is
    deltas_vs_baseline: dict[str, dict[str, float]]


class GracefulBy(Document):
    metric: str
    mean_relative_change: dict[str, float | None]  # model -> mean relative change of `metric`


class WhatIfDocument(Document):
    users: int
    seed: int
    k: int
    scenarios: list[Scenario]
    more_graceful: str | None  # None: the models are within the tie margin
    graceful_by: GracefulBy
    labels: str
