"""Run the TF Serving stand-in (`python -m serving.standin`) as a real subprocess for tests.

    from tests.support.standin import run_standin

    with run_standin(model_base_path) as address:      # "127.0.0.1:<free port>"
        channel = grpc.insecure_channel(address)
        ...

`run_standin` returns once the gRPC health service reports SERVING (the model is loaded and warmed up) and
stops the process on exit (SIGTERM, then SIGKILL after a timeout). When the stand-in dies or never gets
ready, the error carries the tail of its log. `start_standin` gives the process handle for tests that need
it (signals, exit status).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

REPO = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"
# Importing TensorFlow and loading a SavedModel takes a few seconds; a slow shared CI core, much longer.
STARTUP_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 20.0


def free_port(host: str = HOST) -> int:
    """A TCP port that was free a moment ago (the OS picks it; the tiny race is fine for tests)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def terminate(process: subprocess.Popen[bytes], timeout: float) -> int:
    """SIGTERM, then SIGKILL if `process` has not exited within `timeout`; returns its exit status."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


@dataclass
class StandInProcess:
    """A running stand-in: its gRPC address, process and log file."""

    address: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log_text(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def is_serving(self, timeout: float = 1.0) -> bool:
        with grpc.insecure_channel(self.address) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            try:
                reply = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=timeout)
            except grpc.RpcError:
                return False
        return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)

    def _wait(self, ready: Callable[[], bool], state: str, timeout: float, interval: float) -> float:
        """Polls `ready` until true and returns `time.monotonic()` then; fails with the log's tail when the
        process exits first or `timeout` passes."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                status = self.process.returncode
                raise RuntimeError(f"stand-in exited with status {status} before {state}:\n{self.log_tail()}")
            if ready():
                return time.monotonic()
            time.sleep(interval)
        waited = f"{timeout:.0f} s"
        raise TimeoutError(f"stand-in not {state} on {self.address} after {waited}:\n{self.log_tail()}")

    def is_listening(self) -> bool:
        host, _, port = self.address.rpartition(":")
        try:
            socket.create_connection((host.strip("[]"), int(port)), timeout=1).close()
        except OSError:
            return False
        return True

    def wait_until_listening(self, timeout: float = STARTUP_TIMEOUT_S) -> float:
        """Waits for the gRPC port to accept a TCP connection; returns `time.monotonic()` at that moment.

        A plain socket each try, so the moment is within a poll interval of the port opening (a gRPC channel
        that failed before backs off for seconds between its own tries)."""
        return self._wait(self.is_listening, "listening", timeout, 0.05)

    def wait_until_serving(self, timeout: float = STARTUP_TIMEOUT_S) -> None:
        self._wait(self.is_serving, "SERVING", timeout, 0.2)

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> int:
        """SIGTERM, then SIGKILL if it has not exited within `timeout`; returns the exit status."""
        return terminate(self.process, timeout)


# Where a stand-in's log goes when the caller names no folder; None is the system's temporary folder.
# tests/conftest.py points it at a pytest temporary folder, which pytest prunes: tests leave none in /tmp.
LOG_DIR: Path | None = None


def start_standin(
    model_base_path: str | os.PathLike[str],
    port: int | None = None,
    extra_args: Sequence[str] = (),
    *,
    python: str | os.PathLike[str] = sys.executable,
    log_dir: str | os.PathLike[str] | None = None,
) -> StandInProcess:
    """Starts `python -m serving.standin` on 127.0.0.1 without waiting for it to be ready."""
    port = port or free_port()
    log_fd, log_name = tempfile.mkstemp(prefix="standin-", suffix=".log", dir=log_dir or LOG_DIR)
    command = [
        str(python),
        "-m",
        "serving.standin",
        "--model-base-path",
        str(model_base_path),
        "--host",
        HOST,
        "--port",
        str(port),
        *extra_args,
    ]
    python_path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": python_path}
    # TensorFlow's C++ start-up chatter is noise in a test log.
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with os.fdopen(log_fd, "wb") as log_file:
        process = subprocess.Popen(command, cwd=REPO, env=env, stdout=log_file, stderr=subprocess.STDOUT)
    return StandInProcess(address=f"{HOST}:{port}", process=process, log_path=Path(log_name))


@contextlib.contextmanager
def run_standin(
    model_base_path: str | os.PathLike[str],
    port: int | None = None,
    extra_args: Sequence[str] = (),
    *,
    python: str | os.PathLike[str] = sys.executable,
    startup_timeout: float = STARTUP_TIMEOUT_S,
) -> Iterator[str]:
    """Runs the stand-in for the `with` block and yields its address, "127.0.0.1:<port>"."""
    standin = start_standin(model_base_path, port, extra_args, python=python)
    try:
        standin.wait_until_serving(startup_timeout)
        yield standin.address
    finally:
        standin.stop()
        standin.log_path.unlink(missing_ok=True)
