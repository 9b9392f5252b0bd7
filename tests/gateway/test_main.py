"""The app factory (gateway.main): no side effects at import, routes and docs as set, the metrics app."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient

from gateway.main import create_app, create_metrics_app
from gateway.settings import Settings
from tests.conftest import REPO

pytestmark = pytest.mark.unit

MakeApi = Callable[..., TestClient]
ARCHITECTURE_PATHS = {"/predict", "/predict/batch", "/healthz", "/readyz", "/model", "/metrics"}


def test_importing_the_app_reads_no_environment_and_installs_no_log_handler() -> None:
    probe = (
        "import logging, gateway.main as m; "
        "assert not hasattr(m, 'app'), 'a module-level app'; "
        "assert logging.getLogger().handlers == [], logging.getLogger().handlers; "
        "print('clean')"
    )
    # A variable that would stop the gateway at startup must not break an import (test collection, tools).
    env = {**os.environ, "MAX_BATCH_SIZE": "-5", "LOG_FORMAT": "xml", "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "clean"


def test_the_app_serves_every_path_the_architecture_names() -> None:
    paths = {getattr(route, "path", None) for route in create_app(Settings()).routes}
    assert paths >= ARCHITECTURE_PATHS


@pytest.mark.parametrize("path", ["/docs", "/redoc", "/openapi.json"])
def test_docs_are_off_by_default_and_on_when_enabled(make_api: MakeApi, path: str) -> None:
    response = make_api().get(path)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert make_api(docs_enabled=True).get(path).status_code == 200


def test_metrics_can_be_taken_off_the_main_port(make_api: MakeApi) -> None:
    assert make_api().get("/metrics").status_code == 200
    off = make_api(metrics_on_main_port=False).get("/metrics")
    assert off.status_code == 404
    assert off.json()["error"]["code"] == "not_found"


def test_the_metrics_app_serves_get_metrics_and_nothing_else() -> None:
    with TestClient(create_metrics_app()) as client:
        scrape = client.get("/metrics")
        assert scrape.status_code == 200
        assert scrape.headers["content-type"].startswith("text/plain")
        assert "gateway_requests_total" in scrape.text
        for method, path in (("GET", "/healthz"), ("GET", "/docs"), ("POST", "/metrics"), ("GET", "/")):
            response = client.request(method, path)
            assert response.status_code == 404, (method, path)
            assert response.json()["error"]["code"] == "not_found"
