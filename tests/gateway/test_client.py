"""The test-request CLI (gateway.client), against a fake gateway that answers in the documented API format,
and once against the real gateway and stand-in processes."""

from __future__ import annotations

import base64
import io
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway import client
from model.spec import LABELS, MODEL_NAME
from tests.support.gateway import run_gateway
from tests.support.http import Handler, LocalServer
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


def answer_json(handler: Handler, status: int, payload: dict[str, Any]) -> None:
    handler.send(status, json.dumps(payload).encode(), {"Content-Type": "application/json"})


class FakeGateway(LocalServer):
    """Answers POST /predict and /predict/batch in the gateway's documented format, classifying by name."""

    def __init__(self) -> None:
        super().__init__({"/predict": self._predict, "/predict/batch": self._batch})
        self.posts: list[tuple[str, str, bytes]] = []  # path, content type, body

    @property
    def endpoint(self) -> str:
        return self.base_url

    def _read(self, handler: Handler) -> tuple[str, bytes]:
        body = handler.body()
        content_type = handler.headers.get("Content-Type", "")
        self.posts.append((handler.route, content_type, body))
        return content_type, body

    def _predict(self, handler: Handler) -> None:
        content_type, body = self._read(handler)
        if content_type.startswith("multipart/form-data"):
            name = body.split(b'filename="', 1)[1].split(b'"', 1)[0].decode()
        else:
            name = json.loads(body)["url"]
        if "forbidden" in name:
            error = {"code": "forbidden_url", "message": "URL host resolves to a non-public address"}
            answer_json(handler, 400, {"error": error})
        elif "overloaded" in name:
            error = {"code": "upstream_unavailable", "message": "TF Serving is unavailable"}
            answer_json(handler, 503, {"error": error})
        elif "proxy-page" in name:
            handler.send(502, b"<html>Bad Gateway</html>", {"Content-Type": "text/html"})
        else:
            answer_json(handler, 200, answer_for(label_in(name)))

    def _batch(self, handler: Handler) -> None:
        content_type, body = self._read(handler)
        if content_type.startswith("multipart/form-data"):
            texts = [part.decode("latin-1") for part in multipart_files(body, content_type, "files")]
        else:
            texts = [
                image.get("url") or base64.b64decode(image["image"]).decode("latin-1")
                for image in json.loads(body)["images"]
            ]
        results = [{k: v for k, v in answer_for(label_in(t)).items() if k != "model"} for t in texts]
        answer_json(handler, 200, {"results": results, "model": {"name": MODEL_NAME, "version": "7"}})


@pytest.fixture
def fake() -> Iterator[FakeGateway]:
    with FakeGateway() as server:
        yield server


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
def test_a_file_is_sent_as_multipart_and_its_top_labels_are_printed(fake: FakeGateway, leopard: Path) -> None:
    code, out, err = run_cli(str(leopard), "--endpoint", fake.endpoint)
    assert code == 0, err
    path, content_type, body = fake.posts[0]
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
def test_a_url_is_sent_as_json_for_the_gateway_to_fetch(fake: FakeGateway) -> None:
    code, out, _ = run_cli("https://images.example.org/bird.jpg", "--endpoint", fake.endpoint)
    assert code == 0
    assert fake.posts[0][1:] == ("application/json", b'{"url":"https://images.example.org/bird.jpg"}')
    assert "bird" in out.splitlines()[2]


@pytest.mark.process
@pytest.mark.parametrize("top", [1, 2, 8])
def test_top_sets_how_many_labels_are_printed(fake: FakeGateway, leopard: Path, top: int) -> None:
    _, out, _ = run_cli(str(leopard), "--endpoint", fake.endpoint, "--top", str(top))
    rows = [line for line in out.splitlines() if line.strip().split()[0] in LABELS]
    assert len(rows) == top


@pytest.mark.process
def test_a_matching_expected_label_exits_0(fake: FakeGateway, leopard: Path) -> None:
    assert run_cli(str(leopard), "--endpoint", fake.endpoint, "--expect-label", "leopard")[0] == 0


@pytest.mark.process
def test_a_different_label_than_expected_exits_2_and_says_which(fake: FakeGateway, leopard: Path) -> None:
    code, _, err = run_cli(str(leopard), "--endpoint", fake.endpoint, "--expect-label", "hog")
    assert code == 2
    assert f"{leopard}: expected hog, got leopard" in err


@pytest.mark.process
def test_a_gateway_error_exits_1_and_prints_its_json_body(fake: FakeGateway) -> None:
    code, out, err = run_cli("http://forbidden.example.org/x.jpg", "--endpoint", fake.endpoint)
    assert code == 1
    assert out == ""
    printed = json.loads(err.splitlines()[1])
    assert printed == {
        "error": {"code": "forbidden_url", "message": "URL host resolves to a non-public address"}
    }
    assert "HTTP 400" in err.splitlines()[0]


@pytest.mark.process
def test_an_error_outranks_a_label_mismatch(fake: FakeGateway, leopard: Path) -> None:
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
def test_a_non_json_error_page_is_reported_in_the_same_error_format(fake: FakeGateway) -> None:
    code, _, err = run_cli("http://proxy-page.example.org/x.jpg", "--endpoint", fake.endpoint)
    assert code == 1
    assert json.loads(err.splitlines()[1])["error"]["code"] == "bad_response"


@pytest.mark.process
def test_an_unreachable_gateway_exits_1(fake: FakeGateway, leopard: Path) -> None:
    endpoint = fake.endpoint
    fake.stop()
    code, _, err = run_cli(str(leopard), "--endpoint", endpoint, "--timeout", "2")
    assert code == 1
    assert json.loads(err.splitlines()[1])["error"]["code"] == "request_failed"


@pytest.mark.process
def test_a_missing_file_exits_1_without_a_request(fake: FakeGateway, tmp_path: Path) -> None:
    code, _, err = run_cli(str(tmp_path / "nope.jpg"), "--endpoint", fake.endpoint)
    assert code == 1
    assert "file_unreadable" in err
    assert fake.posts == []


@pytest.mark.process
def test_a_batch_with_a_url_is_sent_as_json_with_files_in_base64(fake: FakeGateway, tmp_path: Path) -> None:
    hog = tmp_path / "a.jpg"
    hog.write_bytes(b"hog-bytes")
    code, out, _ = run_cli(
        str(hog), "https://x.example.org/rodent.jpg", "--endpoint", fake.endpoint, "--batch"
    )
    assert code == 0
    assert len(fake.posts) == 1
    path, _, body = fake.posts[0]
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
def test_a_batch_of_files_only_is_sent_as_multipart_files(fake: FakeGateway, tmp_path: Path) -> None:
    paths = [tmp_path / "one.jpg", tmp_path / "two.png"]
    paths[0].write_bytes(b"civet_genet-bytes")
    paths[1].write_bytes(b"monkey_prosimian-bytes")
    code, out, _ = run_cli(*map(str, paths), "--endpoint", fake.endpoint, "--batch")
    assert code == 0
    path, content_type, body = fake.posts[0]
    assert (path, content_type.split(";")[0]) == ("/predict/batch", "multipart/form-data")
    assert multipart_files(body, content_type, "files") == [b"civet_genet-bytes", b"monkey_prosimian-bytes"]
    assert b'filename="two.png"\r\nContent-Type: image/png' in body
    tops = [line.split()[0] for line in out.splitlines() if line.endswith("#" * 16)]
    assert tops == ["civet_genet", "monkey_prosimian"]


@pytest.mark.process
def test_batch_checks_the_expected_label_for_every_image(fake: FakeGateway, tmp_path: Path) -> None:
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
    fake: FakeGateway, leopard: Path, gateway_python: Path
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
        run_gateway({"TF_SERVING_HOST": address}, python=gateway_python, ready=True) as url,
    ):
        images = [str(golden_dir / f"{label}.jpg") for label in LABELS]
        for label, image in zip(LABELS, images, strict=True):
            code, out, err = run_cli(image, "--endpoint", url, "--expect-label", label)
            assert code == 0, err
            assert f"model {MODEL_NAME} v1" in out
        code, out, err = run_cli(*images, "--endpoint", url, "--batch", "--expect-label", "leopard")
        assert code == 2  # every golden image but the leopard's has another label
        assert err.count("expected leopard, got") == len(LABELS) - 1
