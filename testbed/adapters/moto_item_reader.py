"""Make moto's Distributed Map read every object under its ItemReader prefix, for local runs only.

moto's `s3:listObjectsV2` ItemReader makes one ListObjectsV2 call, so a Map over more than 1,000 shard objects
runs only the first 1,000 (AWS reads every page). This follows `NextContinuationToken` to the last page.
"""

from __future__ import annotations

from typing import Any

_installed = False


def _list_every_object(env: Any, resource_runtime_part: Any, state_credentials: Any) -> None:
    from moto.stepfunctions.parser.asl.component.state.exec.state_map.item_reader.eval.resource_eval_s3 import (
        ResourceEvalS3,
    )

    s3 = ResourceEvalS3._get_s3_client(resource_runtime_part=resource_runtime_part,
                                        state_credentials=state_credentials)
    parameters = dict(env.stack.pop())
    contents: list[dict[str, Any]] = []
    while True:
        response = s3.list_objects_v2(**parameters)
        contents += response.get("Contents", [])
        if not response.get("IsTruncated"):
            break
        parameters["ContinuationToken"] = response["NextContinuationToken"]
    env.stack.append(contents)


def install() -> None:
    """Patch moto's ItemReader once per process (idempotent)."""
    global _installed  # noqa: PLW0603 - a process-wide patch is applied once
    if _installed:
        return
    from moto.stepfunctions.parser.asl.component.state.exec.state_map.item_reader.eval.resource_eval_s3 import (
        ResourceEvalS3,
    )

    ResourceEvalS3._handle_list_objects_v2 = staticmethod(_list_every_object)  # type: ignore[method-assign]
    _installed = True
