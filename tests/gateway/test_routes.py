"""The HTTP API (gateway.routes, through the whole app) against a fake TF Serving: the four input forms,
batches, errors, limits, operations endpoints."""

from __future__ import annotations

import base64
import time
from collections.abc import Callable

import grpc
import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from tensorflow.core.framework import types_pb2

from gateway import contract
from tests.gateway.fake_serving import FakeServingServer
from tests.gateway.images import encode, jpeg, png_bomb

pytestmark = pytest.mark.unit

MakeApi = Callable[..., TestClient]


def solid(value: int, fmt: str = "PNG", size: tuple[int, int] = (200, 160)) -> bytes:
    """A flat grey image; the fake answers label (value // 32) for it."""
    return encode(Image.new("RGB", size, (value, value, value)), fmt)


def expected_label(value: int) -> str:
    return contract.LABELS[(value // 32) % len(contract.LABELS)]


def assert_error(response, status: int, code: str) -> dict:  # type: ignore[no-untyped-def]
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"]["code"] == code, body
    assert body["error"]["message"]
    return body


# --- the four input forms ---


def test_a_raw_image_body_is_classified(api: TestClient) -> None:
    response = api.post("/predict", content=solid(170), headers={"Content-Type": "image/png"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["label"] == expected_label(170)
    assert body["score"] == pytest.approx(0.86, abs=1e-4)
    assert list(body["predictions"]) == list(contract.LABELS)
    assert sum(body["predictions"].values()) == pytest.approx(1, abs=1e-4)
    assert body["model"] == {"name": "species_model", "version": "7"}


def test_a_multipart_file_is_classified(api: TestClient) -> None:
    response = api.post("/predict", files={"file": ("frame.png", solid(40), "image/png")})
    assert response.status_code == 200, response.text
    assert response.json()["label"] == expected_label(40)


def test_a_base64_json_image_is_classified(api: TestClient) -> None:
    payload = {"image": base64.b64encode(solid(230)).decode()}
    response = api.post("/predict", json=payload)
    assert response.status_code == 200, response.text
    assert response.json()["label"] == expected_label(230)


def test_base64_with_line_breaks_and_a_data_url_prefix_is_accepted(api: TestClient) -> None:
    encoded = base64.encodebytes(solid(100)).decode()  # wrapped at 76 characters
    response = api.post("/predict", json={"image": "data:image/png;base64," + encoded})
    assert response.status_code == 200, response.text
    assert response.json()["label"] == expected_label(100)


def test_a_json_url_is_fetched_and_classified(api: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    from gateway import fetch

    fetched: list[str] = []

    async def fake_fetch(url: str, **_: object) -> bytes:
        fetched.append(url)
        return solid(70)

    monkeypatch.setattr(fetch, "fetch_image", fake_fetch)
    response = api.post("/predict", json={"url": "https://example.org/trap/0001.jpg"})
    assert response.status_code == 200, response.text
    assert response.json()["label"] == expected_label(70)
    assert fetched == ["https://example.org/trap/0001.jpg"]


def test_a_forbidden_url_is_refused_with_400(api: TestClient) -> None:
    response = api.post("/predict", json={"url": "http://169.254.169.254/latest/meta-data/"})
    assert_error(response, 400, "forbidden_url")


# --- batches ---


def test_a_json_batch_is_one_predict_request_answered_in_order(
    api: TestClient, fake_serving: FakeServingServer
) -> None:
    values = [10, 80, 150, 250]
    payload = {"images": [{"image": base64.b64encode(solid(v)).decode()} for v in values]}
    response = api.post("/predict/batch", json=payload)
    assert response.status_code == 200, response.text
    body = response.json()
    assert [result["label"] for result in body["results"]] == [expected_label(v) for v in values]
    assert body["model"] == {"name": "species_model", "version": "7"}
    assert fake_serving.servicer.behaviour.calls == [4]


def test_a_multipart_batch_is_classified(api: TestClient, fake_serving: FakeServingServer) -> None:
    files = [("files", (f"{v}.jpg", solid(v, "JPEG"), "image/jpeg")) for v in (20, 200)]
    response = api.post("/predict/batch", files=files)
    assert response.status_code == 200, response.text
    assert [r["label"] for r in response.json()["results"]] == [expected_label(20), expected_label(200)]
    assert fake_serving.servicer.behaviour.calls == [2]


def test_one_bad_image_fails_the_batch_with_a_4xx_naming_it(
    api: TestClient, fake_serving: FakeServingServer
) -> None:
    images = [
        {"image": base64.b64encode(solid(50)).decode()},
        {"image": base64.b64encode(b"not an image").decode()},
    ]
    body = assert_error(api.post("/predict/batch", json={"images": images}), 400, "invalid_image")
    assert body["error"]["message"].startswith("images[1]: ")
    assert fake_serving.servicer.behaviour.calls == []


def test_a_batch_over_the_maximum_is_refused(make_api: MakeApi) -> None:
    api = make_api(max_batch_size=2)
    images = [{"image": base64.b64encode(solid(9)).decode()}] * 3
    body = assert_error(api.post("/predict/batch", json={"images": images}), 400, "bad_request")
    assert "at most 2" in body["error"]["message"]


def test_an_empty_batch_is_refused(api: TestClient) -> None:
    assert_error(api.post("/predict/batch", json={"images": []}), 400, "bad_request")


# --- bad input: always 4xx, never harms the next request ---


@pytest.mark.parametrize(
    ("kwargs", "status", "code"),
    [
        ({"content": b"hello", "headers": {"Content-Type": "text/plain"}}, 415, "unsupported_media_type"),
        ({"content": b"hello"}, 415, "unsupported_media_type"),
        ({"content": b"{not json", "headers": {"Content-Type": "application/json"}}, 400, "bad_request"),
        ({"json": {}}, 400, "bad_request"),
        ({"json": {"url": "https://a.example/x.jpg", "image": "AAAA"}}, 400, "bad_request"),
        ({"json": {"image": "***not base64***"}}, 400, "invalid_image"),
        ({"json": {"image": ""}}, 400, "invalid_image"),
        ({"json": {"picture": "AAAA"}}, 400, "bad_request"),
        ({"json": ["image"]}, 400, "bad_request"),
        ({"content": b"GIF89a-not-really", "headers": {"Content-Type": "image/gif"}}, 400, "invalid_image"),
        ({"files": {"upload": ("x.png", b"123", "image/png")}}, 400, "bad_request"),
        ({"content": b"", "headers": {"Content-Type": "image/jpeg"}}, 400, "invalid_image"),
    ],
)
def test_bad_requests_get_a_json_4xx(api: TestClient, kwargs: dict, status: int, code: str) -> None:
    assert_error(api.post("/predict", **kwargs), status, code)
    # The next good request is unaffected.
    assert api.post("/predict", content=solid(120), headers={"Content-Type": "image/png"}).status_code == 200


def test_a_truncated_jpeg_is_a_400(api: TestClient) -> None:
    data = jpeg(800, 600)
    response = api.post(
        "/predict", content=data[: len(data) * 2 // 3], headers={"Content-Type": "image/jpeg"}
    )
    assert_error(response, 400, "invalid_image")


def test_a_gif_is_refused_as_an_unsupported_format(api: TestClient) -> None:
    response = api.post("/predict", content=solid(10, "GIF"), headers={"Content-Type": "image/gif"})
    body = assert_error(response, 415, "unsupported_media_type")
    assert "GIF" in body["error"]["message"]


def test_a_decompression_bomb_is_a_413(api: TestClient) -> None:
    response = api.post("/predict", content=png_bomb(40_000, 40_000), headers={"Content-Type": "image/png"})
    assert_error(response, 413, "payload_too_large")


def test_a_body_over_the_cap_is_refused_by_its_content_length(make_api: MakeApi) -> None:
    api = make_api(max_body_bytes=10_000)
    response = api.post("/predict", content=b"\0" * 20_000, headers={"Content-Type": "image/jpeg"})
    assert_error(response, 413, "payload_too_large")
    assert response.headers["x-request-id"]


def test_a_streamed_body_over_the_cap_is_cut_off_while_reading(make_api: MakeApi) -> None:
    api = make_api(max_body_bytes=10_000)

    def chunks():  # type: ignore[no-untyped-def]
        for _ in range(10):
            yield b"\0" * 4096

    response = api.post("/predict", content=chunks(), headers={"Content-Type": "image/jpeg"})
    assert "content-length" not in response.request.headers
    assert_error(response, 413, "payload_too_large")


def test_the_batch_route_has_its_own_larger_cap(make_api: MakeApi) -> None:
    api = make_api(max_body_bytes=10_000, max_batch_body_bytes=500_000)
    images = [{"image": base64.b64encode(jpeg(400, 300, seed)).decode()} for seed in (1, 2)]
    assert len(images[0]["image"]) > 10_000
    assert api.post("/predict/batch", json={"images": images}).status_code == 200
    assert api.post("/predict", json=images[0]).status_code == 413


def test_an_unknown_route_is_a_json_404(api: TestClient) -> None:
    assert_error(api.get("/nope"), 404, "not_found")
    assert_error(api.get("/predict"), 405, "method_not_allowed")


# --- TF Serving failures ---


def test_tf_serving_down_gives_a_fast_503_with_retry_after_and_recovers_by_itself(
    make_api: MakeApi, fake_serving: FakeServingServer
) -> None:
    api = make_api(serving_timeout_s=3, retry_after_s=2)
    fake_serving.stop()
    started = time.monotonic()
    response = api.post("/predict", content=solid(60), headers={"Content-Type": "image/png"})
    elapsed = time.monotonic() - started
    assert_error(response, 503, "upstream_unavailable")
    assert response.headers["retry-after"] == "2"
    assert elapsed < 2, f"503 took {elapsed:.2f} s"
    assert api.get("/readyz").status_code == 503

    fake_serving.start()  # same port
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        response = api.post("/predict", content=solid(60), headers={"Content-Type": "image/png"})
        if response.status_code == 200:
            break
        time.sleep(0.2)
    assert response.status_code == 200, response.text
    assert api.get("/readyz").status_code == 200


def test_a_slow_tf_serving_gives_504_within_the_deadline(
    make_api: MakeApi, fake_serving: FakeServingServer
) -> None:
    api = make_api(serving_timeout_s=0.3)
    fake_serving.servicer.behaviour.delay_s = 1.5
    started = time.monotonic()
    response = api.post("/predict", content=solid(60), headers={"Content-Type": "image/png"})
    assert_error(response, 504, "upstream_timeout")
    assert time.monotonic() - started < 1.2


def test_a_model_with_another_signature_is_a_502_and_keeps_the_gateway_unready(
    api: TestClient, fake_serving: FakeServingServer
) -> None:
    fake_serving.servicer.behaviour.input_dtype = types_pb2.DT_FLOAT
    response = api.post("/predict", content=solid(60), headers={"Content-Type": "image/png"})
    assert_error(response, 502, "contract_mismatch")
    ready = api.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["status"] == "not_ready"
    assert "float32" in ready.json()["reason"]


def test_a_model_with_five_outputs_is_a_502(api: TestClient, fake_serving: FakeServingServer) -> None:
    fake_serving.servicer.behaviour.classes = 5
    response = api.post("/predict", content=solid(60), headers={"Content-Type": "image/png"})
    assert_error(response, 502, "contract_mismatch")
    assert api.get("/readyz").status_code == 503


def test_an_internal_tf_serving_error_is_a_502(api: TestClient, fake_serving: FakeServingServer) -> None:
    fake_serving.servicer.behaviour.fail_with = grpc.StatusCode.INTERNAL
    response = api.post("/predict", content=solid(60), headers={"Content-Type": "image/png"})
    assert_error(response, 502, "upstream_error")


def test_an_unexpected_exception_is_a_json_500_with_the_request_id(
    api: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gateway import pipeline

    def broken(*_: object, **__: object) -> object:
        raise RuntimeError("bug")

    monkeypatch.setattr(pipeline, "classification", broken)
    response = api.post(
        "/predict", content=solid(60), headers={"Content-Type": "image/png", "X-Request-ID": "r-1"}
    )
    assert_error(response, 500, "internal")
    assert response.headers["x-request-id"] == "r-1"
    assert "bug" not in response.text


# --- operations endpoints ---


def test_healthz_never_asks_tf_serving(api: TestClient, fake_serving: FakeServingServer) -> None:
    fake_serving.stop()
    assert api.get("/healthz").json() == {"status": "ok"}


def test_readyz_says_ready_with_the_model_version(api: TestClient) -> None:
    response = api.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ready",
        "reason": "ready",
        "model": {"name": "species_model", "version": "7"},
    }


def test_the_gateway_starts_while_tf_serving_is_down(make_api: MakeApi) -> None:
    from tests.support.standin import free_port

    api = make_api(tf_serving_host=f"127.0.0.1:{free_port()}")
    assert api.get("/healthz").status_code == 200
    ready = api.get("/readyz")
    assert ready.status_code == 503
    assert "unreachable" in ready.json()["reason"]


def test_model_describes_name_version_labels_and_input(api: TestClient) -> None:
    body = api.get("/model").json()
    assert body["name"] == "species_model"
    assert body["version"] == "7"
    assert body["labels"] == list(contract.LABELS)
    assert body["input"]["shape"] == [-1, 150, 150, 3]
    assert body["input"]["dtype"] == "uint8"
    assert body["max_batch_size"] == 32


def metric(text: str, name: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_metrics_count_requests_predictions_stages_and_upstream_errors(
    api: TestClient, fake_serving: FakeServingServer
) -> None:
    before = api.get("/metrics").text
    api.post("/predict", content=solid(170), headers={"Content-Type": "image/png"})
    fake_serving.servicer.behaviour.fail_with = grpc.StatusCode.INTERNAL
    api.post("/predict", content=solid(170), headers={"Content-Type": "image/png"})
    after = api.get("/metrics").text
    label = expected_label(170)
    ok = 'gateway_requests_total{method="POST",route="/predict",status="200"}'
    assert metric(after, ok) - metric(before, ok) == 1
    bad = 'gateway_requests_total{method="POST",route="/predict",status="502"}'
    assert metric(after, bad) - metric(before, bad) == 1
    predicted = f'gateway_predictions_total{{label="{label}"}}'
    assert metric(after, predicted) - metric(before, predicted) == 1
    upstream = 'gateway_upstream_errors_total{code="INTERNAL"}'
    assert metric(after, upstream) - metric(before, upstream) == 1
    for stage in ("decode", "serve"):
        name = f'gateway_stage_duration_seconds_count{{stage="{stage}"}}'
        assert metric(after, name) - metric(before, name) == 2
    assert "gateway_batch_size_bucket" in after


def test_a_sane_request_id_is_echoed_and_a_missing_one_generated(api: TestClient) -> None:
    assert api.get("/healthz", headers={"X-Request-ID": "abc-123"}).headers["x-request-id"] == "abc-123"
    generated = api.get("/healthz").headers["x-request-id"]
    assert len(generated) == 32
    hostile = api.get("/healthz", headers={"X-Request-ID": "x" * 500}).headers["x-request-id"]
    assert hostile != "x" * 500


def test_the_access_log_line_has_the_request_id_and_stage_timings(
    api: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level("INFO", logger="gateway.access"):
        api.post(
            "/predict", content=solid(170), headers={"Content-Type": "image/png", "X-Request-ID": "trace-9"}
        )
    records = [r for r in caplog.records if r.name == "gateway.access"]
    assert len(records) == 1
    record = records[0]
    assert record.request_id == "trace-9"  # type: ignore[attr-defined]
    assert record.status == 200  # type: ignore[attr-defined]
    assert set(record.stages_ms) == {"decode", "serve"}  # type: ignore[attr-defined]


def test_the_openapi_document_describes_every_input_form(make_api: MakeApi) -> None:
    api = make_api(docs_enabled=True)
    spec = api.get("/openapi.json").json()
    content = spec["paths"]["/predict"]["post"]["requestBody"]["content"]
    assert set(content) == {"application/json", "multipart/form-data", "image/*"}
    assert set(spec["paths"]) >= {"/predict", "/predict/batch", "/healthz", "/readyz", "/model", "/metrics"}
    assert api.get("/docs").status_code == 200


def test_a_large_real_jpeg_is_classified(api: TestClient) -> None:
    response = api.post("/predict", content=jpeg(2592, 1944), headers={"Content-Type": "image/jpeg"})
    assert response.status_code == 200, response.text
    assert response.json()["label"] in contract.LABELS


def test_the_decode_result_reaches_tf_serving_unchanged(
    api: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gateway import preprocess

    seen: list[np.ndarray] = []
    original = preprocess.finish

    def spy(probed: preprocess.Probe) -> np.ndarray:
        result = original(probed)
        seen.append(result)
        return result

    monkeypatch.setattr(preprocess, "finish", spy)
    response = api.post("/predict", content=solid(255), headers={"Content-Type": "image/png"})
    assert response.json()["label"] == expected_label(255)
    assert seen
    assert np.all(seen[0] == 255)


def test_a_streamed_multipart_body_over_the_cap_is_cut_off_too(make_api: MakeApi) -> None:
    api = make_api(max_body_bytes=10_000)
    boundary = "b0undary"
    head = f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="x.jpg"\r\n'
    head += "Content-Type: image/jpeg\r\n\r\n"

    def chunks():  # type: ignore[no-untyped-def]
        yield head.encode()
        for _ in range(10):
            yield b"\xff" * 4096
        yield f"\r\n--{boundary}--\r\n".encode()

    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    response = api.post("/predict", content=chunks(), headers=headers)
    assert_error(response, 413, "payload_too_large")


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "BMP"])
def test_corrupted_images_never_get_a_5xx(api: TestClient, fmt: str) -> None:
    from tests.gateway.images import photo

    original = bytearray(encode(Image.fromarray(photo(160, 120, seed=1)), fmt))
    rng = np.random.default_rng(len(fmt))
    statuses = set()
    for _ in range(40):
        damaged = bytearray(original)
        for position in rng.integers(0, len(damaged), size=int(rng.integers(1, 20))):
            damaged[position] = int(rng.integers(0, 256))
        cut = int(rng.integers(len(damaged) // 2, len(damaged) + 1))
        response = api.post("/predict", content=bytes(damaged[:cut]), headers={"Content-Type": "image/*"})
        statuses.add(response.status_code)
        assert response.status_code < 500, (fmt, response.status_code, response.text)
    assert statuses <= {200, 400, 413, 415}
