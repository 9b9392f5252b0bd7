"""Test images made in memory: every mode and format the gateway must handle, plus hostile ones."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from PIL import Image


def encode(image: Image.Image, fmt: str, **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


def photo(width: int = 640, height: int = 480, seed: int = 0) -> np.ndarray:
    """A camera-trap-like RGB frame: gradients, a few shapes and sensor noise (detail at every scale)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    image = np.stack(
        [
            120 + 80 * np.sin(x / (37 + 11 * seed) + seed),
            110 + 70 * np.cos(y / 53 + x / 97),
            90 + 60 * np.sin((x + y) / 71 + 2 * seed),
        ],
        axis=-1,
    )
    for _ in range(6):
        cx, cy, r = rng.integers(0, width), rng.integers(0, height), rng.integers(height // 20, height // 5)
        mask = (x - cx) ** 2 + (y - cy) ** 2 < r**2
        image[mask] = rng.integers(0, 256, size=3)
    image += rng.normal(0, 8, size=image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def jpeg(width: int = 640, height: int = 480, seed: int = 0, quality: int = 90, **params: object) -> bytes:
    return encode(Image.fromarray(photo(width, height, seed)), "JPEG", quality=quality, **params)


def jpeg_with_orientation(array: np.ndarray, orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(Image.fromarray(array), "JPEG", quality=95, exif=exif.tobytes())


def png_bomb(width: int, height: int) -> bytes:
    """A valid PNG header announcing width x height grey pixels, with one tiny compressed IDAT of zeros.

    Small on the wire, enormous decoded: what a decompression bomb looks like to a header check.
    """

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    rows = zlib.compress(b"\0" * (width + 1) * 16, 9)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")
