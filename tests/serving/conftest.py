"""Fixtures for the stand-in tests: a tiny two-version model, a running stand-in and gRPC stubs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc

from tests.serving.builders import STABLE_LABEL
from tests.support.standin import StandInProcess, start_standin
from tests.support.tiny_model import export_tiny_model


@pytest.fixture(scope="session")
def tiny_model_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`<tmp>/species_model/{1,2}`: the serving contract with an untrained one-layer network."""
    return export_tiny_model(tmp_path_factory.mktemp("tiny-models"), versions=(1, 2))


@pytest.fixture(scope="session")
def shared_standin(tiny_model_base: Path) -> Iterator[StandInProcess]:
    """One stand-in process shared by the tests that do not stop or reconfigure it."""
    standin = start_standin(tiny_model_base, extra_args=["--version-label", f"{STABLE_LABEL}=1"])
    try:
        standin.wait_until_serving()
        yield standin
    finally:
        standin.stop()
        standin.log_path.unlink(missing_ok=True)


@pytest.fixture(scope="session")
def standin_address(shared_standin: StandInProcess) -> str:
    return shared_standin.address


@pytest.fixture
def channel(standin_address: str) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(standin_address) as channel:
        yield channel


@pytest.fixture
def prediction(channel: grpc.Channel) -> prediction_service_pb2_grpc.PredictionServiceStub:
    return prediction_service_pb2_grpc.PredictionServiceStub(channel)


@pytest.fixture
def models(channel: grpc.Channel) -> model_service_pb2_grpc.ModelServiceStub:
    return model_service_pb2_grpc.ModelServiceStub(channel)
