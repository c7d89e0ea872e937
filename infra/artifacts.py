"""Where runs live (SPEC §4): `runs/<run_id>/` and the manifests of scheduled runs (scratch is elsewhere)."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_s3 as s3
from constructs import Construct

from infra.config import EnvironmentConfig
from infra.data_lake import secure_bucket

# S3 lifecycle filters take a literal prefix, never a wildcard, so `runs/*/slice/` cannot be a prefix rule. The
# bulky, re-derivable objects (slice Parquet under runs/<id>/slice/, per-shard scores under runs/<id>/scores/) are
# tagged by their writer instead, and one tag-filtered rule expires them; the record itself (run.json,
# metrics.json, gates.json, rankings, reports, slice/stats.json) is never tagged and never expires.
BULKY_TAG = ("testbed:retention", "bulky")
MANIFESTS_PREFIX = "manifests/"


class Artifacts(Construct):
    """The artifacts bucket: versioned, Object Lock (governance) so records cannot be silently rewritten."""

    def __init__(self, scope: Construct, cid: str, *, config: EnvironmentConfig, access_logs: s3.IBucket) -> None:
        super().__init__(scope, cid)
        tag_key, tag_value = BULKY_TAG
        self.bucket = secure_bucket(
            self, "Bucket", bucket_name=config.bucket_name("artifacts"), access_logs=access_logs,
            log_prefix="artifacts/", versioned=True, object_lock_enabled=True,
            object_lock_default_retention=s3.ObjectLockRetention.governance(Duration.days(config.artifact_lock_days)),
            lifecycle_rules=[
                # Expiring a current version only adds a delete marker; the locked version goes once its
                # retention has passed, i.e. after max(bulky_data_days + 1, artifact_lock_days).
                s3.LifecycleRule(id="expire-bulky-run-data", tag_filters={tag_key: tag_value},
                                 expiration=Duration.days(config.bulky_data_days),
                                 noncurrent_version_expiration=Duration.days(1)),
                s3.LifecycleRule(id="expire-noncurrent-versions",
                                 noncurrent_version_expiration=Duration.days(config.artifact_lock_days),
                                 abort_incomplete_multipart_upload_after=Duration.days(7),
                                 expired_object_delete_marker=True),
            ],
        )
