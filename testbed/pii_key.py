"""The local PII masking key: one random key per output folder, at `<out>/.testbed/pii.key`.

It is created atomically (written to a private temporary file, then linked into place, never replacing a key
that exists), so a failed write (a full disk) never leaves an empty or short key behind; a key file that is not
exactly what this module writes is an input error naming the file, not a masking key nobody chose.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import string
import uuid
from pathlib import Path

from testbed.errors import LocalWriteError, PiiKeyFileError

KEY_BYTES = 32
KEY_HEX_DIGITS = 2 * KEY_BYTES


def key_path(out: Path) -> Path:
    return out / ".testbed" / "pii.key"


def create_key(path: Path) -> None:
    """Write a new random key to `path` unless a key is there (a concurrent run's key wins)."""
    partial = path.with_name(f".{path.name}.{uuid.uuid4().hex}.partial")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(secrets.token_hex(KEY_BYTES))
            handle.flush()
            os.fsync(handle.fileno())
        with contextlib.suppress(FileExistsError):
            os.link(partial, path)  # unlike a rename, a link never replaces an existing file
    except OSError as exc:
        raise LocalWriteError(f"cannot create the PII key file {path}: {exc.strerror or exc}") from None
    finally:
        with contextlib.suppress(OSError):
            partial.unlink()


def read_key(path: Path) -> str:
    """The key in `path`: exactly KEY_HEX_DIGITS hex digits (a trailing newline allowed)."""
    try:
        key = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise PiiKeyFileError(f"PII key file {path}: unreadable ({exc})") from None
    if len(key) != KEY_HEX_DIGITS or not set(key) <= set(string.hexdigits):
        what = "is empty" if not key else f"holds {len(key)} characters"
        raise PiiKeyFileError(f"PII key file {path}: {what}, expected {KEY_HEX_DIGITS} hex digits") from None
    return key


def ensure_key(out: Path) -> str:
    """The output folder's key, created first if the folder has none."""
    path = key_path(out)
    if not path.exists():
        create_key(path)
    return read_key(path)
