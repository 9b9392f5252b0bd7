"""Run the gateway (`python -m gateway`) as a real subprocess for tests and the benchmark.

    from tests.support.gateway import run_gateway

    with run_gateway({"TF_SERVING_HOST": standin_address}) as base_url:    # "http://127.0.0.1:<port>"
        httpx.post(f"{base_url}/predict", ...)

By default the interpreter is `.venv-gateway/bin/python`, the environment the gateway image ships (no
TensorFlow). `run_gateway` returns once GET /healthz answers 200 and stops the process on exit (SIGTERM,
then SIGKILL after a timeout). `start_gateway` gives the process handle (pid, log, time to healthy) for
tests that measure it.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from tests.support.standin import HOST, free_port, terminate

REPO = Path(__file__).resolve().parents[2]
GATEWAY_PYTHON = REPO / ".venv-gateway" / "bin" / "python"
STARTUP_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 30.0


@dataclass
class GatewayProcess:
    base_url: str
    process: subprocess.Popen[bytes]
    log_path: Path
    started_at: float
    healthy_after_s: float | None = None

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_text(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def is_healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.base_url}/healthz", timeout=1) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def wait_until_healthy(self, timeout: float = STARTUP_TIMEOUT_S) -> float:
        """Polls /healthz every 20 ms; returns the seconds from process start to the first 200."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                status = self.process.returncode
                raise RuntimeError(f"gateway exited with status {status} before serving:\n{self.log_tail()}")
            if self.is_healthy():
                self.healthy_after_s = time.monotonic() - self.started_at
                return self.healthy_after_s
            time.sleep(0.02)
        raise TimeoutError(
            f"gateway not healthy at {self.base_url} after {timeout:.0f} s:\n{self.log_tail()}"
        )

    def rss_bytes(self) -> int:
        """Resident set size from /proc/<pid>/status (VmRSS, in kB)."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS line")

    def mapped_files(self) -> set[str]:
        """Paths of the files mapped into the process (shared libraries included)."""
        paths = set()
        for line in Path(f"/proc/{self.pid}/maps").read_text().splitlines():
            fields = line.split(maxsplit=5)
            if len(fields) == 6 and fields[5].startswith("/"):
                paths.add(fields[5])
        return paths

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> int:
        return terminate(self.process, timeout)


def start_gateway(
    env: Mapping[str, str] | None = None,
    *,
    python: str | os.PathLike[str] = GATEWAY_PYTHON,
    port: int | None = None,
    log_dir: str | os.PathLike[str] | None = None,
) -> GatewayProcess:
    """Starts `python -m gateway` on 127.0.0.1 without waiting; `env` adds or overrides settings."""
    if not Path(python).exists():
        raise FileNotFoundError(f"{python} missing: run `make venv`")
    port = port or free_port()
    log_fd, log_name = tempfile.mkstemp(prefix="gateway-", suffix=".log", dir=log_dir)
    child_env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV")}
    child_env.update(
        {
            "PYTHONPATH": str(REPO),
            "BIND_HOST": HOST,
            "BIND_PORT": str(port),
            "LOG_FORMAT": "json",
            # The gateway never needs these, but a test's stand-in might share this environment.
            "TF_CPP_MIN_LOG_LEVEL": "2",
        }
    )
    child_env.update(env or {})
    with os.fdopen(log_fd, "wb") as log_file:
        started_at = time.monotonic()
        process = subprocess.Popen(
            [str(python), "-m", "gateway"], cwd=REPO, env=child_env, stdout=log_file, stderr=subprocess.STDOUT
        )
    return GatewayProcess(f"http://{HOST}:{port}", process, Path(log_name), started_at)


@contextlib.contextmanager
def running_gateway(
    env: Mapping[str, str] | None = None,
    *,
    python: str | os.PathLike[str] = GATEWAY_PYTHON,
    startup_timeout: float = STARTUP_TIMEOUT_S,
) -> Iterator[GatewayProcess]:
    """Like run_gateway, yielding the process handle."""
    gateway = start_gateway(env, python=python)
    try:
        gateway.wait_until_healthy(startup_timeout)
        yield gateway
    finally:
        gateway.stop()
        gateway.log_path.unlink(missing_ok=True)


@contextlib.contextmanager
def run_gateway(
    env: Mapping[str, str] | None = None,
    *,
    python: str | os.PathLike[str] = GATEWAY_PYTHON,
    startup_timeout: float = STARTUP_TIMEOUT_S,
) -> Iterator[str]:
    """Runs the gateway for the `with` block and yields its base URL, "http://127.0.0.1:<port>"."""
    with running_gateway(env, python=python, startup_timeout=startup_timeout) as gateway:
        yield gateway.base_url
