"""A fake TF Serving on 127.0.0.1 for the gateway's unit tests: real gRPC, no TensorFlow graph.

It implements Predict, GetModelMetadata and GetModelStatus with the contract's signature, and answers
from the mean colour of each image (red-ish -> label 0, and so on) so that tests can predict the label.
Tests switch its behaviour (`fail_with`, `delay_s`, `signature`) to provoke every upstream failure.
"""

from __future__ import annotations

import threading
import time
from concurrent import futures
from dataclasses import dataclass, field

import grpc
import numpy as np
from tensorflow.core.framework import tensor_pb2, types_pb2
from tensorflow.core.protobuf import meta_graph_pb2
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from gateway import contract

LABEL_COUNT = len(contract.LABELS)


def fake_probabilities(batch: np.ndarray, classes: int = LABEL_COUNT) -> np.ndarray:
    """Deterministic answer: the top class is (mean brightness // 32) % classes."""
    top = (batch.reshape(batch.shape[0], -1).mean(axis=1) // 32).astype(int) % classes
    probabilities = np.full((batch.shape[0], classes), 0.02, dtype=np.float32)
    probabilities[np.arange(batch.shape[0]), top] = 1 - 0.02 * (classes - 1)
    return probabilities


def tensor_info(dtype: int, shape: tuple[int, ...]) -> meta_graph_pb2.TensorInfo:
    info = meta_graph_pb2.TensorInfo(dtype=dtype, name="x:0")
    for size in shape:
        info.tensor_shape.dim.add(size=size)
    return info


@dataclass
class Behaviour:
    fail_with: grpc.StatusCode | None = None
    fail_times: int = 1_000_000  # how many Predict calls fail before it answers again
    delay_s: float = 0.0
    input_dtype: int = types_pb2.DT_UINT8
    classes: int = LABEL_COUNT
    state: int = get_model_status_pb2.ModelVersionStatus.AVAILABLE
    version: int = 7
    calls: list[int] = field(default_factory=list)  # batch size of each Predict received


class FakeServing(
    prediction_service_pb2_grpc.PredictionServiceServicer, model_service_pb2_grpc.ModelServiceServicer
):
    def __init__(self) -> None:
        self.behaviour = Behaviour()
        self._lock = threading.Lock()

    def Predict(self, request: predict_pb2.PredictRequest, context: grpc.ServicerContext) -> object:
        b = self.behaviour
        if b.delay_s:
            time.sleep(b.delay_s)
        with self._lock:
            if b.fail_with is not None and b.fail_times > 0:
                b.fail_times -= 1
                context.abort(b.fail_with, "fake failure")
        tensor = request.inputs[contract.INPUT_NAME]
        if tensor.dtype != b.input_dtype:
            context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, "Expects arg[0] to be float but uint8 is provided"
            )
        shape = tuple(dim.size for dim in tensor.tensor_shape.dim)
        batch = np.frombuffer(tensor.tensor_content, dtype=np.uint8).reshape(shape)
        b.calls.append(shape[0])
        probabilities = fake_probabilities(batch, b.classes)
        response = predict_pb2.PredictResponse()
        response.model_spec.name = request.model_spec.name
        response.model_spec.version.value = b.version
        output = response.outputs[contract.OUTPUT_NAME]
        output.CopyFrom(
            tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, float_val=probabilities.ravel().tolist())
        )
        for size in probabilities.shape:
            output.tensor_shape.dim.add(size=size)
        return response

    def GetModelMetadata(self, request: object, context: grpc.ServicerContext) -> object:
        b = self.behaviour
        signature = meta_graph_pb2.SignatureDef(method_name="tensorflow/serving/predict")
        signature.inputs[contract.INPUT_NAME].CopyFrom(tensor_info(b.input_dtype, contract.INPUT_SHAPE))
        signature.outputs[contract.OUTPUT_NAME].CopyFrom(tensor_info(types_pb2.DT_FLOAT, (-1, b.classes)))
        signatures = get_model_metadata_pb2.SignatureDefMap()
        signatures.signature_def[contract.SIGNATURE_NAME].CopyFrom(signature)
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        response.model_spec.name = contract.MODEL_NAME
        response.model_spec.version.value = b.version
        response.metadata["signature_def"].Pack(signatures)
        return response

    def GetModelStatus(self, request: object, context: grpc.ServicerContext) -> object:
        response = get_model_status_pb2.GetModelStatusResponse()
        response.model_version_status.add(version=self.behaviour.version, state=self.behaviour.state)
        return response


class FakeServingServer:
    """The fake on a free port; `stop()` and `start()` again on the same port simulate an outage."""

    def __init__(self) -> None:
        self.servicer = FakeServing()
        self.port = 0
        self._server: grpc.Server | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(self.servicer, server)
        model_service_pb2_grpc.add_ModelServiceServicer_to_server(self.servicer, server)
        self.port = server.add_insecure_port(f"127.0.0.1:{self.port}")
        server.start()
        self._server = server

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop(grace=None).wait()
            self._server = None
