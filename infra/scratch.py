"""Where runs keep what they need only while they run (SPEC §1 teardown): Athena query results and UNLOAD
output, shard plans, stream chunks. Apart from the artifacts bucket, because those objects hold unmasked rows
(an UNLOAD of the lake's users before masking) and must not sit under Object Lock for the records' retention."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_s3 as s3
from constructs import Construct

from infra import skip_checkov
from infra.config import EnvironmentConfig
from infra.data_lake import secure_bucket

SCRATCH_PREFIX = "scratch/"  # TESTBED_SCRATCH_URI = s3://<bucket>/scratch: a run's objects are under scratch/<run_id>/
ATHENA_RESULTS_PREFIX = "athena-results/"  # the workgroup's result location


class ScratchSpace(Construct):
    """The scratch bucket: encrypted, TLS only, access-logged, unversioned, every object gone after a day."""

    def __init__(self, scope: Construct, cid: str, *, config: EnvironmentConfig, access_logs: s3.IBucket) -> None:
        super().__init__(scope, cid)
        self.bucket = secure_bucket(
            self, "Bucket", bucket_name=config.bucket_name("scratch"), access_logs=access_logs,
            log_prefix="scratch/",
            # Teardown empties a run's prefix; this catches what a killed run left, and Athena's result files.
            lifecycle_rules=[s3.LifecycleRule(id="expire-everything", expiration=Duration.days(1),
                                              abort_incomplete_multipart_upload_after=Duration.days(1))])
        skip_checkov(self.bucket, "CKV_AWS_21",
                     "Scratch objects are re-derivable and expire after a day; versioning would keep deleted "
                     "unmasked Athena output around longer, which is what this bucket exists to avoid.")

