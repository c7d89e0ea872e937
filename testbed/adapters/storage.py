"""Read and write run data by URI: `s3://bucket/key` through boto3, anything else as a local path."""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from testbed.adapters.aws import process_clients

PARQUET_OPTIONS: dict[str, Any] = {"compression": "zstd", "write_statistics": True}


def client(service: str) -> Any:
    """A client from the shared factory, for the process's region."""
    return process_clients().client(service)


def is_s3(uri: str) -> bool:
    return uri.startswith("s3://")


def split_s3(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


def join(base: str, *parts: str) -> str:
    return "/".join([base.rstrip("/"), *(p.strip("/") for p in parts)])


def read_bytes(uri: str) -> bytes:
    if is_s3(uri):
        bucket, key = split_s3(uri)
        return client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    return Path(uri).read_bytes()


def exists(uri: str) -> bool:
    if is_s3(uri):
        bucket, key = split_s3(uri)
        try:
            client("s3").head_object(Bucket=bucket, Key=key)
        except client("s3").exceptions.ClientError as exc:
            if exc.response["Error"]["Code"] in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        return True
    return Path(uri).exists()


BULKY_TAG = "testbed:retention=bulky"  # the artifacts bucket's lifecycle rule expires objects tagged so


def write_bytes(uri: str, data: bytes, *, if_absent: bool = False, bulky: bool = False) -> bool:
    """Write an object. With `if_absent`, never replace an existing one; returns False if it existed.

    `bulky` marks re-creatable bulk data (slices, shard scores) for lifecycle expiry on S3.
    """
    if is_s3(uri):
        bucket, key = split_s3(uri)
        s3 = client("s3")
        kwargs: dict[str, Any] = {"IfNoneMatch": "*"} if if_absent else {}
        if bulky:
            kwargs["Tagging"] = BULKY_TAG
        try:
            s3.put_object(Bucket=bucket, Key=key, Body=data, **kwargs)
        except s3.exceptions.ClientError as exc:
            if if_absent and exc.response["Error"]["Code"] in ("PreconditionFailed", "ConditionalRequestConflict"):
                return False
            raise
        return True
    path = Path(uri)
    path.parent.mkdir(parents=True, exist_ok=True)
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


def read_json(uri: str) -> Any:
    return json.loads(read_bytes(uri))


def dumps(data: Any) -> bytes:
    return (json.dumps(data, indent=2, sort_keys=True, default=str) + "\n").encode()


def write_json(uri: str, data: Any, *, if_absent: bool = False) -> bool:
    return write_bytes(uri, dumps(data), if_absent=if_absent)


def parquet_bytes(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink, **PARQUET_OPTIONS)
    return sink.getvalue()


def write_parquet(uri: str, table: pa.Table, *, bulky: bool = False) -> None:
    write_bytes(uri, parquet_bytes(table), bulky=bulky)


def read_parquet(uri: str) -> pa.Table:
    return pq.read_table(io.BytesIO(read_bytes(uri)))


def list_keys(prefix_uri: str) -> Iterator[str]:
    """Every object URI under a prefix, sorted."""
    if is_s3(prefix_uri):
        bucket, prefix = split_s3(prefix_uri)
        paginator = client("s3").get_paginator("list_objects_v2")
        keys: list[str] = []
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
            keys.extend(obj["Key"] for obj in page.get("Contents", []))
        yield from (f"s3://{bucket}/{key}" for key in sorted(keys))
        return
    root = Path(prefix_uri)
    if root.is_dir():
        yield from sorted(str(p) for p in root.rglob("*") if p.is_file())


def fingerprint(root: str) -> str:
    """Content fingerprint of every object under a root: S3 ETags and sizes, or local file SHA-256s."""
    digest = hashlib.sha256()
    if is_s3(root):
        bucket, prefix = split_s3(root.rstrip("/") + "/")
        paginator = client("s3").get_paginator("list_objects_v2")
        rows = [(obj["Key"][len(prefix):], obj["ETag"], obj["Size"])
                for page in paginator.paginate(Bucket=bucket, Prefix=prefix) for obj in page.get("Contents", [])]
        for key, etag, size in sorted(rows):
            digest.update(f"{key}\t{etag}\t{size}\n".encode())
        return digest.hexdigest()
    base = Path(root)
    for path in sorted(p for p in base.rglob("*") if p.is_file()):
        file_hash = hashlib.sha256()
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                file_hash.update(block)
        digest.update(f"{path.relative_to(base).as_posix()}\t{file_hash.hexdigest()}\n".encode())
    return digest.hexdigest()


def delete(uris: list[str]) -> None:
    """Delete objects (S3: batches of 1,000, the DeleteObjects limit) or local files."""
    s3_uris = [u for u in uris if is_s3(u)]
    for uri in uris:
        if not is_s3(uri):
            Path(uri).unlink(missing_ok=True)
    for start in range(0, len(s3_uris), 1000):
        batch = [split_s3(u) for u in s3_uris[start:start + 1000]]
        client("s3").delete_objects(Bucket=batch[0][0], Delete={"Objects": [{"Key": k} for _, k in batch],
                                                                 "Quiet": True})
