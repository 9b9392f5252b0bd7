"""The classification loop: chunks of items read, sent, answered and recorded, `concurrency` at a time.

Each worker takes the next chunk, reads its images (in threads: files, S3 GETs or downloads), reads their
header facts, sends one batch (gateway.bulk.client splits it only where the gateway refuses part of it),
and appends the chunk's results to the ledger as one line before taking another. At most `concurrency`
chunks are in flight, so a crash re-sends at most that many; memory stays bounded by `concurrency` chunks
of at most `--max-batch-bytes` each.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from gateway.bulk import metadata
from gateway.bulk.client import Answer, BatchClient, Image
from gateway.bulk.ledger import Ledger, Result
from gateway.bulk.progress import Reporter
from gateway.bulk.sources import Item, ReadFailed, Source, media_type

log = logging.getLogger(__name__)


@dataclass
class Loaded:
    item: Item
    data: bytes | None
    facts: metadata.ImageFacts
    error: ReadFailed | None = None


def load(source: Source, item: Item, max_bytes: int) -> Loaded:
    """Bytes and header facts of one item; a read failure is a result, not an exception."""
    try:
        data, fetched_time = source.read(item, max_bytes)
    except ReadFailed as exc:
        facts = metadata.with_file_time(metadata.ImageFacts(), item.file_time)
        return Loaded(item, None, facts, exc)
    facts = metadata.with_file_time(metadata.read_facts(data), item.file_time or fetched_time)
    return Loaded(item, data, facts)


def result_of(loaded: Loaded, answer: Answer | None) -> Result:
    facts = loaded.facts
    base = Result(
        file=loaded.item.key,
        fingerprint=loaded.item.fingerprint,
        captured=facts.captured,
        captured_offset=facts.captured_offset,
        time_source=facts.time_source,
        file_time=loaded.item.file_time,
        media_type=facts.media_type or media_type(loaded.item.key),
        camera=facts.camera,
        width=facts.width,
        height=facts.height,
    )
    if loaded.error is not None:
        return replace(base, error_code=loaded.error.code, error=loaded.error.message)
    if answer is None or answer.probabilities is None:
        code = answer.error_code if answer else "internal"
        return replace(base, error_code=code, error=answer.error if answer else "no answer")
    return replace(
        base,
        label=answer.label,
        score=answer.score,
        probabilities=answer.probabilities,
        model_version=answer.model_version,
    )


@dataclass
class Counts:
    classified: int = 0
    failed: int = 0


class Runner:
    def __init__(
        self,
        source: Source,
        client: BatchClient,
        ledger: Ledger,
        reporter: Reporter,
        *,
        concurrency: int,
        max_image_bytes: int,
        checkpoint: Callable[[], None] | None = None,
        checkpoint_interval_s: float = 60.0,
    ) -> None:
        self.source = source
        self.client = client
        self.ledger = ledger
        self.reporter = reporter
        self.concurrency = concurrency
        self.max_image_bytes = max_image_bytes
        self.checkpoint = checkpoint
        self.checkpoint_interval_s = checkpoint_interval_s
        self.counts = Counts()
        self._write_lock = asyncio.Lock()
        self._last_checkpoint = time.monotonic()

    async def run(self, chunks: list[list[Item]]) -> Counts:
        queue: asyncio.Queue[list[Item]] = asyncio.Queue()
        for chunk in chunks:
            queue.put_nowait(chunk)
        workers = min(self.concurrency, len(chunks))
        try:
            async with asyncio.TaskGroup() as group:
                for _ in range(workers):
                    group.create_task(self._worker(queue))
        except BaseExceptionGroup as group_error:
            # One worker's fatal error (gateway gone, ledger unwritable) ends the run; raise it plainly.
            raise group_error.exceptions[0] from None
        return self.counts

    async def _worker(self, queue: asyncio.Queue[list[Item]]) -> None:
        while True:
            try:
                chunk = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            await self._one(chunk)

    async def _one(self, chunk: list[Item]) -> None:
        loaded = await asyncio.gather(
            *(asyncio.to_thread(load, self.source, item, self.max_image_bytes) for item in chunk)
        )
        sendable = [entry for entry in loaded if entry.data is not None]
        images = [
            Image(
                entry.item.key.rsplit("/", 1)[-1],
                entry.data or b"",
                entry.facts.media_type or "application/octet-stream",
            )
            for entry in sendable
        ]
        answers = await self.client.classify(images) if images else []
        by_key = {entry.item.key: answer for entry, answer in zip(sendable, answers, strict=True)}
        results = [result_of(entry, by_key.get(entry.item.key)) for entry in loaded]
        failed = sum(1 for result in results if not result.classified)
        async with self._write_lock:
            await asyncio.to_thread(self.ledger.append, results)
            self.counts.classified += len(results) - failed
            self.counts.failed += failed
            self.reporter.advance(len(results), failed)
            await self._maybe_checkpoint()

    async def _maybe_checkpoint(self) -> None:
        if self.checkpoint is None:
            return
        if time.monotonic() - self._last_checkpoint >= self.checkpoint_interval_s:
            self._last_checkpoint = time.monotonic()
            await asyncio.to_thread(self.checkpoint)
