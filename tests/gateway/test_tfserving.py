"""The TF Serving client (gateway.tfserving): tensors without TensorFlow, answers parsed, gRPC retries and
failures mapped to HTTP meaning."""

from __future__ import annotations

import asyncio
import json
import threading
import time

import grpc
import numpy as np
import pytest
from tensorflow.core.framework import tensor_pb2, types_pb2
from tensorflow_serving.apis import get_model_metadata_pb2, get_model_status_pb2

from gateway import contract, tfserving
from gateway.errors import ContractMismatch, UpstreamError, UpstreamTimeout, UpstreamUnavailable
from gateway.settings import Settings
from tests.gateway.fake_serving import FakeServing, FakeServingServer, fake_probabilities

pytestmark = pytest.mark.unit


def batch(n: int = 2, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, 150, 150, 3), dtype=np.uint8)


def test_the_request_tensor_carries_the_image_bytes_unchanged() -> None:
    images = batch(3)
    proto = tfserving.fill_tensor_proto(tensor_pb2.TensorProto(), images)
    assert proto.dtype == types_pb2.DT_UINT8
    assert [dim.size for dim in proto.tensor_shape.dim] == [3, 150, 150, 3]
    assert np.array_equal(np.frombuffer(proto.tensor_content, np.uint8).reshape(images.shape), images)


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_the_request_tensor_equals_tensorflows_make_tensor_proto(dtype: type) -> None:
    tf = pytest.importorskip("tensorflow", reason="TensorFlow is only in .venv")
    if not hasattr(tf, "make_tensor_proto"):
        pytest.skip("this environment's tensorflow package has no runtime (the gateway's)")
    images = batch(2).astype(dtype)
    ours = tfserving.fill_tensor_proto(tensor_pb2.TensorProto(), images)
    theirs = tf.make_tensor_proto(images)
    assert ours.dtype == theirs.dtype
    assert ours.tensor_shape == theirs.tensor_shape
    assert ours.tensor_content == theirs.tensor_content
    assert ours.SerializeToString() == theirs.SerializeToString()


def test_a_request_names_the_model_signature_input_and_output() -> None:
    request = tfserving.build_predict_request(batch(1), Settings(model_version=3))
    assert request.model_spec.name == contract.MODEL_NAME
    assert request.model_spec.version.value == 3
    assert request.model_spec.signature_name == contract.SIGNATURE_NAME
    assert list(request.inputs) == [contract.INPUT_NAME]
    assert list(request.output_filter) == [contract.OUTPUT_NAME]
    # One copy of the pixels on the wire, nothing else of size.
    assert request.ByteSize() < 2 * 150 * 150 * 3 * 1 + 200


def test_an_answer_is_parsed_from_tensor_content() -> None:
    values = np.arange(16, dtype=np.float32).reshape(2, 8) / 100
    proto = tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, tensor_content=values.tobytes())
    proto.tensor_shape.dim.add(size=2)
    proto.tensor_shape.dim.add(size=8)
    assert np.array_equal(tfserving.array_from_tensor_proto(proto), values)


def test_an_answer_is_parsed_from_float_val() -> None:
    values = np.linspace(0, 1, 8, dtype=np.float32).reshape(1, 8)
    proto = tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, float_val=values.ravel().tolist())
    proto.tensor_shape.dim.add(size=1)
    proto.tensor_shape.dim.add(size=8)
    assert np.array_equal(tfserving.array_from_tensor_proto(proto), values)


def test_an_answer_of_the_wrong_dtype_is_a_contract_mismatch() -> None:
    proto = tensor_pb2.TensorProto(dtype=types_pb2.DT_DOUBLE, double_val=[0.5] * 8)
    with pytest.raises(ContractMismatch, match="DT_DOUBLE"):
        tfserving.array_from_tensor_proto(proto)


def test_channel_options_spread_calls_round_robin_and_fit_a_full_batch() -> None:
    options = dict(tfserving.channel_options(Settings(max_batch_size=256)))
    config = json.loads(str(options["grpc.service_config"]))
    assert config["loadBalancingConfig"] == [{"round_robin": {}}]
    assert int(str(options["grpc.max_send_message_length"])) >= 256 * 150 * 150 * 3
    assert Settings(tf_serving_host="tf-serving:8500").grpc_target == "dns:///tf-serving:8500"


@pytest.mark.parametrize(
    ("code", "error", "status"),
    [
        (grpc.StatusCode.UNAVAILABLE, UpstreamUnavailable, 503),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, UpstreamUnavailable, 503),
        (grpc.StatusCode.CANCELLED, UpstreamUnavailable, 503),
        (grpc.StatusCode.DEADLINE_EXCEEDED, UpstreamTimeout, 504),
        (grpc.StatusCode.INVALID_ARGUMENT, ContractMismatch, 502),
        (grpc.StatusCode.NOT_FOUND, ContractMismatch, 502),
        (grpc.StatusCode.FAILED_PRECONDITION, ContractMismatch, 502),
        (grpc.StatusCode.INTERNAL, UpstreamError, 502),
        (grpc.StatusCode.UNKNOWN, UpstreamError, 502),
    ],
)
def test_grpc_status_codes_map_to_gateway_errors(code: grpc.StatusCode, error: type, status: int) -> None:
    rpc_error = grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details="boom")
    mapped = tfserving.map_rpc_error(rpc_error, Settings(retry_after_s=4))
    assert isinstance(mapped, error)
    assert mapped.status == status
    if status == 503:
        assert mapped.headers == {"Retry-After": "4"}


def signatures(
    input_dtype: int = types_pb2.DT_UINT8, classes: int = 8
) -> get_model_metadata_pb2.SignatureDefMap:
    servicer = FakeServing()
    servicer.behaviour.input_dtype = input_dtype
    servicer.behaviour.classes = classes
    response = servicer.GetModelMetadata(None, None)  # type: ignore[arg-type]
    result = get_model_metadata_pb2.SignatureDefMap()
    response.metadata["signature_def"].Unpack(result)  # type: ignore[attr-defined]
    return result


def test_the_contracts_signature_has_no_problems() -> None:
    assert tfserving.signature_problems(signatures()) == []


def test_a_float_input_or_five_outputs_are_named_as_problems() -> None:
    problems = tfserving.signature_problems(signatures(types_pb2.DT_FLOAT, classes=5))
    assert problems == [
        "input 'image' is float32, expected uint8",
        "output 'probabilities' has shape [-1, 5], expected [-1, 8]",
    ]


def test_a_missing_signature_is_a_problem() -> None:
    assert tfserving.signature_problems(get_model_metadata_pb2.SignatureDefMap()) == [
        "no signature 'serving_default'"
    ]


# --- against the fake TF Serving over real gRPC ---


def run_client(settings: Settings, work):  # type: ignore[no-untyped-def]
    async def go():  # type: ignore[no-untyped-def]
        client = tfserving.TFServingClient(settings)
        try:
            return await work(client)
        finally:
            await client.close()

    return asyncio.run(go())


def test_predict_returns_one_row_per_image_and_the_served_version(fake_serving: FakeServingServer) -> None:
    images = batch(4)
    prediction = run_client(Settings(tf_serving_host=fake_serving.address), lambda c: c.predict(images))
    assert prediction.model_version == "7"
    assert np.allclose(prediction.probabilities, fake_probabilities(images))
    assert fake_serving.servicer.behaviour.calls == [4]


def test_unavailable_is_retried_and_then_succeeds(fake_serving: FakeServingServer) -> None:
    fake_serving.servicer.behaviour.fail_with = grpc.StatusCode.UNAVAILABLE
    fake_serving.servicer.behaviour.fail_times = 2
    settings = Settings(tf_serving_host=fake_serving.address, serving_retries=2)
    prediction = run_client(settings, lambda c: c.predict(batch(1)))
    assert prediction.probabilities.shape == (1, 8)


def test_unavailable_beyond_the_retries_is_a_503(fake_serving: FakeServingServer) -> None:
    fake_serving.servicer.behaviour.fail_with = grpc.StatusCode.UNAVAILABLE
    fake_serving.servicer.behaviour.fail_times = 3
    settings = Settings(tf_serving_host=fake_serving.address, serving_retries=2)
    with pytest.raises(UpstreamUnavailable):
        run_client(settings, lambda c: c.predict(batch(1)))
    assert fake_serving.servicer.behaviour.fail_times == 0  # 1 try + 2 retries


def test_other_errors_are_not_retried(fake_serving: FakeServingServer) -> None:
    fake_serving.servicer.behaviour.fail_with = grpc.StatusCode.INTERNAL
    with pytest.raises(UpstreamError):
        run_client(Settings(tf_serving_host=fake_serving.address), lambda c: c.predict(batch(1)))
    assert fake_serving.servicer.behaviour.fail_times == 1_000_000 - 1


def test_a_slow_model_hits_the_deadline(fake_serving: FakeServingServer) -> None:
    fake_serving.servicer.behaviour.delay_s = 1.0
    settings = Settings(tf_serving_host=fake_serving.address, serving_timeout_s=0.2)
    started = time.monotonic()
    with pytest.raises(UpstreamTimeout):
        run_client(settings, lambda c: c.predict(batch(1)))
    assert time.monotonic() - started < 0.9


def test_nobody_listening_is_a_fast_503() -> None:
    from tests.support.standin import free_port

    settings = Settings(tf_serving_host=f"127.0.0.1:{free_port()}", serving_timeout_s=5)
    started = time.monotonic()
    with pytest.raises(UpstreamUnavailable):
        run_client(settings, lambda c: c.predict(batch(1)))
    assert time.monotonic() - started < 2


def test_a_moment_without_tf_serving_after_it_answered_is_waited_out(fake_serving: FakeServingServer) -> None:
    # A pod gone before the channel knew its replacement: no address answers for a moment, then one does.
    settings = Settings(tf_serving_host=fake_serving.address, serving_timeout_s=5)

    async def work(client: tfserving.TFServingClient) -> tuple[tfserving.Prediction, float]:
        await client.predict(batch(1))
        fake_serving.stop()
        threading.Timer(0.3, fake_serving.start).start()
        started = time.monotonic()
        prediction = await client.predict(batch(1))
        return prediction, time.monotonic() - started

    prediction, took = run_client(settings, work)
    assert prediction.probabilities.shape == (1, 8)
    assert 0.2 < took < tfserving.RECONNECT_WAIT_S + 0.5


def test_a_longer_outage_after_tf_serving_answered_is_a_503_within_the_reconnect_wait(
    fake_serving: FakeServingServer,
) -> None:
    settings = Settings(tf_serving_host=fake_serving.address, serving_timeout_s=5)

    async def work(client: tfserving.TFServingClient) -> float:
        await client.predict(batch(1))
        fake_serving.stop()
        started = time.monotonic()
        with pytest.raises(UpstreamUnavailable):
            await client.predict(batch(1))
        return time.monotonic() - started

    took = run_client(settings, work)
    assert tfserving.RECONNECT_WAIT_S - 0.1 < took < tfserving.RECONNECT_WAIT_S + 0.5


def test_unavailable_answered_over_a_ready_channel_is_not_waited_for(fake_serving: FakeServingServer) -> None:
    settings = Settings(tf_serving_host=fake_serving.address, serving_retries=0)

    async def work(client: tfserving.TFServingClient) -> float:
        await client.predict(batch(1))
        fake_serving.servicer.behaviour.fail_with = grpc.StatusCode.UNAVAILABLE
        fake_serving.servicer.behaviour.fail_times = 1
        started = time.monotonic()
        with pytest.raises(UpstreamUnavailable):
            await client.predict(batch(1))
        return time.monotonic() - started

    assert run_client(settings, work) < 0.5
    assert fake_serving.servicer.behaviour.fail_times == 0  # sent once: no second attempt


def test_the_contract_check_passes_against_a_matching_model(fake_serving: FakeServingServer) -> None:
    status = run_client(Settings(tf_serving_host=fake_serving.address), lambda c: c.check_contract())
    assert status.ready
    assert status.model_version == "7"


def test_the_contract_check_fails_on_a_float_input(fake_serving: FakeServingServer) -> None:
    fake_serving.servicer.behaviour.input_dtype = types_pb2.DT_FLOAT
    status = run_client(Settings(tf_serving_host=fake_serving.address), lambda c: c.check_contract())
    assert not status.ready
    assert "input 'image' is float32, expected uint8" in status.reason


def test_the_contract_check_fails_while_the_model_is_loading(fake_serving: FakeServingServer) -> None:
    fake_serving.servicer.behaviour.state = get_model_status_pb2.ModelVersionStatus.LOADING
    status = run_client(Settings(tf_serving_host=fake_serving.address), lambda c: c.check_contract())
    assert not status.ready
    assert "LOADING" in status.reason


# --- retries: gRPC's retry policy, from the channel's service config ---


def test_the_service_config_retries_predict_on_unavailable_resource_exhausted_and_cancelled() -> None:
    options = dict(tfserving.channel_options(Settings(serving_retries=3, serving_backoff_s=0.1)))
    config = json.loads(str(options["grpc.service_config"]))
    (method,) = config["methodConfig"]
    assert method["name"] == [{"service": "tensorflow.serving.PredictionService", "method": "Predict"}]
    assert method["retryPolicy"] == {
        "maxAttempts": 4,
        "initialBackoff": "0.100000s",
        "maxBackoff": "0.400000s",
        "backoffMultiplier": 2,
        "retryableStatusCodes": ["UNAVAILABLE", "RESOURCE_EXHAUSTED", "CANCELLED"],
    }
    # A whole batch fits the retry buffer, or gRPC would give up retrying it.
    assert int(str(options["grpc.per_rpc_retry_buffer_size"])) >= 32 * contract.IMAGE_BYTES


def test_no_retries_means_no_retry_policy() -> None:
    config = json.loads(
        str(dict(tfserving.channel_options(Settings(serving_retries=0)))["grpc.service_config"])
    )
    assert "methodConfig" not in config
    assert config["loadBalancingConfig"] == [{"round_robin": {}}]


def test_the_channel_ignores_proxy_variables() -> None:
    assert dict(tfserving.channel_options(Settings()))["grpc.enable_http_proxy"] == 0


def test_resource_exhausted_is_retried_and_then_succeeds(fake_serving: FakeServingServer) -> None:
    fake_serving.servicer.behaviour.fail_with = grpc.StatusCode.RESOURCE_EXHAUSTED
    fake_serving.servicer.behaviour.fail_times = 1
    prediction = run_client(Settings(tf_serving_host=fake_serving.address), lambda c: c.predict(batch(1)))
    assert prediction.probabilities.shape == (1, 8)
    assert fake_serving.servicer.behaviour.calls == [1]


def test_a_call_cancelled_by_a_pod_shutting_down_is_retried_and_then_succeeds(
    fake_serving: FakeServingServer,
) -> None:
    fake_serving.servicer.behaviour.fail_with = grpc.StatusCode.CANCELLED
    fake_serving.servicer.behaviour.fail_times = 1
    prediction = run_client(Settings(tf_serving_host=fake_serving.address), lambda c: c.predict(batch(1)))
    assert prediction.probabilities.shape == (1, 8)
    assert fake_serving.servicer.behaviour.fail_times == 0


def test_a_full_batch_is_retried_too(fake_serving: FakeServingServer) -> None:
    fake_serving.servicer.behaviour.fail_with = grpc.StatusCode.UNAVAILABLE
    fake_serving.servicer.behaviour.fail_times = 2
    settings = Settings(tf_serving_host=fake_serving.address, serving_retries=2)
    prediction = run_client(settings, lambda c: c.predict(batch(32)))
    assert prediction.probabilities.shape == (32, 8)


def test_without_retries_one_unavailable_is_a_503(fake_serving: FakeServingServer) -> None:
    fake_serving.servicer.behaviour.fail_with = grpc.StatusCode.UNAVAILABLE
    fake_serving.servicer.behaviour.fail_times = 1
    with pytest.raises(UpstreamUnavailable):
        run_client(
            Settings(tf_serving_host=fake_serving.address, serving_retries=0), lambda c: c.predict(batch(1))
        )
    assert fake_serving.servicer.behaviour.fail_times == 0


def test_retries_stop_at_the_deadline(fake_serving: FakeServingServer) -> None:
    fake_serving.servicer.behaviour.fail_with = grpc.StatusCode.UNAVAILABLE
    settings = Settings(
        tf_serving_host=fake_serving.address, serving_retries=4, serving_backoff_s=2, serving_timeout_s=0.5
    )
    started = time.monotonic()
    with pytest.raises((UpstreamUnavailable, UpstreamTimeout)):
        run_client(settings, lambda c: c.predict(batch(1)))
    assert time.monotonic() - started < 1.5
