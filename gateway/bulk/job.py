"""One bulk run from start to end: list, resume from the ledger, classify what is left, write the outputs;
and the merge of the shards of an Indexed Job.

Layout of `--out` (a folder, or an s3:// prefix):

    predictions.csv  megadetector.json  camtrap-dp/   the outputs (of the whole collection)
    ledger.jsonl                                     the ledger of an unsharded run
    shards/00003-of-00008/                           with --shard-count 8: shard 3's ledger and outputs

A sharded run writes its own ledger and outputs under `shards/`; the merge reads every shard's ledger and
writes the combined outputs at the top, once every listed image has a result. With `--merge-when-complete`
each shard tries the merge when it finishes, so the last one to finish merges (two finishing at once both
write the same bytes). `--merge` only merges.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import signal
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

from gateway.bulk import camtrapdp, catalog, deployments, ledger, megadetector, predictions_csv, sources
from gateway.bulk.client import BatchClient
from gateway.bulk.ledger import Ledger, Result
from gateway.bulk.progress import Reporter, Summary
from gateway.bulk.runner import Runner
from gateway.bulk.store import LocalStore, Store

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_GATEWAY = 3
EXIT_OUTPUT = 4
EXIT_SOURCE = 5
EXIT_INCOMPLETE = 6
EXIT_INTERRUPTED = 143
SHARDS = "shards/"


class Interrupted(Exception):
    """SIGTERM (the pod is being stopped): the ledger holds every finished batch."""


@dataclass(frozen=True)
class Config:
    endpoint: str = "http://localhost:9696"
    batch_size: int = 32
    max_batch_bytes: int = 16 * 1024 * 1024
    max_image_bytes: int = 16 * 1024 * 1024
    concurrency: int = 4
    timeout_s: float = 120.0
    retry_for_s: float = 300.0
    checkpoint_interval_s: float = 60.0
    shard_index: int = 0
    shard_count: int = 1
    work_dir: Path | None = None
    event_gap_s: float = 60.0
    timezone: str | None = None
    mapping: deployments.Mapping = field(default_factory=deployments.Mapping)
    depth: int | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


def now_iso() -> str:
    """The package's `created`: SOURCE_DATE_EPOCH when set (reproducible builds' convention), else now."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    moment = datetime.fromtimestamp(int(epoch), UTC) if epoch and epoch.isdigit() else datetime.now(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def root_name(source: sources.Source) -> str:
    if isinstance(source, sources.FolderSource):
        return source.root.resolve().name or "collection"
    if isinstance(source, sources.ListSource):
        return source.path.stem
    if isinstance(source, sources.S3Source):
        return PurePosixPath(source.prefix).name or source.bucket
    return "collection"


def file_base(source: sources.Source) -> str | None:
    if isinstance(source, sources.S3Source):
        return source.name
    if isinstance(source, sources.ListSource):
        return source.path.resolve().parent.as_posix()
    return None


def shard_name(index: int, count: int) -> str:
    return f"{index:05d}-of-{count:05d}"


def pending(items: list[sources.Item], results: dict[str, Result]) -> set[str]:
    """Keys still to classify: never recorded, or recorded for other contents (a changed file)."""
    return {
        item.key
        for item in items
        if (result := results.get(item.key)) is None or result.fingerprint != item.fingerprint
    }


def unmerged(items: list[sources.Item], results: dict[str, Result]) -> set[str]:
    """Keys the merge has no result for. Each shard checked its own files' fingerprints when it ran; here a
    result counts when it is for a file of the same name and size, since the modification times in another
    pod's view of the same collection may differ (a ConfigMap or a fresh checkout is written per pod). S3
    fingerprints (ETags) are the same in every view and are compared whole."""

    def same(result: Result, item: sources.Item) -> bool:
        if result.fingerprint == item.fingerprint:
            return True
        return item.size is not None and result.fingerprint.split(":", 1)[0] == str(item.size)

    return {item.key for item in items if (result := results.get(item.key)) is None or not same(result, item)}


def plan(
    items: list[sources.Item], todo: set[str], max_items: int, max_bytes: int
) -> list[list[sources.Item]]:
    """Chunks of the whole listing, minus what is done: a resumed run re-makes the same batches."""
    chunks = []
    for chunk in sources.chunk(items, max_items, max_bytes):
        left = [item for item in chunk if item.key in todo]
        if left:
            chunks.append(left)
    return chunks


def write_outputs(
    store: Store, results: list[Result], source: sources.Source, config: Config, created: str
) -> list[str]:
    options = catalog.Options(
        root_name=root_name(source),
        created=created,
        event_gap_s=config.event_gap_s,
        zone=catalog.parse_timezone(config.timezone),
        mapping=config.mapping,
        depth=config.depth,
    )
    built = catalog.build(results, options)
    package = camtrapdp.render(built, base=file_base(source), metadata=config.metadata)
    for name, data in package.items():
        store.write(f"camtrap-dp/{name}", data, "application/json" if name.endswith(".json") else "text/csv")
    store.write("megadetector.json", megadetector.render(built), "application/json")
    store.write("predictions.csv", predictions_csv.render(built), "text/csv")
    return [
        f"{store.url.rstrip('/')}/{name}" for name in ("predictions.csv", "megadetector.json", "camtrap-dp/")
    ]


def warnings_for(results: list[Result], config: Config) -> list[str]:
    notes = []
    untimed = sum(1 for r in results if r.captured is None)
    if untimed:
        notes.append(f"{untimed} images have no capture time and are not in camtrap-dp/media.csv")
    unzoned = sum(1 for r in results if r.captured and not r.captured_offset and r.time_source != "file")
    if unzoned and config.timezone is None:
        notes.append(
            f"{unzoned} capture times carry no timezone and were read as UTC (timestampIssues);"
            " give --timezone (e.g. +02:00 or Africa/Abidjan)"
        )
    if not config.mapping.rows:
        notes.append("no --deployments mapping: deployment coordinates are 0/0 placeholders")
    return notes


class Run:
    def __init__(self, source: sources.Source, store: Store, config: Config, reporter: Reporter) -> None:
        self.source = source
        self.config = config
        self.reporter = reporter
        self.root_store = store
        sharded = config.shard_count > 1
        self.store = (
            store.child(SHARDS + shard_name(config.shard_index, config.shard_count)) if sharded else store
        )

    def _work_dir(self) -> Path:
        if isinstance(self.store, LocalStore):
            return self.store.root
        base = self.config.work_dir or Path(tempfile.gettempdir()) / "species-classifier-bulk"
        return base / hashlib.sha256(self.store.url.encode()).hexdigest()[:16]

    def open_ledger(self) -> Ledger:
        seed = None if isinstance(self.store, LocalStore) else self.store.read(ledger.NAME)
        return Ledger.open(
            self._work_dir() / ledger.NAME, source=self.source.name, created=now_iso(), seed=seed
        )

    def checkpoint(self, open_ledger: Ledger) -> None:
        """Copies the ledger to an S3 --out, so that a replacement pod resumes from it."""
        if not isinstance(self.store, LocalStore):
            self.store.write(ledger.NAME, open_ledger.contents(), "application/x-ndjson")

    def execute(self) -> Summary:
        started = time.monotonic()
        items = self.source.list()
        if self.config.shard_count > 1:
            items = sources.select_shard(items, self.config.shard_index, self.config.shard_count)
        book = self.open_ledger()
        try:
            todo = pending(items, book.results)
            self.reporter.start(len(items), len(items) - len(todo))
            requests = 0
            counts_classified = counts_failed = 0
            if todo:
                requests, counts_classified, counts_failed = asyncio.run(self._classify(items, todo, book))
            self.checkpoint(book)
            results = [book.results[item.key] for item in items]
            outputs = write_outputs(self.store, results, self.source, self.config, book.created)
        finally:
            book.close()
        summary = Summary(
            total=len(items),
            from_ledger=len(items) - len(todo),
            classified=counts_classified,
            failed=counts_failed,
            seconds=time.monotonic() - started,
            requests=requests,
            labels=Counter(r.label for r in results if r.label),
            errors=Counter(r.error_code for r in results if r.error_code),
            outputs=outputs,
            warnings=warnings_for(results, self.config),
        )
        return summary

    async def _classify(
        self, items: list[sources.Item], todo: set[str], book: Ledger
    ) -> tuple[int, int, int]:
        client = BatchClient(
            self.config.endpoint,
            timeout_s=self.config.timeout_s,
            retry_for_s=self.config.retry_for_s,
            connections=self.config.concurrency,
            on_wait=lambda reason, seconds: self.reporter.note(
                f"gateway: {reason}; retrying in {seconds:.1f} s"
            ),
        )
        task = asyncio.current_task()
        loop = asyncio.get_running_loop()
        if task is not None:
            loop.add_signal_handler(signal.SIGTERM, task.cancel)
        try:
            info = await client.model()
            batch = max(1, min(self.config.batch_size, info.max_batch_size))
            chunks = plan(items, todo, batch, self.config.max_batch_bytes)
            runner = Runner(
                self.source,
                client,
                book,
                self.reporter,
                concurrency=self.config.concurrency,
                max_image_bytes=self.config.max_image_bytes,
                checkpoint=lambda: self.checkpoint(book),
                checkpoint_interval_s=self.config.checkpoint_interval_s,
            )
            counts = await runner.run(chunks)
            return client.requests, counts.classified, counts.failed
        except asyncio.CancelledError:
            await asyncio.to_thread(self.checkpoint, book)
            raise Interrupted("stopped by SIGTERM; run the same command again to resume") from None
        finally:
            loop.remove_signal_handler(signal.SIGTERM)
            await client.close()


def merge(source: sources.Source, store: Store, config: Config) -> tuple[bool, str, list[str]]:
    """Combined outputs from every shard's ledger, once every listed image has a result.

    Returns (merged, message, output paths)."""
    items = source.list()
    names = [name for name in store.list(SHARDS) if name.endswith("/" + ledger.NAME)]
    combined: dict[str, Result] = {}
    created: list[str] = []
    for name in names:
        data = store.read(name) or b""
        header, results, _, _ = ledger.parse(data)
        if header is None:
            continue
        if header.get("source") != source.name:
            raise ledger.LedgerError(f"{name} records a run over {header.get('source')}, not {source.name}")
        created.append(str(header["created"]))
        combined.update(results)
    missing = unmerged(items, combined)
    if missing:
        return (
            False,
            f"{len(missing)} of {len(items)} images have no result yet ({len(names)} shard ledgers)",
            [],
        )
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    stamp = now_iso() if epoch else (min(created) if created else now_iso())
    outputs = write_outputs(store, [combined[item.key] for item in items], source, config, stamp)
    return True, f"merged {len(names)} shards, {len(items)} images", outputs


def load_metadata(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    with contextlib.suppress(FileNotFoundError):
        value = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(value, dict):
            raise ValueError(f"{path} must hold a JSON object")
        return value
    raise ValueError(f"{path} does not exist")
