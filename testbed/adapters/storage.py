"""Read and write run data by URI. `UriStorage` sends `s3://bucket/key` to the S3 client it is given and treats
anything else as a local path; `MemoryStorage` keeps objects in a dict (step tests without moto). Both share
`Storage`'s JSON and Parquet helpers, so the bytes a step writes do not depend on where they go."""

from __future__ import annotations

import hashlib
import io
import json
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from testbed.adapters.local_files import files_under

PARQUET_OPTIONS: dict[str, Any] = {"compression": "zstd", "write_statistics": True}
BULKY_TAG = "testbed:retention=bulky"  # the artifacts bucket's lifecycle rule expires objects tagged so
_MISSING_CODES = ("404", "NoSuchKey", "NotFound")
_EXISTS_CODES = ("PreconditionFailed", "ConditionalRequestConflict")
_CHANGED_CODES = (*_EXISTS_CODES, *_MISSING_CODES)  # an `if_match` write whose version is gone


def is_s3(uri: str) -> bool:
    return uri.startswith("s3://")


def split_s3(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


def join(base: str, *parts: str) -> str:
    return "/".join([base.rstrip("/"), *(p.strip("/") for p in parts)])


def dumps(data: Any) -> bytes:
    return (json.dumps(data, indent=2, sort_keys=True, default=str) + "\n").encode()


def parquet_bytes(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink, **PARQUET_OPTIONS)
    return sink.getvalue()


def content_tag(data: bytes) -> str:
    """The version tag of stores without one of their own."""
    return hashlib.sha256(data).hexdigest()


class Storage(ABC):
    """Objects by URI: the primitives each store implements, and the JSON and Parquet forms on top of them."""

    @abstractmethod
    def read_bytes(self, uri: str) -> bytes: ...

    @abstractmethod
    def exists(self, uri: str) -> bool: ...

    @abstractmethod
    def read_tagged(self, uri: str) -> tuple[bytes, str]:
        """An object and its version tag (the S3 ETag; a content hash elsewhere), read together."""

    @abstractmethod
    def write_bytes(self, uri: str, data: bytes, *, if_absent: bool = False, if_match: str | None = None,
                    bulky: bool = False) -> bool:
        """Write an object. With `if_absent`, never replace an existing one; with `if_match`, replace only the
        version with that tag (from read_tagged). Returns False if the condition did not hold.

        `bulky` marks re-creatable bulk data (slices, shard scores) for lifecycle expiry on S3.
        """

    @abstractmethod
    def list_keys(self, prefix_uri: str) -> Iterator[str]:
        """Every object URI under a prefix, sorted."""

    @abstractmethod
    def fingerprint(self, root: str) -> str:
        """Content fingerprint of every object under a root."""

    @abstractmethod
    def delete(self, uris: list[str]) -> None: ...

    def read_json(self, uri: str) -> Any:
        return json.loads(self.read_bytes(uri))

    def write_json(self, uri: str, data: Any, *, if_absent: bool = False) -> bool:
        return self.write_bytes(uri, dumps(data), if_absent=if_absent)

    def write_parquet(self, uri: str, table: pa.Table, *, bulky: bool = False) -> None:
        self.write_bytes(uri, parquet_bytes(table), bulky=bulky)

    def read_parquet(self, uri: str, columns: list[str] | None = None,
                     dictionary: list[str] | None = None) -> pa.Table:
        """The whole table, or only `columns` (the others are not decoded); `dictionary` columns stay
        dictionary-encoded (their distinct values once, and an index per row)."""
        return pq.read_table(io.BytesIO(self.read_bytes(uri)), columns=columns, read_dictionary=dictionary)


class UriStorage(Storage):
    """`s3://` URIs through `s3` (a boto3 S3 client), anything else on the local file system. Without a client
    only local paths work (tests and tools that read local records)."""

    def __init__(self, s3: Any = None) -> None:
        self._client = s3

    @property
    def s3(self) -> Any:
        if self._client is None:
            raise ValueError("this storage has no S3 client: it reads and writes local paths only")
        return self._client

    def read_bytes(self, uri: str) -> bytes:
        if is_s3(uri):
            bucket, key = split_s3(uri)
            return bytes(self.s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        return Path(uri).read_bytes()

    def read_tagged(self, uri: str) -> tuple[bytes, str]:
        if is_s3(uri):
            bucket, key = split_s3(uri)
            response = self.s3.get_object(Bucket=bucket, Key=key)
            return bytes(response["Body"].read()), str(response["ETag"])
        data = Path(uri).read_bytes()
        return data, content_tag(data)

    def exists(self, uri: str) -> bool:
        if is_s3(uri):
            bucket, key = split_s3(uri)
            try:
                self.s3.head_object(Bucket=bucket, Key=key)
            except self.s3.exceptions.ClientError as exc:
                if exc.response["Error"]["Code"] in _MISSING_CODES:
                    return False
                raise
            return True
        return Path(uri).exists()

    def write_bytes(self, uri: str, data: bytes, *, if_absent: bool = False, if_match: str | None = None,
                    bulky: bool = False) -> bool:
        if is_s3(uri):
            bucket, key = split_s3(uri)
            kwargs: dict[str, Any] = {"IfNoneMatch": "*"} if if_absent else {}
            if if_match is not None:
                kwargs["IfMatch"] = if_match
            if bulky:
                kwargs["Tagging"] = BULKY_TAG
            try:
                self.s3.put_object(Bucket=bucket, Key=key, Body=data, **kwargs)
            except self.s3.exceptions.ClientError as exc:
                code = exc.response["Error"]["Code"]
                if (if_absent and code in _EXISTS_CODES) or (if_match is not None and code in _CHANGED_CODES):
                    return False
                raise
            return True
        path = Path(uri)
        path.parent.mkdir(parents=True, exist_ok=True)
        if if_match is not None and (not path.exists() or content_tag(path.read_bytes()) != if_match):
            return False  # local files are checked, then replaced: runs write records through (embedded) S3
        if if_absent:
            try:
                with path.open("xb") as handle:
                    handle.write(data)
            except FileExistsError:
                return False
            return True
        tmp = path.with_name(path.name + ".partial")
        tmp.write_bytes(data)
        tmp.replace(path)  # atomic: a crash never leaves a half-written file under the real name
        return True

    def list_keys(self, prefix_uri: str) -> Iterator[str]:
        if is_s3(prefix_uri):
            bucket, prefix = split_s3(prefix_uri)
            keys = sorted(obj["Key"] for obj in self._objects(bucket, prefix))
            yield from (f"s3://{bucket}/{key}" for key in keys)
            return
        root = Path(prefix_uri)
        if root.is_dir():
            yield from sorted(str(p) for p in root.rglob("*") if p.is_file())

    def fingerprint(self, root: str) -> str:
        """S3 ETags and sizes, or local file SHA-256s (through symbolic links, as the DuckDB engine reads them)."""
        digest = hashlib.sha256()
        if is_s3(root):
            bucket, prefix = split_s3(root.rstrip("/") + "/")
            rows = [(obj["Key"][len(prefix):], obj["ETag"], obj["Size"]) for obj in self._objects(bucket, prefix)]
            for key, etag, size in sorted(rows):
                digest.update(f"{key}\t{etag}\t{size}\n".encode())
            return digest.hexdigest()
        base = Path(root)
        for path in files_under(base) if base.is_dir() else []:
            file_hash = hashlib.sha256()
            with path.open("rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    file_hash.update(block)
            digest.update(f"{path.relative_to(base).as_posix()}\t{file_hash.hexdigest()}\n".encode())
        return digest.hexdigest()

    def delete(self, uris: list[str]) -> None:
        """S3: batches of 1,000, the DeleteObjects limit."""
        s3_uris = [u for u in uris if is_s3(u)]
        for uri in uris:
            if not is_s3(uri):
                Path(uri).unlink(missing_ok=True)
        for start in range(0, len(s3_uris), 1000):
            batch = [split_s3(u) for u in s3_uris[start:start + 1000]]
            self.s3.delete_objects(Bucket=batch[0][0], Delete={"Objects": [{"Key": k} for _, k in batch],
                                                                "Quiet": True})

    def _objects(self, bucket: str, prefix: str) -> Iterator[dict[str, Any]]:
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            yield from page.get("Contents", [])


class MemoryStorage(Storage):
    """Every object in a dict, URI -> bytes, whatever the scheme. A missing object raises FileNotFoundError."""

    def __init__(self, objects: dict[str, bytes] | None = None) -> None:
        self.objects: dict[str, bytes] = dict(objects or {})
        self.bulky: set[str] = set()  # URIs written with `bulky`

    def read_bytes(self, uri: str) -> bytes:
        try:
            return self.objects[uri]
        except KeyError:
            raise FileNotFoundError(uri) from None

    def exists(self, uri: str) -> bool:
        return uri in self.objects

    def read_tagged(self, uri: str) -> tuple[bytes, str]:
        data = self.read_bytes(uri)
        return data, content_tag(data)

    def write_bytes(self, uri: str, data: bytes, *, if_absent: bool = False, if_match: str | None = None,
                    bulky: bool = False) -> bool:
        if if_absent and uri in self.objects:
            return False
        if if_match is not None and (uri not in self.objects or content_tag(self.objects[uri]) != if_match):
            return False
        self.objects[uri] = bytes(data)
        if bulky:
            self.bulky.add(uri)
        return True

    def list_keys(self, prefix_uri: str) -> Iterator[str]:
        yield from sorted(uri for uri in self.objects if uri.startswith(prefix_uri))

    def fingerprint(self, root: str) -> str:
        """Relative keys and content SHA-256s, as for a local folder."""
        prefix = root.rstrip("/") + "/"
        digest = hashlib.sha256()
        for uri in self.list_keys(prefix):
            digest.update(f"{uri[len(prefix):]}\t{hashlib.sha256(self.objects[uri]).hexdigest()}\n".encode())
        return digest.hexdigest()

    def delete(self, uris: list[str]) -> None:
        for uri in uris:
            self.objects.pop(uri, None)
            self.bulky.discard(uri)

