"""The stand-in answers TF Serving's gRPC API like TF Serving, called through the official stubs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeAlias

import grpc
import numpy as np
import pytest
import tensorflow as tf
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tensorflow.core.framework import types_pb2
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    prediction_service_pb2_grpc,
)

from model import spec
from tests.serving.builders import STABLE_LABEL, predict_request, solid_images

pytestmark = pytest.mark.process

PredictionStub: TypeAlias = prediction_service_pb2_grpc.PredictionServiceStub
ModelStub: TypeAlias = model_service_pb2_grpc.ModelServiceStub
TIMEOUT_S = 30.0


def probabilities(response: object) -> np.ndarray:
    return tf.make_ndarray(response.outputs[spec.OUTPUT_NAME])  # type: ignore[attr-defined]


def rpc_error(call: object, *args: object) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call(*args, timeout=TIMEOUT_S)  # type: ignore[operator]
    return caught.value


MetadataRequest: TypeAlias = get_model_metadata_pb2.GetModelMetadataRequest


def metadata_request(
    name: str = spec.MODEL_NAME, fields: Sequence[str] = ("signature_def",)
) -> MetadataRequest:
    request = MetadataRequest(metadata_field=list(fields))
    request.model_spec.name = name
    return request


# Predict


def test_one_image_gets_one_row_of_eight_probabilities_that_sum_to_one(prediction: PredictionStub) -> None:
    response = prediction.Predict(predict_request(solid_images((200, 120, 40))), timeout=TIMEOUT_S)

    rows = probabilities(response)
    assert rows.shape == (1, len(spec.LABELS))
    assert rows.dtype == np.float32
    np.testing.assert_allclose(rows.sum(axis=1), 1.0, rtol=1e-5)
    assert response.model_spec.name == spec.MODEL_NAME
    assert response.model_spec.signature_name == spec.SIGNATURE_NAME


def test_several_images_in_one_request_get_the_same_rows_as_one_by_one(prediction: PredictionStub) -> None:
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (30, 30, 30), (250, 250, 250)]

    batched = probabilities(prediction.Predict(predict_request(solid_images(*colours)), timeout=TIMEOUT_S))
    single = [
        probabilities(prediction.Predict(predict_request(solid_images(colour)), timeout=TIMEOUT_S))[0]
        for colour in colours
    ]

    assert batched.shape == (len(colours), len(spec.LABELS))
    np.testing.assert_allclose(batched, np.stack(single), rtol=1e-5, atol=1e-6)
    # Distinct images give distinct rows: the batch was not one image repeated.
    assert len({row.tobytes() for row in batched}) == len(colours)


def test_outputs_are_typed_float_fields_as_tf_serving_sends_them(prediction: PredictionStub) -> None:
    response = prediction.Predict(predict_request(solid_images((1, 2, 3), (4, 5, 6))), timeout=TIMEOUT_S)

    output = response.outputs[spec.OUTPUT_NAME]
    assert output.dtype == types_pb2.DT_FLOAT
    assert [dim.size for dim in output.tensor_shape.dim] == [2, len(spec.LABELS)]
    assert len(output.float_val) == 2 * len(spec.LABELS)
    assert not output.tensor_content


def test_a_request_without_a_version_is_served_by_the_latest_version(prediction: PredictionStub) -> None:
    response = prediction.Predict(predict_request(solid_images((9, 9, 9))), timeout=TIMEOUT_S)

    assert response.model_spec.version.value == 2


def test_a_version_or_a_version_label_picks_that_version(prediction: PredictionStub) -> None:
    images = solid_images((180, 60, 20))

    by_number = prediction.Predict(predict_request(images, version=1), timeout=TIMEOUT_S)
    by_label = prediction.Predict(predict_request(images, version_label=STABLE_LABEL), timeout=TIMEOUT_S)
    latest = prediction.Predict(predict_request(images), timeout=TIMEOUT_S)

    assert by_number.model_spec.version.value == by_label.model_spec.version.value == 1
    np.testing.assert_array_equal(probabilities(by_number), probabilities(by_label))
    assert not np.allclose(probabilities(by_number), probabilities(latest)), "versions 1 and 2 differ"


def test_an_unknown_input_name_is_invalid_argument_naming_the_expected_input(
    prediction: PredictionStub,
) -> None:
    error = rpc_error(prediction.Predict, predict_request(solid_images((0, 0, 0)), input_name="images"))

    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert f"{{{spec.INPUT_NAME}}}" in error.details()
    assert "images" in error.details()


def test_a_float_image_is_invalid_argument_naming_the_expected_dtype(prediction: PredictionStub) -> None:
    floats = solid_images((10, 20, 30)).astype(np.float32) / 255

    error = rpc_error(prediction.Predict, predict_request(floats))

    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == "Expects arg[0] to be uint8 but float is provided"


@pytest.mark.parametrize(
    "shape",
    [(1, 100, 100, 3), (1, 150, 150, 4), (150, 150, 3)],
    ids=["wrong size", "four channels", "no batch dimension"],
)
def test_an_image_of_the_wrong_shape_is_invalid_argument(
    prediction: PredictionStub, shape: tuple[int, ...]
) -> None:
    error = rpc_error(prediction.Predict, predict_request(np.zeros(shape, dtype=np.uint8)))

    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "[-1,150,150,3]" in error.details()


def test_a_batch_larger_than_the_batching_limit_is_refused(prediction: PredictionStub) -> None:
    images = np.zeros((33, spec.IMAGE_HEIGHT, spec.IMAGE_WIDTH, spec.CHANNELS), dtype=np.uint8)

    error = rpc_error(prediction.Predict, predict_request(images))

    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "larger than maximum input batch size 32" in error.details()


def test_an_unknown_model_is_not_found(prediction: PredictionStub) -> None:
    error = rpc_error(prediction.Predict, predict_request(solid_images((0, 0, 0)), name="cats"))

    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert error.details() == "Servable not found for request: Latest(cats)"


def test_an_unknown_version_is_not_found(prediction: PredictionStub) -> None:
    error = rpc_error(prediction.Predict, predict_request(solid_images((0, 0, 0)), version=7))

    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert error.details() == f"Servable not found for request: Specific({spec.MODEL_NAME}, 7)"


def test_an_unknown_version_label_is_invalid_argument(prediction: PredictionStub) -> None:
    error = rpc_error(prediction.Predict, predict_request(solid_images((0, 0, 0)), version_label="canary"))

    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "canary" in error.details()


def test_an_unknown_signature_is_failed_precondition(prediction: PredictionStub) -> None:
    error = rpc_error(prediction.Predict, predict_request(solid_images((0, 0, 0)), signature_name="classify"))

    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error.details() == 'Serving signature key "classify" not found.'


def test_output_filter_keeps_the_named_output_and_refuses_unknown_ones(prediction: PredictionStub) -> None:
    request = predict_request(solid_images((0, 0, 0)))
    request.output_filter.append(spec.OUTPUT_NAME)
    assert list(prediction.Predict(request, timeout=TIMEOUT_S).outputs) == [spec.OUTPUT_NAME]

    request.output_filter[:] = ["logits"]
    error = rpc_error(prediction.Predict, request)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert f"{{{spec.OUTPUT_NAME}}}" in error.details()


# GetModelMetadata


def test_model_metadata_documents_the_serving_signature(prediction: PredictionStub) -> None:
    response = prediction.GetModelMetadata(metadata_request(), timeout=TIMEOUT_S)

    assert response.model_spec.name == spec.MODEL_NAME
    assert response.model_spec.version.value == 2
    signatures = get_model_metadata_pb2.SignatureDefMap()
    assert response.metadata["signature_def"].Unpack(signatures)
    signature = signatures.signature_def[spec.SIGNATURE_NAME]
    assert signature.method_name == "tensorflow/serving/predict"
    image = signature.inputs[spec.INPUT_NAME]
    assert image.dtype == tf.as_dtype(spec.INPUT_DTYPE).as_datatype_enum
    image_shape = [-1, spec.IMAGE_HEIGHT, spec.IMAGE_WIDTH, spec.CHANNELS]
    assert [d.size for d in image.tensor_shape.dim] == image_shape
    output = signature.outputs[spec.OUTPUT_NAME]
    assert output.dtype == tf.as_dtype(spec.OUTPUT_DTYPE).as_datatype_enum
    assert [d.size for d in output.tensor_shape.dim] == [-1, len(spec.LABELS)]


def test_model_metadata_of_an_unsupported_field_is_invalid_argument(prediction: PredictionStub) -> None:
    request = metadata_request(fields=("signature_def", "labels"))

    error = rpc_error(prediction.GetModelMetadata, request)

    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == "Metadata field labels is not supported"


def test_model_metadata_of_an_unknown_model_is_not_found(prediction: PredictionStub) -> None:
    error = rpc_error(prediction.GetModelMetadata, metadata_request("cats"))

    assert error.code() == grpc.StatusCode.NOT_FOUND


# GetModelStatus and health


def test_every_loaded_version_is_available(models: ModelStub) -> None:
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = spec.MODEL_NAME

    response = models.GetModelStatus(request, timeout=TIMEOUT_S)

    states = {status.version: status.state for status in response.model_version_status}
    assert states == {1: get_model_status_pb2.ModelVersionStatus.AVAILABLE, 2: states[1]}
    assert all(status.status.error_code == 0 for status in response.model_version_status)


@pytest.mark.parametrize(
    ("name", "version", "message"),
    [
        ("cats", None, "Could not find any versions of model cats"),
        (spec.MODEL_NAME, 7, f"Could not find version 7 of model {spec.MODEL_NAME}"),
    ],
    ids=["unknown model", "unknown version"],
)
def test_status_of_an_unknown_model_or_version_is_not_found(
    models: ModelStub, name: str, version: int | None, message: str
) -> None:
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = name
    if version is not None:
        request.model_spec.version.value = version

    error = rpc_error(models.GetModelStatus, request)

    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert error.details() == message


def test_the_grpc_health_service_reports_serving(channel: grpc.Channel) -> None:
    reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=TIMEOUT_S)

    assert reply.status == health_pb2.HealthCheckResponse.SERVING
