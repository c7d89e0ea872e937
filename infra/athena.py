"""The Athena workgroup the slice step queries the lake through (the cloud twin of the local DuckDB engine)."""

from __future__ import annotations

from aws_cdk import ArnFormat, Aws, Stack
from aws_cdk import aws_athena as athena
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from constructs import Construct

from infra.config import EnvironmentConfig
from infra.scratch import ATHENA_RESULTS_PREFIX


class QueryEngine(Construct):
    """A workgroup whose settings clients cannot override: result location (the scratch bucket, whose objects
    expire after a day), SSE-S3, per-query scan limit."""

    def __init__(self, scope: Construct, cid: str, *, config: EnvironmentConfig, results_bucket: s3.IBucket) -> None:
        super().__init__(scope, cid)
        self.workgroup_name = config.workgroup
        self.workgroup = athena.CfnWorkGroup(
            self, "WorkGroup", name=self.workgroup_name, state="ENABLED",
            description=f"Retail testbed ({config.env_name}): lake slices for runs",
            work_group_configuration=athena.CfnWorkGroup.WorkGroupConfigurationProperty(
                enforce_work_group_configuration=True,
                publish_cloud_watch_metrics_enabled=True,
                bytes_scanned_cutoff_per_query=config.athena_bytes_scanned_cutoff,
                engine_version=athena.CfnWorkGroup.EngineVersionProperty(
                    selected_engine_version="Athena engine version 3"),
                result_configuration=athena.CfnWorkGroup.ResultConfigurationProperty(
                    output_location=f"s3://{results_bucket.bucket_name}/{ATHENA_RESULTS_PREFIX}",
                    expected_bucket_owner=Aws.ACCOUNT_ID,
                    encryption_configuration=athena.CfnWorkGroup.EncryptionConfigurationProperty(
                        encryption_option="SSE_S3")),
            ),
        )

    def grant_query(self, grantee: iam.IGrantable) -> iam.Grant:
        """Run and read queries in this workgroup only (the lake and results buckets are granted separately)."""
        arn = Stack.of(self).format_arn(service="athena", resource="workgroup", resource_name=self.workgroup_name,
                                        arn_format=ArnFormat.SLASH_RESOURCE_NAME)
        return iam.Grant.add_to_principal(
            grantee=grantee, resource_arns=[arn],
            actions=["athena:StartQueryExecution", "athena:GetQueryExecution", "athena:GetQueryResults",
                     "athena:StopQueryExecution", "athena:GetWorkGroup"])
