"""Fixtures for the gateway's unit tests: a fake TF Serving over real gRPC and the app around it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from gateway.log import configure_logging
from gateway.main import create_app
from gateway.settings import Settings
from tests.gateway.fake_serving import FakeServingServer


@pytest.fixture
def fake_serving() -> Iterator[FakeServingServer]:
    server = FakeServingServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def make_api(fake_serving: FakeServingServer) -> Iterator[Callable[..., TestClient]]:
    """Builds the app against the fake (settings overridable) and runs its lifespan for the test."""
    clients: list[TestClient] = []

    def make(**overrides: Any) -> TestClient:
        values: dict[str, Any] = {
            "tf_serving_host": fake_serving.address,
            "readiness_ttl_s": 0,
            "log_format": "text",
            **overrides,
        }
        settings = Settings(**values)
        configure_logging(settings.log_level_number, settings.log_format)  # as gateway.server does
        client = TestClient(create_app(settings), raise_server_exceptions=False)
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def api(make_api: Callable[..., TestClient]) -> TestClient:
    return make_api()
