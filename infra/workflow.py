"""The run state machine (the same ASL the local runner executes) and the schedules that start it."""

from __future__ import annotations

import json
from collections.abc import Mapping

from aws_cdk import ArnFormat, Duration, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_scheduler_targets as targets
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from infra import acknowledge, nag_resource
from infra.config import EnvironmentConfig
from testbed import workflow


class TestbedWorkflow(Construct):
    """`state_machine` runs testbed.workflow.definition over the step functions; `schedules` start it."""

    def __init__(self, scope: Construct, cid: str, *, config: EnvironmentConfig,
                 functions: Mapping[str, lambda_.IFunction], lake: s3.IBucket, artifacts: s3.IBucket,
                 scratch: s3.IBucket, key: kms.IKey) -> None:
        super().__init__(scope, cid)
        name = config.state_machine_name
        role = self._role(name, functions, scratch)
        log_group = logs.LogGroup(self, "Logs", log_group_name=f"/aws/vendedlogs/states/{name}",
                                  retention=config.log_retention, encryption_key=key,
                                  removal_policy=RemovalPolicy.DESTROY)
        # The deadline lives in the ASL: CDK drops the `timeout` prop for string definitions (aws-cdk #37150).
        definition = workflow.definition({step: fn.function_arn for step, fn in functions.items()},
                                         timeout_seconds=config.run_timeout_minutes * 60)
        self.state_machine = sfn.StateMachine(
            self, "StateMachine", state_machine_name=name, role=role,
            definition_body=sfn.DefinitionBody.from_string(json.dumps(definition)),
            # every state transition, without its input and output: those hold manifests and step results
            logs=sfn.LogOptions(destination=log_group, level=sfn.LogLevel.ALL, include_execution_data=False),
            tracing_enabled=True,
        )
        acknowledge(role.node.find_child("DefaultPolicy"), "AwsSolutions-IAM5[Resource::*]",
                    "Step Functions log delivery (logs:*LogDelivery) and X-Ray tracing actions support no "
                    "resource-level scoping; CDK adds exactly those for logging ALL and tracing.")

        self.dead_letters: sqs.Queue | None = None
        self.schedules: list[scheduler.Schedule] = []
        if config.schedules:
            self.dead_letters = sqs.Queue(self, "ScheduleDeadLetters", encryption=sqs.QueueEncryption.KMS,
                                          encryption_master_key=key, enforce_ssl=True,
                                          retention_period=Duration.days(14))
            acknowledge(self.dead_letters.node.default_child, "AwsSolutions-SQS3",  # type: ignore[arg-type]
                        "This queue is the dead-letter queue of the run schedules; a DLQ of its own adds nothing, "
                        "and RunMonitoring alarms on its depth.")
            same_account = {"StringEquals": {"aws:SourceAccount": Stack.of(self).account}}
            scheduler_role = iam.Role(
                self, "SchedulerRole", description=f"testbed {config.env_name}: start scheduled runs",
                assumed_by=iam.ServicePrincipal("scheduler.amazonaws.com", conditions=same_account))
            # Scheduler dead-letters with this role; the queue is encrypted with the data key
            key.grant(scheduler_role, "kms:GenerateDataKey", "kms:Decrypt")
            for schedule in config.schedules:
                target = targets.StepFunctionsStartExecution(
                    self.state_machine, role=scheduler_role, dead_letter_queue=self.dead_letters, retry_attempts=2,
                    max_event_age=Duration.hours(1),
                    input=scheduler.ScheduleTargetInput.from_object({
                        "manifest_s3": f"s3://{artifacts.bucket_name}/{schedule.manifest_key}",
                        "lake": f"s3://{lake.bucket_name}",
                        "artifacts": f"s3://{artifacts.bucket_name}",
                    }))
                self.schedules.append(scheduler.Schedule(
                    self, f"Schedule-{schedule.name}", schedule_name=config.name(schedule.name), target=target,
                    schedule=scheduler.ScheduleExpression.expression(schedule.cron),
                    description=f"testbed run of {schedule.manifest_key}"))

    def _role(self, name: str, functions: Mapping[str, lambda_.IFunction], scratch: s3.IBucket) -> iam.Role:
        """Invoke the step functions; run the Distributed Map (list shard objects, start child executions).

        The state machine's own ARNs are built from its fixed name: referencing the resource would make the
        role's policy depend on the state machine that depends on the role.
        """
        stack = Stack.of(self)

        def arn(resource: str, resource_name: str) -> str:
            return stack.format_arn(service="states", resource=resource, resource_name=resource_name,
                                    arn_format=ArnFormat.COLON_RESOURCE_NAME)

        child_executions = arn("execution", f"{name}/*")
        role = iam.Role(self, "Role", assumed_by=iam.ServicePrincipal("states.amazonaws.com"),
                        description=f"state machine {name}")
        # Exact function ARNs: the ASL invokes unqualified ARNs, so grant_invoke's extra `<arn>:*` is not needed.
        role.add_to_policy(iam.PolicyStatement(actions=["lambda:InvokeFunction"],
                                               resources=[fn.function_arn for fn in functions.values()]))
        # the score map lists the shard plans under the run's scratch prefix
        role.add_to_policy(iam.PolicyStatement(actions=["s3:ListBucket"], resources=[scratch.bucket_arn]))
        role.add_to_policy(iam.PolicyStatement(actions=["states:StartExecution"],
                                               resources=[arn("stateMachine", name)]))
        role.add_to_policy(iam.PolicyStatement(actions=["states:DescribeExecution", "states:StopExecution"],
                                               resources=[child_executions]))
        acknowledge(role.node.find_child("DefaultPolicy"),
                    f"AwsSolutions-IAM5[Resource::{nag_resource(role, child_executions)}]",
                    "Distributed Map child executions are named by Step Functions at run time "
                    "(<state machine>/<map run>:<id>); the pattern is limited to this state machine.")
        return role
