"""Image preprocessing of the training pipeline, in TensorFlow.

One chain of ops turns encoded image bytes into the model's input: decode (JPEG, PNG, BMP or the first frame
of a GIF) to RGB, resize to 150 x 150 with an antialiased bilinear filter, round and clip back to uint8. The
tf.data pipeline in `model.train` maps `load_image` over files; `decode_and_resize` runs the very same ops on
bytes in memory, so the gateway's parity test can compare its Pillow implementation against it.

EXIF orientation is not applied here (TensorFlow's decoders ignore it); camera-trap frames are stored upright,
and the gateway applies the orientation tag before its own resize.
"""

import numpy as np
import tensorflow as tf

from model import spec

IMAGE_SIZE = (spec.IMAGE_HEIGHT, spec.IMAGE_WIDTH)
IMAGE_SHAPE = (spec.IMAGE_HEIGHT, spec.IMAGE_WIDTH, spec.CHANNELS)


def decode_image(image_bytes: tf.Tensor) -> tf.Tensor:
    """Decodes encoded image bytes into a uint8 RGB tensor of shape (height, width, 3)."""
    # JPEGs use libjpeg's accurate integer IDCT, the one Pillow (and so the gateway) decodes with;
    # TensorFlow's default fast IDCT differs by about one grey level per pixel.
    # expand_animations=False keeps a GIF to its first frame, so every format yields a 3-D tensor.
    image = tf.cond(
        tf.io.is_jpeg(image_bytes),
        lambda: tf.io.decode_jpeg(image_bytes, channels=spec.CHANNELS, dct_method="INTEGER_ACCURATE"),
        lambda: tf.io.decode_image(
            image_bytes, channels=spec.CHANNELS, dtype=tf.uint8, expand_animations=False
        ),
    )
    image.set_shape([None, None, spec.CHANNELS])
    return image


def resize_image(image: tf.Tensor) -> tf.Tensor:
    """Resizes a uint8 RGB image to the model's input size and returns it as uint8."""
    # antialias=True makes a downscale a triangle filter over the whole footprint, which is what Pillow's
    # BILINEAR does as well; without it TensorFlow samples only the 2 x 2 nearest pixels.
    resized = tf.image.resize(image, IMAGE_SIZE, method=spec.RESIZE_METHOD, antialias=True)
    return tf.cast(tf.clip_by_value(tf.round(resized), 0.0, 255.0), tf.uint8)


def decode_and_resize_tensor(image_bytes: tf.Tensor) -> tf.Tensor:
    """Bytes tensor in, uint8 tensor of shape (150, 150, 3) out; usable inside tf.data and tf.function."""
    image = resize_image(decode_image(image_bytes))
    image.set_shape(IMAGE_SHAPE)
    return image


def load_image(path: tf.Tensor) -> tf.Tensor:
    """Reads one image file and preprocesses it; the function the training dataset maps over file paths."""
    return decode_and_resize_tensor(tf.io.read_file(path))


def decode_and_resize(image_bytes: bytes) -> np.ndarray:
    """Preprocesses encoded image bytes eagerly: uint8 array of shape (150, 150, 3), RGB.

    Raises tf.errors.InvalidArgumentError when the bytes are not an image TensorFlow can decode.
    """
    result: np.ndarray = decode_and_resize_tensor(tf.constant(image_bytes, dtype=tf.string)).numpy()
    return result
