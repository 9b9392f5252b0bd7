"""Stand-in options, served in-process over real gRPC: output encoding, batch and message limits, CLI."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.framework import types_pb2
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from model import spec
from serving.standin.__main__ import parse_args
from serving.standin.server import TF_SERVING_MAX_MESSAGE_BYTES, Model, Options, StandIn, load_model
from tests.serving.builders import predict_request, solid_images

pytestmark = pytest.mark.process

# serve(options=None, max_message_bytes=None) -> address of a started in-process stand-in.
Serve = Callable[..., str]


@pytest.fixture(scope="module")
def tiny_model(tiny_model_base: Path) -> Model:
    return load_model(spec.MODEL_NAME, tiny_model_base, warmup=False)


@pytest.fixture
def serve(tiny_model: Model) -> Iterator[Serve]:
    servers: list[StandIn] = []

    def start(options: Options | None = None, max_message_bytes: int | None = None) -> str:
        limit = TF_SERVING_MAX_MESSAGE_BYTES if max_message_bytes is None else max_message_bytes
        server = StandIn(tiny_model, port=0, options=options, max_message_bytes=limit)
        server.start()
        servers.append(server)
        return server.address

    yield start
    for server in servers:
        server.stop(grace_seconds=0)


def predict(address: str, images: np.ndarray) -> Any:
    with grpc.insecure_channel(address) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        return stub.Predict(predict_request(images), timeout=30)


def test_tensor_content_mode_packs_the_same_probabilities(serve: Serve) -> None:
    images = solid_images((10, 200, 30), (90, 90, 90))

    fields = predict(serve(), images).outputs[spec.OUTPUT_NAME]
    packed = predict(serve(Options(as_tensor_content=True)), images).outputs[spec.OUTPUT_NAME]

    assert packed.tensor_content
    assert not packed.float_val
    np.testing.assert_array_equal(tf.make_ndarray(packed), tf.make_ndarray(fields))


def test_without_a_batch_limit_a_batch_of_forty_is_served(serve: Serve) -> None:
    images = np.zeros((40, spec.IMAGE_HEIGHT, spec.IMAGE_WIDTH, spec.CHANNELS), dtype=np.uint8)

    response = predict(serve(Options(max_batch_size=None)), images)

    assert tf.make_ndarray(response.outputs[spec.OUTPUT_NAME]).shape == (40, len(spec.LABELS))


def test_a_request_over_the_message_limit_is_resource_exhausted(serve: Serve) -> None:
    address = serve(max_message_bytes=1024 * 1024)
    # 16 images of 67.5 KB each: about 1.1 MB on the wire.
    images = np.zeros((16, spec.IMAGE_HEIGHT, spec.IMAGE_WIDTH, spec.CHANNELS), dtype=np.uint8)

    with pytest.raises(grpc.RpcError) as caught:
        predict(address, images)

    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_the_cli_defaults_match_the_contract() -> None:
    args = parse_args(["--model-base-path", "build/models/species_model"])

    assert args.model_name == spec.MODEL_NAME
    assert (args.host, args.port) == ("127.0.0.1", 8500)
    assert args.max_batch_size == Options().max_batch_size


@pytest.mark.parametrize("label", ["stable", "stable=", "=1", "stable=one"])
def test_a_malformed_version_label_is_a_usage_error(label: str) -> None:
    with pytest.raises(SystemExit) as caught:
        parse_args(["--model-base-path", "m", "--version-label", label])

    assert caught.value.code == 2


def test_a_second_stand_in_cannot_share_a_busy_port(tiny_model: Model, serve: Serve) -> None:
    address = serve()
    port = int(address.rsplit(":", 1)[1])

    with pytest.raises(RuntimeError, match="Failed to bind"):
        StandIn(tiny_model, port=port)


def hand_built_request(
    images: np.ndarray, *, packed: bool, drop_bytes: int = 0
) -> predict_pb2.PredictRequest:
    """A PredictRequest built without TensorFlow, as the gateway builds it: raw bytes or typed int_val."""
    request = predict_pb2.PredictRequest()
    request.model_spec.name = spec.MODEL_NAME
    tensor = request.inputs[spec.INPUT_NAME]
    tensor.dtype = types_pb2.DT_UINT8
    for size in images.shape:
        tensor.tensor_shape.dim.add(size=size)
    if packed:
        tensor.tensor_content = images.tobytes()[: images.nbytes - drop_bytes]
    else:
        tensor.int_val.extend(images.ravel().tolist())
    return request


def test_packed_bytes_and_typed_int_values_are_the_same_image(serve: Serve) -> None:
    images = solid_images((250, 10, 10), (10, 250, 10))
    address = serve()

    with grpc.insecure_channel(address) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        packed = stub.Predict(hand_built_request(images, packed=True), timeout=30)
        typed = stub.Predict(hand_built_request(images, packed=False), timeout=30)

    np.testing.assert_array_equal(
        tf.make_ndarray(packed.outputs[spec.OUTPUT_NAME]), tf.make_ndarray(typed.outputs[spec.OUTPUT_NAME])
    )


def test_tensor_bytes_that_do_not_fill_the_shape_are_invalid_argument(serve: Serve) -> None:
    request = hand_built_request(solid_images((1, 2, 3)), packed=True, drop_bytes=3)

    with grpc.insecure_channel(serve()) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        with pytest.raises(grpc.RpcError) as caught:
            stub.Predict(request, timeout=30)

    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.details() == f"tensor parsing error: {spec.INPUT_NAME}"
