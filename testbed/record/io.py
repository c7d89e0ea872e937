"""Read and write run-record documents through their models, on a given storage (testbed.adapters.storage).

`read` validates: a document that does not fit its model raises pydantic's ValidationError. `write` dumps the
model exactly as the producers always wrote their dicts (storage.dumps: sorted keys, indent 2), so moving a
writer onto its model changes no byte.
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

from testbed.adapters.storage import Storage
from testbed.adapters.storage import dumps as dump_json
from testbed.record.layout import DocumentPath

T = TypeVar("T")


def parse(path: DocumentPath[T], data: Any) -> T:
    """`data` (a decoded JSON document) as the model of `path`."""
    return path.kind.adapter.validate_python(data)


def read(storage: Storage, path: DocumentPath[T]) -> T:
    return parse(path, storage.read_json(path.uri))


def read_tagged(storage: Storage, path: DocumentPath[T]) -> tuple[T, str]:
    """The document and its version tag, for a write `if_match` that replaces exactly this version."""
    data, tag = storage.read_tagged(path.uri)
    return parse(path, json.loads(data)), tag


def read_if_present(storage: Storage, path: DocumentPath[T]) -> T | None:
    """The document, or None when it was never written."""
    return read(storage, path) if storage.exists(path.uri) else None


def to_json(path: DocumentPath[T], document: T) -> Any:
    """The plain JSON data of `document` (what `write` stores). Anything but the path's model (a plain dict,
    another document) raises: writers build the model."""
    path.kind.adapter.validate_python(document, strict=True)  # another document: ValidationError
    return path.kind.adapter.dump_python(document, mode="json", warnings="error")  # a dict: serialization error


def dumps(path: DocumentPath[T], document: T) -> bytes:
    return dump_json(to_json(path, document))


def write(storage: Storage, path: DocumentPath[T], document: T, *, if_absent: bool = False,
          if_match: str | None = None) -> bool:
    """Write `document`, which must be an instance of the path's model; False if `if_absent` found a file or
    the version `if_match` names was replaced meanwhile."""
    return storage.write_bytes(path.uri, dumps(path, document), if_absent=if_absent, if_match=if_match)
