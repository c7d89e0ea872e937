"""What a step gets besides its event: the invocation's settings, its AWS clients and the time it has left."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from testbed.adapters.aws import Clients, clients_for
from testbed.settings import Settings

FULL_BUDGET_S = 15 * 60.0  # a whole Lambda budget, for work that runs outside Lambda (the CLI, tests)


@dataclass(frozen=True)
class Invocation:
    settings: Settings
    clients: Clients
    remaining_s: Callable[[], float]  # seconds left in this invocation

    @classmethod
    def of_lambda(cls, settings: Settings, context: Any) -> Invocation:
        """From a Lambda context (or none: then the time never runs short)."""
        getter = getattr(context, "get_remaining_time_in_millis", None)
        remaining = (lambda: getter() / 1000.0) if callable(getter) else (lambda: FULL_BUDGET_S)
        return cls(settings, clients_for(settings), remaining)

    @classmethod
    def outside_lambda(cls, settings: Settings | None = None) -> Invocation:
        """For the CLI and tests: the process environment's settings unless given, and a full budget."""
        return cls.of_lambda(settings or Settings.from_environment(), None)
