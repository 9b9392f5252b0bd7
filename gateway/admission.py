"""Admission control for the prediction routes: a slot and memory for the body, or 503 before reading it.

Two bounds, both checked from the headers alone, so a refused request costs no more than its headers:
- at most MAX_IN_FLIGHT prediction requests at once (uvicorn's --limit-concurrency would count every path,
  and probes failing under load would make Kubernetes restart a pod that is merely busy);
- the memory budget: a request reserves MEMORY_PER_BODY_BYTE bytes per byte of its Content-Length (the body,
  plus its parsed form: a JSON string or a multipart part, then the decoded bytes), and more as it reads
  a body of unknown length or fetches images (gateway.pipeline). What does not fit gets 503 with
  Retry-After; a body that could never fit, even into an idle gateway, gets 413.
Refusing at once, never queueing, keeps a flood from holding sockets and, soon, bodies in memory. Health,
readiness, metrics and model endpoints never pass through here.
"""

from __future__ import annotations

from gateway import metrics
from gateway.budget import ByteBudget, Reservation
from gateway.context import ASGIApp, Receive, Scope, Send
from gateway.errors import Overloaded, PayloadTooLarge, response_for
from gateway.limits import content_length

PREDICT_PATH = "/predict"
BATCH_PATH = "/predict/batch"
PREDICTION_PATHS = frozenset({PREDICT_PATH, BATCH_PATH})
# Measured peak per body byte: a JSON body and its decoded strings, a multipart part and the bytes read
# from it, a raw body's chunks and their join (tests/gateway/test_hardening.py measures it at full load).
MEMORY_PER_BODY_BYTE = 2


class InFlightLimit:
    """At most `limit` prediction requests at once; one more is refused, never queued."""

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


def reservation(scope: Scope) -> Reservation | None:
    """The memory the admitted request behind `scope` holds (None outside the prediction routes)."""
    held: Reservation | None = scope.get("state", {}).get("memory")
    return held


class AdmissionMiddleware:
    def __init__(self, app: ASGIApp, *, limit: int, memory: ByteBudget, retry_after_s: int) -> None:
        self.app = app
        self.slots = InFlightLimit(limit)
        self.memory = memory
        self.retry_after_s = retry_after_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] not in PREDICTION_PATHS:
            await self.app(scope, receive, send)
            return
        declared = content_length(scope)
        needed = MEMORY_PER_BODY_BYTE * (declared or 0)
        if needed > self.memory.capacity:
            metrics.REFUSED.labels(reason="body_too_large").inc()
            limit = self.memory.capacity // MEMORY_PER_BODY_BYTE
            error = PayloadTooLarge(
                f"a body of {declared} bytes does not fit this gateway's memory budget; at most {limit}"
                " bytes are accepted"
            )
            await response_for(error)(scope, receive, send)
            return
        if not self.slots.try_acquire():
            await self._refuse(scope, receive, send, "in_flight_limit")
            return
        held = Reservation(self.memory)
        try:
            if not held.take(needed):
                await self._refuse(scope, receive, send, "memory_budget")
                return
            scope.setdefault("state", {})["memory"] = held
            await self.app(scope, receive, send)
        finally:
            # Errors, cancellation and client disconnects all end here: nothing leaks.
            held.release()
            self.slots.release()

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, reason: str) -> None:
        # The access line and the counters record it; no extra log line per refusal in a flood.
        metrics.REJECTED.labels(route=scope["path"]).inc()
        metrics.REFUSED.labels(reason=reason).inc()
        await response_for(self.overloaded(reason))(scope, receive, send)

    def overloaded(self, reason: str) -> Overloaded:
        if reason == "in_flight_limit":
            what = f"is handling {self.slots.limit} prediction requests already (MAX_IN_FLIGHT)"
        else:
            what = "has no memory left for this request's body right now"
        return Overloaded(
            f"the gateway {what}; retry later", headers={"Retry-After": str(self.retry_after_s)}
        )
