"""Typed errors, each naming the HTTP status it means, and the one place they become HTTP responses.

Error bodies are `{"error": {"code": ..., "message": ...}}` (ARCHITECTURE.md). Messages are safe to show a
client: they never echo internal addresses, stack traces or upstream details beyond what helps the caller.
The middlewares (gateway.context, gateway.admission), the routes and the HTTP protocol (gateway.server) all
answer through `error_response` / `error_body` here.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

# Sent with answers given before the body was read to its end: the rest of it must not be parsed as the
# next request on the same connection.
CLOSE = {"Connection": "close"}


class GatewayError(Exception):
    """Base class: an error with an HTTP status and a stable machine-readable code."""

    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal"

    def __init__(self, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers or {}


# 4xx: the request is at fault.
class BadRequest(GatewayError):
    status = 400
    code = "bad_request"


class InvalidImage(GatewayError):
    """The bytes are not a decodable image of an allowed format."""

    status = 400
    code = "invalid_image"


class RequestTimeout(GatewayError):
    """The request (headers or body) did not arrive within its deadline or at the minimum rate."""

    status = 408
    code = "request_timeout"


class PayloadTooLarge(GatewayError):
    """Body, download, pixel count, decode memory or decode work over the configured cap."""

    status = 413
    code = "payload_too_large"


class UnsupportedMediaType(GatewayError):
    status = 415
    code = "unsupported_media_type"


class HeadersTooLarge(GatewayError):
    """The request line and headers are larger than MAX_HEADER_BYTES."""

    status = 431
    code = "headers_too_large"


class ForbiddenURL(GatewayError):
    """Scheme, host, port or resolved address not allowed (SSRF guard)."""

    status = 400
    code = "forbidden_url"


class FetchFailed(GatewayError):
    """The image URL could not be fetched: the remote side failed (or was too slow), not the gateway."""

    status = 422
    code = "fetch_failed"


# 5xx: TF Serving is at fault or unreachable, or the gateway is full.
class UpstreamUnavailable(GatewayError):
    """TF Serving cannot be reached (or has no AVAILABLE model); clients should retry later."""

    status = 503
    code = "upstream_unavailable"


class Overloaded(GatewayError):
    """The gateway is at MAX_IN_FLIGHT or its memory budget; clients should retry later."""

    status = 503
    code = "overloaded"


class UpstreamTimeout(GatewayError):
    status = 504
    code = "upstream_timeout"


class ContractMismatch(GatewayError):
    """TF Serving answered, but its model does not match the gateway's contract."""

    status = 502
    code = "contract_mismatch"


class UpstreamError(GatewayError):
    """TF Serving answered with an error the gateway cannot attribute to the request."""

    status = 502
    code = "upstream_error"


# --- errors -> responses ---

_STATUS_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: PayloadTooLarge.code,
}


def error_body(code: str, message: str) -> bytes:
    return json.dumps({"error": {"code": code, "message": message}}).encode()


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)


def response_for(exc: GatewayError) -> JSONResponse:
    return error_response(exc.status, exc.code, exc.message, exc.headers)


def validation_message(errors: Any) -> str:
    """pydantic's errors as one short line (the first five), without the `body` location prefix."""
    parts = []
    for error in list(errors)[:5]:
        location = ".".join(str(item) for item in error.get("loc", ()) if item != "body")
        parts.append(f"{location}: {error.get('msg')}" if location else str(error.get("msg")))
    return "; ".join(parts) or "invalid request"


async def _on_gateway_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, GatewayError)
    return response_for(exc)


async def _on_validation_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError | ValidationError)
    return error_response(400, BadRequest.code, validation_message(exc.errors()))


async def _on_http_exception(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    code = _STATUS_CODES.get(exc.status_code, f"http_{exc.status_code}")
    return error_response(exc.status_code, code, str(exc.detail), dict(exc.headers or {}))


def add_exception_handlers(app: FastAPI) -> None:
    app.add_exception_handler(GatewayError, _on_gateway_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_exception)
