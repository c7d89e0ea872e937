"""Declared event types (issue 13, point 1), end to end on a lake with impression, click and purchase events and
no view or add_to_cart, as a storefront that logs what it showed would export it.

The lake is a small generated one rewritten with pyarrow: views become clicks, carts are dropped, and every
click is preceded by two impressions (the clicked item and another one) with a `position` and a `propensity`
that only impressions carry. A feature set naming those types (and the impressions' position and propensity),
two models trained on it with the declared grades, and a manifest declaring the vocabulary run the whole
pipeline: parity holds over every feature (so position and propensity survived the stream and the batch path),
labels carry the declared grades (click 1, purchase 3; impressions none), revenue and conversion follow the
purchases. The default vocabulary on that lake is exit 2 naming the undeclared type and an example row, and the
built-in feature set on a declared vocabulary without `view` is exit 2 naming its feature and the type.
"""

from __future__ import annotations

import copy
import hashlib
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from testbed.cli import main
from testbed.core.generate import LakeSpec, generate_lake
from testbed.local import run_local
from testbed.manifest import parse_manifest
from testbed.pipeline.train import train_model
from tests.conftest import BASE_MANIFEST

EVENT_TYPES = [
    {"name": "impression", "exposure": True},
    {"name": "click", "relevance": 1, "click": True},
    {"name": "purchase", "relevance": 3, "conversion": True},
]
FEATURE_SET = """\
version: 1
name: impressions-clicks-purchases
aggregations:
  - {name: i_clicks_7d, keys: [item_id], operation: count, events: [click], window: 7d}
  - {name: i_clicks_30d, keys: [item_id], operation: count, events: [click], window: 30d}
  - {name: i_purchases_30d, keys: [item_id], operation: count, events: [purchase], window: 30d}
  - {name: i_impressions_30d, keys: [item_id], operation: count, events: [impression], window: 30d}
  - {name: i_position_30d, keys: [item_id], operation: mean, input: position, events: [impression], window: 30d}
  - {name: i_propensity_30d, keys: [item_id], operation: mean, input: propensity, events: [impression],
     window: 30d}
  - {name: uc_clicks_30d, keys: [user_id, item.category], operation: count, events: [click], window: 30d}
  - {name: u_clicks_30d, keys: [user_id], operation: count, events: [click], window: 30d}
  - {name: ui_clicks, keys: [user_id, item_id], operation: count, events: [click], window: 90d}
  - {name: ui_days_since_last_event, keys: [user_id, item_id], operation: days_since_last, window: 90d}
derived:
  - {name: i_click_through_30d, expr: "i_clicks_30d / (i_impressions_30d + 1.0)"}
  - {name: uc_click_share_30d, expr: "uc_clicks_30d / u_clicks_30d"}
context:
  - {name: candidate_source, value: candidate_source}
"""


def _impressions_clicks_purchases(generated: Path, lake: Path, seed: int) -> None:
    """The generated lake with views as clicks, no carts, and two impressions before every click."""
    events = ds.dataset(generated / "events", format="parquet", partitioning="hive").to_table()
    events = events.drop_columns(["event_date"]).filter(pc.not_equal(events.column("event_type"), "add_to_cart"))
    kind = events.column("event_type")
    events = events.set_column(events.schema.get_field_index("event_type"), "event_type",
                               pc.if_else(pc.equal(kind, "view"), "click", kind))
    clicks = events.filter(pc.equal(events.column("event_type"), "click"))
    rng = np.random.default_rng(seed)
    n = clicks.num_rows
    items = pq.read_table(generated / "items").column("item_id").to_numpy(zero_copy_only=False)
    other = rng.choice(items, n)
    positions = rng.integers(1, 21, size=2 * n).astype(np.int32)
    unit = clicks.schema.field("event_time").type.unit
    shown_at = pc.subtract(clicks.column("event_time"), pa.scalar(timedelta(seconds=30), pa.duration(unit)))
    click_ids = clicks.column("event_id").combine_chunks()
    impressions = pa.table({
        "event_id": pa.concat_arrays([pc.binary_join_element_wise(prefix, click_ids, "")
                                      for prefix in ("imp-1-", "imp-2-")]),
        "event_time": pa.concat_arrays([shown_at.combine_chunks()] * 2),
        "user_id": pa.concat_arrays([clicks.column("user_id").combine_chunks()] * 2),
        "item_id": pa.concat_arrays([clicks.column("item_id").combine_chunks(), pa.array(other, pa.string())]),
        "event_type": pa.array(["impression"] * (2 * n), pa.string()),
        "session_id": pa.concat_arrays([clicks.column("session_id").combine_chunks()] * 2),
        "quantity": pa.nulls(2 * n, events.schema.field("quantity").type),
        "price": pa.nulls(2 * n, events.schema.field("price").type),
        "position": pa.array(positions, pa.int32()),
        "propensity": pa.array(1.0 / np.sqrt(positions), pa.float64()),
    })
    actions = events.append_column("position", pa.nulls(events.num_rows, pa.int32())).append_column(
        "propensity", pa.nulls(events.num_rows, pa.float64()))
    together = pa.concat_tables([actions.select(impressions.column_names), impressions.cast(
        actions.select(impressions.column_names).schema)]).sort_by([("event_time", "ascending"),
                                                                     ("event_id", "ascending")])
    days = pc.strftime(together.column("event_time"), "%Y-%m-%d")
    for day in sorted(set(days.to_pylist())):
        folder = lake / "events" / f"event_date={day}"
        folder.mkdir(parents=True)
        pq.write_table(together.filter(pc.equal(days, day)), folder / "part-0.parquet")
    for table in ("users", "items"):
        (lake / table).mkdir(parents=True)
        pq.write_table(pq.read_table(generated / table), lake / table / "part-0.parquet")


def _ref(path: Path) -> dict[str, str]:
    return {"uri": str(path), "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}


@pytest.fixture(scope="module")
def declared(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The lake, the feature set, the models and the manifest data of the declared vocabulary."""
    root = tmp_path_factory.mktemp("declared-events")
    generate_lake(root / "generated", LakeSpec(users=300, days=120, seed=23))
    lake = root / "lake"
    _impressions_clicks_purchases(root / "generated", lake, seed=23)
    features = root / "features.yaml"
    features.write_text(FEATURE_SET)
    vocabulary = parse_manifest({**copy.deepcopy(BASE_MANIFEST), "models": {
        "control": {"uri": "c", "sha256": "0" * 64}, "candidate": {"uri": "c", "sha256": "1" * 64}},
        "evaluation": {"event_types": EVENT_TYPES}}).evaluation.vocabulary()
    models = {}
    for role, feature_set in (("control", "control"), ("candidate", "full")):
        path = root / f"{role}.txt"
        train_model(str(lake), path, features=str(features), feature_set=feature_set, num_trees=20,
                    vocabulary=vocabulary)
        models[role] = {**_ref(path), "features": _ref(features)}
    manifest = copy.deepcopy(BASE_MANIFEST)
    manifest["models"] = models
    manifest["evaluation"] = {**manifest["evaluation"], "event_types": EVENT_TYPES}
    manifest["sampling"] = {**manifest["sampling"], "rate": 0.8}
    manifest["gates"] = [*manifest["gates"],
                         {"name": "conversion", "kind": "non_inferiority", "metric": "conversion@10", "margin": 0.05},
                         {"name": "click-through", "kind": "non_inferiority", "metric": "click_through@10",
                          "margin": 0.05}]
    return {"root": root, "lake": lake, "manifest": manifest}


@pytest.fixture(scope="module")
def run_dir(declared: dict[str, Any]) -> Path:
    path = declared["root"] / "manifest.json"
    path.write_text(json.dumps(declared["manifest"]))
    return run_local(path, str(declared["lake"]), declared["root"] / "out").run_dir


def test_the_lake_holds_impressions_clicks_and_purchases_and_no_view(declared: dict[str, Any]) -> None:
    events = ds.dataset(declared["lake"] / "events", format="parquet", partitioning="hive").to_table()
    assert set(events.column("event_type").to_pylist()) == {"impression", "click", "purchase"}
    impressions = events.filter(pc.equal(events.column("event_type"), "impression"))
    assert impressions.column("position").null_count == impressions.column("propensity").null_count == 0


def test_the_declared_vocabulary_runs_end_to_end_with_parity(run_dir: Path) -> None:
    record = json.loads((run_dir / "run.json").read_text())
    assert record["decision"] in ("PASS", "FAIL", "INCONCLUSIVE"), record["reasons"]
    parity = json.loads((run_dir / "features" / "parity.json").read_text())
    assert parity["mismatches"] == 0 and parity["rows_stream"] == parity["rows_batch"] > 0
    stream = pq.read_table(run_dir / "features" / "stream_item.parquet")
    assert pc.max(stream.column("i_position_30d")).as_py() > 1.0  # the impressions' positions were streamed


def test_the_slice_keeps_impressions_with_position_and_propensity(run_dir: Path) -> None:
    events = pq.read_table(run_dir / "slice" / "events.parquet")
    impressions = events.filter(pc.equal(events.column("event_type"), "impression"))
    assert impressions.num_rows > 0 and impressions.column("position").null_count == 0
    assert impressions.column("propensity").null_count == 0


def test_labels_use_the_declared_grades_and_revenue_follows_the_conversions(run_dir: Path) -> None:
    labels = pq.read_table(run_dir / "labels.parquet")
    assert set(labels.column("relevance").to_pylist()) <= {0, 1, 3}
    assert 1 in labels.column("relevance").to_pylist() and 3 in labels.column("relevance").to_pylist()
    bought = labels.filter(labels.column("purchased"))
    assert bought.num_rows > 0 and set(bought.column("relevance").to_pylist()) == {3}
    assert pc.sum(bought.column("revenue")).as_py() > 0
    assert pc.sum(labels.filter(pc.invert(labels.column("purchased"))).column("revenue")).as_py() == 0
    clicked = labels.filter(labels.column("clicked"))
    assert clicked.num_rows > 0 and pc.min(clicked.column("relevance")).as_py() >= 1
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["models"]["candidate"]["all"]["click_through@10"] > 0


def test_the_default_vocabulary_on_this_lake_is_exit_2_naming_the_type_and_a_row(
        declared: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    manifest = copy.deepcopy(declared["manifest"])
    del manifest["evaluation"]["event_types"]
    path = declared["root"] / "default-vocabulary.json"
    path.write_text(json.dumps(manifest))
    assert main(["validate", str(path), "--lake", str(declared["lake"])]) == 2
    err = capsys.readouterr().err
    assert "lake events/: column event_type: an event type that evaluation.event_types does not declare" in err
    assert "(example: 'ev-" in err and ", event_type 'click')" in err


def test_the_built_in_features_on_a_vocabulary_without_view_are_exit_2(
        declared: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    manifest = copy.deepcopy(declared["manifest"])
    del manifest["models"]["control"]["features"]
    path = declared["root"] / "built-in-features.json"
    path.write_text(json.dumps(manifest))
    assert main(["validate", str(path), "--lake", str(declared["lake"])]) == 2
    err = capsys.readouterr().err
    assert "feature set retail-default: aggregations: feature u_views_7d: events: 'view' is not a declared " \
           "event type (evaluation.event_types: impression, click, purchase)" in err


def test_a_vocabulary_without_a_click_or_a_conversion_says_what_cannot_be_estimated(
        declared: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    manifest = copy.deepcopy(declared["manifest"])
    manifest["evaluation"]["event_types"] = [{**t, "click": False, "conversion": False} for t in EVENT_TYPES]
    path = declared["root"] / "no-click-no-conversion.json"
    path.write_text(json.dumps(manifest))
    assert main(["validate", str(path), "--lake", str(declared["lake"])]) == 0
    notes = [line for line in capsys.readouterr().out.splitlines() if line.startswith("note: ")]
    assert notes == [
        "note: evaluation.event_types declares no conversion: nobody converts and nothing carries revenue; revenue@10, "
        "conversion@10 and aov@10 cannot be estimated; gate conversion will be INCONCLUSIVE",
        "note: evaluation.event_types declares no click type: click_through@10 cannot be estimated; gate "
        "click-through will be INCONCLUSIVE"]
