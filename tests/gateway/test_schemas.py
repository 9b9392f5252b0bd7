"""JSON bodies (gateway.schemas): the structure is sized up before pydantic builds anything from it."""

from __future__ import annotations

import json
import time

import pytest

from gateway.errors import BadRequest
from gateway.schemas import check_json_shape

pytestmark = pytest.mark.unit


def batch(*images: dict[str, str]) -> bytes:
    return json.dumps({"images": list(images)}).encode()


@pytest.mark.parametrize(
    "body",
    [
        batch({"url": "https://a.example/x.jpg"}),
        batch(*[{"image": "QUJD"}] * 32),
        batch({"url": 'https://a.example/{braces}[and]/"quotes"'}),
        rb'{"images": [{"image": "QU\/D"}, {"url": "http:\/\/a.example\/x\\"}]}',  # escapes
        b'{"images": [{"url": "x", "image": null}], "extra": true}',  # pydantic's to refuse
        b'{"images": [{"url": "unterminated',  # pydantic's to call invalid
    ],
)
def test_a_body_a_batch_could_be_passes_to_validation(body: bytes) -> None:
    check_json_shape(body, max_items=32)


def test_more_items_than_the_batch_size_are_refused_at_the_first_one_too_many() -> None:
    body = b'{"images": [' + b"{}," * 1_000_000 + b"{}]}"
    started = time.perf_counter()
    with pytest.raises(BadRequest, match="more than 32 images; at most 32"):
        check_json_shape(body, max_items=32)
    assert time.perf_counter() - started < 0.05


@pytest.mark.parametrize(
    ("body", "max_items"),
    [
        (b'{"image": "QUJD", "junk": [' + b"1," * 100_000 + b"1]}", None),
        (b'{"images": [' + b"[" * 1_000_000, 32),
        (b'{"images": [' + b"A" * 10_000_000, 32),  # one huge bare token
        (b'{"image": "' + b"\\\\" * 1_000_000 + b'"}', None),
        (b'{"image": "' + b'\\\\"' * 1_000_000 + b'"}', None),
    ],
)
def test_a_structure_no_image_request_has_is_refused_in_microseconds(
    body: bytes, max_items: int | None
) -> None:
    started = time.perf_counter()
    with pytest.raises(BadRequest):
        check_json_shape(body, max_items=max_items)
    assert time.perf_counter() - started < 0.05


def test_megabytes_of_base64_cost_one_search_per_string() -> None:
    body = batch(*[{"image": "A" * 2_000_000}] * 32)  # 64 MB
    started = time.perf_counter()
    check_json_shape(body, max_items=32)
    assert time.perf_counter() - started < 0.5
