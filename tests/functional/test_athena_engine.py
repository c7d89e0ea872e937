"""The cloud engine against moto's Athena and Glue: UNLOAD wrapping, the CTAS of the sampling and its cleanup,
escaped parameters, read-back, schema, and failures classified by Athena's error codes (never by message text)."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pytest

from testbed.adapters.athena_engine import AthenaEngine, literal
from testbed.adapters.embedded_aws import EmbeddedAWS, embedded_aws
from testbed.adapters.storage import UriStorage
from testbed.core.slice_sql import plain_statements, render, sampled_table
from testbed.errors import TransientError
from testbed.invocation import Invocation
from testbed.manifest import parse_manifest
from testbed.pipeline import teardown
from testbed.pipeline.context import RunContext
from testbed.settings import Settings


def unlimited() -> float:
    return 900.0


def engine_on(aws: EmbeddedAWS, workgroup: str, scratch: str, remaining_s: Any = unlimited,
              **options: Any) -> AthenaEngine:
    return AthenaEngine(aws.client("athena"), aws.client("glue"), workgroup, "lake", scratch,
                        storage=UriStorage(aws.client("s3")), remaining_s=remaining_s, **options)


def test_literals_are_escaped() -> None:
    assert literal("O'Brien") == "'O''Brien'"
    assert literal("x'; DROP TABLE users; --") == "'x''; DROP TABLE users; --'"
    assert literal(3) == "3" and literal(2.5) == "2.5" and literal(True) == "TRUE"


@pytest.fixture
def aws() -> Any:
    with embedded_aws() as aws:
        aws.client("s3").create_bucket(Bucket="scratch")
        aws.client("athena").create_work_group(Name="testbed-wg", Configuration={})
        glue = aws.client("glue")
        glue.create_database(DatabaseInput={"Name": "lake"})
        glue.create_table(DatabaseName="lake", TableInput={
            "Name": "events",
            "StorageDescriptor": {"Columns": [{"Name": "event_id", "Type": "string"},
                                              {"Name": "event_time", "Type": "timestamp"},
                                              {"Name": "price", "Type": "double"}]},
            "PartitionKeys": [{"Name": "event_date", "Type": "string"}],
        })
        yield aws


def test_query_unloads_binds_and_reads_back(manifest_data: dict[str, Any], aws: EmbeddedAWS) -> None:
    manifest_data["segment"]["filters"] = [{"column": "loyalty_tier", "op": "eq", "value": "x'; DROP TABLE users; --"}]
    plain, params = plain_statements(parse_manifest(manifest_data))
    canned = pa.table({"user_id": ["C1", "C2"], "inclusion_probability": [0.5, 0.5]})
    UriStorage(aws.client("s3")).write_parquet("s3://scratch/runs/r1/unload/t1/part-0.parquet", canned)
    engine = engine_on(aws, "testbed-wg", "s3://scratch/runs/r1", token=lambda: "t1", poll_s=0.01)
    result = engine.query(plain["users"], params)
    assert result.equals(canned)
    executions = aws.client("athena").list_query_executions()["QueryExecutionIds"]
    detail = aws.client("athena").get_query_execution(QueryExecutionId=executions[0])["QueryExecution"]
    assert detail["Query"].startswith("UNLOAD (WITH segment_users AS")
    assert "s3://scratch/runs/r1/unload/t1/" in detail["Query"]
    assert "DROP TABLE" not in detail["Query"]
    assert detail["WorkGroup"] == "testbed-wg"
    assert detail["QueryExecutionContext"]["Database"] == "lake"


def _glue_table(aws: EmbeddedAWS, name: str) -> None:
    """What Athena's CTAS leaves in the catalogue (moto's Athena runs no SQL, so the test puts it there)."""
    aws.client("glue").create_table(DatabaseName="lake", TableInput={
        "Name": name, "StorageDescriptor": {"Columns": [{"Name": "user_id", "Type": "string"}]}})


def test_the_sampling_is_one_ctas_under_scratch_then_dropped(manifest_data: dict[str, Any],
                                                             aws: EmbeddedAWS) -> None:
    evil = "x'; DROP TABLE users; --"
    manifest_data["segment"]["filters"] = [{"column": "loyalty_tier", "op": "eq", "value": evil}]
    table = sampled_table("r1")
    queries = render(parse_manifest(manifest_data), sampled=table)
    _glue_table(aws, table)  # left by an attempt that died: CTAS needs it gone
    engine = engine_on(aws, "testbed-wg", "s3://scratch/runs/r1", token=lambda: "t2", poll_s=0.01)
    engine.materialise(table, queries.sampling, queries.params)
    assert [t["Name"] for t in aws.client("glue").get_tables(DatabaseName="lake")["TableList"]] == ["events"]
    athena = aws.client("athena")
    (query_id,) = athena.list_query_executions()["QueryExecutionIds"]
    detail = athena.get_query_execution(QueryExecutionId=query_id)["QueryExecution"]
    assert detail["Query"].startswith(f'CREATE TABLE "{table}" WITH (format = \'PARQUET\'')
    assert f"external_location = 's3://scratch/runs/r1/tables/{table}/t2/'" in detail["Query"]
    assert evil not in detail["Query"] and detail["ExecutionParameters"] == ["'x''; DROP TABLE users; --'"]
    assert detail["WorkGroup"] == "testbed-wg" and detail["QueryExecutionContext"]["Database"] == "lake"
    _glue_table(aws, table)  # what the CTAS created
    engine.close()
    names = [t["Name"] for t in aws.client("glue").get_tables(DatabaseName="lake")["TableList"]]
    assert names == ["events"]
    engine.close()  # nothing left to drop: no error


def test_columns_come_from_glue(aws: EmbeddedAWS) -> None:
    engine = engine_on(aws, "wg", "s3://scratch/x")
    assert engine.columns("events") == {"event_id": "VARCHAR", "event_time": "TIMESTAMP", "price": "DOUBLE",
                                        "event_date": "VARCHAR"}


def test_polling_stops_before_the_lambda_times_out(aws: EmbeddedAWS, monkeypatch: pytest.MonkeyPatch) -> None:
    athena = aws.client("athena")
    running = {"QueryExecution": {"Status": {"State": "RUNNING"}}}
    stopped: list[str] = []
    monkeypatch.setattr(athena, "get_query_execution", lambda **_: running)
    monkeypatch.setattr(athena, "stop_query_execution", lambda **kw: stopped.append(kw["QueryExecutionId"]))
    engine = engine_on(aws, "testbed-wg", "s3://scratch/x", remaining_s=lambda: 5.0, poll_s=0.01)
    with pytest.raises(TransientError, match="Lambda time ran out"):
        engine.query("SELECT 1")
    assert len(stopped) == 1


def test_teardown_drops_the_sampling_table_a_dead_slice_step_left() -> None:
    settings = Settings.from_environment({"TESTBED_ENGINE": "athena", "TESTBED_ATHENA_WORKGROUP": "wg",
                                          "TESTBED_GLUE_DATABASE": "lake"})
    with embedded_aws(settings) as aws:
        aws.client("s3").create_bucket(Bucket="art")
        aws.client("glue").create_database(DatabaseInput={"Name": "lake"})
        ctx = RunContext("dead-000000000001", "s3://art/runs/dead-000000000001", "s3://lake",
                         Invocation.outside_lambda(settings))
        _glue_table(aws, sampled_table("dead-000000000001"))
        _glue_table(aws, sampled_table("other-000000000002"))  # another run's: kept
        assert teardown.run_teardown(ctx)["sampled_table_deleted"] is True
        names = [t["Name"] for t in aws.client("glue").get_tables(DatabaseName="lake")["TableList"]]
        assert names == [sampled_table("other-000000000002")]
        assert teardown.run_teardown(ctx)["sampled_table_deleted"] is False
