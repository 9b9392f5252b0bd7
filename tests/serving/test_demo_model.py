"""The demo model, served by the stand-in, labels every golden image correctly over real gRPC."""

from __future__ import annotations

from pathlib import Path

import grpc
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image, ImageOps
from tensorflow_serving.apis import prediction_service_pb2_grpc

from model import spec
from serving.standin.server import find_versions
from tests.serving.builders import predict_request
from tests.support.standin import run_standin

pytestmark = pytest.mark.process


def model_input(path: Path) -> np.ndarray:
    """What the gateway sends for an image file: upright RGB, 150 x 150 by Pillow's BILINEAR, uint8."""
    with Image.open(path) as image:
        upright = ImageOps.exif_transpose(image).convert("RGB")
        resized = upright.resize((spec.IMAGE_WIDTH, spec.IMAGE_HEIGHT), Image.Resampling.BILINEAR)
        return np.asarray(resized, dtype=np.uint8)


def top_labels(response: object) -> list[str]:
    rows = tf.make_ndarray(response.outputs[spec.OUTPUT_NAME])  # type: ignore[attr-defined]
    np.testing.assert_allclose(rows.sum(axis=1), 1.0, rtol=1e-4)
    return [spec.LABELS[index] for index in rows.argmax(axis=1)]


def test_the_demo_model_labels_every_golden_image_correctly(demo_model_base: Path, golden_dir: Path) -> None:
    images = np.stack([model_input(golden_dir / f"{label}.jpg") for label in spec.LABELS])

    with run_standin(demo_model_base) as address, grpc.insecure_channel(address) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        batched = stub.Predict(predict_request(images), timeout=60)
        one_by_one = [stub.Predict(predict_request(image[np.newaxis]), timeout=60) for image in images]

    assert batched.model_spec.version.value == max(find_versions(demo_model_base))
    assert top_labels(batched) == list(spec.LABELS)
    assert [top_labels(response)[0] for response in one_by_one] == list(spec.LABELS)
