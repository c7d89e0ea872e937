"""The CDK app: both stacks synthesized once per environment, asserted on the properties that matter."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from testbed import steps, workflow

if TYPE_CHECKING:
    from aws_cdk.assertions import Template

    from infra.config import EnvironmentConfig

os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

if shutil.which("node") is None:
    pytest.skip("the AWS CDK needs `node` on PATH (jsii runs the library in Node.js)", allow_module_level=True)
if importlib.util.find_spec("aws_cdk") is None:
    pytest.skip("aws-cdk-lib is not installed (pip install aws-cdk-lib constructs cdk-nag)", allow_module_level=True)
# aws_cdk, and app and infra that import it, are imported where used: importing it starts a Node.js process that
# loads the whole library (seconds), which every pytest-xdist worker would otherwise pay at collection.

ROOT = Path(__file__).resolve().parents[2]
# The independent scanners (.ci/requirements-scan.txt, installed by .ci/run into their own venv): too big and
# too tightly pinned for the dev venv, so their tests run only where these variables name them. A scanner that
# happens to be on PATH is not used: it may be another version, and CI runs these tests with the pinned ones.
CHECKOV = os.environ.get("TESTBED_CHECKOV")
CFN_LINT = os.environ.get("TESTBED_CFN_LINT")
SCANNER_TIMEOUT_S = 300
ENVIRONMENTS = ("dev", "staging", "prod")
# +1 run-scoped stream and table prefixes (issue 4); +3 scratch bucket, per-step writes (11); +1 sampling tables (17)
MAX_SUPPRESSIONS = 20
EXPECTED_SCHEDULES = {"dev": 0, "staging": 1, "prod": 2}


@dataclass(frozen=True)
class Synthesized:
    config: EnvironmentConfig
    data: Template
    workflow: Template
    termination_protection: dict[str, bool]
    report: dict[str, Any]
    outdir: Path  # the cloud assembly: the templates the scanners read

    def templates(self) -> dict[str, Template]:
        return {"data": self.data, "workflow": self.workflow}


def _context(env: str) -> dict[str, Any]:
    return {**json.loads((ROOT / "cdk.json").read_text())["context"], "env": env}


def _synthesize(env: str, workdir: Path) -> Synthesized:
    import aws_cdk as cdk
    from aws_cdk.assertions import Template

    from app import build_app

    app = cdk.App(context=_context(env), outdir=str(workdir / "cdk.out"))
    config, data, workflow_stack = build_app(app, layers_dir=workdir / "layers-not-built")
    assembly = app.synth()  # raises ValidationFailed on any unacknowledged cdk-nag finding
    report_path = workdir / "cdk.out" / "validation-report.json"
    return Synthesized(
        config=config,
        data=Template.from_json(assembly.get_stack_by_name(data.stack_name).template),
        workflow=Template.from_json(assembly.get_stack_by_name(workflow_stack.stack_name).template),
        termination_protection={"data": data.termination_protection,
                                "workflow": workflow_stack.termination_protection},
        report=json.loads(report_path.read_text()) if report_path.exists() else {"pluginReports": []},
        outdir=workdir / "cdk.out",
    )


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Synthesized]:
    cache: dict[str, Synthesized] = {}

    def get(env: str) -> Synthesized:
        if env not in cache:
            cache[env] = _synthesize(env, tmp_path_factory.mktemp(f"cdk-{env}"))
        return cache[env]

    return get


@pytest.fixture(params=ENVIRONMENTS)
def synthesized(request: pytest.FixtureRequest, synth: Callable[[str], Synthesized]) -> Synthesized:
    return synth(request.param)


# --- helpers: read templates by property, never by logical id -------------------------------------------------

def flatten(value: Any) -> str:
    """A CloudFormation string expression as text, with `<Logical.Attr>` / `<Ref>` for the tokens."""
    if isinstance(value, str):
        return value
    if "Fn::Join" in value:
        delimiter, parts = value["Fn::Join"]
        return delimiter.join(flatten(part) for part in parts)
    if "Fn::GetAtt" in value:
        return "<{}.{}>".format(*value["Fn::GetAtt"])
    if "Ref" in value:
        return f"<{value['Ref']}>"
    if "Fn::ImportValue" in value:
        return f"<import:{flatten(value['Fn::ImportValue'])}>"
    raise AssertionError(f"unexpected intrinsic {value!r}")


def functions_by_step(s: Synthesized) -> dict[str, tuple[str, dict[str, Any]]]:
    """step -> (logical id, properties), recognised by the function's description."""
    out = {}
    for logical_id, resource in s.workflow.find_resources("AWS::Lambda::Function").items():
        step = resource["Properties"]["Description"].rsplit(": ", 1)[1].removesuffix(" step")
        out[step] = (logical_id, resource["Properties"])
    return out


def policy_statements_of_role(template: Template, role_arn: Any) -> list[dict[str, Any]]:
    role_logical_id = role_arn["Fn::GetAtt"][0]
    statements = []
    for policy in template.find_resources("AWS::IAM::Policy").values():
        if {"Ref": role_logical_id} in policy["Properties"]["Roles"]:
            statements += policy["Properties"]["PolicyDocument"]["Statement"]
    return statements


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def actions_on(statements: list[dict[str, Any]], resource_text: str) -> set[str]:
    return {action for st in statements if st["Effect"] == "Allow"
            for action in as_list(st["Action"])
            if any(resource_text in flatten(r) for r in as_list(st["Resource"]))}


def state_machine(s: Synthesized) -> dict[str, Any]:
    (resource,) = s.workflow.find_resources("AWS::StepFunctions::StateMachine").values()
    return resource["Properties"]


def asl(s: Synthesized) -> dict[str, Any]:
    """The deployed definition with every function ARN replaced by `<step>`."""
    step_of = {logical_id: step for step, (logical_id, _) in functions_by_step(s).items()}
    _, parts = state_machine(s)["DefinitionString"]["Fn::Join"]
    text = "".join(p if isinstance(p, str) else f"<{step_of[p['Fn::GetAtt'][0]]}>" for p in parts)
    return json.loads(text)


def all_states(states: dict[str, Any]) -> dict[str, dict[str, Any]]:
    out = dict(states)
    for state in states.values():
        if "ItemProcessor" in state:
            out |= all_states(state["ItemProcessor"]["States"])
        for branch in state.get("Branches", []):
            out |= all_states(branch["States"])
    return out


def suppressions(s: Synthesized) -> list[tuple[str, str, str]]:
    """(stack, rule id, reason) for every acknowledged cdk-nag rule written into resource metadata."""
    out = []
    for stack, template in s.templates().items():
        for resource in template.to_json()["Resources"].values():
            for rule in resource.get("Metadata", {}).get("cdk_nag", {}).get("rules_to_suppress", []):
                out.append((stack, rule["id"], rule.get("reason", "")))
    return out


# --- data stack ----------------------------------------------------------------------------------------------

def test_every_bucket_is_encrypted_private_tls_only_and_retained(synthesized: Synthesized) -> None:
    template = synthesized.data.to_json()["Resources"]
    buckets = {k: r for k, r in template.items() if r["Type"] == "AWS::S3::Bucket"}
    assert len(buckets) == 4  # access logs, lake, artifacts, scratch
    policies = [r["Properties"] for r in template.values() if r["Type"] == "AWS::S3::BucketPolicy"]
    for logical_id, bucket in buckets.items():
        props = bucket["Properties"]
        (rule,) = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
        assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] in ("AES256", "aws:kms")
        assert props["PublicAccessBlockConfiguration"] == {
            "BlockPublicAcls": True, "BlockPublicPolicy": True, "IgnorePublicAcls": True,
            "RestrictPublicBuckets": True}
        assert bucket["DeletionPolicy"] == "Retain"
        (policy,) = [p for p in policies if p["Bucket"] == {"Ref": logical_id}]
        assert any(st["Effect"] == "Deny" and st["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
                   for st in policy["PolicyDocument"]["Statement"])


def buckets_by_purpose(s: Synthesized) -> dict[str, tuple[str, dict[str, Any]]]:
    """purpose (lake, artifacts, scratch, access-logs) -> (logical id, properties)."""
    prefix = f"testbed-{s.config.env_name}-"
    return {flatten(b["Properties"]["BucketName"]).split("-<")[0].removeprefix(prefix): (logical_id, b["Properties"])
            for logical_id, b in s.data.find_resources("AWS::S3::Bucket").items()}


def test_lake_and_artifacts_buckets_log_access_and_are_versioned(synthesized: Synthesized) -> None:
    by_purpose = buckets_by_purpose(synthesized)
    for purpose in ("lake", "artifacts", "scratch"):
        _, props = by_purpose[purpose]
        assert props["LoggingConfiguration"]["LogFilePrefix"] == f"{purpose}/"
        assert ("VersioningConfiguration" in props) == (purpose != "scratch")
        if purpose != "scratch":
            assert props["VersioningConfiguration"] == {"Status": "Enabled"}


def test_scratch_bucket_has_no_object_lock_and_expires_everything_after_a_day(synthesized: Synthesized) -> None:
    _, props = buckets_by_purpose(synthesized)["scratch"]
    assert "ObjectLockEnabled" not in props and "ObjectLockConfiguration" not in props
    (rule,) = props["LifecycleConfiguration"]["Rules"]
    assert rule["Status"] == "Enabled" and rule["ExpirationInDays"] == 1
    assert "Prefix" not in rule and "TagFilters" not in rule  # every object


def test_artifacts_bucket_has_object_lock_and_lifecycle(synthesized: Synthesized) -> None:
    config = synthesized.config
    (artifacts,) = synthesized.data.find_resources("AWS::S3::Bucket", {"Properties": {
        "ObjectLockEnabled": True}}).values()
    props = artifacts["Properties"]
    assert props["ObjectLockConfiguration"] == {"ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": {
        "Mode": "GOVERNANCE", "Days": config.artifact_lock_days}}}
    assert props["VersioningConfiguration"] == {"Status": "Enabled"}
    rules = {rule["Id"]: rule for rule in props["LifecycleConfiguration"]["Rules"]}
    assert rules["expire-bulky-run-data"]["TagFilters"] == [{"Key": "testbed:retention", "Value": "bulky"}]
    assert rules["expire-bulky-run-data"]["ExpirationInDays"] == config.bulky_data_days
    assert "Prefix" not in rules["expire-bulky-run-data"]
    assert not [r for r in rules.values() if "Prefix" in r]  # scratch and Athena output live in the scratch bucket
    assert rules["expire-noncurrent-versions"]["NoncurrentVersionExpiration"] == {
        "NoncurrentDays": config.artifact_lock_days}


def test_workgroup_enforces_its_configuration_and_scan_limit(synthesized: Synthesized) -> None:
    from aws_cdk.assertions import Match

    config = synthesized.config
    synthesized.data.has_resource_properties("AWS::Athena::WorkGroup", {
        "Name": config.workgroup,
        "WorkGroupConfiguration": Match.object_like({
            "EnforceWorkGroupConfiguration": True,
            "BytesScannedCutoffPerQuery": config.athena_bytes_scanned_cutoff,
            "ResultConfiguration": Match.object_like({"EncryptionConfiguration": {"EncryptionOption": "SSE_S3"}}),
        }),
    })
    (workgroup,) = synthesized.data.find_resources("AWS::Athena::WorkGroup").values()
    location = flatten(workgroup["Properties"]["WorkGroupConfiguration"]["ResultConfiguration"]["OutputLocation"])
    scratch_id, _ = buckets_by_purpose(synthesized)["scratch"]
    assert location == f"s3://<{scratch_id}>/athena-results/"


def test_events_table_uses_partition_projection(synthesized: Synthesized) -> None:
    from aws_cdk.assertions import Match

    synthesized.data.has_resource_properties("AWS::Glue::Table", {"TableInput": Match.object_like({
        "Name": "events",
        "PartitionKeys": [{"Name": "event_date", "Type": "string"}],
        "Parameters": Match.object_like({
            "projection.enabled": "true",
            "projection.event_date.type": "date",
            "projection.event_date.format": "yyyy-MM-dd",
            "projection.event_date.range": "2020-01-01,NOW",
        }),
    })})
    (events,) = synthesized.data.find_resources("AWS::Glue::Table", {"Properties": {"TableInput": {
        "Name": "events"}}}).values()
    template = flatten(events["Properties"]["TableInput"]["Parameters"]["storage.location.template"])
    assert template.startswith("s3://<") and template.endswith("/events/event_date=${event_date}")


def test_glue_tables_have_the_spec_columns(synthesized: Synthesized) -> None:
    from aws_cdk.assertions import Match

    spec = {"events": {"event_id": "string", "event_time": "timestamp", "user_id": "string", "item_id": "string",
                       "event_type": "string", "session_id": "string", "quantity": "bigint", "price": "double"},
            "users": {"user_id": "string"},
            "items": {"item_id": "string", "category": "string", "price": "double"}}
    tables = synthesized.data.find_resources("AWS::Glue::Table").values()
    columns = {t["Properties"]["TableInput"]["Name"]: {c["Name"]: c["Type"] for c in t["Properties"]["TableInput"][
        "StorageDescriptor"]["Columns"]} for t in tables}
    assert set(columns) == set(spec)
    for dataset, required in spec.items():
        assert required.items() <= columns[dataset].items()
    synthesized.data.has_resource_properties("AWS::Glue::Database", {"DatabaseInput": Match.object_like({
        "Name": synthesized.config.glue_database})})


def data_key_id(s: Synthesized) -> str:
    (key_id,) = s.data.find_resources("AWS::KMS::Key")
    return key_id


def test_pii_key_is_a_generated_retained_secret(synthesized: Synthesized) -> None:
    (secret,) = synthesized.data.find_resources("AWS::SecretsManager::Secret").values()
    assert secret["Properties"]["GenerateSecretString"]["PasswordLength"] >= 32
    assert secret["DeletionPolicy"] == "Retain"
    assert secret["Properties"]["KmsKeyId"] == {"Fn::GetAtt": [data_key_id(synthesized), "Arn"]}


def test_one_rotated_retained_data_key_that_cloudwatch_logs_here_may_use(synthesized: Synthesized) -> None:
    key = synthesized.data.find_resources("AWS::KMS::Key")[data_key_id(synthesized)]
    assert key["Properties"]["EnableKeyRotation"] is True and key["DeletionPolicy"] == "Retain"
    (logs_statement,) = [st for st in key["Properties"]["KeyPolicy"]["Statement"]
                         if "Service" in st["Principal"]]
    assert flatten(logs_statement["Principal"]["Service"]) == "logs.<AWS::Region>.amazonaws.com"
    assert {"kms:Encrypt*", "kms:Decrypt*", "kms:GenerateDataKey*"} <= set(logs_statement["Action"])
    context = flatten(logs_statement["Condition"]["ArnLike"]["kms:EncryptionContext:aws:logs:arn"])
    assert context == "arn:<AWS::Partition>:logs:<AWS::Region>:<AWS::AccountId>:log-group:*"


def test_only_staging_and_prod_data_stacks_are_termination_protected(synthesized: Synthesized) -> None:
    protected = synthesized.config.env_name in ("staging", "prod")
    assert synthesized.termination_protection == {"data": protected, "workflow": False}


# --- functions -----------------------------------------------------------------------------------------------

def test_one_python312_traced_function_per_step_with_its_layers(synthesized: Synthesized) -> None:
    config = synthesized.config
    functions = functions_by_step(synthesized)
    assert set(functions) == set(steps.NAMES)
    with_lightgbm = {step for step, (_, props) in functions.items() if len(props["Layers"]) == 3}
    assert with_lightgbm == {"validate", "score", "whatif"}  # they load models; evaluate and drift never do
    heavy = {step for step, (_, props) in functions.items() if props["MemorySize"] == config.heavy_lambda_memory_mb}
    assert heavy == {"validate", "slice", "replay", "consume", "score", "evaluate", "drift", "whatif"}
    for step, (_, props) in functions.items():
        table = steps.step(step)
        assert props["Runtime"] == "python3.12"
        assert props["Handler"] == "handler.lambda_handler"
        assert props["TracingConfig"] == {"Mode": "Active"}
        assert len(props["Layers"]) == (3 if table.needs_lightgbm else 2), step
        big = table.size == "heavy"
        assert props["MemorySize"] == (config.heavy_lambda_memory_mb if big else config.lambda_memory_mb), step
        assert props["Timeout"] == (config.heavy_lambda_timeout_seconds if big else config.lambda_timeout_seconds)
        env = props["Environment"]["Variables"]
        assert env["POWERTOOLS_SERVICE_NAME"] == "testbed"
        assert env["POWERTOOLS_METRICS_NAMESPACE"] == "Testbed"
        assert env["TESTBED_ENGINE"] == "athena"
        assert env["OMP_WAIT_POLICY"] == "PASSIVE"  # LightGBM's threads sleep at barriers (testbed.settings)
        assert env["TESTBED_ATHENA_WORKGROUP"] == config.workgroup
        assert env["TESTBED_GLUE_DATABASE"] == config.glue_database
        assert flatten(env["TESTBED_SCRATCH_URI"]).startswith(f"s3://testbed-{config.env_name}-scratch-")
        assert flatten(env["TESTBED_SCRATCH_URI"]).endswith("/scratch")
        assert ("TESTBED_PII_SECRET_ARN" in env) == (step == "slice")
    layers = synthesized.workflow.find_resources("AWS::Lambda::LayerVersion")
    assert len(layers) == 3
    for layer in layers.values():
        assert layer["Properties"]["CompatibleRuntimes"] == ["python3.12"]


def test_function_log_groups_keep_the_configured_retention(synthesized: Synthesized) -> None:
    groups = synthesized.workflow.find_resources("AWS::Logs::LogGroup")
    for _, props in functions_by_step(synthesized).values():
        group = groups[props["LoggingConfig"]["LogGroup"]["Ref"]]
        assert group["Properties"]["RetentionInDays"] == synthesized.config.log_retention_days
    for group in groups.values():  # the state machine's too
        assert flatten(group["Properties"]["KmsKeyId"]).startswith("<import:TestbedData-")


def puts_on(statements: list[dict[str, Any]], effect: str = "Allow") -> set[str]:
    """The object patterns a role may (or may not) s3:PutObject, as flattened ARNs."""
    return {flatten(r) for st in statements if st["Effect"] == effect and "s3:PutObject" in as_list(st["Action"])
            for r in as_list(st["Resource"])}


def test_each_step_writes_only_its_own_prefixes_and_only_record_steps_write_run_json(
        synthesized: Synthesized) -> None:
    env = synthesized.config.env_name
    bucket = "arn:<AWS::Partition>:s3:::testbed-{}-{}-<AWS::AccountId>-<AWS::Region>/{}".format
    runs, record = bucket(env, "artifacts", "runs/*/*"), bucket(env, "artifacts", "runs/*/run.json")
    scratch, athena = bucket(env, "scratch", "scratch/*"), bucket(env, "scratch", "athena-results/*")
    writers = {"validate", "slice", "replay", "consume", "features", "score", "evaluate", "drift", "whatif", "gate",
               "record", "record_error"}
    assert {s.name for s in steps.STEPS if s.writes_run} == writers  # provision, plan_shards, teardown: none
    assert {s.name for s in steps.STEPS if s.writes_record} == {"record", "record_error"}
    for step, (_, props) in functions_by_step(synthesized).items():
        table = steps.step(step)
        statements = policy_statements_of_role(synthesized.workflow, props["Role"])
        expected = ({runs} if table.writes_run else set()) | ({scratch} if table.writes_scratch else set())
        assert puts_on(statements) == expected | ({athena} if table.reads_lake else set()), step
        # IAM cannot know the run id; the explicit deny keeps every other writer off any run's run.json
        assert puts_on(statements, "Deny") == ({record} if table.writes_run and not table.writes_record else set())
    assert {s.name for s in steps.STEPS if s.writes_scratch} == {"validate", "slice", "consume", "plan_shards",
                                                                "drift"}


def test_function_roles_are_least_privilege(synthesized: Synthesized) -> None:
    env = synthesized.config.env_name
    lake, artifacts = f"testbed-{env}-lake-", f"testbed-{env}-artifacts-"
    for step, (_, props) in functions_by_step(synthesized).items():
        statements = policy_statements_of_role(synthesized.workflow, props["Role"])
        assert not any(st["Effect"] == "Allow" and "*" in as_list(st["Action"]) for st in statements)
        assert ("s3:PutObject" in actions_on(statements, artifacts)) == steps.step(step).writes_run, step
        deletes = [st for st in statements if any(a.startswith("s3:Delete") for a in as_list(st["Action"]))]
        if step == "teardown":  # only teardown deletes, and only under the scratch bucket's scratch/
            assert [as_list(st["Action"]) for st in deletes] == [["s3:DeleteObject"]]
            assert flatten(deletes[0]["Resource"]).endswith(f"s3:::testbed-{env}-scratch-<AWS::AccountId>-"
                                                            "<AWS::Region>/scratch/*")
        else:
            assert not deletes, step
        reads_lake = "s3:GetObject*" in actions_on(statements, lake)
        assert reads_lake == (step in ("validate", "slice", "drift")), step  # drift: the population baseline
        assert reads_lake == steps.step(step).reads_lake, step
        assert not {a for a in actions_on(statements, lake) if a.startswith("s3:Put")}
        athena = actions_on(statements, f":workgroup/{synthesized.config.workgroup}")
        assert ("athena:StartQueryExecution" in athena) == reads_lake
        glue_tables = actions_on(statements, f":table/{synthesized.config.glue_database}/events")
        assert ("glue:GetTable" in glue_tables) == reads_lake
        sampled = actions_on(statements, f":table/{synthesized.config.glue_database}/tb_sampled_*")
        assert sampled == set(steps.step(step).sampled_table_actions), step  # slice creates, teardown deletes
        writes = {a for st in statements for a in as_list(st["Action"])
                  if a in ("glue:CreateTable", "glue:DeleteTable")}
        assert writes <= sampled, step  # never on the lake's own tables
        secret_actions = {a for st in statements for a in as_list(st["Action"]) if a.startswith("secretsmanager:")}
        assert bool(secret_actions) == (step == "slice"), step
        key_actions = {a for st in statements for a in as_list(st["Action"]) if a.startswith("kms:")}
        assert key_actions == ({"kms:Decrypt"} if step == "slice" else set()), step  # the secret's key


def test_only_the_stream_steps_touch_run_streams_and_tables_and_only_by_prefix(synthesized: Synthesized) -> None:
    prefix = synthesized.config.run_resource_prefix
    expected = {
        "provision": ({"kinesis:CreateStream", "kinesis:DeleteStream", "kinesis:StartStreamEncryption"},
                      {"dynamodb:CreateTable", "dynamodb:DeleteTable"}),
        "replay": ({"kinesis:PutRecords"}, {"dynamodb:GetItem", "dynamodb:PutItem"}),
        "consume": ({"kinesis:GetRecords", "kinesis:GetShardIterator"}, {"dynamodb:GetItem", "dynamodb:PutItem"}),
        "teardown": ({"kinesis:DeleteStream"}, {"dynamodb:DeleteTable"}),
    }
    for step, (_, props) in functions_by_step(synthesized).items():
        statements = policy_statements_of_role(synthesized.workflow, props["Role"])
        stream_actions = actions_on(statements, f":stream/{prefix}-*")
        table_actions = actions_on(statements, f":table/{prefix}-*")
        touches = {a for st in statements for a in as_list(st["Action"]) if a.split(":")[0] in ("kinesis", "dynamodb")}
        assert touches == stream_actions | table_actions, step  # never on any other resource
        if step in expected:
            assert expected[step][0] <= stream_actions and expected[step][1] <= table_actions, step
            assert not {"kinesis:PutRecords", "kinesis:GetRecords"} & stream_actions - expected[step][0], step
        else:
            assert not touches, step
        assert props["Environment"]["Variables"]["TESTBED_RESOURCE_PREFIX"] == prefix


# --- state machine -------------------------------------------------------------------------------------------

def test_state_machine_runs_the_shared_definition(synthesized: Synthesized) -> None:
    timeout = synthesized.config.run_timeout_minutes * 60
    assert asl(synthesized) == workflow.definition({step: f"<{step}>" for step in steps.NAMES}, timeout)


def test_executions_time_out_at_the_environments_configured_deadline(synthesized: Synthesized) -> None:
    """CDK drops the `timeout` prop for string definitions (aws-cdk #37150): the deadline must be in the ASL."""
    configured = _context(synthesized.config.env_name)["environments"][synthesized.config.env_name]
    assert asl(synthesized)["TimeoutSeconds"] == configured["run_timeout_minutes"] * 60
    assert "TimeoutSeconds" not in state_machine(synthesized)  # not a property of the resource at all


def test_replay_and_consume_loops_are_capped(synthesized: Synthesized) -> None:
    top = asl(synthesized)["States"]
    for step in (s for s in steps.STEPS if s.loops):
        choice = top[f"{step.state}Done?"]
        (cap,) = [c for c in choice["Choices"] if c.get("Variable") == f"$.rounds.{step.name}.count"]
        assert cap["NumericGreaterThanEquals"] == step.max_rounds
        assert top[cap["Next"]]["Result"]["Error"] == workflow.LOOP_LIMIT_ERROR
        assert top[top[cap["Next"]]["Next"]]["Next"] == "RecordError"  # recorded as ERROR, then torn down


def test_every_task_retries_with_backoff_and_is_caught(synthesized: Synthesized) -> None:
    top = asl(synthesized)["States"]
    for name, state in all_states(top).items():
        if state["Type"] == "Task":
            assert state["Retry"], name
            assert all(r["BackoffRate"] > 1 and r["MaxAttempts"] >= 1 for r in state["Retry"]), name
    caught = dict(top)  # a Map's item tasks retry; the Map catches (a Parallel's branch tasks catch themselves)
    for state in top.values():
        for branch in state.get("Branches", []):
            caught |= branch["States"]
    for name, state in caught.items():
        if state["Type"] in ("Task", "Map", "Parallel"):
            assert any("States.ALL" in c["ErrorEquals"] for c in state.get("Catch", [])), name


def test_scoring_is_a_distributed_map_over_listed_shard_objects(synthesized: Synthesized) -> None:
    (score,) = [s for s in asl(synthesized)["States"].values() if s["Type"] == "Map"]
    assert score["ItemReader"]["Resource"] == "arn:aws:states:::s3:listObjectsV2"
    assert score["ItemProcessor"]["ProcessorConfig"]["Mode"] == "DISTRIBUTED"


def test_state_machine_logs_every_transition_without_payloads_and_traces(synthesized: Synthesized) -> None:
    props = state_machine(synthesized)
    assert props["StateMachineName"] == synthesized.config.state_machine_name
    assert props["LoggingConfiguration"]["Level"] == "ALL"
    assert props["LoggingConfiguration"]["IncludeExecutionData"] is False  # inputs and outputs hold run data
    assert props["TracingConfiguration"] == {"Enabled": True}


def test_state_machine_role_invokes_functions_and_runs_the_distributed_map(synthesized: Synthesized) -> None:
    props = state_machine(synthesized)
    statements = policy_statements_of_role(synthesized.workflow, props["RoleArn"])
    invoke = [st for st in statements if st["Action"] == "lambda:InvokeFunction"]
    (invoke_statement,) = invoke
    invoked = {r["Fn::GetAtt"][0] for r in invoke_statement["Resource"]}
    assert invoked == {logical_id for logical_id, _ in functions_by_step(synthesized).values()}
    name = synthesized.config.state_machine_name
    assert actions_on(statements, f"testbed-{synthesized.config.env_name}-scratch-") == {"s3:ListBucket"}
    assert not actions_on(statements, f"testbed-{synthesized.config.env_name}-artifacts-")
    assert "states:StartExecution" in actions_on(statements, f":stateMachine:{name}")
    assert {"states:DescribeExecution", "states:StopExecution"} <= actions_on(statements, f":execution:{name}/")


# --- schedules and monitoring --------------------------------------------------------------------------------

def test_schedules_start_runs_of_the_configured_manifests(synthesized: Synthesized) -> None:
    config = synthesized.config
    schedules = synthesized.workflow.find_resources("AWS::Scheduler::Schedule")
    assert len(schedules) == EXPECTED_SCHEDULES[config.env_name]
    by_cron = {s["Properties"]["ScheduleExpression"]: s["Properties"] for s in schedules.values()}
    for schedule in config.schedules:
        target = by_cron[schedule.cron]["Target"]
        payload = json.loads(flatten(target["Input"]))
        assert payload["manifest_s3"].startswith(f"s3://testbed-{config.env_name}-artifacts-")
        assert payload["manifest_s3"].endswith(f"/{schedule.manifest_key}")
        assert payload["lake"].startswith(f"s3://testbed-{config.env_name}-lake-")
        assert payload["artifacts"].startswith(f"s3://testbed-{config.env_name}-artifacts-")
        assert target["Arn"] == {"Ref": next(iter(synthesized.workflow.find_resources(
            "AWS::StepFunctions::StateMachine")))}
        assert "DeadLetterConfig" in target
    queues = synthesized.workflow.find_resources("AWS::SQS::Queue")
    assert len(queues) == (1 if config.schedules else 0)
    for queue in queues.values():
        assert flatten(queue["Properties"]["KmsMasterKeyId"]).startswith("<import:TestbedData-")
    for schedule in schedules.values():  # the scheduler sends dead letters with its role: it needs the queue's key
        statements = policy_statements_of_role(synthesized.workflow, schedule["Properties"]["Target"]["RoleArn"])
        assert {"kms:GenerateDataKey", "kms:Decrypt"} <= actions_on(statements, "<import:TestbedData-")


def test_staging_runs_the_loyalty_manifest_nightly(synth: Callable[[str], Synthesized]) -> None:
    staging = synth("staging")
    (schedule,) = staging.workflow.find_resources("AWS::Scheduler::Schedule").values()
    assert schedule["Properties"]["ScheduleExpression"] == "cron(0 3 * * ? *)"
    assert json.loads(flatten(schedule["Properties"]["Target"]["Input"]))["manifest_s3"].endswith(
        "/manifests/loyalty-members-90d.json")


def test_failed_and_timed_out_runs_alarm_to_an_encrypted_topic(synthesized: Synthesized) -> None:
    (topic_id, topic), = synthesized.workflow.find_resources("AWS::SNS::Topic").items()
    assert "KmsMasterKeyId" in topic["Properties"]
    (machine_id,) = synthesized.workflow.find_resources("AWS::StepFunctions::StateMachine")
    for metric in ("ExecutionsFailed", "ExecutionsTimedOut"):
        synthesized.workflow.has_resource_properties("AWS::CloudWatch::Alarm", {
            "Namespace": "AWS/States", "MetricName": metric, "Statistic": "Sum", "Period": 300, "Threshold": 1,
            "ComparisonOperator": "GreaterThanOrEqualToThreshold",
            "Dimensions": [{"Name": "StateMachineArn", "Value": {"Ref": machine_id}}],
            "AlarmActions": [{"Ref": topic_id}],
        })


def test_dashboard_shows_runs_functions_and_custom_metrics(synthesized: Synthesized) -> None:
    (dashboard,) = synthesized.workflow.find_resources("AWS::CloudWatch::Dashboard").values()
    body = flatten(dashboard["Properties"]["DashboardBody"])
    for metric in ("ExecutionsStarted", "ExecutionsSucceeded", "ExecutionsFailed", "ExecutionTime", "Errors",
                   "Duration", "SliceUsers", "Decision", "StepSeconds"):
        assert metric in body, metric
    assert '"Testbed"' in body or "{Testbed," in body


# --- cdk-nag -------------------------------------------------------------------------------------------------

def test_cdk_nag_reports_no_findings(synthesized: Synthesized) -> None:
    findings = [(report["pluginName"], v["ruleName"]) for report in synthesized.report["pluginReports"]
                if report["pluginName"] != "Construct Annotations" for v in report.get("violations", [])]
    assert findings == []


def test_cdk_nag_is_really_checking(tmp_path: Path) -> None:
    """A plain SQS queue (no TLS policy, no DLQ) must fail synthesis: the checks above are not vacuous."""
    import aws_cdk as cdk
    from aws_cdk import aws_sqs as sqs

    from app import build_app

    app = cdk.App(context=_context("dev"), outdir=str(tmp_path / "cdk.out"))
    _, _, workflow_stack = build_app(app, layers_dir=tmp_path / "layers-not-built")
    sqs.Queue(workflow_stack, "UncheckedQueue")
    with pytest.raises(RuntimeError, match="ValidationFailed"):
        app.synth()
    report = json.loads((tmp_path / "cdk.out" / "validation-report.json").read_text())
    rules = {v["ruleName"] for r in report["pluginReports"] for v in r.get("violations", [])}
    assert {"AwsSolutions-SQS3", "AwsSolutions-SQS4"} <= rules


def test_every_suppression_is_explained_and_they_stay_few(synthesized: Synthesized) -> None:
    found = suppressions(synthesized)
    assert found, "expected the documented suppressions in the templates' cdk_nag metadata"
    unexplained = [(stack, rule, reason) for stack, rule, reason in found if len(reason.strip()) < 20]
    assert unexplained == []
    distinct = sorted({(rule, reason) for _, rule, reason in found})
    listing = "\n".join(f"{rule}: {reason}" for rule, reason in distinct)
    assert len(distinct) <= MAX_SUPPRESSIONS, f"{len(distinct)} suppressions:\n{listing}"


# --- configuration (no synthesis) ----------------------------------------------------------------------------

def test_config_rejects_unknown_keys_and_bad_schedules(tmp_path: Path) -> None:
    from infra.config import ConfigError, build_config, resolve_layer_dirs

    layers, _ = resolve_layer_dirs(tmp_path / "none", tmp_path / "placeholders")
    environments = _context("dev")["environments"]
    with pytest.raises(ConfigError, match="unknown keys"):
        build_config("dev", {"dev": {**environments["dev"], "lambda_memroy_mb": 1}}, layers)
    with pytest.raises(ConfigError, match="cron"):
        build_config("dev", {"dev": {"schedules": [{"name": "x", "cron": "rate(1 day)", "manifest_key": "m"}]}},
                     layers)
    with pytest.raises(ConfigError, match="env"):
        build_config("qa", environments, layers)


def test_missing_layers_get_placeholders_and_built_ones_are_used(tmp_path: Path) -> None:
    from infra.config import resolve_layer_dirs

    (tmp_path / "build" / "data" / "python").mkdir(parents=True)
    dirs, missing = resolve_layer_dirs(tmp_path / "build", tmp_path / "placeholders")
    assert dirs["data"] == tmp_path / "build" / "data"
    assert missing == ["lightgbm", "project"]
    assert (dirs["lightgbm"] / "python").is_dir()


# --- the independent scanners (checkov, cfn-lint) ------------------------------------------------------------

def checkov_skips(s: Synthesized) -> set[tuple[str, str, str]]:
    """(resource type.logical id, check id, comment) for every `Metadata.checkov.skip` entry."""
    return {(f"{resource['Type']}.{logical_id}", skip["id"], skip.get("comment", ""))
            for template in s.templates().values()
            for logical_id, resource in template.to_json()["Resources"].items()
            for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", [])}


def test_every_checkov_skip_is_explained(synthesized: Synthesized) -> None:
    skips = checkov_skips(synthesized)
    assert {check for _, check, _ in skips} >= {"CKV_AWS_115", "CKV_AWS_116", "CKV_AWS_117", "CKV_AWS_173"}
    assert [(resource, check) for resource, check, comment in skips if len(comment.strip()) < 20] == []
    # only checks that do not apply are skipped: the encryption, logging and DLQ-encryption ones are fixed
    assert not {check for _, check, _ in skips} & {"CKV_AWS_158", "CKV_AWS_149", "CKV_AWS_27"}


@pytest.mark.skipif(CHECKOV is None, reason="TESTBED_CHECKOV is not set; .ci/run installs checkov "
                                            "(.ci/requirements-scan.txt) and sets it")
def test_checkov_finds_nothing_unsuppressed_and_every_skip_is_used(synthesized: Synthesized) -> None:
    done = subprocess.run([str(CHECKOV), "--directory", str(synthesized.outdir), "--framework", "cloudformation",
                           "--output", "json", "--compact", "--skip-download"],
                          capture_output=True, text=True, timeout=SCANNER_TIMEOUT_S, check=False)
    report = json.loads(done.stdout)
    failed = [(f["check_id"], f["resource"], f["check_name"]) for f in report["results"]["failed_checks"]]
    assert failed == []
    assert report["summary"]["passed"] > 300 and report["summary"]["parsing_errors"] == 0
    skipped = {(f["resource"], f["check_id"], f["check_result"].get("suppress_comment", ""))
               for f in report["results"]["skipped_checks"]}
    assert skipped == checkov_skips(synthesized)  # no stale skip, and checkov read every comment


@pytest.mark.skipif(CFN_LINT is None, reason="TESTBED_CFN_LINT is not set; .ci/run installs cfn-lint "
                                             "(.ci/requirements-scan.txt) and sets it")
def test_cfn_lint_finds_no_errors(synthesized: Synthesized) -> None:
    templates = sorted(str(path) for path in synthesized.outdir.glob("*.template.json"))
    assert len(templates) == 2
    done = subprocess.run([str(CFN_LINT), "--format", "json", "--", *templates], capture_output=True, text=True,
                          timeout=SCANNER_TIMEOUT_S, check=False)
    matches = json.loads(done.stdout or "[]")
    errors = [(m["Rule"]["Id"], m["Message"]) for m in matches if m["Level"] == "Error"]
    assert errors == []  # warnings (W3005: a DependsOn CDK adds that a Ref already implies) are cosmetic
