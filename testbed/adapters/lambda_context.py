"""The current Lambda context, so adapters can bound their waits by the invocation's remaining time."""

from __future__ import annotations

import contextvars
from typing import Any

_current: contextvars.ContextVar[Any] = contextvars.ContextVar("lambda_context", default=None)
DEFAULT_BUDGET_MS = 15 * 60 * 1000


def set_context(context: Any) -> None:
    _current.set(context)


def remaining_ms() -> int:
    """Milliseconds left in this invocation (a full Lambda budget when not in Lambda)."""
    context = _current.get()
    getter = getattr(context, "get_remaining_time_in_millis", None)
    return int(getter()) if callable(getter) else DEFAULT_BUDGET_MS


def remaining_s() -> float:
    return remaining_ms() / 1000.0
