"""Request and response models: validation of JSON bodies and the OpenAPI document at /docs."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from gateway import metrics
from gateway.errors import BadRequest


class ImageRef(BaseModel):
    """One image: either a URL the gateway downloads or the encoded image bytes in base64."""

    model_config = ConfigDict(extra="forbid")

    url: (
        Annotated[str, Field(max_length=2048, description="http(s) URL of a JPEG/PNG/WebP/BMP image.")] | None
    ) = None
    image: (
        Annotated[str, Field(description="The encoded image file, base64 (a data: URL prefix is accepted).")]
        | None
    ) = None

    @model_validator(mode="after")
    def _exactly_one(self) -> ImageRef:
        if (self.url is None) == (self.image is None):
            raise ValueError('give exactly one of "url" or "image"')
        return self


class BatchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    images: list[ImageRef] = Field(min_length=1, description="The images, answered in the same order.")


# The start of the next JSON token outside strings: a quote (a string follows), a bracket, or up to 64 of
# anything else that is no separator (numbers, true/false/null, garbage: a longer run is several tokens).
_TOKEN = re.compile(rb'["\[\]{}]|[^\s,:\[\]{}"]{1,64}')
_QUOTE, _BACKSLASH = ord('"'), ord("\\")
# Escapes in a URL or base64 string are rare (`\/` from some encoders); runs of them attack the scan.
_MAX_ESCAPED_QUOTES = 64
_MAX_BACKSLASH_RUN = 16
# Tokens a valid body has at most: {"images": [ + 5 per item ({, key, value, }) + ] } and some slack.
_TOKENS_PER_ITEM = 6
_TOKENS_AROUND = 16


def _string_end(body: bytes, start: int) -> int:
    """The index after the string whose opening quote is at `start`, or -1 if it never ends.

    bytes.find skips a megabyte-long base64 string at memory speed (a regular expression would take ten
    times as long, holding the GIL); a quote counts as closing when an even number of backslashes precede it.
    """
    end = start + 1
    for _ in range(_MAX_ESCAPED_QUOTES):
        end = body.find(b'"', end)
        if end < 0:
            return -1
        escapes = 0
        while body[end - 1 - escapes] == _BACKSLASH:
            escapes += 1
            if escapes > _MAX_BACKSLASH_RUN:
                raise BadRequest("the JSON body has a string no image request has")
        end += 1
        if escapes % 2 == 0:
            return end
    raise BadRequest("the JSON body has a string no image request has")


def check_json_shape(body: bytes, *, max_items: int | None) -> None:
    """Refuses a JSON body too big in structure before pydantic builds anything from it (400).

    `max_items` None: a single ImageRef; else a BatchRequest with at most that many images. The scan stops
    at the first image past `max_items`, or the first token past what a valid body can hold, so a million
    empty items cost as little as 33, and a huge base64 string is one token. Whatever passes is small
    enough in structure for pydantic to validate and explain (malformed JSON included).
    """
    items = tokens = depth = 0
    budget = _TOKENS_AROUND + _TOKENS_PER_ITEM * (max_items or 0)
    position = 0
    while (match := _TOKEN.search(body, position)) is not None:
        tokens += 1
        if tokens > budget:
            raise BadRequest("the JSON body has more values than an image request can hold")
        start = match.start()
        first = body[start]
        closing = first in b"}]"
        # Depth 2 is inside the top-level object's array: every value starting there is one image.
        if max_items is not None and depth == 2 and not closing:
            items += 1
            if items > max_items:
                metrics.REFUSED.labels(reason="batch_too_large").inc()
                raise BadRequest(
                    f"the batch has more than {max_items} images; at most {max_items} are accepted"
                    " (MAX_BATCH_SIZE)"
                )
        if first == _QUOTE:
            position = _string_end(body, start)
            if position < 0:
                return  # unterminated: pydantic reports the invalid JSON
            continue
        position = match.end()
        if first in b"{[":
            depth += 1
        elif closing:
            depth -= 1


class ModelRef(BaseModel):
    name: str = Field(examples=["species_model"])
    version: str = Field(examples=["1"], description="The version TF Serving answered with.")


class Classification(BaseModel):
    label: str = Field(examples=["leopard"], description="The most probable label.")
    score: float = Field(examples=[0.93], description="Its probability.")
    predictions: dict[str, float] = Field(
        description="Probability of every label, in the model's label order."
    )


class PredictResponse(Classification):
    model: ModelRef


class BatchResponse(BaseModel):
    results: list[Classification] = Field(description="One classification per image, in request order.")
    model: ModelRef


class ErrorDetail(BaseModel):
    code: str = Field(examples=["invalid_image"])
    message: str


class ErrorResponse(BaseModel):
    error: ErrorDetail


class Health(BaseModel):
    status: str = Field(examples=["ok"])


class Readiness(BaseModel):
    status: str = Field(examples=["ready"], description="ready or not_ready")
    reason: str
    model: ModelRef | None = None


class InputSpec(BaseModel):
    name: str
    dtype: str
    shape: list[int]
    color: str
    resize: str


class ModelInfo(BaseModel):
    name: str
    version: str | None = Field(description="From TF Serving's metadata; null until TF Serving answered.")
    labels: list[str]
    input: InputSpec
    max_batch_size: int
    allowed_formats: list[str]


def inline_schema(model: type[BaseModel]) -> dict[str, Any]:
    """A model's JSON schema with its $defs inlined, for an OpenAPI requestBody written by hand."""
    schema = model.model_json_schema()
    defs = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return resolve(defs[ref.removeprefix("#/$defs/")])
            return {key: resolve(value) for key, value in node.items()}
        if isinstance(node, list):
            return [resolve(item) for item in node]
        return node

    resolved: dict[str, Any] = resolve(schema)
    return resolved
