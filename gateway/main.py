"""The app factory: `create_app(settings)` builds the gateway's FastAPI app; nothing happens at import.

uvicorn calls it in factory mode (gateway.server; `uvicorn --factory gateway.main:create_app` works too).
The app is the routes (gateway.routes) behind three small ASGI middlewares, outermost first:
request context (id, access line, metrics; gateway.context), body limits (size, read deadlines;
gateway.limits) and admission (in-flight slots, memory budget; gateway.admission). The lifespan makes the
shared clients (TF Serving channel, fetch client, readiness cache) and hands them to the routes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway import __version__, demo, fetch, preprocess
from gateway.admission import BATCH_PATH, PREDICTION_PATHS, AdmissionMiddleware
from gateway.budget import ByteBudget
from gateway.context import RequestContextMiddleware
from gateway.errors import add_exception_handlers, error_response
from gateway.limits import BodyLimitMiddleware
from gateway.pipeline import Services
from gateway.routes import metrics_response, metrics_router, router
from gateway.settings import Settings
from gateway.tfserving import Readiness, TFServingClient

log = logging.getLogger(__name__)


def decode_limits(settings: Settings) -> preprocess.Limits:
    return preprocess.Limits(
        allowed_formats=settings.allowed_formats,
        max_pixels=settings.max_pixels,
        max_decode_bytes=settings.decode_budget_bytes,
        max_jpeg_scans=settings.max_jpeg_scans,
    )


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    preprocess.configure_pillow(settings.max_pixels)
    serving = TFServingClient(settings)
    # No upstream call can fail startup: the channel connects in the background, and /readyz reports.
    serving.connect()
    http = fetch.make_http_client(settings)
    readiness = Readiness(serving, settings.readiness_ttl_s)
    app.state.services = Services(
        settings=settings,
        serving=serving,
        http=http,
        readiness=readiness,
        decode_limiter=anyio.CapacityLimiter(settings.decode_workers),
        parse_limiter=anyio.CapacityLimiter(1),
        decode_budget=app.state.decode_budget,
        tmp_budget=app.state.tmp_budget,
        limits=decode_limits(settings),
    )
    first_check = asyncio.create_task(readiness.status())
    log.info(
        "gateway %s serving; TF Serving at %s, model %s, %d decode threads; memory limit %d MiB:"
        " %d MiB for request bodies, %d MiB for decoding (MAX_DECODE_BYTES)",
        __version__,
        settings.tf_serving_host,
        settings.model_name,
        settings.decode_workers,
        settings.memory_limit >> 20,
        settings.memory_budget_bytes >> 20,
        settings.decode_budget_bytes >> 20,
    )
    try:
        yield
    finally:
        first_check.cancel()
        await http.aclose()
        await serving.close()


def create_app(settings: Settings | None = None) -> FastAPI:
    """The gateway app; `settings` defaults to the environment's (pydantic-settings)."""
    settings = settings or Settings()
    docs = settings.docs_enabled
    routes = [
        *router.routes,
        *demo.router.routes,
        *(metrics_router.routes if settings.metrics_on_main_port else []),
    ]
    app = FastAPI(
        # The routers' routes as the app's own (include_router would nest them), so `app.routes` lists
        # every path the gateway serves.
        routes=routes,
        title="species-classifier gateway",
        version=__version__,
        summary="Camera-trap images in, species labels out (TF Serving behind).",
        lifespan=lifespan,
        docs_url="/docs" if docs else None,
        redoc_url="/redoc" if docs else None,
        openapi_url="/openapi.json" if docs else None,
    )
    app.state.settings = settings
    app.state.decode_budget = ByteBudget("decode", settings.decode_budget_bytes)
    app.state.tmp_budget = ByteBudget("tmp", settings.tmp_budget_bytes)
    memory = ByteBudget("memory", settings.memory_budget_bytes)
    add_exception_handlers(app)
    # add_middleware wraps what was added before: the last one added is the outermost.
    app.add_middleware(
        AdmissionMiddleware, limit=settings.max_in_flight, memory=memory, retry_after_s=settings.retry_after_s
    )
    app.add_middleware(
        BodyLimitMiddleware,
        caps={BATCH_PATH: settings.max_batch_body_bytes},
        default_cap=settings.max_body_bytes,
        timeout_s=settings.body_timeout_s,
        min_rate=settings.body_min_rate,
    )
    app.add_middleware(RequestContextMiddleware, fixed_paths=PREDICTION_PATHS)
    return app


async def _metrics(_: Request) -> Response:
    return metrics_response()


async def _not_found(_: Request, exc: Exception) -> Response:
    return error_response(404, "not_found", "only GET /metrics is served on this port")


def create_metrics_app() -> Starlette:
    """The METRICS_PORT listener's app: GET /metrics and nothing else (404 in the gateway's error format)."""
    return Starlette(
        routes=[Route("/metrics", _metrics, methods=["GET"])],
        exception_handlers={404: _not_found, 405: _not_found},
    )
