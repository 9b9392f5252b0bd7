"""The bulk run's HTTP client: batches of image bytes to the gateway's POST /predict/batch, answers back.

What each answer means for the run:

- 200: one classification per image.
- 4xx naming an image (`images[3]: ...`): that image is recorded with the gateway's error and the rest of
  the batch is sent again without it. The gateway answers a batch whole or not at all, so a batch with k bad
  images costs k + 1 requests; the bytes are read once.
- 4xx not naming an image (batch too large, too many images): the batch is split in two, down to single
  images, and a single image that is still refused is recorded with the error.
- 429, 502, 503 and connection failures: transient. Retried with exponential backoff and full jitter, never
  sooner than `Retry-After`, for up to `retry_for_s` seconds per request; past that `GatewayUnavailable`
  ends the run (the ledger keeps everything done so far).
- 500 and 504: retried a few times, then split as above, so one image that trips the gateway cannot stop a
  run of a million.
- 401, 403, 404, 405: the endpoint is wrong or refuses us: `GatewayUnavailable` at once.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from gateway import contract

log = logging.getLogger(__name__)

BATCH_PATH = "/predict/batch"
TRANSIENT = frozenset({429, 502, 503})
RETRY_THEN_SPLIT = frozenset({500, 504})
FATAL = frozenset({401, 403, 404, 405})
SPLIT_ATTEMPTS = 3
BACKOFF_BASE_S = 0.5
BACKOFF_CAP_S = 30.0
_INDEXED = re.compile(r"^images\[(\d+)\]:\s*(.*)$", re.DOTALL)


class GatewayUnavailable(Exception):
    """The gateway could not be reached or kept failing past the retries: the run cannot finish."""


@dataclass(frozen=True)
class Image:
    name: str
    data: bytes
    content_type: str


@dataclass(frozen=True)
class Answer:
    """A classification (probabilities in `contract.LABELS` order) or an error."""

    probabilities: tuple[float, ...] | None = None
    label: str | None = None
    score: float | None = None
    model_version: str | None = None
    error_code: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class ModelInfo:
    name: str
    version: str | None
    max_batch_size: int


def retry_after_s(header: str | None, now: float | None = None) -> float:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date); 0 when absent or bad."""
    if not header:
        return 0.0
    header = header.strip()
    if header.isdigit():
        return float(header)
    try:
        moment = parsedate_to_datetime(header).timestamp()
    except (TypeError, ValueError):
        return 0.0
    return max(0.0, moment - (time.time() if now is None else now))


def backoff_s(attempt: int, rng: random.Random) -> float:
    """Full jitter: uniform in [0, min(cap, base * 2**attempt)] (AWS Architecture Blog, "Exponential
    Backoff And Jitter"), so that many pods retrying at once spread out."""
    return rng.uniform(0, min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2**attempt))


def _error_of(response: httpx.Response) -> tuple[str, str]:
    try:
        body = response.json()
        error = body["error"]
        return str(error["code"]), str(error["message"])
    except (ValueError, KeyError, TypeError):
        return f"http_{response.status_code}", f"HTTP {response.status_code}: {response.text[:200]}"


def answers_from(body: Any, count: int) -> list[Answer]:
    """The 200 body of /predict/batch -> one Answer per image; ValueError when it is not that."""
    if not isinstance(body, dict) or not isinstance(body.get("results"), list):
        raise ValueError("the batch answer has no results list")
    results = body["results"]
    if len(results) != count:
        raise ValueError(f"the batch answer has {len(results)} results for {count} images")
    version = body.get("model", {}).get("version")
    answers = []
    for result in results:
        predictions = result["predictions"]
        probabilities = tuple(float(predictions[label]) for label in contract.LABELS)
        answers.append(Answer(probabilities, str(result["label"]), float(result["score"]), str(version)))
    return answers


class BatchClient:
    def __init__(
        self,
        endpoint: str,
        *,
        timeout_s: float = 120.0,
        retry_for_s: float = 300.0,
        connections: int = 8,
        on_wait: Callable[[str, float], None] | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.retry_for_s = retry_for_s
        self._http = httpx.AsyncClient(
            base_url=self.endpoint,
            timeout=httpx.Timeout(timeout_s, connect=min(10.0, timeout_s)),
            limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
            # The gateway is named explicitly; proxy variables meant for the internet do not apply.
            trust_env=False,
            transport=transport,
        )
        self._on_wait = on_wait or (lambda reason, seconds: None)
        self._sleep = sleep
        self._rng = rng or random.Random()  # noqa: S311 (backoff jitter, not cryptography)
        self.requests = 0

    async def close(self) -> None:
        await self._http.aclose()

    async def model(self) -> ModelInfo:
        """GET /model (retried like a batch): what the gateway serves and its batch limit."""
        response = await self._send(lambda: self._http.get("/model"), what="GET /model")
        if response.status_code != 200:
            code, message = _error_of(response)
            raise GatewayUnavailable(f"GET /model answered {response.status_code} {code}: {message}")
        body = response.json()
        labels = tuple(body.get("labels") or ())
        if labels != contract.LABELS:
            raise GatewayUnavailable(f"the gateway serves labels {labels}, not {contract.LABELS}")
        return ModelInfo(str(body.get("name")), body.get("version"), int(body.get("max_batch_size") or 1))

    async def classify(self, images: list[Image]) -> list[Answer]:
        answers: list[Answer | None] = [None] * len(images)
        await self._classify(images, list(range(len(images))), answers)
        done = [answer for answer in answers if answer is not None]
        if len(done) != len(images):
            raise RuntimeError("an image of the batch got no answer")  # a bug in _classify, never input
        return done

    async def _classify(self, images: list[Image], indices: list[int], answers: list[Answer | None]) -> None:
        attempts = 0
        while indices:
            batch = [images[i] for i in indices]
            response = await self._send(functools.partial(self._post, batch), what=BATCH_PATH)
            status = response.status_code
            if status == 200:
                try:
                    batch_answers = answers_from(response.json(), len(indices))
                except (ValueError, KeyError, TypeError) as exc:
                    raise GatewayUnavailable(f"the gateway's batch answer is malformed: {exc}") from exc
                for index, answer in zip(indices, batch_answers, strict=True):
                    answers[index] = answer
                return
            code, message = _error_of(response)
            if status in FATAL:
                raise GatewayUnavailable(f"{BATCH_PATH} answered {status} {code}: {message}")
            if status in RETRY_THEN_SPLIT:
                attempts += 1
                if attempts < SPLIT_ATTEMPTS:
                    await self._wait(f"{status} {code}", backoff_s(attempts, self._rng))
                    continue
            named = _INDEXED.match(message)
            if named and int(named.group(1)) < len(indices):
                position = int(named.group(1))
                answers[indices[position]] = Answer(error_code=code, error=named.group(2))
                indices = indices[:position] + indices[position + 1 :]
                attempts = 0
                continue
            if len(indices) > 1:
                half = len(indices) // 2
                await self._classify(images, indices[:half], answers)
                await self._classify(images, indices[half:], answers)
                return
            answers[indices[0]] = Answer(error_code=code, error=message)
            return

    async def _post(self, images: list[Image]) -> httpx.Response:
        files = [("files", (image.name, image.data, image.content_type)) for image in images]
        return await self._http.post(BATCH_PATH, files=files)

    async def _send(self, call: Callable[[], Awaitable[httpx.Response]], *, what: str) -> httpx.Response:
        """`call`, retried on transient failures for up to retry_for_s; other answers are returned."""
        started = time.monotonic()
        attempt = 0
        while True:
            self.requests += 1
            try:
                response = await call()
            except httpx.TransportError as exc:
                reason, wait = f"{type(exc).__name__}: {exc}", 0.0
            else:
                if response.status_code not in TRANSIENT:
                    return response
                code, message = _error_of(response)
                reason = f"{response.status_code} {code}: {message}"
                wait = retry_after_s(response.headers.get("retry-after"))
            wait = max(wait, backoff_s(attempt, self._rng))
            if time.monotonic() - started + wait > self.retry_for_s:
                raise GatewayUnavailable(
                    f"{what} at {self.endpoint} kept failing for {self.retry_for_s:.0f} s; last: {reason}"
                )
            attempt += 1
            await self._wait(reason, wait)

    async def _wait(self, reason: str, seconds: float) -> None:
        self._on_wait(reason, seconds)
        await self._sleep(seconds)
