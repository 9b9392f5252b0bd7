"""The pipeline (gateway.pipeline): request bodies to images, and the cheap checks that come first."""

from __future__ import annotations

import base64
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from gateway import pipeline
from gateway.errors import InvalidImage
from tests.gateway.images import encode

pytestmark = pytest.mark.unit

MakeApi = Callable[..., TestClient]
IMAGE = encode(Image.new("RGB", (200, 160), (90, 90, 90)), "PNG")


@pytest.mark.parametrize(
    "text",
    [
        base64.b64encode(IMAGE).decode(),
        base64.encodebytes(IMAGE).decode(),  # line breaks every 76 characters
        "data:image/png;base64," + base64.b64encode(IMAGE).decode(),
    ],
)
def test_base64_is_decoded_in_its_usual_spellings(text: str) -> None:
    assert pipeline.decode_base64(text) == IMAGE


@pytest.mark.parametrize("text", ["QUJDRA=", "ÄÖÜ", "data:image/png;base64,QQ"])
def test_base64_that_cannot_be_decoded_is_an_invalid_image(text: str) -> None:
    with pytest.raises(InvalidImage, match="base64"):
        pipeline.decode_base64(text)


def test_a_bad_base64_item_of_a_batch_is_named_by_its_index(api: TestClient) -> None:
    good = base64.b64encode(IMAGE).decode()
    response = api.post("/predict/batch", json={"images": [{"image": good}, {"image": "ÄÖÜ"}]})
    assert response.status_code == 400, response.text
    assert response.json()["error"]["message"].startswith("images[1]: ")


def test_a_json_body_is_handed_to_its_parser_once_and_not_kept() -> None:
    chunks = [b"{", b"}"]
    handover = pipeline._Handover(chunks)
    assert handover.take() == b"{}"
    assert chunks == []  # freed once joined
    with pytest.raises(AssertionError, match="taken twice"):
        handover.take()


def test_a_multipart_batch_with_one_file_too_many_is_refused_as_the_part_starts(make_api: MakeApi) -> None:
    api = make_api(max_batch_size=2)
    files = [("files", (f"{index}.png", IMAGE, "image/png")) for index in range(3)]
    response = api.post("/predict/batch", files=files)
    assert response.status_code == 400, response.text
    assert "Maximum number of files is 2" in response.json()["error"]["message"]
