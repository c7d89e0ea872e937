"""Validate the manifest, the lake and the models; derive the run id. Input: {manifest, lake, artifacts}."""

from typing import Any

from testbed.observability import step_handler
from testbed.pipeline.validate import validate


@step_handler("validate")
def lambda_handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    return validate(event["manifest"], event["lake"], event["artifacts"])
