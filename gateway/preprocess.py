"""Image bytes in, the model's uint8 (150, 150, 3) RGB array out: pure functions, Pillow and numpy only.

It mirrors the training pipeline (`model/preprocess.py`: decode to RGB, `tf.image.resize(method="bilinear",
antialias=True)`, round to uint8). Pillow's BILINEAR is the same antialiased triangle filter when it
downscales, so both produce nearly the same pixels (tests/gateway/test_parity.py measures how near).

Two steps, so the expensive one can wait for memory (gateway.pipeline reserves `Probe.cost` bytes of the
decode budget in between):

`probe` reads the header only, cheapest checks first, and refuses hostile input before any pixel exists:
1. the format (415) and the pixel count (413);
2. JPEG: the number of scans (SOS markers; 413 past MAX_JPEG_SCANS): each scan of a progressive JPEG is a
   full pass over the image, so a small file of repeated scans would cost minutes of CPU;
3. JPEG: `draft()` lets libjpeg decode at 1/2, 1/4 or 1/8 scale in the DCT, never below twice the target
   size, so the final resize still averages over several source pixels;
4. the memory the decode will need at its peak, from the size, mode and format (`decode_cost`: Pillow's
   pixel storage, the decoder's own buffers, each conversion's copy and the resize's coefficient tables,
   which grow with the longer side, so 40,000,000 x 1 costs as much as its pixel count suggests, and more);
   413 past MAX_DECODE_BYTES. A test measures real peaks against this estimate.

`finish` decodes, converts to RGB (alpha composited on black, by resizing premultiplied pixels), resizes to
150 x 150 and applies the EXIF orientation last: with a square target, turning the small image equals
turning the large one, at a fraction of the cost. Each full-size intermediate is freed as soon as the next
exists, as `decode_cost` assumes. The data is read through a file object that stops the decode at its next
read once `cancel` is set (the client went away).
"""

from __future__ import annotations

import io
import re
import struct
import threading
import warnings
from collections.abc import Collection
from dataclasses import dataclass

import numpy as np
from PIL import ExifTags, Image, ImageFile

from gateway import contract
from gateway.errors import InvalidImage, PayloadTooLarge, UnsupportedMediaType

TARGET_SIZE = (contract.IMAGE_WIDTH, contract.IMAGE_HEIGHT)
# JPEG draft never goes below this size; twice the target keeps the bilinear resize antialiasing.
DRAFT_SIZE = (2 * contract.IMAGE_WIDTH, 2 * contract.IMAGE_HEIGHT)

# Transparent pixels become black. The training decoder (`tf.io.decode_image(..., channels=3)`) drops
# alpha, and the common encoding of "transparent" is (0, 0, 0, 0): compositing on black agrees with it
# there, and unlike dropping alpha it never shows the arbitrary colours hidden under alpha 0.

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

# --- what decoding costs (bytes), for `decode_cost` ---

# Bytes per pixel in Pillow's storage: 1 for "1", "L" and "P", 2 for the 16-bit greys, 4 for every other
# mode ("RGB" included: it is stored as RGBX).
_PIXEL_BYTES = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16L": 2, "I;16B": 2, "I;16N": 2}
# Pillow decodes WebP with libwebp's animation decoder: its canvas and previous canvas (4 bytes a pixel
# each) and the frame copied out as a bytes object (4), beside Pillow's own image.
_WEBP_EXTRA_PER_PIXEL = 12
# A progressive JPEG keeps every DCT coefficient of the full-size image (2 bytes each, 64 per 8x8 block
# of each component) until its last scan; draft() scales only the output.
_COEFFICIENT_BYTES = 2
# A PNG decoder keeps two raw rows (up to 8 bytes a pixel: RGBA, 16 bits) beside its zlib state.
_PNG_ROW_BYTES = 16
# Pillow's resize precomputes filter coefficients per output pixel and axis: about 16 bytes (doubles, then
# their fixed-point copies) for every input pixel along the axis.
_COEFFICIENTS_PER_INPUT_PIXEL = 16
# Pillow keeps a pointer to every row of an image: 40,000,000 rows of one pixel cost 320 MB on their own.
_ROW_POINTER_BYTES = 8
# Everything small: decoder structures, zlib windows, 64 KiB read blocks, the 150 x 150 results.
_FIXED_COST = 2 * 1024 * 1024

# The pipeline's conversions at full size, by decoded mode; each is a new image, and the one before it is
# closed once it exists. Modes not listed are converted to RGB.
_CONVERSIONS: dict[str, tuple[str, ...]] = {
    "RGB": (),
    "L": (),  # resized as L, made RGB at 150 x 150
    "1": ("L",),  # Pillow resizes "1" (and "P") only with NEAREST
    "P": ("RGB",),
    "PA": ("RGBA", "RGBa"),
    "P+transparency": ("RGBA", "RGBa"),
    "RGBA": ("RGBa",),  # premultiplied: resizing it, then dropping alpha, composites on black
    "LA": ("La",),
    "La": (),
    "RGBa": (),
}
# 16-bit (and 32-bit) grey that could not be decoded straight to 8 bits: through numpy to L, whose
# temporaries (the raw samples, shifted, clipped) peak near 8 bytes a pixel.
_WIDE_GREY = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I"})
_WIDE_GREY_CONVERSION_BYTES = 8


class DecodeAbandoned(Exception):
    """The decode was stopped because nobody waits for its result any more."""


@dataclass(frozen=True)
class Limits:
    """What one image may cost. The defaults are generous, for callers outside the gateway (tests, bench)."""

    allowed_formats: Collection[str]
    max_pixels: int
    max_decode_bytes: int = 2**62
    max_jpeg_scans: int = 1000


def configure_pillow(max_pixels: int) -> None:
    """Process-wide Pillow setup, called once at startup.

    Pillow refuses to open images over 2 x MAX_IMAGE_PIXELS by itself (DecompressionBombError); below that
    `probe` enforces `max_pixels` exactly, so Pillow's in-between warning is redundant noise.
    """
    Image.MAX_IMAGE_PIXELS = max_pixels
    warnings.simplefilter("ignore", Image.DecompressionBombWarning)
    Image.preinit()


def normalize_format(name: str | None) -> str | None:
    return _FORMAT_ALIASES.get(name, name) if name else None


class _Source(io.BytesIO):
    """The encoded bytes as Pillow reads them (without a copy), stopping the decode once `cancel` is set.

    Pillow feeds its decoders in blocks of 64 KiB, so a decode stops within one block of work.
    """

    def __init__(self, data: bytes, cancel: threading.Event | None) -> None:
        super().__init__(data)
        self._cancel = cancel

    def read(self, size: int | None = -1) -> bytes:
        if self._cancel is not None and self._cancel.is_set():
            raise DecodeAbandoned
        return super().read(size)


# --- JPEG structure (no pixels) ---

_SOI, _EOI, _SOS = 0xD8, 0xD9, 0xDA
# In entropy-coded data a 0xFF byte is followed by 0x00 (stuffing) or a restart marker; any other byte
# after 0xFF (0xFF fill bytes aside) starts the next marker. A literal first byte lets the regular
# expression engine skip ahead at memory speed.
_NEXT_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")
# Searched a window at a time: a file of nothing but stuffed 0xFF bytes holds the GIL for one window at a
# time, not for its whole length, so the event loop keeps running beside the worker thread.
_WINDOW = 1024 * 1024


def _next_marker(data: bytes, position: int) -> int:
    """The index of the next marker's 0xFF at or after `position`, or -1."""
    while position < len(data):
        found = _NEXT_MARKER.search(data, position, min(position + _WINDOW + 1, len(data)))
        if found is not None:
            return found.start()
        position += _WINDOW
    return -1


def jpeg_scans(data: bytes, limit: int) -> int:
    """Scans (SOS segments) of the first image in a JPEG, counting no further than `limit` + 1.

    Walks the marker segments by their lengths (so thumbnails inside APP segments do not count, and a
    marker hidden in a comment between scans is skipped as libjpeg skips it) and skips each scan's
    entropy-coded data by searching for the next marker. Stops at the first structure it cannot follow; the
    decoder then reports the file as invalid.
    """
    scans = 0
    pos = 2  # after SOI
    segments = 0
    while pos + 4 <= len(data) and scans <= limit:
        if data[pos] != 0xFF:
            break
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte before a marker
            pos += 1
            continue
        if marker == _EOI:
            break
        segments += 1
        if segments > 64 * (limit + 16):
            # A real JPEG has a few segments per scan; thousands of tiny ones are as costly to walk.
            return limit + 1
        (length,) = struct.unpack_from(">H", data, pos + 2)
        pos += 2 + length
        if marker == _SOS:
            scans += 1
            pos = _next_marker(data, pos)
            if pos < 0:
                break
    return scans


def _component_samples(image: Image.Image, width: int, height: int) -> int:
    """Samples of all components at full size, padded to whole 8x8 blocks (JPEG's `layer` sampling)."""
    layers = getattr(image, "layer", None) or [(0, 1, 1, 0)]
    h_max = max(layer[1] for layer in layers) or 1
    v_max = max(layer[2] for layer in layers) or 1
    total = 0
    for _, h, v, _ in layers:
        columns = -(-width * max(h, 1) // h_max)
        rows = -(-height * max(v, 1) // v_max)
        total += (-(-columns // 8) * 8) * (-(-rows // 8) * 8)
    return total


def _pixel_bytes(mode: str) -> int:
    return _PIXEL_BYTES.get(mode, 4)


def image_bytes(width: int, height: int, mode: str) -> int:
    """Pillow's storage of one image: its pixels and its row pointers."""
    return width * height * _pixel_bytes(mode) + height * _ROW_POINTER_BYTES


def _conversions(image: Image.Image) -> tuple[str, ...]:
    key = image.mode
    if key in _WIDE_GREY:
        return ("L",)
    if key == "P" and "transparency" in image.info:
        key = "P+transparency"
    return _CONVERSIONS.get(key, ("RGB",))


def resize_cost(width: int, height: int, mode: str) -> int:
    """Bytes Pillow's resize to 150 x 150 allocates: coefficient tables and the intermediate image."""
    target_w, target_h = TARGET_SIZE
    coefficients = _COEFFICIENTS_PER_INPUT_PIXEL * (width + height)
    # Two passes; Pillow runs the cheaper order, whose intermediate has one side already at the target.
    intermediate = min(target_w * height, width * target_h) * _pixel_bytes(mode)
    return coefficients + intermediate


def decode_cost(image: Image.Image, image_format: str, full_size: tuple[int, int]) -> int:
    """Estimated peak bytes of `finish` for this opened (and, for JPEG, drafted) image."""
    width, height = image.size
    pixels = width * height
    live = image_bytes(width, height, image.mode)
    decoder = 0
    if image_format == "WEBP":
        decoder = pixels * _WEBP_EXTRA_PER_PIXEL
    elif image_format == "PNG":
        decoder = width * _PNG_ROW_BYTES
    elif image_format == "JPEG" and image.info.get("progressive"):
        decoder = _COEFFICIENT_BYTES * _component_samples(image, *full_size)
    peak = live + decoder
    mode = image.mode
    for step in _conversions(image):
        converted = image_bytes(width, height, step)
        if mode in _WIDE_GREY:
            converted = max(converted, pixels * _WIDE_GREY_CONVERSION_BYTES)
        peak = max(peak, live + converted)
        mode, live = step, image_bytes(width, height, step)
    peak = max(peak, live + resize_cost(width, height, mode))
    return peak + _FIXED_COST


# --- probe and finish ---


@dataclass
class Probe:
    """An image whose header has passed every check, with what decoding it will cost."""

    image: Image.Image
    cost: int

    def close(self) -> None:
        self.image.close()


def _open(data: bytes, limits: Limits, cancel: threading.Event | None) -> tuple[ImageFile.ImageFile, str]:
    if not data:
        raise InvalidImage("the image is empty")
    try:
        image = Image.open(_Source(data, cancel))
    except Image.DecompressionBombError as exc:
        raise PayloadTooLarge(f"the image has more than {limits.max_pixels} pixels") from exc
    except DecodeAbandoned:
        raise
    except Exception as exc:  # any parser failure on untrusted bytes is the client's fault: 400, never 500
        raise InvalidImage("the data is not a readable image") from exc
    image_format = normalize_format(image.format) or "unknown"
    if image_format not in limits.allowed_formats:
        image.close()
        allowed = ", ".join(sorted(limits.allowed_formats))
        raise UnsupportedMediaType(f"image format {image_format} is not accepted; allowed: {allowed}")
    return image, image_format


def _decode_sixteen_bit_grey_as_eight(image: ImageFile.ImageFile) -> None:
    """Have a 16-bit grey PNG decoded straight to 8-bit L, keeping each sample's high byte.

    That is what TensorFlow's uint8 decode does (Pillow's convert("L") would clip to white instead), and it
    stores 1 byte a pixel instead of 2 plus a converted copy. Pillow's "L;16B" unpacker takes the high
    byte of big-endian 16-bit samples, PNG's byte order.
    """
    if image.format == "PNG" and len(image.tile) == 1 and image.tile[0].args == "I;16B":
        image.tile = [image.tile[0]._replace(args="L;16B")]
        image._mode = "L"


def probe(data: bytes, limits: Limits, cancel: threading.Event | None = None) -> Probe:
    """Parses the header only and enforces every limit before any pixel is decoded.

    Raises InvalidImage (400), UnsupportedMediaType (415) or PayloadTooLarge (413: pixels, scans, memory).
    """
    image, image_format = _open(data, limits, cancel)
    try:
        width, height = image.size
        if width <= 0 or height <= 0:
            raise InvalidImage("the image has no pixels")
        if width * height > limits.max_pixels:
            raise PayloadTooLarge(
                f"the image is {width}x{height} pixels; at most {limits.max_pixels} pixels are accepted"
            )
        if image_format == "JPEG":
            scans = jpeg_scans(data, limits.max_jpeg_scans)
            if scans > limits.max_jpeg_scans:
                raise PayloadTooLarge(
                    f"the JPEG has more than {limits.max_jpeg_scans} scans (MAX_JPEG_SCANS); cameras write"
                    " one, progressive encoders about ten"
                )
            image.draft("RGB", DRAFT_SIZE)
        elif image.mode in _WIDE_GREY:
            _decode_sixteen_bit_grey_as_eight(image)
        cost = decode_cost(image, image_format, (width, height))
        if cost > limits.max_decode_bytes:
            raise PayloadTooLarge(
                f"decoding this {width}x{height} {image_format} image ({image.mode}) would need about"
                f" {cost / 2**20:.0f} MiB; at most {limits.max_decode_bytes / 2**20:.0f} MiB are available"
                " (MAX_DECODE_BYTES)"
            )
    except Image.DecompressionBombError as exc:
        image.close()
        raise PayloadTooLarge(f"the image has more than {limits.max_pixels} pixels") from exc
    except Exception:
        image.close()
        raise
    return Probe(image, cost)


def _high_byte(image: Image.Image) -> Image.Image:
    """Wide grey that `_decode_sixteen_bit_grey_as_eight` could not handle: the high byte, as L."""
    high = (np.asarray(image).astype(np.uint32, copy=False) >> 8).clip(0, 255).astype(np.uint8)
    return Image.fromarray(high, "L")


def _convert(image: Image.Image, mode: str) -> Image.Image:
    converted = _high_byte(image) if image.mode in _WIDE_GREY else image.convert(mode)
    image.close()  # frees the full-size pixels now, not when the caller lets go
    return converted


def _to_model_input(image: Image.Image) -> Image.Image:
    """The loaded image, any mode, to 150 x 150 RGB; closes `image` and each intermediate."""
    for mode in _conversions(image):
        image = _convert(image, mode)
    resized = image.resize(TARGET_SIZE, Image.Resampling.BILINEAR)
    image.close()
    if resized.mode in ("RGBa", "La"):
        # Premultiplied colour is the colour composited on black.
        bands = resized.split()[:-1]
        resized = Image.merge("RGB", bands * 3 if len(bands) == 1 else bands)
    return resized if resized.mode == "RGB" else resized.convert("RGB")


def finish(probed: Probe) -> np.ndarray:
    """Decodes a probed image to the model's uint8 array (150, 150, 3), RGB.

    Raises InvalidImage (400) for data that is truncated or corrupt, DecodeAbandoned when cancelled.
    """
    image = probed.image
    try:
        image.load()
        # After load: a PNG may carry its EXIF after the pixels, and Pillow loads them to find it.
        orientation = image.getexif().get(ExifTags.Base.Orientation, 1)
        # Only the first frame of multi-frame files (animated WebP/PNG) is used, like the training decoder.
        resized = _to_model_input(image)
    except DecodeAbandoned:
        raise
    except Image.DecompressionBombError as exc:
        raise PayloadTooLarge("the image has too many pixels") from exc
    except Exception as exc:  # truncated or corrupt data in any decoder: the client's fault
        raise InvalidImage("the image data is truncated or corrupt") from exc
    finally:
        image.close()
    transpose = _ORIENTATION.get(orientation) if isinstance(orientation, int) else None
    if transpose is not None:
        resized = resized.transpose(transpose)
    return np.asarray(resized)


def decode(data: bytes, limits: Limits, cancel: threading.Event | None = None) -> np.ndarray:
    """Encoded image bytes -> uint8 array (150, 150, 3), RGB, as the model takes it (`probe`, `finish`)."""
    return finish(probe(data, limits, cancel))


def stack(arrays: list[np.ndarray]) -> np.ndarray:
    """One contiguous (N, 150, 150, 3) batch: the single copy the request tensor is made from."""
    return np.stack(arrays)
