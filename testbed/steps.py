"""The one table of pipeline steps: what each step is and what it needs.

The ASL (testbed.workflow), the CDK functions and their IAM (infra/functions.py), the layer build
(layers/build.py), the local runner, the execution tracker and the benchmarks all read it; nothing else
names a step's properties. Order is the run's order on the success path; `record_error` runs only after a
failure. Steps marked `concurrent` run side by side as the branches of one Parallel state.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

RECORD_ERROR = "record_error"  # records decision ERROR after any failed step
TEARDOWN = "teardown"  # last on both paths: deletes the run's ephemeral resources


@dataclass(frozen=True)
class Step:
    name: str
    state: str  # its state name in the ASL
    module: str  # the testbed.pipeline module its handler calls
    # memory/timeout class: heavy steps hold a whole slice (or both models) in memory, or copy the run's lake
    # partitions to /tmp (validate and slice under the DuckDB engine)
    size: Literal["light", "heavy"] = "light"
    reads_lake: bool = False  # lake bucket, Glue catalog and Athena queries
    masks_pii: bool = False  # reads the PII masking key
    needs_lightgbm: bool = False  # loads the models: its Lambda gets the LightGBM layer
    loops: bool = False  # returns done=false when its time ran out; the workflow calls it again
    # a looping step's cap on calls per run: past it the run fails with LoopLimitError (recorded as ERROR). The
    # execution timeout fits far fewer full-length calls; the cap catches a step that returns without progress.
    max_rounds: int = 50
    recovery: bool = False  # runs after a failure; never caught into RecordError itself
    concurrent: bool = False  # a branch of the Parallel state that follows scoring
    max_concurrency: int | None = None  # set: a Distributed Map over shard objects, this many at once
    stream_actions: tuple[str, ...] = ()  # on the run's Kinesis stream
    table_actions: tuple[str, ...] = ()  # on the run's DynamoDB state table
    # S3 writes, granted per step (infra/functions.py): files under runs/<run_id>/ (never run.json itself unless
    # writes_record), objects under the run's scratch prefix (the scratch bucket: no Object Lock, 1-day expiry)
    writes_run: bool = False
    writes_record: bool = False  # run.json: only record and record_error
    writes_scratch: bool = False  # Athena UNLOAD output, shard plans, stream chunks
    deletes_scratch: bool = False  # s3:DeleteObject under the scratch prefix
    # on the Glue tables of runs' materialised samplings (slice_sql.sampled_table, `<database>/tb_sampled_*`)
    sampled_table_actions: tuple[str, ...] = ()

    @property
    def folder(self) -> str:
        """Its handler's folder under functions/ (functions/<folder>/handler.py)."""
        return self.name


STEPS: tuple[Step, ...] = (
    Step("validate", "Validate", "validate", size="heavy", reads_lake=True, needs_lightgbm=True, writes_run=True,
         writes_scratch=True),
    Step("provision", "Provision", "provision",
         stream_actions=("kinesis:CreateStream", "kinesis:DescribeStreamSummary", "kinesis:DeleteStream",
                         "kinesis:StartStreamEncryption", "kinesis:ListShards", "kinesis:AddTagsToStream"),
         table_actions=("dynamodb:CreateTable", "dynamodb:DescribeTable", "dynamodb:DeleteTable",
                        "dynamodb:TagResource")),
    Step("slice", "Slice", "slice", size="heavy", reads_lake=True, masks_pii=True, writes_run=True,
         writes_scratch=True, sampled_table_actions=("glue:CreateTable", "glue:GetTable", "glue:DeleteTable")),
    Step("replay", "Replay", "replay", size="heavy", loops=True, stream_actions=("kinesis:PutRecords",),
         table_actions=("dynamodb:GetItem", "dynamodb:PutItem"), writes_run=True),
    Step("consume", "Consume", "consume", size="heavy", loops=True,
         stream_actions=("kinesis:ListShards", "kinesis:GetShardIterator", "kinesis:GetRecords"),
         table_actions=("dynamodb:GetItem", "dynamodb:PutItem"), writes_run=True, writes_scratch=True),
    Step("features", "Features", "features", writes_run=True),
    Step("plan_shards", "PlanShards", "plan", writes_scratch=True),
    Step("score", "Score", "score", size="heavy", needs_lightgbm=True, max_concurrency=10, writes_run=True),
    Step("evaluate", "Evaluate", "evaluate", size="heavy", concurrent=True, writes_run=True),
    Step("drift", "Drift", "drift", size="heavy", reads_lake=True, concurrent=True, writes_run=True,
         writes_scratch=True),  # the population baseline
    Step("whatif", "WhatIf", "whatif", size="heavy", needs_lightgbm=True, concurrent=True, writes_run=True),
    Step("gate", "Gate", "gate", writes_run=True),
    Step("record", "Record", "record", writes_run=True, writes_record=True),
    Step(RECORD_ERROR, "RecordError", "record", recovery=True, writes_run=True, writes_record=True),
    Step(TEARDOWN, "Teardown", "teardown", recovery=True, stream_actions=("kinesis:DeleteStream",),
         table_actions=("dynamodb:DeleteTable",), deletes_scratch=True, sampled_table_actions=("glue:DeleteTable",)),
)
NAMES = tuple(step.name for step in STEPS)
TRACKED = tuple(name for name in NAMES if name != RECORD_ERROR)  # what a run's progress shows, in order
_BY_NAME = {s.name: s for s in STEPS}


def step(name: str) -> Step:
    return _BY_NAME[name]


def by_state(state: str) -> Step | None:
    """The step an ASL state runs, if any."""
    return next((s for s in STEPS if s.state == state), None)
