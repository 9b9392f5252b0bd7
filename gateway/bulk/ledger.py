"""The ledger: every batch's results, appended as one JSON line, flushed and fsynced before the next.

It is what makes a run resumable and exact. One line holds a whole batch (results and failures alike), so
after a crash at any moment (SIGKILL included) a batch is either recorded whole or not at all: a torn last
line is cut off when the ledger is opened again, and that batch is simply sent again. Outputs are rebuilt
from the ledger, never from memory, so a resumed run ends with the same bytes as an uninterrupted one.

    {"ledger": 1, "source": "folder:/data/cams", "created": "2026-05-26T19:11:27Z"}
    {"batch": [{"file": "cam1/IMG_0001.JPG", "fingerprint": "...", "label": "leopard", ...}, ...]}
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from gateway.bulk.store import fsync_dir

FORMAT_VERSION = 1
NAME = "ledger.jsonl"


class LedgerError(Exception):
    """The ledger cannot be written, or belongs to another SOURCE, or is corrupt before its last line."""


@dataclass(frozen=True)
class Result:
    """One image's outcome: a classification or an error, plus what the outputs need to know about it."""

    file: str
    fingerprint: str
    label: str | None = None
    score: float | None = None
    # One probability per label, in the model's label order (gateway.contract.LABELS).
    probabilities: tuple[float, ...] | None = None
    model_version: str | None = None
    error_code: str | None = None
    error: str | None = None
    # Capture time as the camera wrote it (naive, "YYYY-MM-DDTHH:MM:SS"), its UTC offset when the file says,
    # and where it came from: "DateTimeOriginal", "DateTime", "file" (modification time, UTC) or "none".
    captured: str | None = None
    captured_offset: str | None = None
    time_source: str = "none"
    file_time: float | None = None
    media_type: str | None = None
    camera: str | None = None
    width: int | None = None
    height: int | None = None

    @property
    def classified(self) -> bool:
        return self.probabilities is not None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        if self.probabilities is not None:
            data["probabilities"] = list(self.probabilities)
        return {key: value for key, value in data.items() if value is not None}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Result:
        known = {field.name for field in fields(cls)}
        values = {key: value for key, value in data.items() if key in known}
        if values.get("probabilities") is not None:
            values["probabilities"] = tuple(float(p) for p in values["probabilities"])
        return cls(**values)


def parse(data: bytes) -> tuple[dict[str, Any] | None, dict[str, Result], int, int]:
    """(header, latest result per file, batches, bytes of complete lines) of a ledger's contents.

    Only the last line may be incomplete (a crash mid-write); it is ignored. Any other bad line means the
    file was damaged by something else, and is an error rather than a silent loss.
    """
    header: dict[str, Any] | None = None
    results: dict[str, Result] = {}
    batches = 0
    good = 0
    lines = data.split(b"\n")
    for number, line in enumerate(lines, start=1):
        last = number == len(lines)
        if last and not line:
            break
        try:
            entry = json.loads(line)
            if not isinstance(entry, dict):
                raise ValueError("not an object")
        except ValueError as exc:
            if last:
                break  # a torn final line: that batch was never recorded
            raise LedgerError(
                f"ledger line {number} is corrupt ({exc}); move the ledger away to start over"
            ) from exc
        if last:
            break  # complete JSON but no newline: written, not yet known to be synced; send again
        if header is None:
            if entry.get("ledger") != FORMAT_VERSION:
                raise LedgerError(f"not a version {FORMAT_VERSION} ledger (first line {line[:80]!r})")
            header = entry
        else:
            for item in entry.get("batch", []):
                result = Result.from_json(item)
                results[result.file] = result
            batches += 1
        good += len(line) + 1
    return header, results, batches, good


class Ledger:
    """An open ledger file. `results` is the latest result per file; `append` records one batch."""

    def __init__(self, path: Path, header: dict[str, Any], results: dict[str, Result], batches: int) -> None:
        self.path = path
        self.header = header
        self.results = results
        self.batches = batches
        self._handle = path.open("ab")

    @classmethod
    def open(cls, path: Path, *, source: str, created: str, seed: bytes | None = None) -> Ledger:
        """Opens (or creates) the ledger of a run over `source`; `seed` is a copy to start from when the
        local file does not exist (the ledger checkpointed to S3 by a pod that was replaced)."""
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            if not path.exists() and seed:
                path.write_bytes(seed)
            data = path.read_bytes() if path.exists() else b""
            header, results, batches, good = parse(data)
            if good < len(data):
                # Cut the torn tail so the next line starts on a line of its own.
                with path.open("r+b") as handle:
                    handle.truncate(good)
                    handle.flush()
                    os.fsync(handle.fileno())
            if header is None:
                header = {"ledger": FORMAT_VERSION, "source": source, "created": created}
                with path.open("wb") as handle:
                    handle.write(_line(header))
                    handle.flush()
                    os.fsync(handle.fileno())
                fsync_dir(path.parent)
                results, batches = {}, 0
        except OSError as exc:
            raise LedgerError(f"cannot open the ledger {path}: {exc.strerror or exc}") from exc
        if header.get("source") != source:
            raise LedgerError(
                f"{path} records a run over {header.get('source')}, not {source}: choose another --out"
            )
        return cls(path, header, results, batches)

    @property
    def created(self) -> str:
        return str(self.header["created"])

    def append(self, batch: Iterable[Result]) -> None:
        """One line for the whole batch, on disk (fsync) before this returns."""
        batch = list(batch)
        line = _line({"batch": [result.to_json() for result in batch]})
        try:
            self._handle.write(line)
            self._handle.flush()
            os.fsync(self._handle.fileno())
        except OSError as exc:
            raise LedgerError(f"cannot write the ledger {self.path}: {exc.strerror or exc}") from exc
        for result in batch:
            self.results[result.file] = result
        self.batches += 1

    def contents(self) -> bytes:
        return self.path.read_bytes()

    def close(self) -> None:
        self._handle.close()


def _line(entry: dict[str, Any]) -> bytes:
    return json.dumps(entry, separators=(",", ":"), ensure_ascii=False).encode("utf-8") + b"\n"
