"""testbed.record: the published schemas match the models, a key no model declares is refused, a load and a dump
keep every byte, and RunLayout names the paths the pipeline uses."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from pydantic import ValidationError
from pydantic_core import PydanticSerializationError

from testbed.adapters.storage import UriStorage
from testbed.invocation import Invocation
from testbed.pipeline.context import RunContext
from testbed.record import io
from testbed.record.documents import ALL
from testbed.record.layout import RunLayout
from testbed.record.schemas import schema_files
from testbed.record.slice import StratumStats
from testbed.record.steps import ConsumeResult, ValidatedRun
from testbed.settings import Settings
from tests.run_record_check import SCHEMAS, check_run_files
from tests.unit import report_run

LAYOUT = RunLayout.of("s3://artifacts", "demo-0123456789ab")


def test_published_schemas_are_in_sync_with_the_models() -> None:
    regenerate = "testbed schema --record schemas/run-record"
    expected = schema_files()
    assert sorted(p.name for p in SCHEMAS.glob("*.json")) == sorted(expected), f"run `{regenerate}`"
    for name, text in expected.items():
        assert (SCHEMAS / name).read_text() == text, f"{name} is stale: run `{regenerate}`"
        jsonschema.Draft202012Validator.check_schema(json.loads(text))


def test_every_document_kind_has_its_own_schema_name() -> None:
    assert len({kind.name for kind in ALL}) == len(ALL)


@pytest.mark.parametrize("builder", [report_run.gates_doc, report_run.metrics_doc, report_run.drift_doc,
                                     report_run.whatif_doc, report_run.stats_doc])
def test_a_writer_adding_an_undeclared_key_fails(builder: Any) -> None:
    paths = {report_run.gates_doc: LAYOUT.gates, report_run.metrics_doc: LAYOUT.metrics,
             report_run.drift_doc: LAYOUT.drift, report_run.whatif_doc: LAYOUT.whatif,
             report_run.stats_doc: LAYOUT.slice_stats}
    path = paths[builder]
    document = builder()
    io.parse(path, document)  # as built, it is valid
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        io.parse(path, {**document, "added_by_a_writer": 1})


def test_an_undeclared_key_deep_inside_fails_too() -> None:
    gates = report_run.gates_doc()
    gates["sample_ratio"]["chi2"] = gates["sample_ratio"]["statistic"]  # the old fixture's misspelling
    with pytest.raises(ValidationError, match=r"sample_ratio\.GatesDocument\.chi2|chi2"):
        io.parse(LAYOUT.gates, gates)
    with pytest.raises(ValidationError):
        StratumStats(users=1, events=2, eligible=3)  # type: ignore[call-arg]


def test_documents_are_frozen() -> None:
    stats = report_run.stats_model()
    with pytest.raises(ValidationError):
        stats.users = 1  # type: ignore[misc]


def test_ints_stay_ints_floats_stay_floats_and_nan_round_trips() -> None:
    metrics = report_run.metrics_doc()
    metrics["models"]["control"]["empty"] = {"ndcg@10": math.nan, "coverage@10": math.inf, "users": 0}
    metrics["models"]["control"]["all"]["revenue@10"] = 4.0
    raw = json.dumps(metrics, indent=2, sort_keys=True) + "\n"
    document = io.parse(LAYOUT.metrics, json.loads(raw))
    assert io.dumps(LAYOUT.metrics, document).decode() == raw
    assert "NaN" in raw and '"users": 0' in raw and '"revenue@10": 4.0' in raw


def test_a_key_written_only_sometimes_stays_absent() -> None:
    assert "eligible_users" not in StratumStats(users=1, events=2).model_dump(mode="json")
    assert "shards" not in ConsumeResult(done=True, records_read=3, duplicates=0).model_dump(mode="json")
    assert ConsumeResult(done=False, records_read=3, duplicates=0, shards_done=1, shards=4).model_dump(
        mode="json")["shards"] == 4


def test_step_payloads_refuse_unknown_keys() -> None:
    run = {"run_id": "r-0123456789ab", "lake": "/lake", "manifest_digest": "a" * 64, "lake_fingerprint": "b" * 64,
           "code_version": "0.1.0", "models": {}, "existing_decision": None, "bytes_scanned": 0,
           "run_uri": "/out/runs/r-0123456789ab", "elapsed_s": 0.3}
    assert ValidatedRun.model_validate(run).model_dump(mode="json") == run
    with pytest.raises(ValidationError):
        ValidatedRun.model_validate({**run, "existing_decision": "MAYBE"})
    with pytest.raises(ValidationError):
        ValidatedRun.model_validate({**run, "extra": 1})


def test_the_layout_names_the_paths_the_pipeline_uses() -> None:
    ctx = RunContext(LAYOUT.run_id, LAYOUT.root, "/lake", Invocation.outside_lambda())
    assert LAYOUT.root == "s3://artifacts/runs/demo-0123456789ab"
    assert RunLayout.at(LAYOUT.root + "/") == LAYOUT
    assert RunLayout.at("/copies/demo-0123456789ab").record.uri == "/copies/demo-0123456789ab/run.json"
    assert LAYOUT.slice_stats.uri == ctx.uri("slice", "stats.json")
    assert LAYOUT.slice_table("users") == ctx.uri("slice", "users.parquet")
    assert LAYOUT.batch_features("user_category") == ctx.uri("features", "batch_user_category.parquet")
    assert LAYOUT.shard_scores(3) == ctx.uri("scores", "shard-00003.parquet")
    assert LAYOUT.shard_latency(3).uri == ctx.uri("scores", "shard-00003.latency.json")
    assert LAYOUT.shard_error(3).uri == ctx.uri("scores", "shard-00003.error.json")
    assert LAYOUT.shard_plan(3).uri == ctx.scratch("shards", "shard-00003.json")
    assert LAYOUT.stream_chunk(7) == ctx.scratch("stream", "chunk-000007.parquet")
    assert LAYOUT.scratch() == ctx.scratch()
    assert LAYOUT.record.uri == ctx.uri("run.json") and LAYOUT.per_user == ctx.uri("evaluation", "per_user.parquet")


def test_a_configured_scratch_root_moves_only_the_scratch_prefix() -> None:
    settings = Settings(scratch_uri="s3://scratch-bucket/scratch")
    ctx = RunContext(LAYOUT.run_id, LAYOUT.root, "/lake", Invocation.outside_lambda(settings))
    layout = RunLayout.of("s3://artifacts", LAYOUT.run_id, settings.scratch_uri)
    assert LAYOUT.scratch() == "s3://artifacts/scratch/demo-0123456789ab"  # unset: under the artifacts root
    assert ctx.scratch("shards") == layout.scratch("shards") == "s3://scratch-bucket/scratch/demo-0123456789ab/shards"
    assert layout.root == LAYOUT.root and ctx.uri("run.json") == LAYOUT.record.uri
    assert Settings.from_environment({"TESTBED_SCRATCH_URI": "s3://b/s"}).scratch_uri == "s3://b/s"


def test_write_checks_and_read_returns_the_model(tmp_path: Path) -> None:
    layout = RunLayout.of(str(tmp_path), report_run.RUN_ID)
    stats = report_run.stats_model()
    storage = UriStorage()
    assert io.write(storage, layout.slice_stats, stats)
    assert not io.write(storage, layout.slice_stats, stats, if_absent=True)
    assert io.read(storage, layout.slice_stats) == stats
    with pytest.raises(PydanticSerializationError):
        io.write(storage, layout.slice_stats, report_run.stats_doc())  # a plain dict is not the model
    with pytest.raises(ValidationError):
        io.write(storage, layout.slice_stats, report_run.parity_model())  # nor is another document


def test_the_report_fixture_is_a_valid_run_record(tmp_path: Path) -> None:
    seen = check_run_files(report_run.write_run(tmp_path))
    assert seen == {"run", "gates", "metrics", "slice-stats", "parity", "latency", "manifest", "drift", "whatif"}
