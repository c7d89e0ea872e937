"""Powertools Logger, Tracer and Metrics shared by every handler; the run id is the correlation id.

Logger and Tracer are created lazily. Outside Lambda the tracer disables itself; the local runner turns metrics off
(POWERTOOLS_METRICS_DISABLED) so no EMF lines reach the terminal.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit

from testbed.adapters.lambda_context import set_context

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]
NAMESPACE = "Testbed"


@functools.cache
def logger() -> Logger:
    return Logger(service="testbed")


@functools.cache
def tracer() -> Tracer:
    return Tracer(service="testbed")


def emit_metric(name: str, unit: MetricUnit, value: float, dimension: tuple[str, str]) -> None:
    """One EMF data point with one dimension. Ephemeral: no metric set shared between Map threads."""
    metrics = EphemeralMetrics(namespace=NAMESPACE, service="testbed")
    metrics.add_dimension(name=dimension[0], value=dimension[1])
    metrics.add_metric(name=name, unit=unit, value=value)
    metrics.flush_metrics()  # prints EMF unless POWERTOOLS_METRICS_DISABLED


def record_decision(decision: str) -> None:
    """One `Decision` data point, dimensioned by the decision, for the dashboard and alarms."""
    emit_metric("Decision", MetricUnit.Count, 1, ("decision", decision))


def step_handler(step: str) -> Callable[[Handler], Handler]:
    """Wrap a handler: log keys (run id, step), an X-Ray subsegment, the step's duration as a metric."""

    def wrap(func: Handler) -> Handler:
        @functools.wraps(func)
        def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
            log = logger()
            run_id = (event.get("run") or {}).get("run_id")
            log.append_keys(step=step, run_id=run_id)
            log.set_correlation_id(run_id)
            set_context(context)
            started = time.perf_counter()
            log.info("step started")
            with tracer().provider.in_subsegment(f"## {step}") as subsegment:
                subsegment.put_annotation(key="run_id", value=run_id or "")
                result = func(event, context)
            result["elapsed_s"] = round(time.perf_counter() - started, 3)
            emit_metric("StepSeconds", MetricUnit.Seconds, result["elapsed_s"], ("step", step))
            log.info("step finished", extra={"elapsed_s": result["elapsed_s"]})
            return result

        return handler

    return wrap
