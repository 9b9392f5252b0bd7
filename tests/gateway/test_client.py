"""The test-request CLI (gateway.client), against a fake gateway that answers in the documented API format,
and once against the real gateway and stand-in processes."""

from __future__ import annotations

import base64
import contextlib
import io
import json
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway import client
from model.spec import LABELS, MODEL_NAME
from tests.support.gateway import run_gateway
from tests.support.standin import run_standin

JPEG = b"\xff\xd8\xff\xe0fake-jpeg-bytes\xff\xd9"


def answer_for(label: str) -> dict[str, Any]:
    """A /predict answer in the documented format, with `label` on top."""
    others = [other for other in LABELS if other != label]
    predictions = {label: 0.81, **{other: round(0.19 / len(others), 6) for other in others}}
    predictions[others[0]] = 0.1  # a clear second place for --top tests
    return {
        "label": label,
        "score": 0.81,
        "predictions": {name: predictions[name] for name in LABELS},
        "model": {"name": MODEL_NAME, "version": "7"},
    }


def label_in(text: str) -> str:
    """The fake classifies by name: the first label that occurs in the file name or URL."""
    return next((label for label in LABELS if label in text), "blank")


def multipart_files(body: bytes, content_type: str, field: str) -> list[bytes]:
    """The contents of every part named `field` of a multipart/form-data body (enough for this fake)."""
    boundary = content_type.split("boundary=", 1)[1].strip('"').encode()
    contents = []
    for part in body.split(b"--" + boundary)[1:-1]:
        head, _, content = part.partition(b"\r\n\r\n")
        if f'name="{field}"'.encode() in head:
            contents.append(content.removesuffix(b"\r\n"))
    return contents


class FakeGateway(BaseHTTPRequestHandler):
    server: FakeServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        content_type = self.headers.get("Content-Type", "")
        self.server.requests.append((self.path, content_type, body))
        if self.path == "/predict" and content_type.startswith("multipart/form-data"):
            name = body.split(b'filename="', 1)[1].split(b'"', 1)[0].decode()
            self._answer_for(name)
        elif self.path == "/predict" and content_type == "application/json":
            self._answer_for(json.loads(body)["url"])
        elif self.path == "/predict/batch":
            if content_type.startswith("multipart/form-data"):
                texts = [part.decode("latin-1") for part in multipart_files(body, content_type, "files")]
            else:
                texts = [
                    image.get("url") or base64.b64decode(image["image"]).decode("latin-1")
                    for image in json.loads(body)["images"]
                ]
            results = [{k: v for k, v in answer_for(label_in(t)).items() if k != "model"} for t in texts]
            self._json(200, {"results": results, "model": {"name": MODEL_NAME, "version": "7"}})
        else:
            self._json(404, {"error": {"code": "not_found", "message": "no such route"}})

    def _answer_for(self, name: str) -> None:
        if "forbidden" in name:
            self._json(
                400,
                {"error": {"code": "forbidden_url", "message": "URL host resolves to a non-public address"}},
            )
        elif "overloaded" in name:
            self._json(
                503, {"error": {"code": "upstream_unavailable", "message": "TF Serving is unavailable"}}
            )
        elif "proxy-page" in name:
            self._send(502, b"<html>Bad Gateway</html>", "text/html")
        else:
            self._json(200, answer_for(label_in(name)))

    def _json(self, status: int, payload: dict[str, Any]) -> None:
        self._send(status, json.dumps(payload).encode(), "application/json")

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class FakeServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), FakeGateway)
        self.requests: list[tuple[str, str, bytes]] = []

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@pytest.fixture
def fake() -> Iterator[FakeServer]:
    server = FakeServer()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def leopard(tmp_path: Path) -> Path:
    path = tmp_path / "leopard.jpg"
    path.write_bytes(JPEG)
    return path


def run_cli(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = client.main(list(args), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


@pytest.mark.process
def test_a_file_is_sent_as_multipart_and_its_top_labels_are_printed(fake: FakeServer, leopard: Path) -> None:
    code, out, err = run_cli(str(leopard), "--endpoint", fake.endpoint)
    assert code == 0, err
    path, content_type, body = fake.requests[0]
    assert path == "/predict"
    assert content_type.startswith("multipart/form-data")
    assert b'name="file"; filename="leopard.jpg"' in body
    assert JPEG in body
    lines = out.splitlines()
    assert lines[0] == str(leopard)
    assert lines[2].split()[:2] == ["leopard", "0.8100"]
    assert lines[3].split()[:2] == ["antelope_duiker", "0.1000"]
    assert f"model {MODEL_NAME} v7" in out


@pytest.mark.process
def test_a_url_is_sent_as_json_for_the_gateway_to_fetch(fake: FakeServer) -> None:
    code, out, _ = run_cli("https://images.example.org/bird.jpg", "--endpoint", fake.endpoint)
    assert code == 0
    assert fake.requests[0][1:] == ("application/json", b'{"url":"https://images.example.org/bird.jpg"}')
    assert "bird" in out.splitlines()[2]


@pytest.mark.process
@pytest.mark.parametrize("top", [1, 2, 8])
def test_top_sets_how_many_labels_are_printed(fake: FakeServer, leopard: Path, top: int) -> None:
    _, out, _ = run_cli(str(leopard), "--endpoint", fake.endpoint, "--top", str(top))
    rows = [line for line in out.splitlines() if line.strip().split()[0] in LABELS]
    assert len(rows) == top


@pytest.mark.process
def test_a_matching_expected_label_exits_0(fake: FakeServer, leopard: Path) -> None:
    assert run_cli(str(leopard), "--endpoint", fake.endpoint, "--expect-label", "leopard")[0] == 0


@pytest.mark.process
def test_a_different_label_than_expected_exits_2_and_says_which(fake: FakeServer, leopard: Path) -> None:
    code, _, err = run_cli(str(leopard), "--endpoint", fake.endpoint, "--expect-label", "hog")
    assert code == 2
    assert f"{leopard}: expected hog, got leopard" in err


@pytest.mark.process
def test_a_gateway_error_exits_1_and_prints_its_json_body(fake: FakeServer) -> None:
    code, out, err = run_cli("http://forbidden.example.org/x.jpg", "--endpoint", fake.endpoint)
    assert code == 1
    assert out == ""
    printed = json.loads(err.splitlines()[1])
    assert printed == {
        "error": {"code": "forbidden_url", "message": "URL host resolves to a non-public address"}
    }
    assert "HTTP 400" in err.splitlines()[0]


@pytest.mark.process
def test_an_error_outranks_a_label_mismatch(fake: FakeServer, leopard: Path) -> None:
    code, out, err = run_cli(
        str(leopard),
        "http://overloaded.example.org/x.jpg",
        "--endpoint",
        fake.endpoint,
        "--expect-label",
        "hog",
    )
    assert code == 1
    assert "upstream_unavailable" in err
    assert "leopard" in out  # the good image is still reported


@pytest.mark.process
def test_a_non_json_error_page_is_reported_in_the_same_error_format(fake: FakeServer) -> None:
    code, _, err = run_cli("http://proxy-page.example.org/x.jpg", "--endpoint", fake.endpoint)
    assert code == 1
    assert json.loads(err.splitlines()[1])["error"]["code"] == "bad_response"


@pytest.mark.process
def test_an_unreachable_gateway_exits_1(fake: FakeServer, leopard: Path) -> None:
    endpoint = fake.endpoint
    fake.shutdown()
    fake.server_close()
    code, _, err = run_cli(str(leopard), "--endpoint", endpoint, "--timeout", "2")
    assert code == 1
    assert json.loads(err.splitlines()[1])["error"]["code"] == "request_failed"


@pytest.mark.process
def test_a_missing_file_exits_1_without_a_request(fake: FakeServer, tmp_path: Path) -> None:
    code, _, err = run_cli(str(tmp_path / "nope.jpg"), "--endpoint", fake.endpoint)
    assert code == 1
    assert "file_unreadable" in err
    assert fake.requests == []


@pytest.mark.process
def test_a_batch_with_a_url_is_sent_as_json_with_files_in_base64(fake: FakeServer, tmp_path: Path) -> None:
    hog = tmp_path / "a.jpg"
    hog.write_bytes(b"hog-bytes")
    code, out, _ = run_cli(
        str(hog), "https://x.example.org/rodent.jpg", "--endpoint", fake.endpoint, "--batch"
    )
    assert code == 0
    assert len(fake.requests) == 1
    path, _, body = fake.requests[0]
    assert path == "/predict/batch"
    assert json.loads(body) == {
        "images": [
            {"image": base64.b64encode(b"hog-bytes").decode()},
            {"url": "https://x.example.org/rodent.jpg"},
        ]
    }
    assert out.count(f"model {MODEL_NAME} v7") == 2
    tops = [line.split()[0] for line in out.splitlines() if line.endswith("#" * 16)]
    assert tops == ["hog", "rodent"]


@pytest.mark.process
def test_a_batch_of_files_only_is_sent_as_multipart_files(fake: FakeServer, tmp_path: Path) -> None:
    paths = [tmp_path / "one.jpg", tmp_path / "two.png"]
    paths[0].write_bytes(b"civet_genet-bytes")
    paths[1].write_bytes(b"monkey_prosimian-bytes")
    code, out, _ = run_cli(*map(str, paths), "--endpoint", fake.endpoint, "--batch")
    assert code == 0
    path, content_type, body = fake.requests[0]
    assert (path, content_type.split(";")[0]) == ("/predict/batch", "multipart/form-data")
    assert multipart_files(body, content_type, "files") == [b"civet_genet-bytes", b"monkey_prosimian-bytes"]
    assert b'filename="two.png"\r\nContent-Type: image/png' in body
    tops = [line.split()[0] for line in out.splitlines() if line.endswith("#" * 16)]
    assert tops == ["civet_genet", "monkey_prosimian"]


@pytest.mark.process
def test_batch_checks_the_expected_label_for_every_image(fake: FakeServer, tmp_path: Path) -> None:
    image = tmp_path / "image.jpg"
    image.write_bytes(b"leopard-bytes")  # the fake classifies batch images by their content
    code, _, err = run_cli(
        str(image),
        "http://x.example.org/bird.jpg",
        "--endpoint",
        fake.endpoint,
        "--batch",
        "--expect-label",
        "bird",
    )
    assert code == 2
    assert err.splitlines() == [f"{image}: expected bird, got leopard"]


@pytest.mark.process
def test_the_module_runs_in_the_gateway_environment(
    fake: FakeServer, leopard: Path, gateway_python: Path
) -> None:
    done = subprocess.run(
        [
            str(gateway_python),
            "-m",
            "gateway.client",
            str(leopard),
            "--endpoint",
            fake.endpoint,
            "--expect-label",
            "bird",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert done.returncode == 2, done.stderr
    assert "leopard" in done.stdout


@pytest.mark.process
def test_the_golden_images_are_labelled_through_the_real_gateway(
    golden_dir: Path, demo_model_base: Path, gateway_python: Path
) -> None:
    with (
        run_standin(demo_model_base) as address,
        run_gateway({"TF_SERVING_HOST": address}, python=gateway_python) as url,
    ):
        wait_ready(url)
        images = [str(golden_dir / f"{label}.jpg") for label in LABELS]
        for label, image in zip(LABELS, images, strict=True):
            code, out, err = run_cli(image, "--endpoint", url, "--expect-label", label)
            assert code == 0, err
            assert f"model {MODEL_NAME} v1" in out
        code, out, err = run_cli(*images, "--endpoint", url, "--batch", "--expect-label", "leopard")
        assert code == 2  # every golden image but the leopard's has another label
        assert err.count("expected leopard, got") == len(LABELS) - 1


def wait_ready(url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return
        time.sleep(0.05)
    pytest.fail(f"gateway at {url} not ready after {timeout:.0f} s")
