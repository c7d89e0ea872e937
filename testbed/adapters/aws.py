"""The one client factory for every AWS call: one boto3 session per region, clients with shared retry/timeout
config created on first use. Adapters take the client they need; handlers get a `Clients` with their settings."""

from __future__ import annotations

import functools
import threading
from datetime import UTC, datetime
from typing import Any

import boto3
import botocore.session
from botocore.config import Config
from botocore.loaders import Loader
from botocore.utils import parse_timestamp

from testbed.settings import Settings

_CONFIG = Config(retries={"max_attempts": 8, "mode": "adaptive"}, connect_timeout=10, read_timeout=60)


def utc_timestamp(value: Any) -> datetime:
    """botocore's timestamp parser, minus its slow path: epoch numbers (Kinesis' ApproximateArrivalTimestamp
    on every record) become UTC datetimes directly instead of going through dateutil's local time zone, which
    cost more than the rest of a GetRecords call. The instant is the same."""
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, tz=UTC)
    return parse_timestamp(value)


class Clients:
    """The boto3 clients of one region. boto3 clients are thread-safe; creating them is not, hence the lock."""

    def __init__(self, region: str) -> None:
        self.region = region
        self._lock = threading.Lock()
        self._session: boto3.session.Session | None = None
        self._clients: dict[str, Any] = {}
        self._secrets: dict[str, str] = {}

    def client(self, service: str) -> Any:
        with self._lock:
            if service not in self._clients:
                self._clients[service] = self._boto_session().client(service, config=_CONFIG)
            return self._clients[service]

    def _boto_session(self) -> boto3.session.Session:
        if self._session is None:
            session = boto3.session.Session(region_name=self.region)
            session._session.get_component("response_parser_factory").set_parser_defaults(
                timestamp_parser=utc_timestamp)
            session._session.register_component("data_loader", _service_models())
            self._session = session
        return self._session

    def secret_string(self, arn: str) -> str:
        """A Secrets Manager secret's string, fetched once per process (warm invocations reuse it)."""
        if arn not in self._secrets:
            self._secrets[arn] = str(self.client("secretsmanager").get_secret_value(SecretId=arn)["SecretString"])
        return self._secrets[arn]


@functools.cache
def _service_models() -> Loader:
    """One loader of the service models for every session of the process: a session reads each model's JSON once
    (about 0.1 s a client), and the local runner starts new sessions on every run. Clients only read what it
    loads, as the clients of one session share its loader."""
    loader: Loader = botocore.session.get_session().get_component("data_loader")
    return loader


_registry: dict[str, Clients] = {}
_registry_lock = threading.Lock()


def clients_for(settings: Settings) -> Clients:
    """The clients of the settings' region; one `Clients` per region per process, so warm Lambda invocations
    and parallel Map items share their connections."""
    return _clients_of_region(settings.aws_region)


def _clients_of_region(region: str) -> Clients:
    with _registry_lock:
        if region not in _registry:
            _registry[region] = Clients(region)
        return _registry[region]


def reset_clients() -> None:
    """Forget every client (the local runner starts and stops its embedded AWS: clients must not cross over)."""
    with _registry_lock:
        _registry.clear()
