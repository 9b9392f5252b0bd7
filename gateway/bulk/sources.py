"""What to classify: a folder, a list file or an S3 prefix, as a sorted list of `Item`s, and their bytes.

An `Item` is named by `key`, the `file` column of every output: the path relative to SOURCE for a folder
(forward slashes), the line as written for a list file, the object key relative to the prefix for S3. Its
`fingerprint` (size and modification time, or the S3 ETag) tells a changed file from a classified one: a
rerun classifies new and changed items only.

Listing is pure bookkeeping, no image is opened here; `read` returns an item's bytes (bounded by
`max_bytes`) or raises `ReadFailed`, which the run records as that image's error.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from pathlib import Path, PurePosixPath
from typing import Protocol

import httpx

from gateway.bulk import s3

# Extensions of the formats the gateway accepts by default (gateway.settings.DEFAULT_ALLOWED_FORMATS).
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".jpe", ".png", ".webp", ".bmp"})
MEDIA_TYPES = {
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".jpe": "image/jpeg",
    ".png": "image/png",
    ".webp": "image/webp",
    ".bmp": "image/bmp",
}
URL_SCHEMES = ("http://", "https://")


class ReadFailed(Exception):
    """An item's bytes could not be had: the image is recorded as failed with this message."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class SourceError(Exception):
    """SOURCE itself cannot be listed (missing folder, unreadable list, S3 refused): the run cannot start."""


@dataclass(frozen=True)
class Item:
    key: str
    locator: str
    fingerprint: str
    # Seconds since the epoch (UTC) from the listing: file mtime or S3 LastModified; None for URLs.
    file_time: float | None = None
    size: int | None = None


class Source(Protocol):
    """Where the images come from. `name` identifies SOURCE in the ledger (a rerun must name the same)."""

    @property
    def name(self) -> str: ...

    def list(self) -> list[Item]: ...

    def read(self, item: Item, max_bytes: int) -> tuple[bytes, float | None]:
        """The item's bytes, and a file time learned while reading (HTTP Last-Modified) or None."""
        ...


def is_image_name(name: str) -> bool:
    return PurePosixPath(name).suffix.lower() in IMAGE_EXTENSIONS


def media_type(name: str) -> str | None:
    return MEDIA_TYPES.get(PurePosixPath(name.split("?", 1)[0]).suffix.lower())


def is_url(text: str) -> bool:
    return text.lower().startswith(URL_SCHEMES)


def _too_large(size: int, max_bytes: int) -> ReadFailed:
    return ReadFailed(
        "too_large", f"{size} bytes; at most {max_bytes} are read per image (--max-image-bytes)"
    )


def _read_file(path: Path, max_bytes: int) -> bytes:
    try:
        with path.open("rb") as handle:
            data = handle.read(max_bytes + 1)
    except OSError as exc:
        raise ReadFailed("unreadable", f"cannot read the file: {exc.strerror or exc}") from exc
    if len(data) > max_bytes:
        raise _too_large(path.stat().st_size, max_bytes)
    return data


class FolderSource:
    """Every image under `root`, recursively; hidden files and folders (".*") are skipped.

    Symbolic links to files are followed (a ConfigMap mounted in a pod is a tree of links), links to
    folders are not (no cycles).
    """

    def __init__(self, root: Path) -> None:
        self.root = root

    @property
    def name(self) -> str:
        return f"folder:{self.root.resolve()}"

    def list(self) -> list[Item]:
        if not self.root.is_dir():
            raise SourceError(f"{self.root} is not a folder")
        items = []
        for top, folders, files in os.walk(self.root, onerror=_raise_source_error):
            folders[:] = sorted(name for name in folders if not name.startswith("."))
            for name in files:
                if name.startswith(".") or not is_image_name(name):
                    continue
                path = Path(top) / name
                try:
                    stat = path.stat()
                except OSError:
                    continue  # a dangling link or a file removed while listing: not part of the collection
                key = path.relative_to(self.root).as_posix()
                fingerprint = f"{stat.st_size}:{stat.st_mtime_ns}"
                items.append(Item(key, str(path), fingerprint, stat.st_mtime, stat.st_size))
        return sorted(items, key=lambda item: item.key)

    def read(self, item: Item, max_bytes: int) -> tuple[bytes, float | None]:
        return _read_file(Path(item.locator), max_bytes), None


def _raise_source_error(exc: OSError) -> None:
    raise SourceError(f"cannot list {exc.filename}: {exc.strerror or exc}")


class ListSource:
    """A text file naming one image per line: a path (relative to the list's folder) or an http(s) URL.

    Blank lines and lines starting with "#" are skipped; a repeated line counts once. Every named path is
    an item, whatever its extension: the user chose it.
    """

    def __init__(self, path: Path, *, timeout_s: float = 30.0) -> None:
        self.path = path
        self.timeout_s = timeout_s
        self._http: httpx.Client | None = None

    @property
    def name(self) -> str:
        return f"list:{self.path.resolve()}"

    def list(self) -> list[Item]:
        try:
            lines = self.path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise SourceError(f"cannot read the list file {self.path}: {exc}") from exc
        seen: dict[str, Item] = {}
        for raw in lines:
            entry = raw.strip()
            if not entry or entry.startswith("#") or entry in seen:
                continue
            seen[entry] = self._item(entry)
        return sorted(seen.values(), key=lambda item: item.key)

    def _item(self, entry: str) -> Item:
        if is_url(entry):
            return Item(entry, entry, "")
        path = Path(entry)
        if not path.is_absolute():
            path = self.path.parent / path
        try:
            stat = path.stat()
        except OSError:
            # Listed but missing: still an item, so that the outputs record it as failed.
            return Item(entry, str(path), "missing")
        return Item(entry, str(path), f"{stat.st_size}:{stat.st_mtime_ns}", stat.st_mtime, stat.st_size)

    def read(self, item: Item, max_bytes: int) -> tuple[bytes, float | None]:
        if not is_url(item.locator):
            return _read_file(Path(item.locator), max_bytes), None
        return self._download(item.locator, max_bytes)

    def _download(self, url: str, max_bytes: int) -> tuple[bytes, float | None]:
        if self._http is None:
            self._http = httpx.Client(timeout=self.timeout_s, follow_redirects=True, max_redirects=5)
        try:
            with self._http.stream("GET", url) as response:
                if response.status_code != 200:
                    raise ReadFailed("fetch_failed", f"the server answered HTTP {response.status_code}")
                chunks = []
                received = 0
                for chunk in response.iter_bytes():
                    received += len(chunk)
                    if received > max_bytes:
                        raise _too_large(received, max_bytes)
                    chunks.append(chunk)
                modified = _http_time(response.headers.get("last-modified"))
        except httpx.HTTPError as exc:
            raise ReadFailed("fetch_failed", f"{type(exc).__name__}: {exc}") from exc
        return b"".join(chunks), modified

    def close(self) -> None:
        if self._http is not None:
            self._http.close()


def _http_time(header: str | None) -> float | None:
    if not header:
        return None
    try:
        return parsedate_to_datetime(header).timestamp()
    except (TypeError, ValueError):
        return None


class S3Source:
    """Every image object under `s3://bucket/prefix/` (the prefix is a folder: "cams" means "cams/")."""

    def __init__(self, url: str, client: s3.Client) -> None:
        self.bucket, self.prefix = s3.parse_url(url, folder=True)
        self.client = client

    @property
    def name(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def list(self) -> list[Item]:
        try:
            objects = list(s3.list_objects(self.client, self.bucket, self.prefix))
        except s3.S3Error as exc:
            raise SourceError(str(exc)) from exc
        items = [
            Item(obj.key[len(self.prefix) :], obj.key, obj.etag, obj.last_modified, obj.size)
            for obj in objects
            if is_image_name(obj.key) and not any(part.startswith(".") for part in obj.key.split("/"))
        ]
        return sorted(items, key=lambda item: item.key)

    def read(self, item: Item, max_bytes: int) -> tuple[bytes, float | None]:
        if item.size is not None and item.size > max_bytes:
            raise _too_large(item.size, max_bytes)
        try:
            return s3.get_object(self.client, self.bucket, item.locator, max_bytes), None
        except s3.S3Error as exc:
            raise ReadFailed("unreadable", str(exc)) from exc
        except s3.TooLarge as exc:
            raise _too_large(exc.size, max_bytes) from exc


def open_source(text: str, *, s3_client: s3.Client | None = None) -> Source:
    """SOURCE as given on the command line: `s3://...`, a folder, or a list file."""
    if text.startswith("s3://"):
        return S3Source(text, s3_client or s3.make_client())
    path = Path(text)
    if path.is_dir():
        return FolderSource(path)
    if path.is_file():
        return ListSource(path)
    raise SourceError(f"{text} is neither a folder, a list file nor an s3:// prefix")


# --- shards and chunks: deterministic, so that a rerun (or a restarted pod) makes the same batches ---


def shard_of(key: str, count: int) -> int:
    """Which of `count` shards owns `key`: a stable hash, so items never move when the collection grows."""
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % count


def select_shard(items: Iterable[Item], index: int, count: int) -> list[Item]:
    return [item for item in items if shard_of(item.key, count) == index]


def chunk(items: list[Item], max_items: int, max_bytes: int) -> Iterator[list[Item]]:
    """Consecutive items, at most `max_items` and (by listed size) `max_bytes` per chunk.

    Chunks are cut from the whole (sorted) listing, before anything is known to be done, so a resumed run
    sends exactly the batches an uninterrupted run sends: the model sees the same batches either way.
    """
    current: list[Item] = []
    size = 0
    for item in items:
        item_size = item.size or 0
        if current and (len(current) >= max_items or size + item_size > max_bytes):
            yield current
            current, size = [], 0
        current.append(item)
        size += item_size
    if current:
        yield current
