"""Validate the manifest, the lake and the models; derive the run id.

Input: {manifest | manifest_s3, lake?, artifacts?, execution?}; lake and artifacts default to the deployment's;
`execution` ({id, timeout_s}, from the workflow's first state) is who the run is claimed for.
"""

from typing import Any

from testbed.errors import InputError
from testbed.invocation import Invocation
from testbed.manifest import manifest_data
from testbed.observability import step_handler
from testbed.pipeline.validate import validate
from testbed.record.claim import ExecutionRef


@step_handler("validate")
def lambda_handler(event: dict[str, Any], invocation: Invocation) -> dict[str, Any]:
    manifest = event.get("manifest")
    if manifest is None and event.get("manifest_s3"):
        manifest = manifest_data(invocation.storage.read_bytes(event["manifest_s3"]), event["manifest_s3"])
    settings = invocation.settings
    lake = event.get("lake") or settings.default_uri("lake")
    artifacts = event.get("artifacts") or settings.default_uri("artifacts")
    if manifest is None or not lake or not artifacts:
        raise InputError("execution input needs manifest (or manifest_s3), lake and artifacts")
    execution = ExecutionRef.model_validate(event["execution"]) if event.get("execution") else None
    return validate(invocation, manifest, lake, artifacts, execution)
