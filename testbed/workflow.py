"""The run's Step Functions definition (ASL), built once for both worlds.

The CDK app passes deployed function ARNs (CDK tokens) and the local runner passes the embedded moto ARNs;
nothing else differs. Tasks use the plain function-ARN resource, so a handler's return value is the task
result as is. Every task retries transient errors with backoff and catches everything else into
RecordError, which writes decision ERROR; the execution then fails with the original error name and cause.
Teardown runs after the record and after RecordError, so ephemeral resources go in both cases.
Scoring is a Distributed Map over one S3 object per user shard (moto has no ItemBatcher; see FIELD-NOTES).
Replay and consume checkpoint their progress and return `done`; a Choice calls them again until it is true.
"""

from __future__ import annotations

from typing import Any

STEPS = ("validate", "provision", "slice", "replay", "consume", "features", "plan_shards", "score", "evaluate", "gate",
         "record", "record_error", "teardown")
LOOPING_STEPS = ("replay", "consume")  # they return done=false when the time limit cut them short; called again
LIGHTGBM_STEPS = ("validate", "score", "evaluate")  # they load models; the Lambda packaging gives them LightGBM
LAZY_LIGHTGBM_STEPS = ("evaluate",)  # imports LightGBM only when the manifest asks for catalogue what-ifs
RECOVERY_STEPS = ("record_error", "teardown")  # run after a failure; not caught into RecordError themselves
TRANSIENT_ERRORS = ["Lambda.ServiceException", "Lambda.AWSLambdaException", "Lambda.SdkClientException",
                    "Lambda.TooManyRequestsException", "TransientError"]
SCORE_MAX_CONCURRENCY = 10


def state_name(step: str) -> str:
    return "".join(part.capitalize() for part in step.split("_"))


def _retry() -> list[dict[str, Any]]:
    return [{"ErrorEquals": TRANSIENT_ERRORS, "IntervalSeconds": 1, "BackoffRate": 2.0, "MaxAttempts": 3}]


def _catch(step: str) -> list[dict[str, Any]]:
    return [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": f"{state_name(step)}Failed"}]


def _task(arn: str, step: str, result_path: str, next_state: str | None) -> dict[str, Any]:
    state: dict[str, Any] = {"Type": "Task", "Resource": arn, "ResultPath": result_path, "Retry": _retry(),
                             "Catch": _catch(step)}
    return {**state, "Next": next_state} if next_state else {**state, "End": True}


def _score_map(arn: str) -> dict[str, Any]:
    return {
        "Type": "Map",
        "ItemReader": {"Resource": "arn:aws:states:::s3:listObjectsV2",
                       "Parameters": {"Bucket.$": "$.steps.plan_shards.bucket",
                                      "Prefix.$": "$.steps.plan_shards.prefix"}},
        "ItemSelector": {"run.$": "$.run", "shard_key.$": "$$.Map.Item.Value.Key"},
        "MaxConcurrency": SCORE_MAX_CONCURRENCY,
        "ItemProcessor": {
            "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
            "StartAt": "ScoreShard",
            "States": {"ScoreShard": {"Type": "Task", "Resource": arn, "Retry": _retry(), "End": True}},
        },
        "ResultPath": "$.steps.score",
        "Catch": _catch("score"),
        "Next": "Evaluate",
    }


def _loop(step: str, next_state: str) -> dict[str, Any]:
    return {"Type": "Choice", "Default": state_name(step),
            "Choices": [{"Variable": f"$.steps.{step}.done", "BooleanEquals": True, "Next": next_state}]}


def definition(arns: dict[str, str]) -> dict[str, Any]:
    """The ASL document. `arns` maps every name in STEPS to a Lambda function ARN."""
    missing = [s for s in STEPS if s not in arns]
    if missing:
        raise ValueError(f"no function ARN for steps {missing}")
    states: dict[str, Any] = {
        "Validate": _task(arns["validate"], "validate", "$.run", "ExistingRecord?"),
        "ExistingRecord?": {
            "Type": "Choice",
            "Choices": [{"Variable": "$.run.existing_decision", "IsString": True, "Next": "ExistingRecord"}],
            "Default": "Provision",
        },
        "ExistingRecord": {"Type": "Succeed"},
        "Provision": _task(arns["provision"], "provision", "$.steps.provision", "Slice"),
        "Slice": _task(arns["slice"], "slice", "$.steps.slice", "Replay"),
        "Replay": _task(arns["replay"], "replay", "$.steps.replay", "ReplayDone?"),
        "ReplayDone?": _loop("replay", "Consume"),
        "Consume": _task(arns["consume"], "consume", "$.steps.consume", "ConsumeDone?"),
        "ConsumeDone?": _loop("consume", "Features"),
        "Features": _task(arns["features"], "features", "$.steps.features", "PlanShards"),
        "PlanShards": _task(arns["plan_shards"], "plan_shards", "$.steps.plan_shards", "Score"),
        "Score": _score_map(arns["score"]),
        "Evaluate": _task(arns["evaluate"], "evaluate", "$.steps.evaluate", "Gate"),
        "Gate": _task(arns["gate"], "gate", "$.steps.gate", "Record"),
        "Record": _task(arns["record"], "record", "$.steps.record", "Teardown"),
        "Teardown": {"Type": "Task", "Resource": arns["teardown"], "ResultPath": "$.steps.teardown",
                     "Retry": _retry(), "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error",
                                                   "Next": "RunFailed"}], "End": True},
    }
    for step in STEPS:
        if step in RECOVERY_STEPS:
            continue
        states[f"{state_name(step)}Failed"] = {"Type": "Pass", "Result": step, "ResultPath": "$.failed_step",
                                              "Next": "RecordError"}
    states["RecordError"] = {
        "Type": "Task", "Resource": arns["record_error"], "ResultPath": None, "Retry": _retry(),
        "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": None, "Next": "TeardownAfterError"}],
        "Next": "TeardownAfterError",
    }
    states["TeardownAfterError"] = {
        "Type": "Task", "Resource": arns["teardown"], "ResultPath": "$.steps.teardown", "Retry": _retry(),
        "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": None, "Next": "RunFailed"}],
        "Next": "RunFailed",
    }
    states["RunFailed"] = {"Type": "Fail", "ErrorPath": "$.error.Error", "CausePath": "$.error.Cause"}
    return {"Comment": "Retail recommendation testbed run", "StartAt": "Validate", "States": states}
