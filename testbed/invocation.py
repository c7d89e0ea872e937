"""What a step gets besides its event: the invocation's settings, its AWS clients, the storage its run data is
read and written through, and the time it has left."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from testbed.adapters.aws import Clients, clients_for
from testbed.adapters.storage import Storage, UriStorage
from testbed.settings import Settings

FULL_BUDGET_S = 15 * 60.0  # a whole Lambda budget, for work that runs outside Lambda (the CLI, tests)


def full_budget() -> float:
    return FULL_BUDGET_S


@dataclass(frozen=True)
class Invocation:
    settings: Settings
    clients: Clients
    remaining_s: Callable[[], float]  # seconds left in this invocation
    storage: Storage

    @classmethod
    def of_lambda(cls, settings: Settings, context: Any) -> Invocation:
        """From a Lambda context (or none: then the time never runs short)."""
        getter = getattr(context, "get_remaining_time_in_millis", None)
        remaining = (lambda: getter() / 1000.0) if callable(getter) else full_budget
        clients = clients_for(settings)
        return cls(settings, clients, remaining, UriStorage(clients.client("s3")))

    @classmethod
    def outside_lambda(cls, settings: Settings | None = None) -> Invocation:
        """For the CLI and tests: the process environment's settings unless given, and a full budget."""
        return cls.of_lambda(settings or Settings.from_environment(), None)

    @classmethod
    def on(cls, storage: Storage, settings: Settings | None = None) -> Invocation:
        """Step logic on a given storage (tests on MemoryStorage): default settings, a full budget, and clients
        that are only created if a step asks for one."""
        settings = settings or Settings()
        return cls(settings, clients_for(settings), full_budget, storage)
