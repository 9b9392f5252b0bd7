"""Admission control: past MAX_IN_FLIGHT prediction requests the gateway answers 503 at once, never queues.

TF Serving is a fake whose Predict waits at a gate the test opens, so "N requests in flight" is a state the
test reaches by events, not by sleeping and hoping.
"""

from __future__ import annotations

import base64
import logging
import threading
from collections.abc import Callable, Iterator, MutableMapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import anyio
import grpc
import httpx
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from gateway import contract, preprocess
from tests.gateway.fake_serving import FakeServing, FakeServingServer
from tests.gateway.images import encode

pytestmark = pytest.mark.unit

MakeApi = Callable[..., TestClient]
Message = MutableMapping[str, Any]

# Long enough never to fire in a passing test; short enough that a broken one fails instead of hanging.
GATE_TIMEOUT_S = 20.0
WAIT_S = 10.0


class GatedServing(FakeServing):
    """The fake TF Serving, except that every Predict waits until the test opens `gate`."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()
        self.waiting = 0
        self._changed = threading.Condition()

    def Predict(self, request: Any, context: grpc.ServicerContext) -> object:
        with self._changed:
            self.waiting += 1
            self._changed.notify_all()
        try:
            opened = self.gate.wait(GATE_TIMEOUT_S)
        finally:
            with self._changed:
                self.waiting -= 1
                self._changed.notify_all()
        if not opened:
            context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "the test never opened the gate")
        return super().Predict(request, context)

    def wait_for(self, count: int) -> bool:
        """True once exactly `count` Predict calls are waiting at the gate."""
        with self._changed:
            return self._changed.wait_for(lambda: self.waiting == count, WAIT_S)


@pytest.fixture
def gated_server() -> Iterator[tuple[FakeServingServer, GatedServing]]:
    server = FakeServingServer()
    servicer = GatedServing()
    server.servicer = servicer
    server.start()
    try:
        yield server, servicer
    finally:
        servicer.gate.set()  # never leave a gRPC thread (or a test client thread) waiting
        server.stop()


def make_gated_api(make_api: MakeApi, server: FakeServingServer, **overrides: Any) -> TestClient:
    # A generous Predict deadline: requests are meant to wait at the gate, not to time out there.
    return make_api(tf_serving_host=server.address, serving_timeout_s=30, **overrides)


GREY = 170
IMAGE = encode(Image.new("RGB", (200, 160), (GREY, GREY, GREY)), "PNG")
LABEL = contract.LABELS[(GREY // 32) % len(contract.LABELS)]


def predict(api: TestClient) -> httpx.Response:
    return api.post("/predict", content=IMAGE, headers={"Content-Type": "image/png"})


def predict_batch(api: TestClient) -> httpx.Response:
    return api.post("/predict/batch", json={"images": [{"image": base64.b64encode(IMAGE).decode()}]})


def assert_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code, response.text
    assert response.json()["error"]["message"]


def metric(text: str, sample: str) -> float:
    for line in text.splitlines():
        if line.startswith(sample + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def fill(api: TestClient, servicer: GatedServing, pool: ThreadPoolExecutor, count: int) -> list[Future[Any]]:
    """Starts `count` /predict requests and returns once all of them are waiting inside TF Serving."""
    assert not servicer.gate.is_set()
    futures = [pool.submit(predict, api) for _ in range(count)]
    if not servicer.wait_for(count):
        servicer.gate.set()
        answers = [future.result(timeout=WAIT_S) for future in futures]
        pytest.fail(f"{count} requests did not all get in: {[r.status_code for r in answers]}")
    return futures


def drain(servicer: GatedServing, futures: list[Future[Any]]) -> None:
    """Opens the gate, checks every held request was answered, and closes the gate again."""
    servicer.gate.set()
    for future in futures:
        response = future.result(timeout=WAIT_S)
        assert response.status_code == 200, response.text
        assert response.json()["label"] == LABEL
    assert servicer.wait_for(0)
    servicer.gate.clear()


def assert_exactly_capacity(api: TestClient, servicer: GatedServing, capacity: int) -> None:
    """`capacity` requests get in at once (no slot leaked), and one more is refused (the bound holds)."""
    with ThreadPoolExecutor(capacity) as pool:
        held = fill(api, servicer, pool, capacity)
        try:
            assert_error(predict(api), 503, "overloaded")
        finally:
            drain(servicer, held)


# --- the limit ---


def test_a_request_past_max_in_flight_gets_503_overloaded_at_once_while_probes_still_answer(
    make_api: MakeApi, gated_server: tuple[FakeServingServer, GatedServing]
) -> None:
    server, servicer = gated_server
    api = make_gated_api(make_api, server, max_in_flight=2, retry_after_s=3)
    before = api.get("/metrics").text
    with ThreadPoolExecutor(2) as pool:
        held = fill(api, servicer, pool, 2)
        try:
            refused = api.post(
                "/predict", content=IMAGE, headers={"Content-Type": "image/png", "X-Request-ID": "busy-1"}
            )
            assert_error(refused, 503, "overloaded")
            assert refused.headers["retry-after"] == "3"
            assert refused.headers["x-request-id"] == "busy-1"
            assert "MAX_IN_FLIGHT" in refused.json()["error"]["message"]
            assert_error(predict_batch(api), 503, "overloaded")
            # Refused without waiting for a slot: both held requests are still inside TF Serving.
            assert servicer.waiting == 2

            assert api.get("/healthz").json() == {"status": "ok"}
            assert api.get("/readyz").json()["status"] == "ready"
            assert api.get("/model").json()["labels"] == list(contract.LABELS)
            scrape = api.get("/metrics")
            assert scrape.status_code == 200
            assert metric(scrape.text, "gateway_requests_in_flight") == 2
        finally:
            drain(servicer, held)

    after = api.get("/metrics").text
    for route in ("/predict", "/predict/batch"):
        rejected = f'gateway_requests_rejected_total{{route="{route}"}}'
        assert metric(after, rejected) - metric(before, rejected) == 1
    answered = 'gateway_requests_total{method="POST",route="/predict",status="503"}'
    assert metric(after, answered) - metric(before, answered) == 1
    assert metric(after, "gateway_requests_in_flight") == 0


def test_once_the_held_requests_finish_the_full_capacity_is_back(
    make_api: MakeApi, gated_server: tuple[FakeServingServer, GatedServing]
) -> None:
    server, servicer = gated_server
    api = make_gated_api(make_api, server, max_in_flight=2)
    for _ in range(3):
        assert_exactly_capacity(api, servicer, 2)
    servicer.gate.set()
    assert predict(api).status_code == 200
    assert predict_batch(api).status_code == 200


def test_a_full_gateway_refuses_a_body_it_never_reads(
    make_api: MakeApi, gated_server: tuple[FakeServingServer, GatedServing]
) -> None:
    server, servicer = gated_server
    api = make_gated_api(make_api, server, max_in_flight=1)
    chunks_read: list[int] = []

    def body() -> Iterator[bytes]:
        # The test client pulls these only when the app asks for the body.
        for index in range(4):
            chunks_read.append(index)
            yield b"\0" * 4096

    with ThreadPoolExecutor(1) as pool:
        held = fill(api, servicer, pool, 1)
        try:
            response = api.post("/predict", content=body(), headers={"Content-Type": "image/jpeg"})
            assert_error(response, 503, "overloaded")
            assert chunks_read == []
        finally:
            drain(servicer, held)
    # With a free slot the same body is read (and refused for what it is: not an image).
    response = api.post("/predict", content=body(), headers={"Content-Type": "image/jpeg"})
    assert_error(response, 400, "invalid_image")
    assert chunks_read == [0, 1, 2, 3]


# --- no leaked slots ---


def test_failed_requests_give_their_slot_back(
    make_api: MakeApi,
    gated_server: tuple[FakeServingServer, GatedServing],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server, servicer = gated_server
    api = make_gated_api(make_api, server, max_in_flight=1, max_body_bytes=10_000)
    servicer.gate.set()

    def streamed() -> Iterator[bytes]:
        for _ in range(10):
            yield b"\0" * 4096

    text = {"Content-Type": "text/plain"}
    json = {"Content-Type": "application/json"}
    jpeg = {"Content-Type": "image/jpeg"}
    # With one slot, a request that kept its slot would turn the next one into a 503.
    for _ in range(2):
        assert_error(api.post("/predict", content=b"hi", headers=text), 415, "unsupported_media_type")
        assert_error(api.post("/predict", json={"image": "***"}), 400, "invalid_image")
        assert_error(api.post("/predict", content=b"{", headers=json), 400, "bad_request")
        assert_error(api.post("/predict/batch", json={"images": []}), 400, "bad_request")
        assert_error(api.post("/predict", content=streamed(), headers=jpeg), 413, "payload_too_large")
        assert_error(api.get("/predict"), 405, "method_not_allowed")

    servicer.behaviour.fail_with = grpc.StatusCode.INTERNAL
    assert_error(predict(api), 502, "upstream_error")
    servicer.behaviour.fail_with = None

    def broken(*_: object, **__: object) -> object:
        raise RuntimeError("bug")

    with monkeypatch.context() as patch:
        patch.setattr(preprocess, "finish", broken)
        assert_error(predict(api), 500, "internal")

    servicer.gate.clear()
    assert_exactly_capacity(api, servicer, 1)


def asgi_scope(path: str = "/predict") -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"testserver"), (b"content-type", b"image/png")],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }


def test_a_client_that_disconnects_mid_upload_gives_its_slot_back(
    make_api: MakeApi, gated_server: tuple[FakeServingServer, GatedServing]
) -> None:
    server, servicer = gated_server
    api = make_gated_api(make_api, server, max_in_flight=1)
    sent: list[Message] = []
    uploaded = False

    async def receive() -> Message:
        nonlocal uploaded
        if not uploaded:
            uploaded = True
            return {"type": "http.request", "body": IMAGE[:100], "more_body": True}
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    async def upload_then_vanish() -> None:
        await api.app(asgi_scope(), receive, send)

    portal = api.portal
    assert portal is not None
    portal.call(upload_then_vanish)
    assert uploaded
    assert servicer.waiting == 0  # it never got as far as TF Serving
    assert not any(m.get("status") == 200 for m in sent if m["type"] == "http.response.start")
    assert_exactly_capacity(api, servicer, 1)


def test_a_client_that_disconnects_mid_upload_is_no_server_error(
    make_api: MakeApi, gated_server: tuple[FakeServingServer, GatedServing], caplog: pytest.LogCaptureFixture
) -> None:
    server, _ = gated_server
    api = make_gated_api(make_api, server, max_in_flight=1)
    messages = iter([{"type": "http.request", "body": IMAGE[:100], "more_body": True}])

    async def receive() -> Message:
        return next(messages, {"type": "http.disconnect"})

    async def send(message: Message) -> None:
        pass

    async def upload_then_vanish() -> None:
        await api.app(asgi_scope(), receive, send)

    portal = api.portal
    assert portal is not None
    with caplog.at_level(logging.INFO, logger="gateway.context"):
        portal.call(upload_then_vanish)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("client disconnected" in r.getMessage() for r in caplog.records)


def test_a_request_cancelled_while_waiting_for_tf_serving_gives_its_slot_back(
    make_api: MakeApi, gated_server: tuple[FakeServingServer, GatedServing]
) -> None:
    """Some ASGI servers cancel the request task when its client goes away; the slot must survive that."""
    server, servicer = gated_server
    api = make_gated_api(make_api, server, max_in_flight=1)
    delivered = False
    finished = threading.Event()

    async def receive() -> Message:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": IMAGE, "more_body": False}
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    async def send(message: Message) -> None:
        pass

    async def request() -> None:
        try:
            await api.app(asgi_scope(), receive, send)
        finally:
            finished.set()

    portal = api.portal
    assert portal is not None
    task = portal.start_task_soon(request)
    assert servicer.wait_for(1)
    assert_error(predict(api), 503, "overloaded")  # the cancelled-to-be request holds the only slot
    task.cancel()
    assert finished.wait(WAIT_S)
    servicer.gate.set()
    assert servicer.wait_for(0)  # the abandoned Predict has left the fake too
    servicer.gate.clear()
    assert_exactly_capacity(api, servicer, 1)


# --- the memory budget ---

MiB = 2**20
# 200 MiB - 128 MiB baseline - 40 MiB for decoding: 32 MiB for bodies, 2 bytes per body byte.
SMALL_MEMORY = {"memory_limit_bytes": 200 * MiB, "max_decode_bytes": 40 * MiB, "max_body_bytes": 24 * MiB}


def padded(size: int) -> bytes:
    """The test image followed by zeros up to `size` bytes: still a valid PNG (the tail is ignored)."""
    return IMAGE + b"\0" * (size - len(IMAGE))


def test_a_body_that_does_not_fit_the_memory_left_gets_503_before_it_is_read(
    make_api: MakeApi, gated_server: tuple[FakeServingServer, GatedServing]
) -> None:
    server, servicer = gated_server
    api = make_gated_api(make_api, server, **SMALL_MEMORY)
    before = api.get("/metrics").text
    with ThreadPoolExecutor(1) as pool:
        held = pool.submit(
            api.post, "/predict", content=padded(10 * MiB), headers={"Content-Type": "image/png"}
        )
        assert servicer.wait_for(1)
        try:
            used = metric(api.get("/metrics").text, 'gateway_budget_used_bytes{budget="memory"}')
            assert used == 20 * MiB  # two bytes per body byte, reserved from the Content-Length
            refused = api.post("/predict", content=padded(10 * MiB), headers={"Content-Type": "image/png"})
            assert_error(refused, 503, "overloaded")
            assert "memory" in refused.json()["error"]["message"]
            assert refused.headers["retry-after"] == "1"
        finally:
            servicer.gate.set()
        assert held.result(timeout=WAIT_S).status_code == 200
    after = api.get("/metrics").text
    memory_refusals = 'gateway_requests_refused_total{reason="memory_budget"}'
    assert metric(after, memory_refusals) - metric(before, memory_refusals) >= 1
    assert metric(after, 'gateway_budget_used_bytes{budget="memory"}') == 0


def test_a_body_that_could_never_fit_gets_413_at_once(make_api: MakeApi) -> None:
    api = make_api(**SMALL_MEMORY)
    response = api.post("/predict", content=padded(20 * MiB), headers={"Content-Type": "image/png"})
    assert_error(response, 413, "payload_too_large")
    assert "memory budget; at most 16777216 bytes" in response.json()["error"]["message"]


def test_a_body_of_unknown_length_is_charged_as_it_arrives(make_api: MakeApi) -> None:
    api = make_api(**SMALL_MEMORY)

    def chunked(total: int) -> Iterator[bytes]:
        yield IMAGE
        for _ in range((total - len(IMAGE)) // MiB):
            yield b"\0" * MiB

    too_much = api.post("/predict", content=chunked(20 * MiB), headers={"Content-Type": "image/png"})
    assert_error(too_much, 503, "overloaded")
    fits = api.post("/predict", content=chunked(8 * MiB), headers={"Content-Type": "image/png"})
    assert fits.status_code == 200, fits.text
    assert metric(api.get("/metrics").text, 'gateway_budget_used_bytes{budget="memory"}') == 0
