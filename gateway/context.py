"""The outermost middleware: request id, stage timings, the access line, request metrics, last-resort errors.

Pure ASGI (no BaseHTTPMiddleware: it would buffer and copy every body). Whatever happens inside (an error
that escaped every handler, a client that vanished mid-upload, cancellation) ends here with one access line
and one `gateway_requests_total` sample.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from starlette.requests import ClientDisconnect

from gateway import metrics
from gateway.errors import GatewayError, error_response, response_for
from gateway.log import REQUEST_ID, STAGES, request_id_from

log = logging.getLogger(__name__)
access_log = logging.getLogger("gateway.access")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# Probes and scrapes are logged at DEBUG: at INFO they would drown the request lines.
_QUIET_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
# Status recorded for a client that went away before its answer: nginx's "client closed request".
CLIENT_CLOSED = 499


def header(scope: Scope, name: bytes) -> str | None:
    """One request header (latin-1, as HTTP sends them), or None."""
    for key, value in scope["headers"]:
        if key.lower() == name:
            return str(value.decode("latin-1"))
    return None


class RequestContextMiddleware:
    """`fixed_paths` are route labels even when no route ran (a request refused before routing)."""

    def __init__(self, app: ASGIApp, fixed_paths: frozenset[str] = frozenset()) -> None:
        self.app = app
        self.fixed_paths = fixed_paths

    def route_label(self, scope: Scope) -> str:
        """The matched route template (`/predict`), never a raw path, so scanners cannot blow up the
        metrics' cardinality."""
        route = getattr(scope.get("route"), "path", None)
        if route is None:
            return str(scope["path"]) if scope["path"] in self.fixed_paths else "other"
        return str(route)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = request_id_from(header(scope, b"x-request-id"))
        id_token = REQUEST_ID.set(request_id)
        stages: dict[str, float] = {}
        stages_token = STAGES.set(stages)
        status = 500
        response_started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status = message["status"]
                response_started = True
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except ClientDisconnect:
            # Nobody to answer and nothing wrong with the gateway, so no traceback: a flood of aborted
            # uploads must not flood the logs.
            status = CLIENT_CLOSED
            log.info("client disconnected before the request was read")
        except GatewayError as exc:
            # Raised outside any route (an admission or body-limit answer from a layer below).
            if not response_started:
                await response_for(exc)(scope, receive, send_with_id)
        except Exception:
            log.exception("unhandled error")
            if not response_started:
                await error_response(500, "internal", "internal error")(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            route = self.route_label(scope)
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
