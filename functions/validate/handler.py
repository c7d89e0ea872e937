"""Validate the manifest, the lake and the models; derive the run id.

Input: {manifest | manifest_s3, lake?, artifacts?}; lake and artifacts default to the deployment's.
"""

from typing import Any

from testbed.adapters import storage
from testbed.errors import InputError
from testbed.manifest import manifest_data
from testbed.observability import step_handler
from testbed.pipeline.validate import validate
from testbed.settings import default_uri


@step_handler("validate")
def lambda_handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    manifest = event.get("manifest")
    if manifest is None and event.get("manifest_s3"):
        manifest = manifest_data(storage.read_bytes(event["manifest_s3"]), event["manifest_s3"])
    lake, artifacts = event.get("lake") or default_uri("lake"), event.get("artifacts") or default_uri("artifacts")
    if manifest is None or not lake or not artifacts:
        raise InputError("execution input needs manifest (or manifest_s3), lake and artifacts")
    return validate(manifest, lake, artifacts)
