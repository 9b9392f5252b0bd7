"""Run the gateway (`python -m gateway`) as a real subprocess for tests and the benchmark.

    from tests.support.gateway import run_gateway

    with run_gateway({"TF_SERVING_HOST": standin_address}) as base_url:    # "http://127.0.0.1:<port>"
        httpx.post(f"{base_url}/predict", ...)

By default the interpreter is `.venv-gateway/bin/python`, the environment the gateway image ships (no
TensorFlow). `run_gateway` returns once GET /healthz answers 200 (`ready=True`: once GET /readyz does, the
one way tests wait for a gateway in front of TF Serving) and stops the process on exit (SIGTERM, then
SIGKILL after a timeout). `start_gateway` gives the process handle (pid, log, times to healthy and ready,
RSS) for tests that measure it; `watch(gateway)` measures peak RSS and the slowest GET /healthz while a
test attacks it.

The metrics listener gets a free port (never the fixed 9697). GATEWAY_SOURCE_DIR runs the gateway package
from another checkout, e.g. to show that a hardening test fails against the code before its fix:
`git archive <rev> gateway | tar -x -C /tmp/old && GATEWAY_SOURCE_DIR=/tmp/old pytest ...`.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.standin import HOST, free_port, terminate

REPO = Path(__file__).resolve().parents[2]
GATEWAY_PYTHON = REPO / ".venv-gateway" / "bin" / "python"
SOURCE = Path(os.environ.get("GATEWAY_SOURCE_DIR", REPO))
STARTUP_TIMEOUT_S = 30.0
# The stand-in behind it may still be importing TensorFlow on a slow shared core.
READY_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 30.0


def _get_status(url: str, timeout: float = 1.0) -> int | None:
    """The status of GET `url`, None when nothing answered."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
    except (urllib.error.URLError, OSError):
        return None


@dataclass
class GatewayProcess:
    base_url: str
    process: subprocess.Popen[bytes]
    log_path: Path
    started_at: float
    metrics_port: int = 0
    healthy_after_s: float | None = None
    ready_after_s: float | None = None

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_text(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def is_healthy(self) -> bool:
        return _get_status(f"{self.base_url}/healthz") == 200

    def is_ready(self) -> bool:
        return _get_status(f"{self.base_url}/readyz") == 200

    def _wait_for(self, check: str, timeout: float) -> float:
        """Polls GET /<check> every 20 ms; returns the seconds from process start to its first 200."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                status = self.process.returncode
                raise RuntimeError(f"gateway exited with status {status} before serving:\n{self.log_tail()}")
            if _get_status(f"{self.base_url}/{check}") == 200:
                return time.monotonic() - self.started_at
            time.sleep(0.02)
        raise TimeoutError(
            f"gateway at {self.base_url} not {check} 200 after {timeout:.0f} s:\n{self.log_tail()}"
        )

    def wait_until_healthy(self, timeout: float = STARTUP_TIMEOUT_S) -> float:
        """Returns the seconds from process start to the first GET /healthz 200."""
        self.healthy_after_s = self._wait_for("healthz", timeout)
        return self.healthy_after_s

    def wait_until_ready(self, timeout: float = READY_TIMEOUT_S) -> float:
        """Returns the seconds from process start to the first GET /readyz 200 (TF Serving answers)."""
        self.ready_after_s = self._wait_for("readyz", timeout)
        return self.ready_after_s

    def _status_kb(self, key: str) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
        raise RuntimeError(f"no {key} line")

    def rss_bytes(self) -> int:
        """Resident set size from /proc/<pid>/status (VmRSS)."""
        return self._status_kb("VmRSS")

    def peak_rss_bytes(self) -> int:
        """The highest resident set size since start or `reset_peak_rss` (VmHWM)."""
        return self._status_kb("VmHWM")

    def reset_peak_rss(self) -> bool:
        """Starts VmHWM afresh at the current RSS (Linux clear_refs "5"); False where that is not allowed."""
        try:
            Path(f"/proc/{self.pid}/clear_refs").write_text("5")
        except OSError:
            return False
        return True

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
            "PYTHONPATH": str(SOURCE),
            "BIND_HOST": HOST,
            "BIND_PORT": str(port),
            "METRICS_PORT": str(free_port()),
            "LOG_FORMAT": "json",
            # The gateway never needs these, but a test's stand-in might share this environment.
            "TF_CPP_MIN_LOG_LEVEL": "2",
        }
    )
    child_env.update(env or {})
    with os.fdopen(log_fd, "wb") as log_file:
        started_at = time.monotonic()
        process = subprocess.Popen(
            [str(python), "-m", "gateway"],
            cwd=SOURCE,
            env=child_env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    metrics_port = int(child_env["METRICS_PORT"])
    return GatewayProcess(f"http://{HOST}:{port}", process, Path(log_name), started_at, metrics_port)


@contextlib.contextmanager
def running_gateway(
    env: Mapping[str, str] | None = None,
    *,
    python: str | os.PathLike[str] = GATEWAY_PYTHON,
    startup_timeout: float = STARTUP_TIMEOUT_S,
    ready: bool = False,
) -> Iterator[GatewayProcess]:
    """Like run_gateway, yielding the process handle."""
    gateway = start_gateway(env, python=python)
    try:
        gateway.wait_until_healthy(startup_timeout)
        if ready:
            gateway.wait_until_ready()
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
    ready: bool = False,
) -> Iterator[str]:
    """Runs the gateway for the `with` block and yields its base URL, "http://127.0.0.1:<port>"."""
    with running_gateway(env, python=python, startup_timeout=startup_timeout, ready=ready) as gateway:
        yield gateway.base_url


@dataclass
class Watch:
    """What `watch` saw: the peak RSS (bytes) and every GET /healthz latency (seconds; a miss counts as
    the probe's timeout)."""

    peak_rss_bytes: int = 0
    healthz_s: list[float] = field(default_factory=list)

    @property
    def peak_rss_mib(self) -> float:
        return self.peak_rss_bytes / 2**20

    @property
    def worst_healthz_s(self) -> float:
        return max(self.healthz_s, default=0.0)


HEALTHZ_PROBE_TIMEOUT_S = 5.0
# The prober runs in its own process: in the test's process it would wait for the GIL behind the attack's
# own threads and measure the test, not the gateway.
_PROBER = """
import sys, time, urllib.request
url, interval, timeout = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
while sys.stdin.readline() == "probe\\n":
    started = time.monotonic()
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            ok = response.status == 200
    except Exception:
        ok = False
    took = time.monotonic() - started
    print(took if ok else max(took, timeout), flush=True)
"""


@contextlib.contextmanager
def watch(gateway: GatewayProcess, interval_s: float = 0.05) -> Iterator[Watch]:
    """Measures the gateway while the `with` block attacks it: peak RSS (VmHWM, reset at the start, and
    sampled VmRSS where the reset is not allowed) and the latency of GET /healthz every `interval_s` on a
    fresh connection, as a kubelet probes, from a separate process."""
    seen = Watch()
    exact = gateway.reset_peak_rss()
    stop = threading.Event()
    prober = subprocess.Popen(
        [
            sys.executable,
            "-c",
            _PROBER,
            f"{gateway.base_url}/healthz",
            str(interval_s),
            str(HEALTHZ_PROBE_TIMEOUT_S),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    stdin, stdout = prober.stdin, prober.stdout
    assert stdin is not None
    assert stdout is not None

    def probe() -> None:
        while not stop.is_set():
            stdin.write("probe\n")
            stdin.flush()
            seen.healthz_s.append(float(stdout.readline()))
            with contextlib.suppress(OSError, RuntimeError):
                seen.peak_rss_bytes = max(seen.peak_rss_bytes, gateway.rss_bytes())
            stop.wait(interval_s)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    try:
        yield seen
    finally:
        stop.set()
        thread.join()
        stdin.close()
        prober.wait(10)
        stdout.close()
        if exact:
            seen.peak_rss_bytes = max(seen.peak_rss_bytes, gateway.peak_rss_bytes())
