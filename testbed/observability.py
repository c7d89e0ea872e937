"""Powertools logging shared by every handler; the run id is the correlation id."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


@functools.cache
def logger() -> Logger:
    return Logger(service="testbed")


def step_handler(step: str) -> Callable[[Handler], Handler]:
    """Wrap a handler: structured log keys (run id, step), elapsed time in the result."""

    def wrap(func: Handler) -> Handler:
        @functools.wraps(func)
        def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
            log = logger()
            run_id = (event.get("run") or {}).get("run_id")
            log.append_keys(step=step, run_id=run_id)
            log.set_correlation_id(run_id)
            started = time.perf_counter()
            log.info("step started")
            result = func(event, context)
            result["elapsed_s"] = round(time.perf_counter() - started, 3)
            log.info("step finished", extra={"elapsed_s": result["elapsed_s"]})
            return result

        return handler

    return wrap
