"""Process settings, read lazily from the environment (never at import time)."""

from __future__ import annotations

import functools
import hashlib
import os
from pathlib import Path

import testbed
from testbed.errors import InputError

PII_SECRET_ENV = "TESTBED_PII_SECRET"


def pii_secret() -> bytes:
    """The HMAC key for PII masking. It never appears in a run record."""
    secret = os.environ.get(PII_SECRET_ENV, "")
    if len(secret) < 16:
        raise InputError(f"{PII_SECRET_ENV} must be set to a secret of at least 16 characters")
    return secret.encode()


@functools.cache
def code_version() -> str:
    """Package version plus a digest of its sources: any code change gives new run ids."""
    root = Path(testbed.__file__).parent
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
    return f"{testbed.__version__}+{digest.hexdigest()[:12]}"
