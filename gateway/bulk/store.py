"""Where a run's files go: a local folder or an S3 prefix, written so that no reader sees half a file.

A local write goes to a temporary file in the same folder, is flushed and fsynced, then renamed over the
old one (rename is atomic on POSIX) and the folder is fsynced so the new name survives a crash. An S3 write
is one PUT, which S3 makes visible whole or not at all.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Protocol

from gateway.bulk import s3


class StoreError(Exception):
    """The output location cannot be written or read: the run cannot finish."""


class Store(Protocol):
    @property
    def url(self) -> str: ...

    def read(self, name: str) -> bytes | None: ...

    def write(self, name: str, data: bytes, content_type: str) -> None: ...

    def list(self, prefix: str) -> list[str]: ...

    def child(self, name: str) -> Store: ...


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    fsync_dir(path.parent)


class LocalStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    @property
    def url(self) -> str:
        return str(self.root)

    def read(self, name: str) -> bytes | None:
        try:
            return (self.root / name).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StoreError(f"cannot read {self.root / name}: {exc.strerror or exc}") from exc

    def write(self, name: str, data: bytes, content_type: str) -> None:
        try:
            write_atomic(self.root / name, data)
        except OSError as exc:
            raise StoreError(f"cannot write {self.root / name}: {exc.strerror or exc}") from exc

    def list(self, prefix: str) -> list[str]:
        base = self.root / prefix
        if not base.is_dir():
            return []
        return sorted(
            path.relative_to(self.root).as_posix()
            for path in base.rglob("*")
            if path.is_file() and not path.name.startswith(".")
        )

    def child(self, name: str) -> LocalStore:
        return LocalStore(self.root / name)


class S3Store:
    def __init__(self, url: str, client: s3.Client) -> None:
        self.bucket, self.prefix = s3.parse_url(url, folder=True)
        self.client = client

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def read(self, name: str) -> bytes | None:
        try:
            return s3.get_object_or_none(self.client, self.bucket, self.prefix + name)
        except s3.S3Error as exc:
            raise StoreError(str(exc)) from exc

    def write(self, name: str, data: bytes, content_type: str) -> None:
        try:
            s3.put_object(self.client, self.bucket, self.prefix + name, data, content_type)
        except s3.S3Error as exc:
            raise StoreError(str(exc)) from exc

    def list(self, prefix: str) -> list[str]:
        try:
            keys = s3.list_keys(self.client, self.bucket, self.prefix + prefix)
        except s3.S3Error as exc:
            raise StoreError(str(exc)) from exc
        return sorted(key[len(self.prefix) :] for key in keys)

    def child(self, name: str) -> S3Store:
        return S3Store(f"{self.url}{name}/", self.client)


def open_store(text: str, *, s3_client: s3.Client | None = None) -> Store:
    if text.startswith("s3://"):
        return S3Store(text, s3_client or s3.make_client())
    return LocalStore(Path(text))
