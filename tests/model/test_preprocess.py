"""The training pipeline's preprocessing: any common image in, a 150 x 150 uint8 RGB array out."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from model import preprocess

pytestmark = pytest.mark.unit


def encode(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def test_a_camera_sized_jpeg_becomes_a_150_by_150_uint8_rgb_array() -> None:
    result = preprocess.decode_and_resize(encode(Image.new("RGB", (640, 480), (200, 30, 90)), "JPEG"))

    assert result.shape == (150, 150, 3)
    assert result.dtype == np.uint8


def test_a_flat_colour_keeps_its_colour_through_the_resize() -> None:
    result = preprocess.decode_and_resize(encode(Image.new("RGB", (320, 240), (10, 128, 250)), "PNG"))

    assert np.array_equal(np.unique(result.reshape(-1, 3), axis=0), [[10, 128, 250]])


def test_a_downscale_averages_fine_detail_instead_of_sampling_it() -> None:
    # One-pixel black and white stripes: an antialiased downscale gives mid grey, point sampling would not.
    stripes = np.zeros((600, 600, 3), dtype=np.uint8)
    stripes[:, ::2] = 255

    result = preprocess.decode_and_resize(encode(Image.fromarray(stripes), "PNG"))

    assert np.all(np.abs(result[10:-10, 10:-10].astype(int) - 128) <= 2)


def test_a_png_with_alpha_and_a_grayscale_png_come_out_as_three_channels() -> None:
    rgba = Image.new("RGBA", (50, 40), (255, 0, 0, 10))
    gray = Image.new("L", (50, 40), 77)

    assert np.array_equal(preprocess.decode_and_resize(encode(rgba, "PNG"))[0, 0], [255, 0, 0])
    assert np.array_equal(preprocess.decode_and_resize(encode(gray, "PNG"))[0, 0], [77, 77, 77])


def test_an_animated_gif_is_read_as_its_first_frame() -> None:
    frames = [Image.new("RGB", (30, 30), colour) for colour in ((0, 0, 255), (255, 255, 0))]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:])

    result = preprocess.decode_and_resize(buffer.getvalue())

    assert result.shape == (150, 150, 3)
    assert result[75, 75, 2] > 200
    assert result[75, 75, 0] < 50


def test_bytes_that_are_not_an_image_raise_invalid_argument() -> None:
    with pytest.raises(tf.errors.InvalidArgumentError):
        preprocess.decode_and_resize(b"definitely not an image")


def test_the_dataset_loader_gives_exactly_what_decode_and_resize_gives(tmp_path: Path) -> None:
    pixels = np.random.default_rng(3).integers(0, 256, size=(240, 320, 3), dtype=np.uint8)
    path = tmp_path / "frame.jpg"
    Image.fromarray(pixels).save(path, quality=85)

    from_file = tf.data.Dataset.from_tensor_slices([str(path)]).map(preprocess.load_image)
    loaded = next(iter(from_file)).numpy()

    assert np.array_equal(loaded, preprocess.decode_and_resize(path.read_bytes()))
