"""Request builders for the stand-in tests."""

from __future__ import annotations

import numpy as np
from tensorflow_serving.apis import predict_pb2

from model import spec

# The shared stand-in (conftest's `standin_address`) knows this version label, pointing at version 1.
STABLE_LABEL = "stable"


def solid_images(*colours: tuple[int, int, int]) -> np.ndarray:
    """A uint8 batch [n, 150, 150, 3], one flat colour per image (the tiny model sees the mean colour)."""
    batch = np.zeros((len(colours), spec.IMAGE_HEIGHT, spec.IMAGE_WIDTH, spec.CHANNELS), dtype=np.uint8)
    for index, colour in enumerate(colours):
        batch[index] = colour
    return batch


def predict_request(
    images: np.ndarray,
    *,
    name: str = spec.MODEL_NAME,
    signature_name: str = spec.SIGNATURE_NAME,
    version: int | None = None,
    version_label: str | None = None,
    input_name: str = spec.INPUT_NAME,
) -> predict_pb2.PredictRequest:
    """A PredictRequest as the gateway builds it: model name, serving signature, one `image` tensor."""
    import tensorflow as tf

    request = predict_pb2.PredictRequest()
    request.model_spec.name = name
    request.model_spec.signature_name = signature_name
    if version is not None:
        request.model_spec.version.value = version
    if version_label is not None:
        request.model_spec.version_label = version_label
    request.inputs[input_name].CopyFrom(tf.make_tensor_proto(images))
    return request
