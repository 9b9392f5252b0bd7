"""Request and response models: validation of JSON bodies and the OpenAPI document at /docs."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator


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
