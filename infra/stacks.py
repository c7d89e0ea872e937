"""The two deployable units: stateful data (kept, protected) and the stateless workflow around it."""

from __future__ import annotations

from typing import Any

from aws_cdk import Environment, Stack
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from infra.artifacts import Artifacts
from infra.athena import QueryEngine
from infra.config import EnvironmentConfig
from infra.data_lake import DataLake
from infra.functions import PipelineFunctions
from infra.keys import DataKey
from infra.monitoring import RunMonitoring
from infra.scratch import ScratchSpace
from infra.workflow import TestbedWorkflow


def _env(config: EnvironmentConfig) -> Environment | None:
    return Environment(account=config.account, region=config.region) if config.account or config.region else None


class DataStack(Stack):
    """Lake, artifacts and scratch buckets, Glue catalogue, Athena workgroup, PII key and the data KMS key.
    Buckets and the key are retained."""

    def __init__(self, scope: Construct, cid: str, *, config: EnvironmentConfig, **kwargs: Any) -> None:
        super().__init__(scope, cid, env=_env(config), termination_protection=config.protected,
                         description=f"Retail testbed ({config.env_name}): stateful data", **kwargs)
        self.key = DataKey(self, "DataKey", config=config)
        self.lake = DataLake(self, "DataLake", config=config, key=self.key.key)
        self.artifacts = Artifacts(self, "Artifacts", config=config, access_logs=self.lake.access_logs)
        self.scratch = ScratchSpace(self, "Scratch", config=config, access_logs=self.lake.access_logs)
        self.query_engine = QueryEngine(self, "QueryEngine", config=config, results_bucket=self.scratch.bucket)


class WorkflowStack(Stack):
    """Step functions, the run state machine, its schedules, alarms and dashboard.

    Buckets are referenced by their configured names rather than by cross-stack exports, so this stack can be
    replaced freely and its IAM policies name the buckets plainly. The data key and the PII secret are imported
    by ARN: grants then go to this stack's roles, never into the data stack's key policy (a dependency cycle).
    """

    def __init__(self, scope: Construct, cid: str, *, config: EnvironmentConfig, data: DataStack,
                 **kwargs: Any) -> None:
        super().__init__(scope, cid, env=_env(config),
                         description=f"Retail testbed ({config.env_name}): run workflow", **kwargs)
        self.add_stack_dependency(data)
        lake = s3.Bucket.from_bucket_name(self, "LakeBucket", config.bucket_name("lake"))
        artifacts = s3.Bucket.from_bucket_name(self, "ArtifactsBucket", config.bucket_name("artifacts"))
        scratch = s3.Bucket.from_bucket_name(self, "ScratchBucket", config.bucket_name("scratch"))
        key = kms.Key.from_key_arn(self, "DataKey", data.key.key.key_arn)
        pii_key = secretsmanager.Secret.from_secret_attributes(
            self, "PiiKey", secret_complete_arn=data.lake.pii_key.secret_arn, encryption_key=key)
        self.functions = PipelineFunctions(self, "Functions", config=config, lake=lake, artifacts=artifacts,
                                           scratch=scratch, catalog=data.lake, query_engine=data.query_engine,
                                           pii_key=pii_key, key=key)
        self.workflow = TestbedWorkflow(self, "Workflow", config=config, functions=self.functions.functions,
                                        lake=lake, artifacts=artifacts, scratch=scratch, key=key)
        self.monitoring = RunMonitoring(self, "Monitoring", config=config,
                                        state_machine=self.workflow.state_machine,
                                        functions=self.functions.functions, dead_letters=self.workflow.dead_letters)
