"""One client factory for every AWS call: shared retry/timeout config, created lazily and cached."""

from __future__ import annotations

import functools
import os
import threading
from datetime import UTC, datetime
from typing import Any

import boto3
from botocore.config import Config
from botocore.utils import parse_timestamp

_CONFIG = Config(retries={"max_attempts": 8, "mode": "adaptive"}, connect_timeout=10, read_timeout=60)
_lock = threading.Lock()


def utc_timestamp(value: Any) -> datetime:
    """botocore's timestamp parser, minus its slow path: epoch numbers (Kinesis' ApproximateArrivalTimestamp
    on every record) become UTC datetimes directly instead of going through dateutil's local time zone, which
    cost more than the rest of a GetRecords call. The instant is the same."""
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, tz=UTC)
    return parse_timestamp(value)


@functools.cache
def _session() -> boto3.session.Session:
    session = boto3.session.Session(region_name=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
                                    or "us-east-1")
    session._session.get_component("response_parser_factory").set_parser_defaults(timestamp_parser=utc_timestamp)
    return session


def client(service: str) -> Any:
    """A cached boto3 client. boto3 clients are thread-safe; creating them is not, hence the lock."""
    with _lock:
        return _client(service)


@functools.cache
def _client(service: str) -> Any:
    return _session().client(service, config=_CONFIG)


def reset_clients() -> None:
    """Forget cached clients (used when the local runner starts or stops its embedded AWS)."""
    with _lock:
        _client.cache_clear()
        _session.cache_clear()
