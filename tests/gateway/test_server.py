"""The process (gateway.server): two listeners in one process, and the guarded HTTP protocol (level 2)."""

from __future__ import annotations

import json
import signal
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
    env = {"TF_SERVING_HOST": f"{HOST}:{free_port()}", "HEADER_TIMEOUT_S": "1", "KEEP_ALIVE_TIMEOUT_S": "1"}
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


def exchange(sock: socket.socket, path: str = "/healthz") -> tuple[int, dict[str, str]]:
    """Sends GET `path` on `sock` (kept alive) and reads one response; returns its status and headers."""
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
    received = b""
    while b"\r\n\r\n" not in received:
        chunk = sock.recv(65536)
        assert chunk, f"closed before a response: {received!r}"
        received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)}
    while len(body) < int(headers["content-length"]):
        chunk = sock.recv(65536)
        assert chunk, "closed in the middle of a body"
        body += chunk
    return int(status_line.split()[1]), headers


def closed_within(sock: socket.socket, timeout: float) -> float:
    """Seconds until the peer closes `sock` (recv returns b""); fails if it sends anything first."""
    started = time.monotonic()
    sock.settimeout(timeout)
    assert sock.recv(1) == b""
    return time.monotonic() - started


def send_until_refused(sock: socket.socket, give_up_s: float, pause_s: float) -> tuple[int, OSError | None]:
    """Sends 64 KiB of zeros on `sock` every `pause_s` until the peer refuses them (reset, broken pipe) or
    `give_up_s` pass; returns the bytes sent and the error (None when it gave up)."""
    chunk, sent = b"\0" * 65536, 0
    started = time.monotonic()
    while time.monotonic() - started < give_up_s:
        try:
            sock.sendall(chunk)
        except (BrokenPipeError, ConnectionResetError) as error:
            return sent, error
        sent += len(chunk)
        if pause_s:
            time.sleep(pause_s)
    return sent, None


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


def test_a_413_from_the_headers_reaches_a_client_that_sends_its_whole_body_first(
    gateway: GatewayProcess,
) -> None:
    # Refused from Content-Length before one byte of the body is read, while the client is still writing
    # it (as HTTP clients do before reading): a plain close with those bytes unread resets the connection.
    port = int(gateway.base_url.rsplit(":", 1)[1])
    size = 17 * 1024 * 1024  # over the 16 MiB cap of /predict
    with socket.create_connection((HOST, port), timeout=10) as sock:
        sock.sendall(f"POST /predict HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: {size}\r\n\r\n".encode())
        for _ in range(size // (1024 * 1024)):
            sock.sendall(b"\xff" * (1024 * 1024))
            time.sleep(0.02)  # the answer and the close come meanwhile
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413"), received[:200]
    assert b"connection: close" in head.lower()
    assert json.loads(body)["error"]["code"] == "payload_too_large"


def test_a_503_at_max_in_flight_reaches_a_client_that_sends_its_whole_body_first(
    gateway_python: Path,
) -> None:
    env = {"TF_SERVING_HOST": f"{HOST}:{free_port()}", "MAX_IN_FLIGHT": "1"}
    with running_gateway(env, python=gateway_python) as process:
        port = int(process.base_url.rsplit(":", 1)[1])
        size = 4 * 1024 * 1024
        head = f"POST /predict HTTP/1.1\r\nHost: {HOST}\r\nContent-Type: image/jpeg\r\n"
        head += f"Content-Length: {size}\r\n\r\n"
        with (
            socket.create_connection((HOST, port), timeout=10) as holding,
            socket.create_connection((HOST, port), timeout=10) as refused,
        ):
            holding.sendall(head.encode() + b"\xff" * 1024)  # admitted; its slow body holds the one slot
            time.sleep(0.5)
            refused.sendall(head.encode())
            for _ in range(size // (256 * 1024)):
                refused.sendall(b"\xff" * (256 * 1024))
                time.sleep(0.01)
            received = b""
            while chunk := refused.recv(65536):
                received += chunk
    head_in, _, body = received.partition(b"\r\n\r\n")
    assert head_in.startswith(b"HTTP/1.1 503"), received[:200]
    assert b"retry-after:" in head_in.lower()
    assert json.loads(body)["error"]["code"] == "overloaded"


def early_answer(gateway: GatewayProcess) -> tuple[socket.socket, float]:
    """A connection whose POST /predict declared 64 MiB and got its 413 (and the gateway's FIN); and when."""
    port = int(gateway.base_url.rsplit(":", 1)[1])
    sock = socket.create_connection((HOST, port), timeout=10)
    head = f"POST /predict HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: {64 * 1024 * 1024}\r\n\r\n"
    sock.sendall(head.encode())
    answered = time.monotonic()
    received = b""
    while chunk := sock.recv(65536):  # the answer, then the gateway's FIN
        received += chunk
    assert received.startswith(b"HTTP/1.1 413"), received[:200]
    return sock, answered


def test_after_an_early_answer_the_gateway_reads_and_drops_the_rest_for_5_s_at_most(
    gateway: GatewayProcess,
) -> None:
    sock, answered = early_answer(gateway)
    with sock:
        # The client keeps sending (6.4 MB/s): read and dropped, no reset, until LINGER_S.
        sent, refused = send_until_refused(sock, give_up_s=30, pause_s=0.01)
        lingered = time.monotonic() - answered
    assert refused is not None, "the gateway was still reading after 30 s"
    assert sent > 4 * 1024 * 1024
    assert 4 < lingered < 8, lingered


def test_after_an_early_answer_the_gateway_reads_and_drops_64_mib_at_most(gateway: GatewayProcess) -> None:
    sock, answered = early_answer(gateway)
    with sock:
        sent, refused = send_until_refused(sock, give_up_s=30, pause_s=0)  # as fast as loopback takes it
        lingered = time.monotonic() - answered
    assert refused is not None, "the gateway was still reading after 30 s"
    # LINGER_BYTES, plus what the two sockets' buffers held when the gateway closed.
    assert 64 * 1024 * 1024 <= sent < 96 * 1024 * 1024, sent
    assert lingered < 4, lingered


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


def test_an_idle_keep_alive_connection_is_closed_after_the_keep_alive_timeout(
    gateway: GatewayProcess,
) -> None:
    port = int(gateway.base_url.rsplit(":", 1)[1])
    with socket.create_connection((HOST, port), timeout=10) as sock:
        assert exchange(sock)[0] == 200
        assert exchange(sock)[0] == 200  # kept alive
        assert 0.8 < closed_within(sock, 10) < 3  # KEEP_ALIVE_TIMEOUT_S=1


def test_the_keep_alive_timeout_outlasts_the_idle_expiry_of_httpx_pools() -> None:
    from gateway.settings import Settings

    assert Settings().keep_alive_timeout_s > httpx.Limits().keepalive_expiry  # type: ignore[operator]


def test_at_sigterm_idle_keep_alive_connections_are_left_for_the_client_to_close(
    gateway_python: Path,
) -> None:
    # SHUTDOWN_TIMEOUT_S=9: idle connections get min(6, 9 / 3) = 3 s before the gateway closes them.
    env = {"TF_SERVING_HOST": f"{HOST}:{free_port()}", "SHUTDOWN_TIMEOUT_S": "9"}
    process = start_gateway(env, python=gateway_python)
    port = int(process.base_url.rsplit(":", 1)[1])
    try:
        process.wait_until_healthy()
        with (
            socket.create_connection((HOST, port), timeout=10) as last_request,
            socket.create_connection((HOST, port), timeout=10) as never_closed,
        ):
            for sock in (last_request, never_closed):
                status, headers = exchange(sock)
                assert status == 200
                assert headers.get("connection") != "close"
            process.process.send_signal(signal.SIGTERM)
            time.sleep(1)
            with pytest.raises(ConnectionRefusedError):  # no longer accepting
                socket.create_connection((HOST, port), timeout=2).close()
            # A request on a connection that was idle at SIGTERM is still answered, and told to close.
            status, headers = exchange(last_request)
            assert (status, headers.get("connection")) == (200, "close")
            assert closed_within(last_request, 2) < 1
            # One the client never closes is closed by the gateway after the drain, and then it exits.
            assert 1 < closed_within(never_closed, 10) < 4
            assert process.process.wait(5) == -signal.SIGTERM  # uvicorn re-raises the signal it handled
    finally:
        process.stop()
        process.log_path.unlink(missing_ok=True)


def test_at_sigterm_the_gateway_exits_as_soon_as_clients_have_closed_their_connections(
    gateway_python: Path,
) -> None:
    process = start_gateway({"TF_SERVING_HOST": f"{HOST}:{free_port()}"}, python=gateway_python)
    port = int(process.base_url.rsplit(":", 1)[1])
    try:
        process.wait_until_healthy()
        sock = socket.create_connection((HOST, port), timeout=10)
        assert exchange(sock)[0] == 200
        process.process.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        sock.close()  # as a pool expiring its idle connection would
        closed_at = time.monotonic()
        assert process.process.wait(5) == -signal.SIGTERM  # uvicorn re-raises the signal it handled
        assert time.monotonic() - closed_at < 2  # not the whole 6 s drain
    finally:
        process.stop()
        process.log_path.unlink(missing_ok=True)
