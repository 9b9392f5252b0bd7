"""The gateway's Pillow preprocessing against the training pipeline's TensorFlow preprocessing.

Measured on this repository (TF 2.21, Pillow 13), mean / max absolute difference per pixel value (0..255):
- PNG (lossless) photos: 0.07 / 1. The resize itself matches: Pillow's BILINEAR and
  `tf.image.resize(bilinear, antialias=True)` are the same triangle filter, up to rounding.
- JPEG photos (golden images and synthetic 640x480 to 4000x3000 frames): 0.11-0.20 / 1-3. Both sides decode
  with libjpeg's accurate integer IDCT (`model.preprocess` asks TensorFlow for INTEGER_ACCURATE; with its
  default fast IDCT the mean was 0.87-0.98). What remains is the gateway's reduced-size JPEG decoding
  (`draft`, large frames only), growing with the frame size, plus rounding.
The bounds below leave a little room above those numbers; the labels of the golden images must agree.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gateway import contract, preprocess
from tests.gateway.images import encode, jpeg, photo

pytestmark = pytest.mark.unit

training = pytest.importorskip("model.preprocess", reason="the training pipeline needs TensorFlow (.venv)")

ALLOWED = frozenset({"JPEG", "PNG", "WEBP", "BMP"})
JPEG_MEAN_BOUND = 0.3
JPEG_MAX_BOUND = 4
PNG_MEAN_BOUND = 0.15
PNG_MAX_BOUND = 1
CAMERA_TRAP_SIZES = [(640, 480), (1920, 1080), (2592, 1944), (4000, 3000)]


def both(data: bytes) -> tuple[np.ndarray, np.ndarray]:
    ours = preprocess.decode(data, preprocess.Limits(allowed_formats=ALLOWED, max_pixels=10**9))
    theirs = training.decode_and_resize(data)
    assert ours.shape == theirs.shape == (150, 150, 3)
    assert ours.dtype == theirs.dtype == np.uint8
    return ours.astype(np.int16), theirs.astype(np.int16)


def difference(data: bytes) -> tuple[float, int]:
    ours, theirs = both(data)
    diff = np.abs(ours - theirs)
    return float(diff.mean()), int(diff.max())


@pytest.mark.parametrize(("width", "height"), CAMERA_TRAP_SIZES)
def test_a_synthetic_camera_trap_jpeg_preprocesses_almost_identically(width: int, height: int) -> None:
    mean, peak = difference(jpeg(width, height, seed=width % 7, quality=90))
    assert mean < JPEG_MEAN_BOUND, f"{width}x{height}: mean abs diff {mean:.3f}"
    assert peak <= JPEG_MAX_BOUND, f"{width}x{height}: max abs diff {peak}"


def test_a_lossless_photo_shows_the_resize_itself_matches_training() -> None:
    mean, peak = difference(encode(Image.fromarray(photo(1920, 1080, seed=3)), "PNG"))
    assert mean < PNG_MEAN_BOUND, f"mean abs diff {mean:.3f}"
    assert peak <= PNG_MAX_BOUND, f"max abs diff {peak}"


def test_every_golden_image_preprocesses_almost_identically(golden_dir: Path) -> None:
    for label in contract.LABELS:
        mean, peak = difference((golden_dir / f"{label}.jpg").read_bytes())
        assert mean < JPEG_MEAN_BOUND, f"{label}: mean abs diff {mean:.3f}"
        assert peak <= JPEG_MAX_BOUND, f"{label}: max abs diff {peak}"


def test_the_jpeg_gap_is_the_decoders_idct_not_the_resize() -> None:
    import tensorflow as tf

    data = jpeg(1200, 900, seed=5)
    accurate = tf.io.decode_jpeg(data, channels=3, dct_method="INTEGER_ACCURATE").numpy()
    with Image.open(io.BytesIO(data)) as image:
        assert np.array_equal(np.asarray(image.convert("RGB")), accurate)


def test_golden_images_get_the_same_labels_through_both_pipelines(
    demo_model_dir: Path, golden_dir: Path
) -> None:
    import tensorflow as tf

    serve = tf.saved_model.load(str(demo_model_dir)).signatures[contract.SIGNATURE_NAME]
    ours, theirs = [], []
    for label in contract.LABELS:
        gateway_pixels, training_pixels = both((golden_dir / f"{label}.jpg").read_bytes())
        ours.append(gateway_pixels.astype(np.uint8))
        theirs.append(training_pixels.astype(np.uint8))

    def labels(batch: list[np.ndarray]) -> tuple[list[str], np.ndarray]:
        probabilities = serve(**{contract.INPUT_NAME: tf.constant(np.stack(batch))})[
            contract.OUTPUT_NAME
        ].numpy()
        return [contract.LABELS[i] for i in probabilities.argmax(axis=1)], probabilities

    gateway_labels, gateway_p = labels(ours)
    training_labels, training_p = labels(theirs)
    assert gateway_labels == training_labels == list(contract.LABELS)
    assert np.abs(gateway_p - training_p).max() < 0.05
