"""The run's Step Functions definition (ASL), built once for both worlds from the step table (testbed.steps).

The CDK app passes deployed function ARNs (CDK tokens) and the local runner passes the embedded moto ARNs;
nothing else differs. Tasks use the plain function-ARN resource, so a handler's return value is the task
result as is. Every task retries transient errors with backoff and catches everything else into
RecordError, which writes decision ERROR; the execution then fails with the original error name and cause.
Teardown runs after the record and after RecordError, so ephemeral resources go in both cases.
Scoring is a Distributed Map over one S3 object per user shard (moto has no ItemBatcher; see FIELD-NOTES), at
most the step's `max_concurrency` at once. The state is capped at 256 KiB, and the AWS docs name only ResultWriter
(which moto lacks) for Map outputs over it, without saying that ResultPath or ResultSelector avoid the check; so
each shard writes its numbers to its own result document (scores/shard-NNNNN.result.json), its item's output is
`{}` (OutputPath null) and the Map keeps `{"shards": N}`: a few bytes per shard collected, none kept.
Looping steps (replay, consume) checkpoint their progress and return `done`; a Choice calls them again until
it is true, at most the step's `max_rounds` times (a counter at `$.rounds.<step>`); past that the run records
ERROR (LoopLimitError). The concurrent steps (evaluate, drift, what-if) are the branches of one Parallel state.
The execution's own deadline is `TimeoutSeconds` in the document (CDK drops its `timeout` prop for string
definitions, aws-cdk issue #37150). The first state hands validate the execution's ARN and that deadline, for
the run's claim (testbed.pipeline.claim).
"""

from __future__ import annotations

from typing import Any

from testbed import steps
from testbed.steps import Step

TRANSIENT_ERRORS = ["Lambda.ServiceException", "Lambda.AWSLambdaException", "Lambda.SdkClientException",
                    "Lambda.TooManyRequestsException", "TransientError"]
RECORD_ERROR = steps.step(steps.RECORD_ERROR).state
TEARDOWN_AFTER_ERROR = steps.step(steps.TEARDOWN).state + "AfterError"  # the teardown step after RecordError
RUN_TIMEOUT_SECONDS = 2 * 3600  # local runs; a deployment passes its environment's run_timeout_minutes
LOOP_LIMIT_ERROR = "LoopLimitError"
EXECUTION = "Execution"  # the first state: puts {id, timeout_s} of the execution at $.execution for the claim


def _retry() -> list[dict[str, Any]]:
    return [{"ErrorEquals": TRANSIENT_ERRORS, "IntervalSeconds": 1, "BackoffRate": 2.0, "MaxAttempts": 3}]


def _catch(step: Step) -> list[dict[str, Any]]:
    return [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": f"{step.state}Failed"}]


def _failed(step: Step, next_state: str) -> dict[str, Any]:
    """Name the failed step for RecordError (the caught error is at $.error)."""
    return {"Type": "Pass", "Result": step.name, "ResultPath": "$.failed_step", "Next": next_state}


def _task(arn: str, step: Step, result_path: str, next_state: str | None) -> dict[str, Any]:
    state: dict[str, Any] = {"Type": "Task", "Resource": arn, "ResultPath": result_path, "Retry": _retry(),
                             "Catch": _catch(step)}
    return {**state, "Next": next_state} if next_state else {**state, "End": True}


def _score_map(arn: str, step: Step, next_state: str) -> dict[str, Any]:
    """The Distributed Map over the shard objects. Each shard's numbers stay in its result document; the item's
    output is `{}` (OutputPath null) and the Map keeps only the number of items, so the state does not grow with
    the shard count (AWS checks the collected outputs against the 256 KiB cap, ResultSelector or not)."""
    shard = f"{step.state}Shard"
    return {
        "Type": "Map",
        "ItemReader": {"Resource": "arn:aws:states:::s3:listObjectsV2",
                       "Parameters": {"Bucket.$": "$.steps.plan_shards.bucket",
                                      "Prefix.$": "$.steps.plan_shards.prefix"}},
        "ItemSelector": {"run.$": "$.run", "shard_key.$": "$$.Map.Item.Value.Key"},
        "MaxConcurrency": step.max_concurrency,
        "ItemProcessor": {
            "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
            "StartAt": shard,
            "States": {shard: {"Type": "Task", "Resource": arn, "Retry": _retry(), "OutputPath": None,
                               "End": True}},
        },
        "ResultSelector": {"shards.$": "States.ArrayLength($)"},
        "ResultPath": f"$.steps.{step.name}",
        "Catch": _catch(step),
        "Next": next_state,
    }


def _loop(arn: str, step: Step, next_state: str) -> dict[str, dict[str, Any]]:
    """The step's task called again until it returns done, counting calls in `$.rounds.<step>.count`."""
    rounds = f"$.rounds.{step.name}"
    again, too_many = f"{step.state}Again", f"{step.state}TooManyRounds"
    return {
        f"{step.state}Start": {"Type": "Pass", "Result": {"count": 1}, "ResultPath": rounds, "Next": step.state},
        step.state: _task(arn, step, f"$.steps.{step.name}", f"{step.state}Done?"),
        f"{step.state}Done?": {"Type": "Choice", "Default": again, "Choices": [
            {"Variable": f"$.steps.{step.name}.done", "BooleanEquals": True, "Next": next_state},
            {"Variable": f"{rounds}.count", "NumericGreaterThanEquals": step.max_rounds, "Next": too_many}]},
        again: {"Type": "Pass", "Parameters": {"count.$": f"States.MathAdd({rounds}.count, 1)"},
                "ResultPath": rounds, "Next": step.state},
        too_many: {"Type": "Pass", "ResultPath": "$.error", "Next": f"{step.state}Failed", "Result": {
            "Error": LOOP_LIMIT_ERROR,
            "Cause": f"{step.name} was called {step.max_rounds} times without finishing (its max_rounds)"}},
    }


def _branch(arns: dict[str, str], step: Step) -> dict[str, Any]:
    """One Parallel branch. A state in a branch cannot move to one outside it, so the branch records its own
    failure (naming its step) and then fails; the Parallel state's catch only tears down."""
    record, failed = f"{step.state}{RECORD_ERROR}", f"{step.state}BranchFailed"
    return {"StartAt": step.state, "States": {
        step.state: _task(arns[step.name], step, f"$.steps.{step.name}", None),
        f"{step.state}Failed": _failed(step, record),
        record: {"Type": "Task", "Resource": arns[steps.RECORD_ERROR], "ResultPath": None, "Retry": _retry(),
                 "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": None, "Next": failed}], "Next": failed},
        failed: {"Type": "Fail", "ErrorPath": "$.error.Error", "CausePath": "$.error.Cause"},
    }}


def _parallel(arns: dict[str, str], group: list[Step], before: list[Step], next_state: str) -> dict[str, Any]:
    """The concurrent steps side by side. Every branch returns the whole state with its own result added; the
    selector keeps `$.steps.<step>` flat: the earlier steps' results (from branch 0) and each branch's own.
    (The state holds keys and counts, never data, so three copies of it stay far below the 256 KiB cap.)"""
    selector = {f"{s.name}.$": f"$[0].steps.{s.name}" for s in before}
    selector |= {f"{s.name}.$": f"$[{i}].steps.{s.name}" for i, s in enumerate(group)}
    return {"Type": "Parallel", "Branches": [_branch(arns, s) for s in group], "ResultSelector": selector,
            "ResultPath": "$.steps", "Next": next_state,
            "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": TEARDOWN_AFTER_ERROR}]}


def _path() -> list[Step | list[Step]]:
    """The success path after the first step, teardown excluded: each step on its own, the concurrent steps
    grouped into one list."""
    path: list[Step | list[Step]] = []
    for step in steps.STEPS[1:]:
        if step.recovery:  # record_error and teardown have their own places
            continue
        last = path[-1] if path else None
        if step.concurrent and isinstance(last, list):
            last.append(step)
        else:
            path.append([step] if step.concurrent else step)
    return path


def _entry(unit: Step | list[Step]) -> str:
    if isinstance(unit, list):
        return "".join(s.state for s in unit)
    return f"{unit.state}Start" if unit.loops else unit.state


def definition(arns: dict[str, str], timeout_seconds: int = RUN_TIMEOUT_SECONDS) -> dict[str, Any]:
    """The ASL document. `arns` maps every step of testbed.steps.STEPS to a Lambda function ARN; the execution
    fails (States.Timeout) after `timeout_seconds`."""
    if timeout_seconds < 1:
        raise ValueError(f"timeout_seconds must be positive, got {timeout_seconds}")
    missing = [name for name in steps.NAMES if name not in arns]
    if missing:
        raise ValueError(f"no function ARN for steps {missing}")
    first, teardown = steps.STEPS[0], steps.step(steps.TEARDOWN)  # the first validates and names the run
    path = _path()
    states: dict[str, Any] = {
        EXECUTION: {"Type": "Pass", "Parameters": {"id.$": "$$.Execution.Id", "timeout_s": timeout_seconds},
                    "ResultPath": "$.execution", "Next": first.state},
        first.state: _task(arns[first.name], first, "$.run", "ExistingRecord?"),
        f"{first.state}Failed": _failed(first, RECORD_ERROR),
        "ExistingRecord?": {
            "Type": "Choice",
            "Choices": [{"Variable": "$.run.existing_decision", "IsString": True, "Next": "ExistingRecord"}],
            "Default": _entry(path[0]),
        },
        "ExistingRecord": {"Type": "Succeed"},
    }
    done: list[Step] = []
    for index, unit in enumerate(path):
        next_state = _entry(path[index + 1]) if index + 1 < len(path) else teardown.state
        if isinstance(unit, list):
            states[_entry(unit)] = _parallel(arns, unit, done, next_state)
            done += unit
            continue
        done.append(unit)
        if unit.max_concurrency is not None:
            states[unit.state] = _score_map(arns[unit.name], unit, next_state)
        elif unit.loops:
            states |= _loop(arns[unit.name], unit, next_state)
        else:
            states[unit.state] = _task(arns[unit.name], unit, f"$.steps.{unit.name}", next_state)
        states[f"{unit.state}Failed"] = _failed(unit, RECORD_ERROR)
    # teardown ends the run on both paths; a failing teardown still fails the execution
    states[teardown.state] = {
        "Type": "Task", "Resource": arns[teardown.name], "ResultPath": f"$.steps.{teardown.name}", "Retry": _retry(),
        "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "RunFailed"}], "End": True}
    states[RECORD_ERROR] = {
        "Type": "Task", "Resource": arns[steps.RECORD_ERROR], "ResultPath": None, "Retry": _retry(),
        "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": None, "Next": TEARDOWN_AFTER_ERROR}],
        "Next": TEARDOWN_AFTER_ERROR,
    }
    states[TEARDOWN_AFTER_ERROR] = {
        "Type": "Task", "Resource": arns[teardown.name], "ResultPath": f"$.steps.{teardown.name}",
        "Retry": _retry(), "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": None, "Next": "RunFailed"}],
        "Next": "RunFailed",
    }
    states["RunFailed"] = {"Type": "Fail", "ErrorPath": "$.error.Error", "CausePath": "$.error.Cause"}
    return {"Comment": "Retail recommendation testbed run", "StartAt": EXECUTION, "TimeoutSeconds": timeout_seconds,
            "States": states}
