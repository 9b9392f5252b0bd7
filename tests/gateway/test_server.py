"""The process (gateway.server): two listeners in one process, and the guarded HTTP protocol (level 2)."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.gateway import GatewayProcess, running_gateway, start_gateway
from tests.support.standin import HOST, free_port

pytestmark = pytest.mark.process


@pytest.fixture(scope="module")
def gateway(gateway_python: Path) -> Iterator[GatewayProcess]:
    # No TF Serving needed: nothing here reaches it.
    env = {"TF_SERVING_HOST": f"{HOST}:{free_port()}", "HEADER_TIMEOUT_S": "1"}
    with running_gateway(env, python=gateway_python) as process:
        yield process


def raw(gateway: GatewayProcess, data: bytes, timeout: float = 10) -> tuple[bytes, float]:
    """Sends `data` on a fresh connection; returns everything the gateway sent before closing, and when."""
    port = int(gateway.base_url.rsplit(":", 1)[1])
    started = time.monotonic()
    with socket.create_connection((HOST, port), timeout=timeout) as sock:
        sock.sendall(data)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    return received, time.monotonic() - started


def test_the_metrics_port_serves_metrics_and_nothing_else(gateway: GatewayProcess) -> None:
    metrics = f"http://{HOST}:{gateway.metrics_port}"
    scrape = httpx.get(f"{metrics}/metrics")
    assert scrape.status_code == 200
    assert "gateway_requests_total" in scrape.text
    for path in ("/healthz", "/predict", "/docs"):
        response = httpx.get(f"{metrics}{path}")
        assert response.status_code == 404, path
        assert response.json()["error"]["code"] == "not_found"
    # The main port still serves /metrics by default (METRICS_ON_MAIN_PORT), as ARCHITECTURE's API says.
    assert httpx.get(f"{gateway.base_url}/metrics").status_code == 200


def test_a_request_that_is_not_http_gets_a_json_400_and_the_connection_closes(
    gateway: GatewayProcess,
) -> None:
    received, _ = raw(gateway, b"HELLO THERE\r\n\r\n")
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400")
    assert json.loads(body)["error"]["code"] == "bad_request"


def test_a_connection_that_sends_nothing_is_closed_after_the_header_timeout(gateway: GatewayProcess) -> None:
    received, took = raw(gateway, b"")
    assert received == b""
    assert 0.8 < took < 3


def test_headers_just_under_the_limit_are_served(gateway: GatewayProcess) -> None:
    padding = "a" * (32 * 1024 - 200)
    response = httpx.get(f"{gateway.base_url}/healthz", headers={"X-Padding": padding})
    assert response.status_code == 200
    refused = httpx.get(f"{gateway.base_url}/healthz", headers={"X-Padding": padding + "a" * 400})
    assert refused.status_code == 431
    assert refused.json()["error"]["code"] == "headers_too_large"


def test_metrics_port_0_opens_no_second_listener(gateway_python: Path) -> None:
    env = {"TF_SERVING_HOST": f"{HOST}:{free_port()}", "METRICS_PORT": "0"}
    with running_gateway(env, python=gateway_python) as process:
        assert httpx.get(f"{process.base_url}/metrics").status_code == 200
        listening = [line for line in process.log_text().splitlines() if "Uvicorn running on" in line]
    assert len(listening) == 1, listening


def test_a_taken_metrics_port_stops_the_start_with_a_message(gateway_python: Path) -> None:
    with socket.create_server((HOST, 0)) as taken:
        env = {"TF_SERVING_HOST": f"{HOST}:{free_port()}", "METRICS_PORT": str(taken.getsockname()[1])}
        process = start_gateway(env, python=gateway_python)
        try:
            assert process.process.wait(30) != 0
            assert "cannot listen" in process.log_text()
        finally:
            process.stop()
            process.log_path.unlink(missing_ok=True)


def test_sigterm_stops_both_listeners(gateway_python: Path) -> None:
    process = start_gateway({"TF_SERVING_HOST": f"{HOST}:{free_port()}"}, python=gateway_python)
    try:
        process.wait_until_healthy()
        assert httpx.get(f"http://{HOST}:{process.metrics_port}/metrics").status_code == 200
        process.stop()
        for url in (f"{process.base_url}/healthz", f"http://{HOST}:{process.metrics_port}/metrics"):
            with pytest.raises(httpx.ConnectError):
                httpx.get(url)
        assert "Shutting down" in process.log_text()
    finally:
        process.stop()
        process.log_path.unlink(missing_ok=True)
