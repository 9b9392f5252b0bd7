"""Image bytes in, the model's uint8 (150, 150, 3) RGB array out: pure functions, Pillow and numpy only.

It mirrors the training pipeline (`model/preprocess.py`: decode to RGB, `tf.image.resize(method="bilinear",
antialias=True)`, round to uint8). Pillow's BILINEAR is the same antialiased triangle filter when it
downscales, so both produce nearly the same pixels (tests/gateway/test_parity.py measures how near).

Order of work, cheapest first, so hostile input costs little:
1. identify the format and size from the header (no pixels decoded yet);
2. reject a disallowed format (415) or too many pixels (413: decompression bombs never get decoded);
3. JPEG only: `draft()` lets libjpeg decode at 1/2, 1/4 or 1/8 scale in the DCT, never below twice the
   target size, so the final resize still averages over several source pixels;
4. decode, convert to RGB (alpha composited on black), resize to 150 x 150;
5. apply the EXIF orientation to the 150 x 150 result: with a square target, turning the small image
   equals turning the large one first, at a fraction of the cost.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Collection

import numpy as np
from PIL import ExifTags, Image

from gateway import contract
from gateway.errors import InvalidImage, PayloadTooLarge, UnsupportedMediaType

TARGET_SIZE = (contract.IMAGE_WIDTH, contract.IMAGE_HEIGHT)
# JPEG draft never goes below this size; twice the target keeps the bilinear resize antialiasing.
DRAFT_SIZE = (2 * contract.IMAGE_WIDTH, 2 * contract.IMAGE_HEIGHT)

# Transparent pixels become this colour. Black because the training decoder (`tf.io.decode_image(...,
# channels=3)`) drops alpha, and the common encoding of "transparent" is (0, 0, 0, 0): compositing on black
# agrees with it there, and unlike dropping alpha it never shows the arbitrary colours hidden under alpha 0.
BACKGROUND = (0, 0, 0)

# Pillow calls some phone/camera JPEGs "MPO" (a JPEG with extra pictures appended); they decode as JPEG.
_FORMAT_ALIASES = {"MPO": "JPEG"}

# Image.transpose operations for EXIF orientations 2..8 (TIFF/EXIF spec, tag 0x0112), as ImageOps uses them.
_ORIENTATION = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def configure_pillow(max_pixels: int) -> None:
    """Process-wide Pillow setup, called once at startup.

    Pillow refuses to open images over 2 x MAX_IMAGE_PIXELS by itself (DecompressionBombError); below that
    `decode` enforces `max_pixels` exactly, so Pillow's in-between warning is redundant noise.
    """
    Image.MAX_IMAGE_PIXELS = max_pixels
    warnings.simplefilter("ignore", Image.DecompressionBombWarning)
    Image.preinit()


def normalize_format(name: str | None) -> str | None:
    return _FORMAT_ALIASES.get(name, name) if name else None


def open_image(data: bytes, *, allowed_formats: Collection[str], max_pixels: int) -> Image.Image:
    """Parses the header only and enforces format and pixel limits before any pixel is decoded."""
    if not data:
        raise InvalidImage("the image is empty")
    try:
        image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        raise PayloadTooLarge(f"the image has more than {max_pixels} pixels") from exc
    except Exception as exc:  # any parser failure on untrusted bytes is the client's fault: 400, never 500
        raise InvalidImage("the data is not a readable image") from exc
    image_format = normalize_format(image.format)
    if image_format not in allowed_formats:
        raise UnsupportedMediaType(
            f"image format {image_format} is not accepted; allowed: {', '.join(sorted(allowed_formats))}"
        )
    width, height = image.size
    if width <= 0 or height <= 0:
        raise InvalidImage("the image has no pixels")
    if width * height > max_pixels:
        raise PayloadTooLarge(
            f"the image is {width}x{height} pixels; at most {max_pixels} pixels are accepted"
        )
    return image


def _to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow mode to 8-bit RGB; alpha composited on BACKGROUND."""
    mode = image.mode
    if mode == "RGB":
        return image
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        # 16-bit grey (PNG): keep the high byte, as TensorFlow's uint8 decode does. Pillow's own
        # convert("L") would clip everything above 255 to white instead.
        high = (np.asarray(image).astype(np.uint32, copy=False) >> 8).clip(0, 255).astype(np.uint8)
        return Image.fromarray(high, "L").convert("RGB")
    if mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    elif mode == "P":
        return image.convert("RGB")
    if mode in ("LA", "La", "PA", "RGBa"):
        image = image.convert("RGBA")
    if image.mode == "RGBA":
        background = Image.new("RGB", image.size, BACKGROUND)
        background.paste(image, mask=image.getchannel("A"))
        return background
    # L, 1, CMYK, YCbCr, LAB, HSV, F: Pillow's conversions (1-bit becomes 0/255, CMYK uses Pillow's formula).
    return image.convert("RGB")


def decode(data: bytes, *, allowed_formats: Collection[str], max_pixels: int) -> np.ndarray:
    """Encoded image bytes -> uint8 array (150, 150, 3), RGB, as the model takes it.

    Raises InvalidImage (400) for bytes that are not a complete image, UnsupportedMediaType (415) for a
    format outside `allowed_formats`, PayloadTooLarge (413) for more than `max_pixels` pixels.
    """
    image = open_image(data, allowed_formats=allowed_formats, max_pixels=max_pixels)
    try:
        orientation = image.getexif().get(ExifTags.Base.Orientation, 1)
        if image.format in ("JPEG", "MPO"):
            image.draft("RGB", DRAFT_SIZE)
        image.load()
        # Only the first frame of multi-frame files (animated WebP/PNG) is used, like the training decoder.
        rgb = _to_rgb(image)
        resized = rgb.resize(TARGET_SIZE, Image.Resampling.BILINEAR)
    except Image.DecompressionBombError as exc:
        raise PayloadTooLarge(f"the image has more than {max_pixels} pixels") from exc
    except Exception as exc:  # truncated or corrupt data in any decoder: the client's fault
        raise InvalidImage("the image data is truncated or corrupt") from exc
    finally:
        image.close()
    transpose = _ORIENTATION.get(orientation) if isinstance(orientation, int) else None
    if transpose is not None:
        resized = resized.transpose(transpose)
    return np.asarray(resized)


def stack(arrays: list[np.ndarray]) -> np.ndarray:
    """One contiguous (N, 150, 150, 3) batch: the single copy the request tensor is made from."""
    return np.stack(arrays)
