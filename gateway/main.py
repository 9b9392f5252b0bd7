"""The FastAPI app: routes, lifespan (shared clients), and the one place errors become HTTP responses.

Transport stays thin: read the request into image bytes (or URLs), fetch, decode in worker threads,
one PredictRequest, map probabilities to labels. Everything TF Serving-specific is in
gateway.serving_client, every image operation in gateway.preprocess.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import functools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any

import anyio
import httpx
import numpy as np
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ValidationError
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from gateway import __version__, contract, demo, fetch, metrics, preprocess, schemas
from gateway.errors import (
    BadRequest,
    GatewayError,
    InvalidImage,
    Overloaded,
    PayloadTooLarge,
    UnsupportedMediaType,
)
from gateway.log import REQUEST_ID, STAGES, configure_logging, record_stage, request_id_from
from gateway.serving_client import Readiness, ServingClient
from gateway.settings import Settings

log = logging.getLogger(__name__)
access_log = logging.getLogger("gateway.access")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

BATCH_PATH = "/predict/batch"
# Only these read (and buffer) image bodies, so only these count against MAX_IN_FLIGHT; probes, scrapes and
# /model must keep answering while the gateway is full.
_ADMITTED_PATHS = frozenset({"/predict", BATCH_PATH})
# Probes and scrapes are logged at DEBUG: at INFO they would drown the request lines.
_QUIET_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
_STATUS_CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}


# --- errors -> responses (the only place) ---


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)


def gateway_error_response(exc: GatewayError) -> JSONResponse:
    return error_response(exc.status, exc.code, exc.message, exc.headers)


async def _on_gateway_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, GatewayError)
    return gateway_error_response(exc)


async def _on_validation_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError | ValidationError)
    return error_response(400, BadRequest.code, _validation_message(exc.errors()))


async def _on_http_exception(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    code = _STATUS_CODES.get(exc.status_code, f"http_{exc.status_code}")
    return error_response(exc.status_code, code, str(exc.detail), dict(exc.headers or {}))


def _validation_message(errors: Any) -> str:
    parts = []
    for error in list(errors)[:5]:
        location = ".".join(str(item) for item in error.get("loc", ()) if item != "body")
        parts.append(f"{location}: {error.get('msg')}" if location else str(error.get("msg")))
    return "; ".join(parts) or "invalid request"


# --- per-request context: id, timings, access log, metrics, body cap, admission, last-resort 500 ---


class AdmissionLimit:
    """At most `limit` prediction requests at once; one more is refused, never queued.

    Refusing at once (instead of waiting for a slot) keeps a flood from holding sockets and, soon, bodies in
    memory. uvicorn's --limit-concurrency would do this too, but for every path: probes would fail under load
    and Kubernetes would restart a pod that is merely busy.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_flight = 0

    def try_acquire(self) -> bool:
        # No await between the check and the increment: atomic on the event loop's single thread.
        if self.in_flight >= self.limit:
            return False
        self.in_flight += 1
        metrics.IN_FLIGHT.inc()
        return True

    def release(self) -> None:
        self.in_flight -= 1
        metrics.IN_FLIGHT.dec()


class RequestContextMiddleware:
    """Pure ASGI middleware (no BaseHTTPMiddleware: it would buffer and copy every body)."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings
        self.admission = AdmissionLimit(settings.max_in_flight)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        headers = {key.decode("latin-1").lower(): value.decode("latin-1") for key, value in scope["headers"]}
        request_id = request_id_from(headers.get("x-request-id"))
        id_token = REQUEST_ID.set(request_id)
        stages: dict[str, float] = {}
        stages_token = STAGES.set(stages)
        status = 500
        response_started = False
        route = "other"

        async def send_with_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status = message["status"]
                response_started = True
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            limit = self._body_limit(scope["path"])
            declared = headers.get("content-length", "")
            if declared.isdigit() and int(declared) > limit:
                response: Response = gateway_error_response(_too_large(limit))
                await response(scope, receive, send_with_id)
            elif scope["path"] not in _ADMITTED_PATHS:
                await self.app(scope, _capped(receive, limit), send_with_id)
            elif self.admission.try_acquire():
                try:
                    await self.app(scope, _capped(receive, limit), send_with_id)
                finally:
                    # Errors, cancellation and client disconnects all end here: a slot never leaks.
                    self.admission.release()
            else:
                # Before the body is read: a refused request costs no more than its headers. The access line
                # and gateway_requests_rejected_total record it; no extra log line per refusal in a flood.
                route = scope["path"]  # one of two fixed templates, safe as a metric label
                metrics.REJECTED.labels(route=route).inc()
                await gateway_error_response(self._overloaded())(scope, receive, send_with_id)
        except ClientDisconnect:
            # The client went away mid-upload: nobody to answer and nothing wrong with the gateway, so no
            # traceback (a flood of aborted uploads must not flood the logs). 499 is nginx's "client closed".
            status = 499
            log.info("client disconnected before the request was read")
        except Exception:
            log.exception("unhandled error")
            if not response_started:
                await error_response(500, "internal", "internal error")(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            route = getattr(scope.get("route"), "path", route)
            metrics.REQUESTS.labels(route=route, method=scope["method"], status=str(status)).inc()
            metrics.REQUEST_SECONDS.labels(route=route).observe(elapsed)
            timings = " ".join(f"{stage}_ms={seconds * 1000:.1f}" for stage, seconds in stages.items())
            access_log.log(
                logging.DEBUG if scope["path"] in _QUIET_PATHS else logging.INFO,
                "%s %s %d %.1fms %s",
                scope["method"],
                scope["path"],
                status,
                elapsed * 1000,
                timings,
                extra={
                    "method": scope["method"],
                    "path": scope["path"],
                    "status": status,
                    "duration_ms": round(elapsed * 1000, 2),
                    "stages_ms": {stage: round(seconds * 1000, 2) for stage, seconds in stages.items()},
                },
            )
            STAGES.reset(stages_token)
            REQUEST_ID.reset(id_token)

    def _body_limit(self, path: str) -> int:
        return self.settings.max_batch_body_bytes if path == BATCH_PATH else self.settings.max_body_bytes

    def _overloaded(self) -> Overloaded:
        return Overloaded(
            f"the gateway is handling {self.admission.limit} prediction requests already (MAX_IN_FLIGHT);"
            " retry later",
            headers={"Retry-After": str(self.settings.retry_after_s)},
        )


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"the request body is larger than {limit} bytes")


def _capped(receive: Receive, limit: int) -> Receive:
    """Counts body bytes as they arrive; past `limit` the reading route gets PayloadTooLarge (413)."""
    received = 0

    async def capped_receive() -> Message:
        nonlocal received
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                raise _too_large(limit)
        return message

    return capped_receive


# --- shared state, created in the lifespan ---


@dataclass
class Gateway:
    settings: Settings
    serving: ServingClient
    http: httpx.AsyncClient
    readiness: Readiness
    decode_limiter: anyio.CapacityLimiter


def get_gateway(request: Request) -> Gateway:
    gateway: Gateway = request.app.state.gateway
    return gateway


GatewayDep = Annotated[Gateway, Depends(get_gateway)]


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    preprocess.configure_pillow(settings.max_pixels)
    serving = ServingClient(settings)
    # No upstream call can fail startup: the channel connects in the background, and /readyz reports.
    serving.connect()
    http = fetch.make_http_client(settings)
    readiness = Readiness(serving, settings.readiness_ttl_s)
    app.state.gateway = Gateway(
        settings, serving, http, readiness, anyio.CapacityLimiter(settings.decode_workers)
    )
    first_check = asyncio.create_task(readiness.status())
    log.info(
        "gateway %s serving; TF Serving at %s, model %s, %d decode threads",
        __version__,
        settings.tf_serving_host,
        settings.model_name,
        settings.decode_workers,
    )
    try:
        yield
    finally:
        first_check.cancel()
        await http.aclose()
        await serving.close()


# --- reading requests ---


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


def _parse_json(body: bytes, model: type[BaseModel]) -> Any:
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        if any(error["type"] == "json_invalid" for error in exc.errors()):
            raise BadRequest("the body is not valid JSON") from exc
        raise BadRequest(_validation_message(exc.errors())) from exc


def decode_base64(text: str) -> bytes:
    """Standard base64, whitespace and a `data:...;base64,` prefix tolerated."""
    if text.startswith("data:"):
        text = text.partition(",")[2]
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidImage('"image" is not valid base64') from exc


def _from_ref(ref: schemas.ImageRef) -> bytes | str:
    return ref.url if ref.url is not None else decode_base64(ref.image or "")


_ACCEPTED = "application/json, multipart/form-data, or an image/* body"


async def read_one(request: Request) -> bytes | str:
    """The image of a POST /predict, as bytes or as a URL still to fetch."""
    media = _media_type(request)
    if media == "application/json" or media.endswith("+json"):
        return _from_ref(_parse_json(await request.body(), schemas.ImageRef))
    if media == "multipart/form-data":
        async with request.form(max_files=1, max_fields=8) as form:
            upload = form.get("file")
            if not isinstance(upload, UploadFile):
                raise BadRequest('multipart body needs a file field named "file"')
            return await upload.read()
    if media.startswith("image/") or media == "application/octet-stream":
        return await request.body()
    raise UnsupportedMediaType(f"content type {media or 'missing'}; send {_ACCEPTED}")


async def read_many(request: Request, max_batch: int) -> list[bytes | str]:
    """The images of a POST /predict/batch."""
    media = _media_type(request)
    if media == "application/json" or media.endswith("+json"):
        batch: schemas.BatchRequest = _parse_json(await request.body(), schemas.BatchRequest)
        _check_batch_size(len(batch.images), max_batch)
        return [_from_ref(ref) for ref in batch.images]
    if media == "multipart/form-data":
        async with request.form(max_files=max_batch, max_fields=max_batch + 8) as form:
            uploads = [item for item in form.getlist("files") if isinstance(item, UploadFile)]
            if not uploads:
                raise BadRequest('multipart body needs one or more file fields named "files"')
            _check_batch_size(len(uploads), max_batch)
            return [await upload.read() for upload in uploads]
    raise UnsupportedMediaType(
        f"content type {media or 'missing'}; send application/json or multipart/form-data"
    )


def _check_batch_size(count: int, max_batch: int) -> None:
    if count > max_batch:
        raise BadRequest(f"the batch has {count} images; at most {max_batch} are accepted (MAX_BATCH_SIZE)")


# --- the pipeline ---


def _indexed(index: int, exc: GatewayError) -> GatewayError:
    """The same error, its message naming the image of the batch it is about."""
    return type(exc)(f"images[{index}]: {exc.message}", headers=exc.headers)


async def _each(items: list[Any], work: Callable[[Any], Awaitable[Any]], batch: bool) -> list[Any]:
    """Runs `work` on every item concurrently; the first failure (by index) is raised once all are done."""
    results = await asyncio.gather(*(work(item) for item in items), return_exceptions=True)
    for index, result in enumerate(results):
        if isinstance(result, GatewayError):
            raise _indexed(index, result) if batch else result
        if isinstance(result, BaseException):
            raise result
    return results


async def _timed(stage: str, awaitable: Awaitable[Any]) -> Any:
    started = time.perf_counter()
    try:
        return await awaitable
    finally:
        elapsed = time.perf_counter() - started
        record_stage(stage, elapsed)
        metrics.STAGE_SECONDS.labels(stage=stage).observe(elapsed)


async def classify(
    gateway: Gateway, sources: list[bytes | str], *, batch: bool
) -> tuple[list[dict[str, Any]], str]:
    """Fetch, decode, one PredictRequest; returns one classification per source and the model version."""
    settings = gateway.settings

    async def fetch_one(source: bytes | str) -> bytes:
        if isinstance(source, bytes):
            return source
        return await fetch.fetch_image(source, settings=settings, client=gateway.http)

    if any(isinstance(source, str) for source in sources):
        blobs: list[bytes] = await _timed("fetch", _each(sources, fetch_one, batch))
    else:
        blobs = [source for source in sources if isinstance(source, bytes)]

    decode = functools.partial(
        preprocess.decode, allowed_formats=settings.allowed_formats, max_pixels=settings.max_pixels
    )

    async def decode_one(blob: bytes) -> np.ndarray:
        # Worker threads, at most decode_workers at once: the event loop never blocks on Pillow, and a
        # flood of uploads queues here instead of decoding everything at once.
        return await anyio.to_thread.run_sync(decode, blob, limiter=gateway.decode_limiter)

    arrays: list[np.ndarray] = await _timed("decode", _each(blobs, decode_one, batch))
    tensor = preprocess.stack(arrays) if len(arrays) > 1 else arrays[0][np.newaxis]
    metrics.BATCH_SIZE.observe(len(arrays))
    prediction = await _timed("serve", gateway.serving.predict(tensor))
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


# --- the app ---

_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": schemas.ErrorResponse, "description": description}
    for status, description in {
        400: "Bad input: not an image, truncated, bad JSON/base64, forbidden URL, too many images.",
        413: "Body, download or pixel count over the cap.",
        415: "Content type or image format not accepted.",
        422: "The image URL could not be fetched.",
        502: "TF Serving answered an error, or its model does not match the gateway's contract.",
        503: "TF Serving unreachable, or MAX_IN_FLIGHT requests already in flight; see Retry-After.",
        504: "TF Serving did not answer within the deadline.",
    }.items()
}

_FILE_SCHEMA = {"type": "string", "format": "binary"}
_PREDICT_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": schemas.inline_schema(schemas.ImageRef)},
            "multipart/form-data": {
                "schema": {"type": "object", "properties": {"file": _FILE_SCHEMA}, "required": ["file"]}
            },
            "image/*": {"schema": _FILE_SCHEMA},
        },
    }
}
_BATCH_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": schemas.inline_schema(schemas.BatchRequest)},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"files": {"type": "array", "items": _FILE_SCHEMA}},
                    "required": ["files"],
                }
            },
        },
    }
}


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    configure_logging(settings.log_level_number, settings.log_format)
    app = FastAPI(
        title="species-classifier gateway",
        version=__version__,
        summary="Camera-trap images in, species labels out (TF Serving behind).",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.add_exception_handler(GatewayError, _on_gateway_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_exception)
    app.add_middleware(RequestContextMiddleware, settings=settings)
    app.include_router(demo.router)

    @app.post(
        "/predict", response_model=schemas.PredictResponse, responses=_ERRORS, openapi_extra=_PREDICT_BODY
    )
    async def predict(request: Request, gateway: GatewayDep) -> dict[str, Any]:
        """Classify one image: JSON {"url"} or {"image": base64}, multipart `file`, or an image/* body."""
        source = await read_one(request)
        results, version = await classify(gateway, [source], batch=False)
        return {**results[0], "model": {"name": gateway.settings.model_name, "version": version}}

    @app.post(BATCH_PATH, response_model=schemas.BatchResponse, responses=_ERRORS, openapi_extra=_BATCH_BODY)
    async def predict_batch(request: Request, gateway: GatewayDep) -> dict[str, Any]:
        """Classify up to MAX_BATCH_SIZE images in one PredictRequest.

        Every image is fetched and decoded before TF Serving is asked; one bad image fails the whole request
        with a 4xx whose message names it (`images[3]: ...`), so a client never gets a partial answer.
        """
        sources = await read_many(request, gateway.settings.max_batch_size)
        results, version = await classify(gateway, sources, batch=True)
        return {"results": results, "model": {"name": gateway.settings.model_name, "version": version}}

    @app.get("/healthz", response_model=schemas.Health)
    async def healthz() -> dict[str, str]:
        """Liveness: the process serves HTTP. Never calls TF Serving."""
        return {"status": "ok"}

    @app.get("/readyz", response_model=schemas.Readiness, responses={503: {"model": schemas.Readiness}})
    async def readyz(gateway: GatewayDep) -> Response:
        """Readiness: TF Serving has the model AVAILABLE and its signature matches the gateway's contract."""
        status = await gateway.readiness.status()
        body: dict[str, Any] = {"status": "ready" if status.ready else "not_ready", "reason": status.reason}
        if status.model_version is not None:
            body["model"] = {"name": gateway.settings.model_name, "version": status.model_version}
        return JSONResponse(body, status_code=200 if status.ready else 503)

    @app.get("/model", response_model=schemas.ModelInfo)
    async def model(gateway: GatewayDep) -> dict[str, Any]:
        """The model the gateway serves: name, version (from TF Serving), labels and input spec."""
        status = await gateway.readiness.status()
        return {
            "name": gateway.settings.model_name,
            "version": status.model_version,
            "labels": list(contract.LABELS),
            "input": contract.input_spec(),
            "max_batch_size": gateway.settings.max_batch_size,
            "allowed_formats": sorted(gateway.settings.allowed_formats),
        }

    @app.get("/metrics", response_class=Response)
    async def prometheus_metrics() -> Response:
        """Prometheus text format."""
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return app


app = create_app()
