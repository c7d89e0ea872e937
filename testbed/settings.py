"""Process settings, read lazily from the environment (never at import time)."""

from __future__ import annotations

import functools
import hashlib
import os
from pathlib import Path

import testbed
from testbed.errors import InputError

PII_SECRET_ENV = "TESTBED_PII_SECRET"
PII_SECRET_ARN_ENV = "TESTBED_PII_SECRET_ARN"  # deployed: a Secrets Manager secret


def pii_secret() -> bytes:
    """The HMAC key for PII masking, from the environment or Secrets Manager. Never in a run record."""
    secret = os.environ.get(PII_SECRET_ENV, "")
    if not secret and os.environ.get(PII_SECRET_ARN_ENV):
        secret = _secret_from_arn(os.environ[PII_SECRET_ARN_ENV])
    if len(secret) < 16:
        raise InputError(f"{PII_SECRET_ENV} (or {PII_SECRET_ARN_ENV}) must give a secret of at least 16 characters")
    return secret.encode()


@functools.cache
def _secret_from_arn(arn: str) -> str:
    from testbed.adapters.aws import client

    return str(client("secretsmanager").get_secret_value(SecretId=arn)["SecretString"])


def default_uri(kind: str) -> str | None:
    """Deployed defaults for a run's `lake` / `artifacts` when the execution input leaves them out."""
    return os.environ.get(f"TESTBED_{kind.upper()}_URI")


@functools.cache
def code_version() -> str:
    """Package version plus a digest of its sources: any code change gives new run ids."""
    root = Path(testbed.__file__).parent
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
    return f"{testbed.__version__}+{digest.hexdigest()[:12]}"


RESOURCE_PREFIX_ENV = "TESTBED_RESOURCE_PREFIX"  # deployed: testbed-<env>, so environments never share a stream


def run_resource_name(run_id: str) -> str:
    """The name of a run's Kinesis stream and DynamoDB state table: the prefix plus the run id."""
    return f"{os.environ.get(RESOURCE_PREFIX_ENV) or 'testbed'}-{run_id}"
