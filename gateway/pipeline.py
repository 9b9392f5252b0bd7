"""The prediction pipeline: a request's body to images (`read_one`, `read_many`), images to labels
(`classify`).

Transport stays thin: read the request into image bytes (or URLs), fetch, decode in worker threads, one
PredictRequest, map probabilities to labels. Everything TF Serving-specific is in gateway.tfserving, every
image operation in gateway.preprocess, the URL guard in gateway.fetch.

Nothing here blocks the event loop on work that grows with the input: JSON bodies are checked (item count,
size of the structure) and parsed in a worker thread, images are probed and decoded in worker threads.
Memory follows the budgets (gateway.budget): bodies of unknown length and fetched images are charged to
the request's reservation as they arrive, each decode waits for its estimated bytes of the decode budget,
and multipart uploads spool to /tmp only while the tmp budget has room. When the client disconnects,
fetches and queued decodes are cancelled and a running decode stops at its next read.
"""

from __future__ import annotations

import asyncio
import binascii
import contextlib
import sys
import threading
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import anyio
import httpx
import numpy as np
from pydantic import BaseModel, ValidationError
from starlette.datastructures import FormData, UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import ClientDisconnect, Request

from gateway import contract, fetch, metrics, preprocess, schemas
from gateway.admission import MEMORY_PER_BODY_BYTE, reservation
from gateway.budget import ByteBudget, Reservation
from gateway.errors import (
    CLOSE,
    BadRequest,
    GatewayError,
    InvalidImage,
    Overloaded,
    UnsupportedMediaType,
    validation_message,
)
from gateway.limits import content_length
from gateway.log import record_stage
from gateway.settings import Settings
from gateway.tfserving import Readiness, TFServingClient

T = TypeVar("T")
Source = bytes | str  # image bytes, or a URL still to fetch

_ACCEPTED = "application/json, multipart/form-data, or an image/* body"


@dataclass
class Services:
    """The process's shared clients and limits, made in the app's lifespan and handed to the routes."""

    settings: Settings
    serving: TFServingClient
    http: httpx.AsyncClient
    readiness: Readiness
    decode_limiter: anyio.CapacityLimiter
    # JSON bodies are parsed one at a time: pydantic's parser and the base64 decoder hold the GIL for tens
    # of milliseconds on a 16 MiB body, and the event loop (and /healthz) would wait for all at once.
    parse_limiter: anyio.CapacityLimiter
    decode_budget: ByteBudget
    tmp_budget: ByteBudget
    limits: preprocess.Limits


# --- reading requests ---


def media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


def _is_json(media: str) -> bool:
    return media == "application/json" or media.endswith("+json")


def _charge(memory: Reservation | None, size: int) -> None:
    """Charges `size` more body bytes to the request's memory reservation, or refuses with 503."""
    if memory is not None and not memory.take(MEMORY_PER_BODY_BYTE * size):
        metrics.REFUSED.labels(reason="memory_budget").inc()
        raise Overloaded(
            "the gateway has no memory left for this request's body right now; retry later",
            headers={"Retry-After": "1", **CLOSE},
        )


async def _chunks(request: Request) -> AsyncGenerator[bytes, None]:
    """The body's chunks; one of unknown length (no Content-Length) is charged as it arrives."""
    memory = reservation(request.scope) if content_length(request.scope) is None else None
    async for chunk in request.stream():
        _charge(memory, len(chunk))
        yield chunk


async def read_body(request: Request) -> bytes:
    """The whole body as one bytes object (Starlette's `request.body()` would keep a second copy)."""
    return b"".join([chunk async for chunk in _chunks(request)])


class _Handover:
    """Hands a body's chunks to a worker thread, which joins them (a copy the event loop need not make)
    and takes the only reference, so it can free the body once parsed."""

    def __init__(self, chunks: list[bytes]) -> None:
        self._chunks: list[bytes] | None = chunks

    def take(self) -> bytes:
        chunks, self._chunks = self._chunks, None
        assert chunks is not None, "taken twice"
        data = b"".join(chunks)
        chunks.clear()
        return data


async def _json_body(request: Request) -> _Handover:
    return _Handover([chunk async for chunk in _chunks(request)])


def _validate(body: bytes, model: type[BaseModel]) -> Any:
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        if any(error["type"] == "json_invalid" for error in exc.errors()):
            raise BadRequest("the body is not valid JSON") from exc
        raise BadRequest(validation_message(exc.errors())) from exc


def decode_base64(text: str) -> bytes:
    """Standard base64 (a `data:...;base64,` prefix tolerated) in one pass over `text`, without a copy.

    a2b_base64 reads an ASCII str in place and skips what is not base64 (line breaks included), as
    lenient decoders do: whatever garbage it skipped, the bytes must still be a whole image to get further.
    Its strict mode would take twice as long, holding the GIL, for a 16 MiB string.
    """
    if text.startswith("data:"):
        text = text.partition(",")[2]
    if not text.isascii():
        raise InvalidImage('"image" is not valid base64')
    try:
        return binascii.a2b_base64(text)
    except (binascii.Error, ValueError) as exc:
        raise InvalidImage('"image" is not valid base64') from exc


def _source(ref: schemas.ImageRef) -> Source:
    return ref.url if ref.url is not None else decode_base64(ref.image or "")


def _parse_one(body: _Handover) -> Source:
    """A JSON /predict body to its image (runs in a worker thread)."""
    raw = body.take()
    schemas.check_json_shape(raw, max_items=None)
    ref: schemas.ImageRef = _validate(raw, schemas.ImageRef)
    del raw
    return _source(ref)


def _parse_batch(body: _Handover, max_batch: int) -> list[Source]:
    """A JSON /predict/batch body to its images (runs in a worker thread).

    The items are counted before anything is built (400 in microseconds for a million tiny items), the
    body is freed once parsed, and each base64 string is freed once decoded: the peak stays near twice the
    body, as the admission's reservation assumes.
    """
    raw = body.take()
    schemas.check_json_shape(raw, max_items=max_batch)
    batch: schemas.BatchRequest = _validate(raw, schemas.BatchRequest)
    del raw
    refs, batch.images = batch.images, []
    sources: list[Source] = []
    for index in range(len(refs)):
        ref, refs[index] = refs[index], None  # type: ignore[call-overload]
        try:
            sources.append(_source(ref))
        except GatewayError as exc:
            raise _indexed(index, exc) from exc
    return sources


@contextlib.asynccontextmanager
async def _form(request: Request, services: Services, *, max_files: int) -> AsyncIterator[FormData]:
    """The multipart form, file parts spooled to /tmp within the tmp budget, else held in memory."""
    declared = content_length(request.scope)
    parser = MultiPartParser(request.headers, _chunks(request), max_files=max_files, max_fields=max_files + 8)
    # A body of known length that fits the tmp budget may spool; anything else stays in memory, where the
    # admission's reservation (or _chunks) has counted it already.
    spooled = declared is not None and services.tmp_budget.try_reserve(declared)
    if not spooled:
        parser.spool_max_size = sys.maxsize
    try:
        try:
            form = await parser.parse()
        except MultiPartException as exc:
            raise BadRequest(exc.message) from exc
        try:
            yield form
        finally:
            await form.close()
    finally:
        if spooled:
            assert declared is not None
            services.tmp_budget.release(declared)


async def read_one(request: Request, services: Services) -> Source:
    """The image of a POST /predict, as bytes or as a URL still to fetch."""
    media = media_type(request)
    if _is_json(media):
        body = await _json_body(request)
        return await anyio.to_thread.run_sync(_parse_one, body, limiter=services.parse_limiter)
    if media == "multipart/form-data":
        async with _form(request, services, max_files=1) as form:
            upload = form.get("file")
            if not isinstance(upload, UploadFile):
                raise BadRequest('multipart body needs a file field named "file"')
            return await upload.read()
    if media.startswith("image/") or media == "application/octet-stream":
        return await read_body(request)
    raise UnsupportedMediaType(f"content type {media or 'missing'}; send {_ACCEPTED}")


async def read_many(request: Request, services: Services) -> list[Source]:
    """The images of a POST /predict/batch."""
    max_batch = services.settings.max_batch_size
    media = media_type(request)
    if _is_json(media):
        body = await _json_body(request)
        return await anyio.to_thread.run_sync(_parse_batch, body, max_batch, limiter=services.parse_limiter)
    if media == "multipart/form-data":
        # The parser counts file parts as they start: the one past max_batch is refused before it is read.
        async with _form(request, services, max_files=max_batch) as form:
            uploads = [item for item in form.getlist("files") if isinstance(item, UploadFile)]
            if not uploads:
                raise BadRequest('multipart body needs one or more file fields named "files"')
            return [await upload.read() for upload in uploads]
    raise UnsupportedMediaType(
        f"content type {media or 'missing'}; send application/json or multipart/form-data"
    )


# --- the pipeline ---


def _indexed(index: int, exc: GatewayError) -> GatewayError:
    """The same error, its message naming the image of the batch it is about."""
    return type(exc)(f"images[{index}]: {exc.message}", headers=exc.headers)


async def _each(items: list[Any], work: Callable[[Any], Awaitable[T]], batch: bool) -> list[T]:
    """Runs `work` on every item concurrently; the first failure (by index) is raised once all are done."""
    results = await asyncio.gather(*(work(item) for item in items), return_exceptions=True)
    for index, result in enumerate(results):
        if isinstance(result, GatewayError):
            raise _indexed(index, result) if batch else result
        if isinstance(result, BaseException):
            raise result
    return results  # type: ignore[return-value]


async def _timed(stage: str, awaitable: Awaitable[T]) -> T:
    started = time.perf_counter()
    try:
        return await awaitable
    finally:
        elapsed = time.perf_counter() - started
        record_stage(stage, elapsed)
        metrics.STAGE_SECONDS.labels(stage=stage).observe(elapsed)


async def _unless_disconnected(request: Request, cancel: threading.Event, work: Awaitable[T]) -> T:
    """Awaits `work`, cancelling it (and setting `cancel` for worker threads) if the client disconnects.

    The body has been read by now, so the only message left to receive is the disconnect.
    """
    done: list[T] = []
    error: Exception | None = None
    async with anyio.create_task_group() as group:

        async def watch() -> None:
            while (await request.receive())["type"] != "http.disconnect":
                pass
            cancel.set()
            group.cancel_scope.cancel()

        group.start_soon(watch)
        try:
            done.append(await work)
        except Exception as exc:  # re-raised below, outside the task group (no ExceptionGroup)
            error = exc
        group.cancel_scope.cancel()
    if cancel.is_set():
        raise ClientDisconnect
    if error is not None:
        raise error
    return done[0]


async def classify(
    services: Services, request: Request, sources: list[Source], *, batch: bool
) -> tuple[list[dict[str, Any]], str]:
    """Fetch, decode, one PredictRequest; returns one classification per source and the model version."""
    cancel = threading.Event()
    return await _unless_disconnected(request, cancel, _classify(services, request, sources, batch, cancel))


async def _classify(
    services: Services, request: Request, sources: list[Source], batch: bool, cancel: threading.Event
) -> tuple[list[dict[str, Any]], str]:
    settings = services.settings
    memory = reservation(request.scope)
    # This request's share of the fetch pool: its URLs never hold more than FETCH_CONCURRENCY connections.
    fetches = anyio.CapacityLimiter(settings.fetch_concurrency)

    async def fetch_one(source: Source) -> bytes:
        if isinstance(source, bytes):
            return source
        async with fetches:
            return await fetch.fetch_image(
                source, settings=settings, client=services.http, account=lambda n: _charge(memory, n)
            )

    async def decode_one(blob: bytes) -> np.ndarray:
        try:
            probe = await anyio.to_thread.run_sync(preprocess.probe, blob, services.limits, cancel)
            try:
                # Room for this decode's peak first, then one of the decode threads: decodes queue here.
                await services.decode_budget.reserve(probe.cost)
                try:
                    return await anyio.to_thread.run_sync(
                        preprocess.finish, probe, limiter=services.decode_limiter
                    )
                finally:
                    services.decode_budget.release(probe.cost)
            finally:
                probe.close()
        except (preprocess.DecodeAbandoned, anyio.get_cancelled_exc_class()):
            metrics.DECODES_ABANDONED.inc()
            raise

    if any(isinstance(source, str) for source in sources):
        blobs: list[bytes] = await _timed("fetch", _each(sources, fetch_one, batch))
    else:
        blobs = [source for source in sources if isinstance(source, bytes)]
    arrays = await _timed("decode", _each(blobs, decode_one, batch))
    del blobs
    tensor = preprocess.stack(arrays) if len(arrays) > 1 else arrays[0][np.newaxis]
    metrics.BATCH_SIZE.observe(len(arrays))
    prediction = await _timed("serve", services.serving.predict(tensor))
    results = [classification(row) for row in prediction.probabilities]
    return results, prediction.model_version


def classification(probabilities: np.ndarray) -> dict[str, Any]:
    """One row of the model's output -> the answer's label, score and every label's probability."""
    best = int(np.argmax(probabilities))
    label = contract.LABELS[best]
    metrics.PREDICTIONS.labels(label=label).inc()
    return {
        "label": label,
        "score": round(float(probabilities[best]), 6),
        "predictions": {
            name: round(float(p), 6) for name, p in zip(contract.LABELS, probabilities, strict=True)
        },
    }
