"""The lake runs read (SPEC §2): a Parquet bucket, its Glue catalogue for Athena, and the PII masking key."""

from __future__ import annotations

from aws_cdk import ArnFormat, Aws, Duration, RemovalPolicy, Stack
from aws_cdk import aws_glue as glue
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from infra import acknowledge, skip_checkov
from infra.config import EnvironmentConfig
from testbed.core.slice_sql import SAMPLED_TABLE_PREFIX

# SPEC §2 required columns as Glue types. Integers are bigint: Athena widens Parquet INT32 to bigint but cannot
# narrow INT64 to int, and the lake contract accepts either width.
SPEC_COLUMNS: dict[str, tuple[tuple[str, str], ...]] = {
    "events": (("event_id", "string"), ("event_time", "timestamp"), ("user_id", "string"), ("item_id", "string"),
               ("event_type", "string"), ("session_id", "string"), ("quantity", "bigint"), ("price", "double")),
    "users": (("user_id", "string"),),
    "items": (("item_id", "string"), ("category", "string"), ("price", "double")),
}
PARTITION_KEY = "event_date"
_PARQUET = {
    "input_format": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat",
    "output_format": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat",
    "serde": "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe",
}


def secure_bucket(scope: Construct, cid: str, *, bucket_name: str, access_logs: s3.IBucket | None,
                  log_prefix: str | None = None, **props: object) -> s3.Bucket:
    """Every testbed bucket: SSE-S3, no public access, TLS only, owner-enforced objects, kept on stack deletion.

    SSE-S3 rather than KMS: S3 server access logs can only be delivered to SSE-S3 buckets, and Athena, Glue and
    Step Functions need no key grants this way.
    """
    return s3.Bucket(
        scope, cid, bucket_name=bucket_name, encryption=s3.BucketEncryption.S3_MANAGED,
        block_public_access=s3.BlockPublicAccess.BLOCK_ALL, enforce_ssl=True,
        object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED, removal_policy=RemovalPolicy.RETAIN,
        server_access_logs_bucket=access_logs, server_access_logs_prefix=log_prefix,
        **props,  # type: ignore[arg-type]
    )


class DataLake(Construct):
    """Lake bucket (+ the access-log bucket every testbed bucket logs to), Glue tables, PII HMAC key."""

    def __init__(self, scope: Construct, cid: str, *, config: EnvironmentConfig, key: kms.IKey) -> None:
        super().__init__(scope, cid)
        self.access_logs = secure_bucket(
            self, "AccessLogs", bucket_name=config.bucket_name("access-logs"), access_logs=None,
            lifecycle_rules=[s3.LifecycleRule(id="expire-access-logs", expiration=Duration.days(365))])
        acknowledge(self.access_logs.node.default_child, "AwsSolutions-S1",  # type: ignore[arg-type]
                    "This is the server access log target of the testbed buckets; logging it to itself would loop.")
        skip_checkov(self.access_logs, "CKV_AWS_18",
                     "This is the server access log target of the testbed buckets; logging it to itself would loop.")
        skip_checkov(self.access_logs, "CKV_AWS_21",
                     "Access logs are written once by the S3 logging service and expire after 365 days; nothing "
                     "rewrites them, so versioning would only keep copies of expired logs.")
        self.bucket = secure_bucket(self, "Bucket", bucket_name=config.bucket_name("lake"),
                                    access_logs=self.access_logs, log_prefix="lake/", versioned=True)

        self.database_name = config.glue_database
        database = glue.CfnDatabase(
            self, "Database", catalog_id=Aws.ACCOUNT_ID,
            database_input=glue.CfnDatabase.DatabaseInputProperty(
                name=self.database_name, description="Retail testbed lake (SPEC §2): events, users, items"))
        self.tables = {
            dataset: self._table(database, dataset, (*columns, *config.lake_extra_columns.get(dataset, {}).items()))
            for dataset, columns in SPEC_COLUMNS.items()
        }

        self.pii_key = secretsmanager.Secret(
            self, "PiiKey", description="HMAC-SHA256 key for masking the lake's PII columns (SPEC §3 pii.mask)",
            generate_secret_string=secretsmanager.SecretStringGenerator(password_length=64, exclude_punctuation=True),
            encryption_key=key, removal_policy=RemovalPolicy.RETAIN)
        acknowledge(self.pii_key.node.default_child, "AwsSolutions-SMG4",  # type: ignore[arg-type]
                    "The PII HMAC key must stay fixed: rotating it changes every masked join key, so slices of "
                    "different runs could no longer be compared or recomputed from their records.")

    def _table(self, database: glue.CfnDatabase, dataset: str, columns: tuple[tuple[str, str], ...]) -> glue.CfnTable:
        location = f"s3://{self.bucket.bucket_name}/{dataset}/"
        parameters = {"classification": "parquet", "EXTERNAL": "TRUE"}
        partition_keys = None
        if dataset == "events":
            # Partition projection: Athena derives the event_date partitions from the query, no crawler or
            # MSCK REPAIR, and a query outside the range scans nothing.
            parameters |= {
                "projection.enabled": "true",
                f"projection.{PARTITION_KEY}.type": "date",
                f"projection.{PARTITION_KEY}.format": "yyyy-MM-dd",
                f"projection.{PARTITION_KEY}.range": "2020-01-01,NOW",
                f"projection.{PARTITION_KEY}.interval": "1",
                f"projection.{PARTITION_KEY}.interval.unit": "DAYS",
                "storage.location.template": f"{location}{PARTITION_KEY}=${{{PARTITION_KEY}}}",
            }
            partition_keys = [glue.CfnTable.ColumnProperty(name=PARTITION_KEY, type="string")]
        return glue.CfnTable(
            self, f"{dataset.capitalize()}Table", catalog_id=Aws.ACCOUNT_ID, database_name=database.ref,
            table_input=glue.CfnTable.TableInputProperty(
                name=dataset, table_type="EXTERNAL_TABLE", parameters=parameters, partition_keys=partition_keys,
                storage_descriptor=glue.CfnTable.StorageDescriptorProperty(
                    location=location, input_format=_PARQUET["input_format"], output_format=_PARQUET["output_format"],
                    serde_info=glue.CfnTable.SerdeInfoProperty(serialization_library=_PARQUET["serde"]),
                    columns=[glue.CfnTable.ColumnProperty(name=name, type=kind) for name, kind in columns])))

    def grant_sampled_tables(self, grantee: iam.IGrantable, actions: list[str]) -> tuple[iam.Grant, str]:
        """`actions` on the runs' materialised samplings (Glue tables `tb_sampled_<hash of run id>`, created by
        the slice step's CTAS) in this database only; returns the grant and the table ARN pattern."""
        stack = Stack.of(self)

        def arn(resource: str, name: str | None = None) -> str:
            return stack.format_arn(service="glue", resource=resource, resource_name=name,
                                    arn_format=ArnFormat.SLASH_RESOURCE_NAME)

        tables = arn("table", f"{self.database_name}/{SAMPLED_TABLE_PREFIX}*")
        grant = iam.Grant.add_to_principal(grantee=grantee, actions=actions,
                                           resource_arns=[arn("catalog"), arn("database", self.database_name), tables])
        return grant, tables

    def grant_catalog_read(self, grantee: iam.IGrantable) -> iam.Grant:
        """Read the table definitions Athena needs: the catalog, this database and exactly its three tables."""
        stack = Stack.of(self)

        def arn(resource: str, name: str | None = None) -> str:
            return stack.format_arn(service="glue", resource=resource, resource_name=name,
                                    arn_format=ArnFormat.SLASH_RESOURCE_NAME)

        resources = [arn("catalog"), arn("database", self.database_name),
                     *(arn("table", f"{self.database_name}/{table}") for table in self.tables)]
        return iam.Grant.add_to_principal(
            grantee=grantee, resource_arns=resources,
            actions=["glue:GetDatabase", "glue:GetTable", "glue:GetTables", "glue:GetPartition",
                     "glue:GetPartitions", "glue:BatchGetPartition"])

