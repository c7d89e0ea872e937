"""One Lambda function per workflow step, the shared layers, and each step's least-privilege role."""

from __future__ import annotations

from pathlib import Path

from aws_cdk import Duration, RemovalPolicy, Size, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from infra import acknowledge, nag_resource, skip_checkov
from infra.athena import QueryEngine
from infra.config import EnvironmentConfig
from infra.data_lake import DataLake
from infra.scratch import ATHENA_RESULTS_PREFIX, SCRATCH_PREFIX
from testbed import steps
from testbed.adapters import storage
from testbed.record.layout import RunLayout
from testbed.settings import OPENMP_ENVIRONMENT
from testbed.steps import Step

FUNCTIONS_DIR = Path(__file__).resolve().parent.parent / "functions"
SERVICE_NAME = "testbed"
METRICS_NAMESPACE = "Testbed"  # RunMonitoring's dashboard reads the handlers' custom metrics from here
RUNTIME = lambda_.Runtime.PYTHON_3_12
ARCHITECTURE = lambda_.Architecture.X86_64  # the layers are built from manylinux x86_64 wheels
# The run layout with a wildcard run id gives the object patterns of the per-step S3 grants.
_ANY_RUN = RunLayout.of("s3://artifacts", "*")
RUN_FILES = storage.split_s3(_ANY_RUN.uri("*"))[1]  # runs/*/*
RUN_RECORD = storage.split_s3(_ANY_RUN.record.uri)[1]  # runs/*/run.json
# cdk-nag findings raised by CDK's bucket grants (grant_read / grant_put): action families on one bucket.
_S3_GRANT_ACTIONS = ("s3:GetObject*", "s3:GetBucket*", "s3:List*", "s3:Abort*")
_CHECKOV_LAMBDA_SKIPS = {
    "CKV_AWS_116": "Step Functions invokes every step synchronously; a DLQ only receives failed asynchronous "
                   "invocations. Failures return to the state machine, which retries, records ERROR and tears down.",
    "CKV_AWS_115": "Concurrency is bounded by the workflow (one call per step at a time, the score map's "
                   "MaxConcurrency); reserving it would carve 15 slices out of the account's pool and fail "
                   "deployment in accounts with the default low concurrency limit.",
    "CKV_AWS_117": "The functions reach only AWS APIs (S3, Athena, Glue, Kinesis, DynamoDB, Secrets Manager) over "
                   "TLS with IAM; there is no VPC resource to reach, and a VPC would need NAT or many endpoints.",
    "CKV_AWS_173": "The environment holds resource names and URIs only, encrypted at rest by Lambda's AWS managed "
                   "key; the one secret (the PII key) is read from Secrets Manager by ARN, never put here.",
}
class PipelineFunctions(Construct):
    """`functions[step]` for every step of the step table (testbed.steps): its memory/timeout class, layers
    and permissions all come from the table."""

    def __init__(self, scope: Construct, cid: str, *, config: EnvironmentConfig, lake: s3.IBucket,
                 artifacts: s3.IBucket, scratch: s3.IBucket, catalog: DataLake, query_engine: QueryEngine,
                 pii_key: secretsmanager.ISecret, key: kms.IKey) -> None:
        super().__init__(scope, cid)
        self._config, self._key = config, key
        self.layers = {
            name: lambda_.LayerVersion(
                self, f"{name.capitalize()}Layer", code=lambda_.Code.from_asset(str(path)),
                compatible_runtimes=[RUNTIME], compatible_architectures=[ARCHITECTURE],
                description=f"testbed {name} layer (layers/ builds it into build/layers/{name})")
            for name, path in config.layer_dirs.items()
        }
        environment = {
            "POWERTOOLS_SERVICE_NAME": SERVICE_NAME,
            "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE,
            "TESTBED_ENGINE": "athena",
            "TESTBED_ATHENA_WORKGROUP": query_engine.workgroup_name,
            "TESTBED_GLUE_DATABASE": catalog.database_name,
            "TESTBED_LAKE_URI": f"s3://{lake.bucket_name}",
            "TESTBED_ARTIFACTS_URI": f"s3://{artifacts.bucket_name}",
            "TESTBED_SCRATCH_URI": f"s3://{scratch.bucket_name}/{SCRATCH_PREFIX.rstrip('/')}",
            "TESTBED_RESOURCE_PREFIX": config.run_resource_prefix,
            **OPENMP_ENVIRONMENT,  # LightGBM's threads wait passively: a function may have less than two vCPUs
        }
        self.functions: dict[str, lambda_.Function] = {}
        for step in steps.STEPS:
            role = iam.Role(self, f"{step.state}Role", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
                            description=f"testbed {config.env_name} {step.name} step")
            fn = self._function(step, role, environment)
            artifacts.grant_read(fn)
            scratch.grant_read(fn)
            patterns = self._grant_writes(step, fn, artifacts, scratch)
            buckets = [artifacts, scratch]
            if step.reads_lake:
                lake.grant_read(fn)
                catalog.grant_catalog_read(fn)
                query_engine.grant_query(fn)
                scratch.grant_put(fn, f"{ATHENA_RESULTS_PREFIX}*")  # Athena writes results as its caller
                patterns.append(scratch.arn_for_objects(f"{ATHENA_RESULTS_PREFIX}*"))
                buckets.append(lake)
            if step.stream_actions or step.table_actions:
                self._grant_run_resources(step, role)
            if step.sampled_table_actions:
                _, tables = catalog.grant_sampled_tables(fn, list(step.sampled_table_actions))
                acknowledge(role.node.find_child("DefaultPolicy"),
                            f"AwsSolutions-IAM5[Resource::{nag_resource(role, tables)}]",
                            "Each run materialises its sampling as its own Glue table tb_sampled_<hash of run id>, "
                            "named at run time; the statement covers only that prefix in the lake database.")
            if step.masks_pii:
                pii_key.grant_read(fn)
                key.grant_decrypt(fn)  # the secret is encrypted with the data key
                fn.add_environment("TESTBED_PII_SECRET_ARN", pii_key.secret_arn)
            self._acknowledge_grants(role, buckets, patterns)
            self.functions[step.name] = fn

    def _function(self, step: Step, role: iam.Role, environment: dict[str, str]) -> lambda_.Function:
        config, name = self._config, step.state
        heavy = step.size == "heavy"
        log_group = logs.LogGroup(self, f"{name}Logs", retention=config.log_retention, encryption_key=self._key,
                                  removal_policy=RemovalPolicy.DESTROY)
        log_group.grant_write(role)
        layers = ["lightgbm", "data", "project"] if step.needs_lightgbm else ["data", "project"]
        fn = lambda_.Function(
            self, name, description=f"testbed {config.env_name}: {step.name} step",
            runtime=RUNTIME, architecture=ARCHITECTURE, handler="handler.lambda_handler",
            code=lambda_.Code.from_asset(str(FUNCTIONS_DIR / step.folder), exclude=["__pycache__", "*.pyc"]),
            layers=[self.layers[layer] for layer in layers],
            memory_size=config.heavy_lambda_memory_mb if heavy else config.lambda_memory_mb,
            timeout=Duration.seconds(config.heavy_lambda_timeout_seconds if heavy else config.lambda_timeout_seconds),
            ephemeral_storage_size=Size.mebibytes(config.heavy_lambda_ephemeral_storage_mb if heavy else 512),
            tracing=lambda_.Tracing.ACTIVE, role=role, log_group=log_group, environment=dict(environment),
        )
        acknowledge(fn.node.default_child, "AwsSolutions-L1",  # type: ignore[arg-type]
                    "Pinned to Python 3.12 on purpose: the layers are built from cp312 manylinux wheels and "
                    "moving runtimes means rebuilding and re-measuring them (FIELD-NOTES, package sizes).")
        for check, reason in _CHECKOV_LAMBDA_SKIPS.items():
            skip_checkov(fn, check, reason)
        return fn

    @staticmethod
    def _grant_writes(step: Step, fn: lambda_.Function, artifacts: s3.IBucket, scratch: s3.IBucket) -> list[str]:
        """The step's S3 writes from the step table; returns the object patterns granted (for cdk-nag).

        IAM cannot know the run id, so a step may write any run's files: what keeps a record is Object Lock
        (governance) on the artifacts bucket and the record step's conditional put of run.json (If-None-Match).
        Only record and record_error may put run.json at all; the other writers are denied it explicitly.
        """
        granted = []
        if step.writes_run:
            artifacts.grant_put(fn, RUN_FILES)
            granted.append(artifacts.arn_for_objects(RUN_FILES))
            if not step.writes_record:
                fn.add_to_role_policy(iam.PolicyStatement(effect=iam.Effect.DENY, actions=["s3:PutObject"],
                                                          resources=[artifacts.arn_for_objects(RUN_RECORD)]))
        if step.writes_scratch:
            scratch.grant_put(fn, f"{SCRATCH_PREFIX}*")
        if step.writes_scratch or step.deletes_scratch:
            granted.append(scratch.arn_for_objects(f"{SCRATCH_PREFIX}*"))
        if step.deletes_scratch:  # the run's scratch objects, nothing else
            fn.add_to_role_policy(iam.PolicyStatement(actions=["s3:DeleteObject"],
                                                      resources=[scratch.arn_for_objects(f"{SCRATCH_PREFIX}*")]))
        return granted

    def _grant_run_resources(self, step: Step, role: iam.Role) -> None:
        """The step's actions on streams and tables named `<prefix>-*` in this account and region only."""
        stack, prefix = Stack.of(self), self._config.run_resource_prefix
        stream = stack.format_arn(service="kinesis", resource="stream", resource_name=f"{prefix}-*")
        table = stack.format_arn(service="dynamodb", resource="table", resource_name=f"{prefix}-*")
        granted = [(actions, arn) for actions, arn in ((step.stream_actions, stream), (step.table_actions, table))
                   if actions]
        for actions, arn in granted:
            role.add_to_policy(iam.PolicyStatement(actions=list(actions), resources=[arn]))
        policy = role.node.find_child("DefaultPolicy")
        for _, arn in granted:
            acknowledge(policy, f"AwsSolutions-IAM5[Resource::{nag_resource(role, arn)}]",
                        "Each run creates its own stream and state table named <prefix>-<run_id> at run time; the "
                        "statement covers only that prefix in this account and region, with the step's actions.")

    @staticmethod
    def _acknowledge_grants(role: iam.Role, buckets: list[s3.IBucket], patterns: list[str]) -> None:
        policy = role.node.find_child("DefaultPolicy")  # where CDK puts the grants' statements
        acknowledge(policy, "AwsSolutions-IAM5[Resource::*]",
                    "X-Ray PutTraceSegments/PutTelemetryRecords (active tracing) support no resource-level scoping.")
        for action in _S3_GRANT_ACTIONS:
            acknowledge(policy, f"AwsSolutions-IAM5[Action::{action}]",
                        "CDK bucket grants (grant_read, grant_put) name S3 action families; they are scoped to "
                        "the testbed buckets this step needs and carry no delete permission.")
        for bucket in buckets:
            acknowledge(policy, f"AwsSolutions-IAM5[Resource::{nag_resource(role, bucket.arn_for_objects('*'))}]",
                        "Object keys are per run (runs/<run_id>/, scratch/<run_id>/, lake partitions) and only known "
                        "at run time; access is limited to this one bucket's objects.")
        for pattern in patterns:
            acknowledge(policy, f"AwsSolutions-IAM5[Resource::{nag_resource(role, pattern)}]",
                        "Writes go under a per-run prefix (runs/<run_id>/, scratch/<run_id>/) or Athena's result "
                        "prefix, named at run time; the statement allows only the step's own prefix family.")
