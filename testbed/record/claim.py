"""claim.json: which Step Functions execution holds a run. Validate takes the claim before anything of the run
is provisioned or written (testbed.pipeline.claim)."""

from __future__ import annotations

from testbed.record.base import Document


class ExecutionRef(Document):
    """The execution a step runs in, as the workflow's first state puts it at `$.execution`."""

    id: str  # the execution ARN
    timeout_s: int  # the state machine's TimeoutSeconds: the execution has ended by then


class RunClaim(Document):
    run_id: str
    execution: str  # the ARN of the execution holding the run
    created_at: str  # ISO-8601, UTC, seconds
    timeout_s: int  # that execution's TimeoutSeconds
