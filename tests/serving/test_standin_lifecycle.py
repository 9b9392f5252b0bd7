"""The stand-in's process behaviour: readiness line, signals, warmup, added latency."""

from __future__ import annotations

import json
import re
import shutil
import signal
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import grpc
import pytest
import tensorflow as tf
from tensorflow_serving.apis import (
    get_model_status_pb2,
    model_service_pb2_grpc,
    prediction_log_pb2,
    prediction_service_pb2_grpc,
)

from model import spec
from tests.serving.builders import predict_request, solid_images
from tests.support.standin import StandInProcess, free_port, run_standin, start_standin

pytestmark = pytest.mark.process


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_stop_signal_ends_the_stand_in_with_status_zero_even_mid_request(
    tiny_model_base: Path, signum: signal.Signals
) -> None:
    # A 60 s artificial delay keeps a Predict in flight while the signal arrives.
    standin = start_standin(tiny_model_base, extra_args=["--delay-ms", "60000"])
    try:
        standin.wait_until_serving()
        with grpc.insecure_channel(standin.address) as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            in_flight = stub.Predict.future(predict_request(solid_images((1, 2, 3))), timeout=60)
            time.sleep(0.5)
            started = time.monotonic()
            standin.process.send_signal(signum)
            status = standin.process.wait(timeout=20)
            stopped_after = time.monotonic() - started
            # The call in flight is answered within the shutdown grace, not left to hang for 60 s.
            assert in_flight.result(timeout=5).model_spec.version.value == 2
    finally:
        standin.stop()

    assert status == 0
    assert stopped_after < 10
    ready = f"stand-in serving {spec.MODEL_NAME} versions [1, 2] on {standin.address}"
    assert ready in standin.log_text()


def test_delay_ms_makes_a_short_client_deadline_expire(tiny_model_base: Path) -> None:
    with (
        run_standin(tiny_model_base, extra_args=["--delay-ms", "1500"]) as address,
        grpc.insecure_channel(address) as channel,
    ):
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        request = predict_request(solid_images((1, 2, 3)))

        with pytest.raises(grpc.RpcError) as caught:
            stub.Predict(request, timeout=0.3)
        started = time.monotonic()
        stub.Predict(request, timeout=30)
        elapsed = time.monotonic() - started

    assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert elapsed >= 1.5


def test_warmup_requests_are_replayed_before_the_stand_in_reports_ready(
    shared_standin: StandInProcess,
) -> None:
    log = shared_standin.log_text()

    replayed = re.findall(r"version (\d+): replayed (\d+) warmup request", log)
    assert replayed == [("1", "2"), ("2", "2")], log
    assert log.index("replayed") < log.index("stand-in serving")


def test_a_failing_warmup_request_stops_the_load_with_status_one(
    tiny_model_base: Path, tmp_path: Path
) -> None:
    base = tmp_path / spec.MODEL_NAME
    shutil.copytree(tiny_model_base / "1", base / "1")
    bad = predict_request(solid_images((1, 2, 3)), input_name="images")
    record = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=bad))
    with tf.io.TFRecordWriter(str(base / "1" / "assets.extra" / spec.WARMUP_FILENAME)) as writer:
        writer.write(record.SerializeToString())

    standin = start_standin(base)
    try:
        status = standin.process.wait(timeout=120)
    finally:
        standin.stop()

    assert status == 1
    log = standin.log_text()
    assert "record 1 failed: INVALID_ARGUMENT: input tensor alias not found in signature: images" in log
    assert "stand-in serving" not in log


def test_a_base_path_without_versions_is_refused_with_status_one(tmp_path: Path) -> None:
    (tmp_path / spec.MODEL_NAME / "not-a-version").mkdir(parents=True)

    standin = start_standin(tmp_path / spec.MODEL_NAME)
    try:
        status = standin.process.wait(timeout=120)
    finally:
        standin.stop()

    assert status == 1
    assert "no numeric version directories" in standin.log_text()


def test_parallel_requests_are_all_answered(tiny_model_base: Path, standin_address: str) -> None:
    errors: list[BaseException] = []
    rows: list[int] = []

    def call(n: int) -> None:
        try:
            with grpc.insecure_channel(standin_address) as channel:
                stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
                images = solid_images(*[(n, n, n)] * (1 + n % 4))
                response = stub.Predict(predict_request(images), timeout=60)
                rows.append(int(response.outputs[spec.OUTPUT_NAME].tensor_shape.dim[0].size))
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=call, args=(n,)) for n in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert not errors
    assert sorted(rows) == sorted(1 + n % 4 for n in range(12))


def test_a_load_delay_keeps_the_stand_in_not_serving_and_loading_until_it_has_passed(
    tiny_model_base: Path,
) -> None:
    # The stand-in image runs this way in the kind cluster's readiness tests (STANDIN_LOAD_DELAY_S).
    standin = start_standin(tiny_model_base, extra_args=["--load-delay-s", "4"])
    try:
        # The port opens as the delay starts. Timed by plain TCP tries: a gRPC channel polled before the port
        # opened backs off for seconds, and the moment it first answers can come late in the delay.
        opened = standin.wait_until_listening()
        with grpc.insecure_channel(standin.address) as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            status_stub = model_service_pb2_grpc.ModelServiceStub(channel)
            status_request = get_model_status_pb2.GetModelStatusRequest()
            status_request.model_spec.name = spec.MODEL_NAME
            status = status_stub.GetModelStatus(status_request, timeout=5)
            assert {s.state for s in status.model_version_status} == {
                get_model_status_pb2.ModelVersionStatus.LOADING
            }
            assert not standin.is_serving()
            with pytest.raises(grpc.RpcError) as caught:
                stub.Predict(predict_request(solid_images((1, 2, 3))), timeout=5)
            assert caught.value.code() == grpc.StatusCode.UNAVAILABLE

            standin.wait_until_serving(timeout=30)
            assert time.monotonic() - opened > 2
            status = status_stub.GetModelStatus(status_request, timeout=5)
            assert {s.state for s in status.model_version_status} == {
                get_model_status_pb2.ModelVersionStatus.AVAILABLE
            }
            assert stub.Predict(predict_request(solid_images((1, 2, 3))), timeout=10).outputs
    finally:
        standin.stop()


def test_the_rest_port_serves_tf_servings_model_status_and_the_metrics_path(tiny_model_base: Path) -> None:
    rest_port = free_port()
    with run_standin(tiny_model_base, extra_args=["--rest-port", str(rest_port)]):
        base = f"http://127.0.0.1:{rest_port}"
        with urllib.request.urlopen(f"{base}/v1/models/{spec.MODEL_NAME}", timeout=5) as response:
            body = json.load(response)
        ok = {"error_code": "OK", "error_message": ""}
        assert body == {
            "model_version_status": [
                {"version": version, "state": "AVAILABLE", "status": ok} for version in ("1", "2")
            ]
        }
        with urllib.request.urlopen(f"{base}/monitoring/prometheus/metrics", timeout=5) as response:
            assert response.status == 200
            assert b"process_cpu_seconds_total" in response.read()
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(f"{base}/v1/models/no_such_model", timeout=5)
        assert caught.value.code == 404
