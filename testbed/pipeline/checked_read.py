"""One read of an input the manifest pins by SHA-256 (model files, feature sets, external tables): the bytes, or
the caller's error class naming the field that points at it."""

from __future__ import annotations

import hashlib

from botocore.exceptions import ClientError

from testbed.adapters.storage import Storage
from testbed.errors import TestbedError


def read_checked(storage: Storage, uri: str, sha256: str, *, field: str, what: str, says: str,
                 error: type[TestbedError]) -> bytes:
    """`uri`'s bytes when their SHA-256 is `sha256`; else `error` naming `field`.uri (missing) or `field`.sha256
    (mismatch, with both digests' first 12 hex digits; `says` names where the expected one came from)."""
    try:
        data = storage.read_bytes(uri)
    except (OSError, ClientError):
        raise error(f"{field}.uri: {what} not found: {uri}") from None
    actual = hashlib.sha256(data).hexdigest()
    if actual != sha256:
        raise error(f"{field}.sha256: checksum mismatch for {uri} (file has {actual[:12]}…, {says} {sha256[:12]}…)")
    return data
