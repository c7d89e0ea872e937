"""The customer-managed KMS key for what the testbed keeps encrypted at rest besides S3: log groups, the PII
masking key and the schedules' dead-letter queue."""

from __future__ import annotations

from aws_cdk import ArnFormat, Duration, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct

from infra.config import EnvironmentConfig


class DataKey(Construct):
    """One key, rotated yearly, retained with the data it encrypts. The account's IAM policies grant its use
    (the default key policy); CloudWatch Logs in this region may use it for this account's log groups."""

    def __init__(self, scope: Construct, cid: str, *, config: EnvironmentConfig) -> None:
        super().__init__(scope, cid)
        stack = Stack.of(self)
        self.key = kms.Key(self, "Key", description=f"testbed {config.env_name}: log groups, PII key, dead letters",
                           enable_key_rotation=True, removal_policy=RemovalPolicy.RETAIN,
                           pending_window=Duration.days(30), alias=f"alias/{config.name('data')}")
        log_groups = stack.format_arn(service="logs", resource="log-group", resource_name="*",
                                      arn_format=ArnFormat.COLON_RESOURCE_NAME)
        self.key.add_to_resource_policy(iam.PolicyStatement(
            principals=[iam.ServicePrincipal(f"logs.{stack.region}.amazonaws.com")],
            actions=["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"],
            resources=["*"],  # in a key policy, "*" is this key
            conditions={"ArnLike": {"kms:EncryptionContext:aws:logs:arn": log_groups}}))
