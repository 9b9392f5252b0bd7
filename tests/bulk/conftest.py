"""Fixtures for the bulk tests: a real gateway + stand-in, collections on disk, the CLI as a process."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.bulk.collection import SCHEMAS, Collection, make_collection
from tests.support.gateway import GATEWAY_PYTHON, GatewayProcess, running_gateway
from tests.support.s3server import S3Server, run_s3_server
from tests.support.standin import run_standin
from tests.support.tiny_model import export_tiny_model

REPO = Path(__file__).resolve().parents[2]


@dataclass
class BulkRun:
    returncode: int
    output: str


def bulk_command(source: str | Path, out: str | Path, *args: str) -> list[str]:
    return [str(GATEWAY_PYTHON), "-m", "gateway.bulk", str(source), "--out", str(out), *args]


def bulk_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("AWS_", "VIRTUAL_ENV"))}
    env.update({"PYTHONPATH": str(REPO), "SOURCE_DATE_EPOCH": "1767225600"})
    env.update(extra or {})
    return env


def run_bulk(
    source: str | Path,
    out: str | Path,
    *args: str,
    env: Mapping[str, str] | None = None,
    timeout: float = 600,
) -> BulkRun:
    """`python -m gateway.bulk` from .venv-gateway (what the image ships), to the end."""
    if not GATEWAY_PYTHON.exists():
        pytest.skip(f"{GATEWAY_PYTHON} missing: run `make venv`")
    done = subprocess.run(
        bulk_command(source, out, *args),
        cwd=REPO,
        env=bulk_env(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return BulkRun(done.returncode, done.stdout + done.stderr)


def start_bulk(
    source: str | Path, out: str | Path, *args: str, env: Mapping[str, str] | None = None
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        bulk_command(source, out, *args),
        cwd=REPO,
        env=bulk_env(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def kill_after_batches(
    process: subprocess.Popen[str], ledger: Path, batches: int, timeout: float = 300
) -> int:
    """SIGKILLs `process` once its ledger holds `batches` batch lines; returns the lines seen then."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the run ended (status {process.returncode}) before {batches} batches")
        if ledger.exists():
            lines = ledger.read_bytes().count(b"\n") - 1
            if lines >= batches:
                process.send_signal(signal.SIGKILL)
                process.wait()
                return lines
        time.sleep(0.005)
    process.kill()
    raise AssertionError(f"no {batches} batches within {timeout} s")


def outputs_of(out: Path) -> dict[str, bytes]:
    names = [
        "predictions.csv",
        "megadetector.json",
        *(
            f"camtrap-dp/{n}"
            for n in ("datapackage.json", "deployments.csv", "media.csv", "observations.csv")
        ),
    ]
    return {name: (out / name).read_bytes() for name in names}


def batch_requests(gateway: GatewayProcess) -> int:
    """POST /predict/batch requests the gateway has answered so far (any status), from its /metrics."""
    text = httpx.get(f"{gateway.base_url}/metrics", timeout=5).text
    total = 0.0
    for line in text.splitlines():
        if line.startswith("gateway_requests_total{") and 'route="/predict/batch"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return int(total)


# --- fixtures ---


@pytest.fixture(scope="session")
def tiny_model_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_tiny_model(tmp_path_factory.mktemp("bulk-model"), versions=(1,))


@pytest.fixture(scope="module")
def gateway(tiny_model_base: Path) -> Iterator[GatewayProcess]:
    """The gateway from .venv-gateway in front of the stand-in serving a tiny model (fast, same contract)."""
    with run_standin(tiny_model_base) as address, running_gateway({"TF_SERVING_HOST": address}) as process:
        yield process


@pytest.fixture(scope="module")
def collection(tmp_path_factory: pytest.TempPathFactory) -> Collection:
    return make_collection(tmp_path_factory.mktemp("collection"))


@pytest.fixture(scope="module")
def s3_server() -> Iterator[S3Server]:
    try:
        with run_s3_server() as server:
            yield server
    except FileNotFoundError as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def camtrap_schemas() -> Path:
    if not (SCHEMAS / "camtrap-dp-profile.json").exists():
        pytest.skip(
            f"the Camtrap DP 1.0.2 schemas are not at {SCHEMAS} (../shared is absent in a user's clone)"
        )
    return SCHEMAS
