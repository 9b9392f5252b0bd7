"""Run the pinned Prometheus server (`bin/prometheus`, built by `make tools`) as a real process for tests.

    from tests.support.prometheus import ScrapeJob, run_prometheus

    jobs = [ScrapeJob("gateway", "127.0.0.1:8123", "/metrics")]
    with run_prometheus(jobs, rule_files=[rules_path], tmp_dir=tmp) as prom:
        prom.wait_for_targets()
        prom.query('sum(rate(gateway_requests_total[1m]))')

It listens on a free port of 127.0.0.1, scrapes only the static targets it is given (every second) and keeps
its data in `tmp_dir`; `run_prometheus` returns once /-/ready answers 200 and stops the process on exit.
"""

from __future__ import annotations

import contextlib
import math
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.support.standin import HOST, free_port, terminate

REPO = Path(__file__).resolve().parents[2]
PROMETHEUS = REPO / "bin" / "prometheus"
PROMTOOL = REPO / "bin" / "promtool"
SCRAPE_INTERVAL = "1s"
STARTUP_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class ScrapeJob:
    """One scrape job with one static target, `host:port` scraped at `metrics_path`."""

    name: str
    target: str
    metrics_path: str
    labels: Mapping[str, str] = field(default_factory=dict)


def config(jobs: Sequence[ScrapeJob], rule_files: Sequence[Path] = ()) -> dict[str, Any]:
    """A prometheus.yml: every job on a 1 s scrape and rule evaluation interval."""
    return {
        "global": {"scrape_interval": SCRAPE_INTERVAL, "evaluation_interval": SCRAPE_INTERVAL},
        "rule_files": [str(path) for path in rule_files],
        "scrape_configs": [
            {
                "job_name": job.name,
                "metrics_path": job.metrics_path,
                "static_configs": [{"targets": [job.target], "labels": dict(job.labels)}],
            }
            for job in jobs
        ],
    }


@dataclass
class PrometheusProcess:
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log_tail(self, lines: int = 30) -> str:
        text = self.log_path.read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def api(self, path: str, **params: Any) -> Any:
        """GET /api/v1/<path>; returns `data`, raises with Prometheus' own error message otherwise."""
        response = httpx.get(f"{self.url}/api/v1/{path}", params=params, timeout=10)
        body = response.json()
        if body.get("status") != "success":
            raise RuntimeError(f"/api/v1/{path} {params}: {body.get('errorType')}: {body.get('error')}")
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query at now; the result vector (or a scalar as a one-element list)."""
        data = self.api("query", query=expr)
        if data["resultType"] == "scalar":
            return [{"metric": {}, "value": data["result"]}]
        result: list[dict[str, Any]] = data["result"]
        return result

    def wait_for(self, expr: str, timeout: float = 30.0) -> list[dict[str, Any]]:
        """Polls `expr` until it returns a non-empty result; raises TimeoutError with the last answer."""
        deadline = time.monotonic() + timeout
        result: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            result = self.query(expr)
            if result:
                return result
            time.sleep(0.5)
        raise TimeoutError(f"{expr!r} still empty after {timeout:.0f} s")

    def wait_for_targets(self, timeout: float = 30.0) -> list[dict[str, Any]]:
        """Waits until every configured target has been scraped once; returns the active targets."""
        deadline = time.monotonic() + timeout
        targets: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            targets = self.api("targets", state="active")["activeTargets"]
            if targets and all(t["health"] != "unknown" for t in targets):
                return targets
            time.sleep(0.5)
        raise TimeoutError(f"targets not scraped after {timeout:.0f} s: {targets}")

    def stop(self, timeout: float = 20.0) -> int:
        return terminate(self.process, timeout)


def finite_values(result: list[dict[str, Any]]) -> list[float]:
    """The sample values of an instant-query result that are numbers (not NaN or infinite)."""
    values = [float(sample["value"][1]) for sample in result]
    return [value for value in values if math.isfinite(value)]


def start_prometheus(
    jobs: Sequence[ScrapeJob], *, tmp_dir: Path, rule_files: Sequence[Path] = ()
) -> PrometheusProcess:
    if not PROMETHEUS.exists():
        raise FileNotFoundError(f"{PROMETHEUS} missing: run `make tools`")
    config_path = tmp_dir / "prometheus.yml"
    config_path.write_text(yaml.safe_dump(config(jobs, rule_files), sort_keys=False))
    port = free_port()
    log_path = tmp_dir / "prometheus.log"
    argv = [
        str(PROMETHEUS),
        f"--config.file={config_path}",
        f"--storage.tsdb.path={tmp_dir / 'data'}",
        f"--web.listen-address={HOST}:{port}",
        "--log.level=warn",
    ]
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(argv, cwd=tmp_dir, stdout=log_file, stderr=subprocess.STDOUT)
    return PrometheusProcess(f"http://{HOST}:{port}", process, log_path)


@contextlib.contextmanager
def run_prometheus(
    jobs: Sequence[ScrapeJob], *, tmp_dir: Path, rule_files: Sequence[Path] = ()
) -> Iterator[PrometheusProcess]:
    prometheus = start_prometheus(jobs, tmp_dir=tmp_dir, rule_files=rule_files)
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:
            if prometheus.process.poll() is not None:
                raise RuntimeError(f"prometheus exited before ready:\n{prometheus.log_tail()}")
            try:
                if httpx.get(f"{prometheus.url}/-/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"prometheus not ready after {STARTUP_TIMEOUT_S:.0f} s:\n{prometheus.log_tail()}"
                )
            time.sleep(0.2)
        yield prometheus
    finally:
        prometheus.stop()
