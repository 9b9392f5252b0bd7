"""The batch client's answers to each kind of gateway reply (unit: an in-process HTTP transport that
answers as the gateway does; the real gateway is in test_cli.py)."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Callable

import httpx
import pytest

from gateway import contract
from gateway.bulk.client import Answer, BatchClient, GatewayUnavailable, Image, retry_after_s

pytestmark = pytest.mark.unit


def images(*names: str) -> list[Image]:
    return [Image(name, name.encode(), "image/jpeg") for name in names]


def names_of(request: httpx.Request) -> list[str]:
    body = request.read()
    return [part.split(b'"')[0].decode() for part in body.split(b'filename="')[1:]]


def ok(names: list[str]) -> httpx.Response:
    results = []
    for _ in names:
        predictions = dict.fromkeys(contract.LABELS, 0.0) | {"leopard": 1.0}
        results.append({"label": "leopard", "score": 1.0, "predictions": predictions})
    return httpx.Response(200, json={"results": results, "model": {"name": "species_model", "version": "3"}})


def error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, json={"error": {"code": code, "message": message}}, headers=headers)


class Gateway:
    """Answers /predict/batch like the real gateway: any bad image fails the whole batch, named by index."""

    def __init__(self, bad: dict[str, tuple[int, str]] | None = None, max_batch: int = 32) -> None:
        self.bad = bad or {}
        self.max_batch = max_batch
        self.batches: list[list[str]] = []
        self.before: list[Callable[[], httpx.Response | None]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if self.before:
            answer = self.before.pop(0)()
            if answer is not None:
                return answer
        names = names_of(request)
        self.batches.append(names)
        if len(names) > self.max_batch:
            return error(413, "payload_too_large", "the request body is larger than 1000 bytes")
        for index, name in enumerate(names):
            if name in self.bad:
                status, code = self.bad[name]
                return error(status, code, f"images[{index}]: the image data is truncated or corrupt")
        return ok(names)


def classify(gateway: Gateway, batch: list[Image], **options: float) -> tuple[list[Answer], list[float]]:
    waits: list[float] = []

    async def no_sleep(seconds: float) -> None:
        waits.append(seconds)

    async def go() -> list[Answer]:
        client = BatchClient(
            "http://gateway",
            transport=httpx.MockTransport(gateway),
            sleep=no_sleep,
            rng=random.Random(0),  # noqa: S311 (jitter)
            **options,
        )
        try:
            return await client.classify(batch)
        finally:
            await client.close()

    return asyncio.run(go()), waits


def test_every_image_of_a_good_batch_gets_its_classification() -> None:
    answers, _ = classify(Gateway(), images("a", "b", "c"))
    assert [answer.label for answer in answers] == ["leopard"] * 3
    assert answers[0].model_version == "3"
    assert len(answers[0].probabilities) == len(contract.LABELS)


def test_bad_images_are_recorded_and_the_rest_is_sent_again_without_them() -> None:
    gateway = Gateway(bad={"b": (400, "invalid_image"), "d": (415, "unsupported_media_type")})
    answers, _ = classify(gateway, images("a", "b", "c", "d", "e"))
    assert [answer.error_code for answer in answers] == [
        None,
        "invalid_image",
        None,
        "unsupported_media_type",
        None,
    ]
    assert answers[1].error == "the image data is truncated or corrupt"
    assert gateway.batches == [["a", "b", "c", "d", "e"], ["a", "c", "d", "e"], ["a", "c", "e"]]


def test_a_batch_refused_as_a_whole_is_split_until_it_fits() -> None:
    gateway = Gateway(max_batch=2)
    answers, _ = classify(gateway, images("a", "b", "c", "d", "e"))
    assert all(answer.label == "leopard" for answer in answers)
    assert gateway.batches == [["a", "b", "c", "d", "e"], ["a", "b"], ["c", "d", "e"], ["c"], ["d", "e"]]


def test_overload_is_retried_no_sooner_than_retry_after() -> None:
    gateway = Gateway()
    gateway.before = [
        lambda: error(503, "overloaded", "busy", {"Retry-After": "7"}),
        lambda: error(429, "too_many", "slow down", {"Retry-After": "2"}),
    ]
    answers, waits = classify(gateway, images("a"))
    assert answers[0].label == "leopard"
    assert waits[0] >= 7
    assert waits[1] >= 2


def test_a_gateway_that_stays_away_ends_the_run_after_the_retry_window() -> None:
    gateway = Gateway()
    gateway.before = [lambda: error(503, "upstream_unavailable", "TF Serving is down")] * 1000
    with pytest.raises(GatewayUnavailable, match="kept failing"):
        classify(gateway, images("a"), retry_for_s=20)


def test_a_connection_failure_is_retried_like_overload() -> None:
    gateway = Gateway()

    def refuse() -> httpx.Response:
        raise httpx.ConnectError("connection refused")

    gateway.before = [refuse, refuse]
    answers, waits = classify(gateway, images("a"))
    assert answers[0].label == "leopard"
    assert len(waits) == 2


@pytest.mark.parametrize("status", [401, 403, 404])
def test_a_wrong_or_refusing_endpoint_stops_at_once(status: int) -> None:
    gateway = Gateway()
    gateway.before = [lambda: error(status, "nope", "no")]
    with pytest.raises(GatewayUnavailable, match=str(status)):
        classify(gateway, images("a"))


def test_an_image_that_makes_the_gateway_fail_is_isolated_and_recorded() -> None:
    class Crashing(Gateway):
        def __call__(self, request: httpx.Request) -> httpx.Response:
            names = names_of(request)
            self.batches.append(names)
            return error(500, "internal", "internal error") if "x" in names else ok(names)

    gateway = Crashing()
    answers, _ = classify(gateway, images("a", "x", "b", "c"))
    assert [answer.error_code for answer in answers] == [None, "internal", None, None]


def test_retry_after_reads_seconds_and_http_dates() -> None:
    assert retry_after_s("5") == 5
    assert retry_after_s("Wed, 21 Oct 2015 07:28:10 GMT", now=1445412480.0) == 10
    assert retry_after_s("soon") == 0
    assert retry_after_s(None) == 0


def test_a_gateway_serving_other_labels_is_refused() -> None:
    def model(request: httpx.Request) -> httpx.Response:
        body = {"name": "species_model", "version": "1", "labels": ["cat", "dog"], "max_batch_size": 32}
        return httpx.Response(200, content=json.dumps(body))

    async def go() -> None:
        client = BatchClient("http://gateway", transport=httpx.MockTransport(model))
        try:
            await client.model()
        finally:
            await client.close()

    with pytest.raises(GatewayUnavailable, match="labels"):
        asyncio.run(go())
