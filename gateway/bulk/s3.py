"""The few S3 calls the bulk run makes, through boto3, against AWS or any S3-compatible endpoint.

Credentials, region and endpoint come from the standard AWS settings (environment, shared config, EKS Pod
Identity, IRSA): `AWS_ENDPOINT_URL_S3` / `AWS_ENDPOINT_URL` select another endpoint (MinIO, versitygw, a
test server), as does `--s3-endpoint-url`. boto3 is imported on first use, so folder and list runs never
load it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

Client = Any  # botocore's S3 client; its class is generated at run time

_TIMEOUT_S = 30


class S3Error(Exception):
    """An S3 call failed (after botocore's own retries); the message names bucket, key and the S3 code."""


class TooLarge(Exception):
    def __init__(self, size: int) -> None:
        super().__init__(f"{size} bytes")
        self.size = size


@dataclass(frozen=True)
class Object:
    key: str
    size: int
    etag: str
    last_modified: float


def parse_url(url: str, *, folder: bool) -> tuple[str, str]:
    """`s3://bucket/some/prefix` -> ("bucket", "some/prefix/") (with `folder`, a trailing slash is added)."""
    if not url.startswith("s3://"):
        raise ValueError(f"not an s3:// URL: {url}")
    bucket, _, prefix = url[len("s3://") :].partition("/")
    if not bucket:
        raise ValueError(f"no bucket in {url}")
    if folder and prefix and not prefix.endswith("/"):
        prefix += "/"
    return bucket, prefix


def make_client(endpoint_url: str | None = None, region: str | None = None) -> Client:
    import boto3
    from botocore.config import Config

    config = Config(
        connect_timeout=_TIMEOUT_S,
        read_timeout=_TIMEOUT_S,
        retries={"mode": "standard", "max_attempts": 5},
    )
    return boto3.session.Session().client("s3", endpoint_url=endpoint_url, region_name=region, config=config)


def _error(action: str, bucket: str, key: str, exc: Exception) -> S3Error:
    response = getattr(exc, "response", None) or {}
    code = response.get("Error", {}).get("Code") or type(exc).__name__
    return S3Error(f"S3 {action} s3://{bucket}/{key} failed: {code}")


def _boto_errors() -> tuple[type[Exception], ...]:
    from botocore.exceptions import BotoCoreError, ClientError

    return (BotoCoreError, ClientError)


def list_objects(client: Client, bucket: str, prefix: str) -> Iterator[Object]:
    try:
        pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        for page in pages:
            for entry in page.get("Contents", []):
                modified: datetime = entry["LastModified"]
                yield Object(entry["Key"], int(entry["Size"]), entry["ETag"].strip('"'), modified.timestamp())
    except _boto_errors() as exc:
        raise _error("list", bucket, prefix, exc) from exc


def get_object(client: Client, bucket: str, key: str, max_bytes: int) -> bytes:
    try:
        response = client.get_object(Bucket=bucket, Key=key)
        body = response["Body"]
        try:
            data: bytes = body.read(max_bytes + 1)
        finally:
            body.close()
    except _boto_errors() as exc:
        raise _error("get", bucket, key, exc) from exc
    if len(data) > max_bytes:
        raise TooLarge(int(response.get("ContentLength", len(data))))
    return data


def get_object_or_none(client: Client, bucket: str, key: str) -> bytes | None:
    """The whole object, or None when it does not exist."""
    try:
        response = client.get_object(Bucket=bucket, Key=key)
        data: bytes = response["Body"].read()
        return data
    except _boto_errors() as exc:
        code = (getattr(exc, "response", None) or {}).get("Error", {}).get("Code")
        if code in ("NoSuchKey", "404", "NotFound"):
            return None
        raise _error("get", bucket, key, exc) from exc


def put_object(client: Client, bucket: str, key: str, data: bytes, content_type: str) -> None:
    """One PUT: S3 makes a new object visible whole or not at all, so a reader never sees half a file."""
    try:
        client.put_object(Bucket=bucket, Key=key, Body=data, ContentType=content_type)
    except _boto_errors() as exc:
        raise _error("put", bucket, key, exc) from exc


def list_keys(client: Client, bucket: str, prefix: str) -> list[str]:
    return [obj.key for obj in list_objects(client, bucket, prefix)]
