"""The HTTP API (ARCHITECTURE.md): prediction, health, readiness, model and metrics routes, and their
OpenAPI description. Each route reads, hands over to gateway.pipeline, and answers; errors are raised as
typed GatewayErrors and answered by the handlers in gateway.errors."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from gateway import contract, schemas
from gateway.admission import BATCH_PATH, PREDICT_PATH
from gateway.pipeline import Services, classify, read_many, read_one


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]

_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": schemas.ErrorResponse, "description": description}
    for status, description in {
        400: "Bad input: not an image, truncated, bad JSON/base64, forbidden URL, too many images.",
        408: "The body did not arrive within BODY_TIMEOUT_S or at BODY_MIN_RATE.",
        413: "Body, download, pixel count, decode memory or JPEG scans over the cap.",
        415: "Content type or image format not accepted.",
        422: "The image URL could not be fetched.",
        502: "TF Serving answered an error, or its model does not match the gateway's contract.",
        503: "TF Serving unreachable, or the gateway full (MAX_IN_FLIGHT, memory budget); see Retry-After.",
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


def metrics_response() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


async def prometheus_metrics() -> Response:
    """Prometheus text format."""
    return metrics_response()


router = APIRouter()


@router.post(
    PREDICT_PATH, response_model=schemas.PredictResponse, responses=_ERRORS, openapi_extra=_PREDICT_BODY
)
async def predict(request: Request, services: ServicesDep) -> dict[str, Any]:
    """Classify one image: JSON {"url"} or {"image": base64}, multipart `file`, or an image/* body."""
    source = await read_one(request, services)
    results, version = await classify(services, request, [source], batch=False)
    return {**results[0], "model": {"name": services.settings.model_name, "version": version}}


@router.post(BATCH_PATH, response_model=schemas.BatchResponse, responses=_ERRORS, openapi_extra=_BATCH_BODY)
async def predict_batch(request: Request, services: ServicesDep) -> dict[str, Any]:
    """Classify up to MAX_BATCH_SIZE images in one PredictRequest.

    Every image is fetched and decoded before TF Serving is asked; one bad image fails the whole request
    with a 4xx whose message names it (`images[3]: ...`), so a client never gets a partial answer.
    """
    sources = await read_many(request, services)
    results, version = await classify(services, request, sources, batch=True)
    return {"results": results, "model": {"name": services.settings.model_name, "version": version}}


@router.get("/healthz", response_model=schemas.Health)
async def healthz() -> dict[str, str]:
    """Liveness: the process serves HTTP. Never calls TF Serving."""
    return {"status": "ok"}


@router.get("/readyz", response_model=schemas.Readiness, responses={503: {"model": schemas.Readiness}})
async def readyz(services: ServicesDep) -> Response:
    """Readiness: TF Serving has the model AVAILABLE and its signature matches the gateway's contract."""
    status = await services.readiness.status()
    body: dict[str, Any] = {"status": "ready" if status.ready else "not_ready", "reason": status.reason}
    if status.model_version is not None:
        body["model"] = {"name": services.settings.model_name, "version": status.model_version}
    return JSONResponse(body, status_code=200 if status.ready else 503)


@router.get("/model", response_model=schemas.ModelInfo)
async def model(services: ServicesDep) -> dict[str, Any]:
    """The model the gateway serves: name, version (from TF Serving), labels and input spec."""
    status = await services.readiness.status()
    return {
        "name": services.settings.model_name,
        "version": status.model_version,
        "labels": list(contract.LABELS),
        "input": contract.input_spec(),
        "max_batch_size": services.settings.max_batch_size,
        "allowed_formats": sorted(services.settings.allowed_formats),
    }


# Mounted by create_app only when METRICS_ON_MAIN_PORT is true; the metrics listener has its own copy.
metrics_router = APIRouter()
metrics_router.add_api_route("/metrics", prometheus_metrics, methods=["GET"], response_class=Response)
