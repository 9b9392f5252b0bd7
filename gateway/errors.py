"""Typed errors. Each says which HTTP status it means; `gateway.main` maps them to responses in one place.

Error bodies are `{"error": {"code": ..., "message": ...}}` (ARCHITECTURE.md). Messages are safe to show a
client: they never echo internal addresses, stack traces or upstream details beyond what helps the caller.
"""

from __future__ import annotations

from typing import ClassVar


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


class UnsupportedMediaType(GatewayError):
    status = 415
    code = "unsupported_media_type"


class PayloadTooLarge(GatewayError):
    """Body, download or pixel count over the configured cap."""

    status = 413
    code = "payload_too_large"


class ForbiddenURL(GatewayError):
    """Scheme, host or resolved address not allowed (SSRF guard)."""

    status = 400
    code = "forbidden_url"


class FetchFailed(GatewayError):
    """The image URL could not be fetched: the remote side failed, not the gateway."""

    status = 422
    code = "fetch_failed"


class FetchTimeout(GatewayError):
    status = 422
    code = "fetch_timeout"


# 5xx: TF Serving is at fault or unreachable, or the gateway is full.
class UpstreamUnavailable(GatewayError):
    """TF Serving cannot be reached (or has no AVAILABLE model); clients should retry later."""

    status = 503
    code = "upstream_unavailable"


class Overloaded(GatewayError):
    """The gateway already handles MAX_IN_FLIGHT prediction requests; clients should retry later."""

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
