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


def png(width: int, height: int, color_type: int, bit_depth: int = 8, **chunks: bytes) -> bytes:
    """A valid PNG of flat mid-grey samples, streamed through zlib so that huge sizes stay tiny files.

    color_type: 0 grey, 2 RGB, 3 palette (pass PLTE=, and tRNS= for transparency), 4 grey+alpha, 6 RGBA.
    """

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[color_type]
    row = b"\0" + b"\x7f" * ((width * channels * bit_depth + 7) // 8)  # filter byte 0, then samples
    rows_per_block = max(1, (1 << 20) // len(row))
    compressor = zlib.compressobj(9)
    parts = []
    for start in range(0, height, rows_per_block):
        parts.append(compressor.compress(row * min(rows_per_block, height - start)))
    parts.append(compressor.flush())
    header = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    extra = b"".join(chunk(kind.encode(), data) for kind, data in chunks.items())
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + extra
        + chunk(b"IDAT", b"".join(parts))
        + chunk(b"IEND", b"")
    )


def jpeg_segments(data: bytes) -> list[tuple[int, int, int]]:
    """(marker, start, end) of each JPEG segment; a scan's segment includes its entropy-coded data."""
    position, found = 2, [(0xD8, 0, 2)]
    while position < len(data):
        marker = data[position + 1]
        if marker == 0xD9:
            found.append((marker, position, position + 2))
            break
        (length,) = struct.unpack_from(">H", data, position + 2)
        end = position + 2 + length
        if marker == 0xDA:
            while True:
                end = data.index(b"\xff", end)
                if data[end + 1] != 0 and not 0xD0 <= data[end + 1] <= 0xD7:
                    break
                end += 2
        found.append((marker, position, end))
        position = end
    return found


def scan_bomb(width: int, height: int, extra_scans: int) -> bytes:
    """A valid progressive greyscale JPEG whose last (refinement) scan is repeated `extra_scans` times.

    libjpeg only warns about the repetition and runs every scan over the whole image: a few hundred bytes
    of file per minute of CPU on a large frame.
    """
    data = encode(Image.new("L", (width, height), 128), "JPEG", quality=90, progressive=True)
    last = [segment for segment in jpeg_segments(data) if segment[0] == 0xDA][-1]
    return data[: last[2]] + data[last[1] : last[2]] * extra_scans + data[last[2] :]
