"""Alarms on failed and timed-out runs (to an encrypted SNS topic) and the runs dashboard."""

from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from infra.config import EnvironmentConfig
from infra.functions import METRICS_NAMESPACE, SERVICE_NAME

PERIOD = Duration.minutes(5)


def _search(metric: str, dimensions: tuple[str, ...], statistic: str, label: str) -> cw.MathExpression:
    """Every series of a custom metric, whatever the dimension values (decisions, steps) turn out to be."""
    schema = ",".join((METRICS_NAMESPACE, *dimensions))
    return cw.MathExpression(expression=f"SEARCH('{{{schema}}} MetricName=\"{metric}\"', '{statistic}', 300)",
                             using_metrics={}, label=label, period=PERIOD)


class RunMonitoring(Construct):
    """`alarms` (ExecutionsFailed, ExecutionsTimedOut, ScheduleDeadLetters) → `topic`; `dashboard`."""

    def __init__(self, scope: Construct, cid: str, *, config: EnvironmentConfig, state_machine: sfn.StateMachine,
                 functions: Mapping[str, lambda_.IFunction], dead_letters: sqs.IQueue | None = None) -> None:
        super().__init__(scope, cid)
        key = kms.Key(self, "TopicKey", description=f"testbed {config.env_name}: alarm topic encryption",
                      enable_key_rotation=True, removal_policy=RemovalPolicy.DESTROY,
                      pending_window=Duration.days(7))
        # CloudWatch alarms publish to an encrypted topic only if they may use its key.
        key.grant(iam.ServicePrincipal("cloudwatch.amazonaws.com"), "kms:Decrypt", "kms:GenerateDataKey*")
        self.topic = sns.Topic(self, "AlarmTopic", display_name=f"testbed {config.env_name} run alarms",
                               master_key=key, enforce_ssl=True)

        watched = {
            "ExecutionsFailed": state_machine.metric_failed(period=PERIOD, statistic="Sum"),
            "ExecutionsTimedOut": state_machine.metric_timed_out(period=PERIOD, statistic="Sum"),
        }
        if dead_letters is not None:
            watched["ScheduleDeadLetters"] = dead_letters.metric_approximate_number_of_messages_visible(
                period=PERIOD, statistic="Maximum")
        self.alarms: dict[str, cw.Alarm] = {}
        for name, metric in watched.items():
            alarm = cw.Alarm(self, f"{name}Alarm", metric=metric, threshold=1, evaluation_periods=1,
                             comparison_operator=cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                             treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
                             alarm_description=f"testbed {config.env_name}: {name} >= 1 in 5 minutes")
            alarm.add_alarm_action(cw_actions.SnsAction(self.topic))
            self.alarms[name] = alarm

        self.dashboard = cw.Dashboard(self, "Dashboard", dashboard_name=config.name("runs"),
                                      default_interval=Duration.days(7))
        self.dashboard.add_widgets(
            cw.GraphWidget(title="Executions", width=12, left=[
                state_machine.metric_started(period=PERIOD, label="started"),
                state_machine.metric_succeeded(period=PERIOD, label="succeeded"),
                state_machine.metric_failed(period=PERIOD, label="failed"),
                state_machine.metric_timed_out(period=PERIOD, label="timed out")]),
            cw.GraphWidget(title="Execution time (ms)", width=12, left=[
                state_machine.metric_time(period=PERIOD, statistic="Average", label="average"),
                state_machine.metric_time(period=PERIOD, statistic="p90", label="p90")]),
        )
        self.dashboard.add_widgets(
            cw.GraphWidget(title="Lambda errors", width=12, left=[
                fn.metric_errors(period=PERIOD, label=step) for step, fn in functions.items()]),
            cw.GraphWidget(title="Lambda duration p90 (ms)", width=12, left=[
                fn.metric_duration(period=PERIOD, statistic="p90", label=step) for step, fn in functions.items()]),
        )
        self.dashboard.add_widgets(
            cw.GraphWidget(title="Decisions", width=8, left=[
                _search("Decision", ("decision", "service"), "Sum", "")]),
            cw.GraphWidget(title="Slice users", width=8, left=[
                cw.Metric(namespace=METRICS_NAMESPACE, metric_name="SliceUsers", period=PERIOD,
                          dimensions_map={"service": SERVICE_NAME}, statistic="Maximum", label="users")]),
            cw.GraphWidget(title="Step seconds", width=8, left=[
                _search("StepSeconds", ("service", "step"), "Average", "")]),
        )
