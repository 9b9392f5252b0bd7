"""Body limits, for every path: a size cap (413) and read deadlines (408), enforced on `receive`.

A client that sends headers and then trickles (or stops) its body would otherwise hold its admission slot,
its memory reservation and a socket for as long as it likes. Here the whole body must arrive within
BODY_TIMEOUT_S of the request's start and, after a grace period, at BODY_MIN_RATE bytes per second on
average; the reading route then gets RequestTimeout (408, connection closed) and everything the request
held is released. Headers have their own deadline and size cap in the HTTP protocol (gateway.server).
"""

from __future__ import annotations

import time
from collections.abc import Mapping

import anyio

from gateway import metrics
from gateway.context import ASGIApp, Message, Receive, Scope, Send, header
from gateway.errors import CLOSE, PayloadTooLarge, RequestTimeout, response_for

# A body may start slowly (TCP slow start, a client still reading its file); the rate counts after this.
BODY_RATE_GRACE_S = 5.0
# Set in the request's scope state when its body was too slow: the HTTP protocol then closes the connection
# at once after the 408, without the lingering close it gives other early answers (gateway.server).
CUT_OFF = "cut_off"


def content_length(scope: Scope) -> int | None:
    value = header(scope, b"content-length")
    return int(value) if value is not None and value.strip().isdigit() else None


def too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"the request body is larger than {limit} bytes", headers=CLOSE)


class BodyLimitMiddleware:
    """`caps` maps a path to its body cap; other paths get `default_cap`."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        caps: Mapping[str, int],
        default_cap: int,
        timeout_s: float,
        min_rate: int,
    ) -> None:
        self.app = app
        self.caps = caps
        self.default_cap = default_cap
        self.timeout_s = timeout_s
        self.min_rate = min_rate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        cap = self.caps.get(scope["path"], self.default_cap)
        declared = content_length(scope)
        if declared is not None and declared > cap:
            # Refused from its Content-Length: not one byte of the body is read.
            metrics.REFUSED.labels(reason="body_too_large").inc()
            await response_for(too_large(cap))(scope, receive, send)
            return
        limited = LimitedReceive(receive, cap, self.timeout_s, self.min_rate)
        has_body = declared != 0 and (declared is not None or header(scope, b"transfer-encoding") is not None)

        async def send_closing_early(message: Message) -> None:
            # An answer given before the body was read to its end (a 404, a refusal): close the
            # connection, or its client could keep trickling the rest of the body into it for ever.
            if message["type"] == "http.response.start" and has_body and not limited.complete:
                if limited.timed_out:
                    scope.setdefault("state", {})[CUT_OFF] = True
                headers = list(message.get("headers", []))
                if not any(name.lower() == b"connection" for name, _ in headers):
                    message["headers"] = [*headers, (b"connection", b"close")]
            await send(message)

        await self.app(scope, limited, send_closing_early)


class LimitedReceive:
    """`receive` with the cap and deadlines applied until the body's last chunk; after it (a route waiting
    for the client to disconnect), plain `receive`."""

    def __init__(self, receive: Receive, cap: int, timeout_s: float, min_rate: int) -> None:
        self._receive = receive
        self.cap = cap
        self.timeout_s = timeout_s
        self.min_rate = min_rate
        self.started = time.monotonic()
        self.received = 0
        self.complete = False
        self.timed_out = False

    async def __call__(self) -> Message:
        if self.complete:
            return await self._receive()
        whole = self.started + self.timeout_s
        deadline, reason = whole, "body_timeout"
        if self.min_rate:
            # Received bytes buy time: the next chunk is due when the average would fall below the rate.
            paced = self.started + BODY_RATE_GRACE_S + self.received / self.min_rate
            if paced < whole:
                deadline, reason = paced, "body_too_slow"
        try:
            with anyio.fail_after(max(deadline - time.monotonic(), 0)):
                message = await self._receive()
        except TimeoutError:
            self.timed_out = True
            metrics.REFUSED.labels(reason=reason).inc()
            raise self._timeout(reason) from None
        if message["type"] == "http.request":
            self.received += len(message.get("body", b""))
            if self.received > self.cap:
                metrics.REFUSED.labels(reason="body_too_large").inc()
                raise too_large(self.cap)
            self.complete = not message.get("more_body", False)
        return message

    def _timeout(self, reason: str) -> RequestTimeout:
        if reason == "body_timeout":
            message = f"the request body did not arrive within {self.timeout_s:g} s (BODY_TIMEOUT_S)"
        else:
            message = (
                f"the request body arrived slower than {self.min_rate} bytes/s (BODY_MIN_RATE);"
                f" {self.received} bytes came in {time.monotonic() - self.started:.1f} s"
            )
        return RequestTimeout(message, headers=CLOSE)
