"""Validate's check of `drift.features`: a threshold may name a declared aggregation of the run's feature set or
an event field, nothing else (exit 2 naming the field)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from testbed.adapters.storage import MemoryStorage
from testbed.core.drift import EVENT_FIELDS
from testbed.errors import ManifestError
from testbed.manifest import parse_manifest
from testbed.pipeline.feature_sets import by_role
from testbed.pipeline.validate import check_feature_set
from tests.conftest import BASE_MANIFEST
from tests.unit.test_feature_check import LAKE


def _check(windows: list[int], features: dict[str, Any]) -> None:
    data = copy.deepcopy(BASE_MANIFEST)
    data["models"] = {r: {"uri": f"/m/{r}.txt", "sha256": "0" * 64} for r in ("control", "candidate")}
    data["features"] = {"windows_days": windows}
    data["drift"] = {"features": features}
    manifest = parse_manifest(data)
    check_feature_set(MemoryStorage(), manifest, LAKE, by_role(MemoryStorage(), manifest))


def test_thresholds_may_name_the_sets_aggregations_and_the_event_fields() -> None:
    names = ["uc_revenue_7d", "i_views_30d", "u_days_since_last_purchase", "ui_events", *EVENT_FIELDS]
    _check([7, 30], {name: {"psi_threshold": 0.1} for name in names})


@pytest.mark.parametrize(("windows", "feature"), [
    ([7, 30, 90], "u_revenue_365d"),  # no such window
    ([7, 30], "uc_revenue_90d"),  # a window the run does not compute
    ([7, 30, 90], "i_view_share_7d"),  # a derived model input, not an aggregation drift reports on
])
def test_a_threshold_for_an_unknown_feature_names_the_field(windows: list[int], feature: str) -> None:
    with pytest.raises(ManifestError, match=rf"^manifest: drift\.features\.{feature}: unknown feature"):
        _check(windows, {feature: {"psi_threshold": 0.2}})
