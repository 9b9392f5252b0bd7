"""A steady, bounded load of golden images for the level-5 tests (rollouts, drains, self-healing).

    with SteadyLoad(endpoint, golden_dir, rate=10) as load:
        ...change something in the cluster...
    assert load.report().failed == 0

Requests start on a fixed schedule (open loop: a slow answer does not slow the schedule down), each on a
worker thread with a timeout, so a stalled gateway shows up as failures rather than as a quieter load. The
load is bounded in count and time (`max_seconds`), and goes only to the endpoint given (127.0.0.1: the
NodePort mapping or a port-forward). Every answer is checked: status 200 and the golden image's own label.
"""

from __future__ import annotations

import dataclasses
import itertools
import statistics
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from types import TracebackType

import httpx

from model import spec


@dataclasses.dataclass(frozen=True)
class Outcome:
    started: float  # seconds since the load began
    seconds: float
    status: int | None  # None: no HTTP answer (connection error, timeout)
    ok: bool
    detail: str
    retry_after: str | None = None


@dataclasses.dataclass(frozen=True)
class Report:
    outcomes: list[Outcome]

    @property
    def sent(self) -> int:
        return len(self.outcomes)

    @property
    def failures(self) -> list[Outcome]:
        return [o for o in self.outcomes if not o.ok]

    @property
    def failed(self) -> int:
        return len(self.failures)

    def percentile_ms(self, q: float) -> float:
        latencies = sorted(o.seconds for o in self.outcomes if o.ok)
        if not latencies:
            return float("nan")
        if len(latencies) == 1:
            return latencies[0] * 1000
        return statistics.quantiles(latencies, n=100, method="inclusive")[int(q) - 1] * 1000

    def summary(self) -> dict[str, float | int]:
        return {
            "sent": self.sent,
            "failed": self.failed,
            "p50_ms": round(self.percentile_ms(50), 1),
            "p99_ms": round(self.percentile_ms(99), 1),
        }

    def describe_failures(self, limit: int = 10) -> str:
        return "; ".join(f"t={o.started:.1f}s {o.status} {o.detail}" for o in self.failures[:limit])


class SteadyLoad:
    """Sends one golden image every 1/rate seconds to POST {endpoint}/predict until the block ends."""

    def __init__(
        self,
        endpoint: str,
        golden_dir: Path,
        rate: float = 10.0,
        timeout: float = 10.0,
        max_seconds: float = 600.0,
    ) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.images = [(label, (golden_dir / f"{label}.jpg").read_bytes()) for label in spec.LABELS]
        self.interval = 1.0 / rate
        self.timeout = timeout
        self.max_seconds = max_seconds
        self._stop = threading.Event()
        self._futures: list[Future[Outcome]] = []
        self._pool = ThreadPoolExecutor(max_workers=int(rate * timeout) + 4, thread_name_prefix="load")
        self._client = httpx.Client(
            timeout=timeout, limits=httpx.Limits(max_connections=int(rate * timeout) + 4)
        )
        self._scheduler = threading.Thread(target=self._schedule, name="load-schedule", daemon=True)
        self._t0 = 0.0

    def __enter__(self) -> SteadyLoad:
        self._t0 = time.monotonic()
        self._scheduler.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        self._scheduler.join()
        self._pool.shutdown(wait=True)
        self._client.close()

    def elapsed(self) -> float:
        return time.monotonic() - self._t0

    def report(self) -> Report:
        return Report([f.result() for f in self._futures if f.done()])

    def report_since(self, started: float) -> Report:
        """Outcomes of the requests started at or after `started` (seconds since the load began)."""
        return Report([o for o in self.report().outcomes if o.started >= started])

    def _schedule(self) -> None:
        for n, (label, body) in zip(itertools.count(), itertools.cycle(self.images), strict=False):
            due = self._t0 + n * self.interval
            if self._stop.wait(max(0.0, due - time.monotonic())) or due - self._t0 > self.max_seconds:
                return
            self._futures.append(self._pool.submit(self._send, label, body, due - self._t0))

    def _send(self, label: str, body: bytes, started: float) -> Outcome:
        begin = time.monotonic()
        try:
            response = self._client.post(
                f"{self.endpoint}/predict", content=body, headers={"Content-Type": "image/jpeg"}
            )
        except httpx.HTTPError as error:
            return Outcome(started, time.monotonic() - begin, None, False, f"{type(error).__name__}: {error}")
        seconds = time.monotonic() - begin
        retry_after = response.headers.get("Retry-After")
        if response.status_code != 200:
            return Outcome(started, seconds, response.status_code, False, response.text[:200], retry_after)
        got = response.json().get("label")
        if got != label:
            return Outcome(started, seconds, 200, False, f"label {got!r}, expected {label!r}")
        return Outcome(started, seconds, 200, True, "")
