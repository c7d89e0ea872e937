"""Powertools Logger, Tracer and Metrics shared by every handler; the run id is the correlation id.

Logger and Tracer are created lazily. Outside Lambda the tracer disables itself; the local runner turns metrics off
(POWERTOOLS_METRICS_DISABLED in its functions' settings) so no EMF lines reach the terminal.

`step_handler` builds each invocation's settings, clients and clock once and hands them to the handler body.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit

from testbed.invocation import Invocation
from testbed.settings import Settings

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]  # what Lambda calls: (event, context)
StepBody = Callable[[dict[str, Any], Invocation], dict[str, Any]]  # what a step implements: (event, invocation)
NAMESPACE = "Testbed"


@functools.cache
def logger() -> Logger:
    return Logger(service="testbed")


@functools.cache
def tracer() -> Tracer:
    return Tracer(service="testbed")


def emit_metric(settings: Settings, name: str, unit: MetricUnit, value: float, dimension: tuple[str, str]) -> None:
    """One EMF data point with one dimension. Ephemeral: no metric set shared between Map threads."""
    if settings.metrics_disabled:
        return
    metrics = EphemeralMetrics(namespace=NAMESPACE, service="testbed")
    metrics.add_dimension(name=dimension[0], value=dimension[1])
    metrics.add_metric(name=name, unit=unit, value=value)
    metrics.flush_metrics()


def record_decision(settings: Settings, decision: str) -> None:
    """One `Decision` data point, dimensioned by the decision, for the dashboard and alarms."""
    emit_metric(settings, "Decision", MetricUnit.Count, 1, ("decision", decision))


def invocation_of(context: Any) -> Invocation:
    """The invocation's settings come from the function's environment, as Lambda gives it; the embedded Lambda
    of local runs hands its function's environment over on the context instead."""
    settings = Settings.from_environment(getattr(context, "environment", None))
    return Invocation.of_lambda(settings, context)


def step_handler(step: str) -> Callable[[StepBody], Handler]:
    """Wrap a step body as a Lambda handler: settings, clients and clock built once per invocation and passed in;
    log keys (run id, step), an X-Ray subsegment, the step's duration as a metric."""

    def wrap(func: StepBody) -> Handler:
        @functools.wraps(func)
        def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
            invocation = invocation_of(context)
            settings = invocation.settings
            log = logger()
            if settings.log_level:
                log.setLevel(settings.log_level)
            run_id = (event.get("run") or {}).get("run_id")
            log.append_keys(step=step, run_id=run_id)
            log.set_correlation_id(run_id)
            started = time.perf_counter()
            log.info("step started")
            with tracer().provider.in_subsegment(f"## {step}") as subsegment:
                subsegment.put_annotation(key="run_id", value=run_id or "")
                result = func(event, invocation)
            result["elapsed_s"] = round(time.perf_counter() - started, 3)
            emit_metric(settings, "StepSeconds", MetricUnit.Seconds, result["elapsed_s"], ("step", step))
            log.info("step finished", extra={"elapsed_s": result["elapsed_s"]})
            return result

        return handler

    return wrap
