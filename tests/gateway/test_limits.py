"""Body limits (gateway.limits): the cap and the read deadlines on `receive`, for any route."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import anyio
import pytest

from gateway.errors import PayloadTooLarge, RequestTimeout
from gateway.limits import BODY_RATE_GRACE_S, BodyLimitMiddleware, LimitedReceive

pytestmark = pytest.mark.unit

Message = MutableMapping[str, Any]


def chunks(*parts: tuple[float, bytes], last: bool = True) -> Callable[[], Awaitable[Message]]:
    """A client sending each part after its delay (seconds); then it waits for ever."""
    pending = list(parts)

    async def receive() -> Message:
        if not pending:
            await anyio.sleep_forever()
        delay, body = pending.pop(0)
        await anyio.sleep(delay)
        return {"type": "http.request", "body": body, "more_body": bool(pending) or not last}

    return receive


async def read_all(receive: Callable[[], Awaitable[Message]]) -> bytes:
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            return body


def test_a_body_within_cap_and_deadlines_is_read_whole() -> None:
    limited = LimitedReceive(chunks((0, b"a" * 10), (0.01, b"b" * 10)), cap=20, timeout_s=5, min_rate=1)
    assert anyio.run(read_all, limited) == b"a" * 10 + b"b" * 10
    assert limited.complete


def test_a_body_past_the_cap_is_413_and_closes_the_connection() -> None:
    limited = LimitedReceive(chunks((0, b"a" * 10), (0, b"b" * 11)), cap=20, timeout_s=5, min_rate=0)
    with pytest.raises(PayloadTooLarge) as caught:
        anyio.run(read_all, limited)
    assert caught.value.headers["Connection"] == "close"


def test_a_body_that_stops_arriving_hits_the_whole_body_deadline() -> None:
    limited = LimitedReceive(chunks((0, b"a"), last=False), cap=100, timeout_s=0.3, min_rate=0)
    started = time.monotonic()
    with pytest.raises(RequestTimeout, match="BODY_TIMEOUT_S") as caught:
        anyio.run(read_all, limited)
    assert 0.25 < time.monotonic() - started < 1
    assert caught.value.status == 408
    assert caught.value.headers["Connection"] == "close"


def test_a_body_slower_than_the_minimum_rate_is_cut_off_after_the_grace(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("gateway.limits.BODY_RATE_GRACE_S", 0.2)
    # 1000 bytes/s required; 100 bytes buy 0.1 s, so the next chunk is due 0.3 s after the start.
    limited = LimitedReceive(chunks((0, b"a" * 100), (1, b"b")), cap=10_000, timeout_s=60, min_rate=1000)
    started = time.monotonic()
    with pytest.raises(RequestTimeout, match="BODY_MIN_RATE"):
        anyio.run(read_all, limited)
    assert 0.25 < time.monotonic() - started < 0.8


def test_the_grace_lets_a_body_start_slowly() -> None:
    assert BODY_RATE_GRACE_S >= 1
    limited = LimitedReceive(chunks((0.2, b"a"), (0.2, b"b")), cap=100, timeout_s=60, min_rate=10_000)
    assert anyio.run(read_all, limited) == b"ab"


def test_after_the_last_chunk_receive_waits_without_a_deadline() -> None:
    async def scenario() -> Message:
        sent = [{"type": "http.request", "body": b"x", "more_body": False}]

        async def receive() -> Message:
            if sent:
                return sent.pop()
            await anyio.sleep(0.3)  # a route waiting for the client to go away
            return {"type": "http.disconnect"}

        limited = LimitedReceive(receive, cap=10, timeout_s=0.1, min_rate=1_000_000)
        await limited()
        return await limited()

    assert anyio.run(scenario)["type"] == "http.disconnect"


def scope(content_length: int | None, path: str = "/predict") -> dict[str, Any]:
    headers = [] if content_length is None else [(b"content-length", str(content_length).encode())]
    return {"type": "http", "method": "POST", "path": path, "headers": headers}


def run_middleware(scope: dict[str, Any], app: Callable[..., Awaitable[None]]) -> list[Message]:
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    middleware = BodyLimitMiddleware(
        app, caps={"/predict/batch": 1000}, default_cap=100, timeout_s=5, min_rate=0
    )
    anyio.run(middleware, scope, chunks((0, b"x" * 10)), send)
    return sent


async def answer_without_reading(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 404, "headers": []})
    await send({"type": "http.response.body", "body": b""})


def test_a_declared_length_over_the_cap_is_refused_without_reading() -> None:
    called = []

    async def app(*_: Any) -> None:
        called.append(True)

    sent = run_middleware(scope(101), app)
    assert sent[0]["status"] == 413
    assert (b"connection", b"close") in sent[0]["headers"]
    assert called == []
    assert run_middleware(scope(1000, "/predict/batch"), answer_without_reading)[0]["status"] == 404


def test_an_answer_before_the_body_was_read_closes_the_connection() -> None:
    start = run_middleware(scope(10), answer_without_reading)[0]
    assert (b"connection", b"close") in start["headers"]
    bodiless = run_middleware(scope(0), answer_without_reading)[0]
    assert (b"connection", b"close") not in bodiless["headers"]
