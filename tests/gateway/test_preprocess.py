"""Preprocessing: every image mode and format to the model's uint8 150x150 RGB, hostile input refused."""

from __future__ import annotations

import os
import struct
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from gateway import preprocess
from gateway.errors import InvalidImage, PayloadTooLarge, UnsupportedMediaType
from tests.conftest import REPO
from tests.gateway.images import encode, jpeg, jpeg_with_orientation, photo, png, png_bomb, scan_bomb

pytestmark = pytest.mark.unit

ALLOWED = frozenset({"JPEG", "PNG", "WEBP", "BMP"})
MAX_PIXELS = 40_000_000


def decode(data: bytes, **limits: object) -> np.ndarray:
    options: dict[str, object] = {"allowed_formats": ALLOWED, "max_pixels": MAX_PIXELS, **limits}
    return preprocess.decode(data, preprocess.Limits(**options))  # type: ignore[arg-type]


def test_a_jpeg_becomes_a_150x150_uint8_rgb_array() -> None:
    result = decode(jpeg(1920, 1080))
    assert result.shape == (150, 150, 3)
    assert result.dtype == np.uint8


def test_the_resize_keeps_the_picture_not_just_the_shape() -> None:
    array = photo(600, 600)
    result = decode(encode(Image.fromarray(array), "PNG"))
    reference = np.asarray(Image.fromarray(array).resize((150, 150), Image.Resampling.BILINEAR))
    assert np.array_equal(result, reference)


@pytest.mark.parametrize("fmt", ["PNG", "WEBP", "BMP"])
def test_each_allowed_format_decodes(fmt: str) -> None:
    array = photo(320, 240)
    params = {"lossless": True} if fmt == "WEBP" else {}
    result = decode(encode(Image.fromarray(array), fmt, **params))
    expected = np.asarray(Image.fromarray(array).resize((150, 150), Image.Resampling.BILINEAR))
    assert np.abs(result.astype(int) - expected).max() <= 1


@pytest.mark.parametrize("mode", ["L", "1", "CMYK", "P"])
def test_a_colour_mode_other_than_rgb_is_converted_to_rgb(mode: str) -> None:
    source = Image.fromarray(photo(300, 200)).convert(mode)
    data = encode(source, "JPEG" if mode == "CMYK" else "PNG")
    result = decode(data)
    assert result.shape == (150, 150, 3)
    expected = np.asarray(source.convert("RGB").resize((150, 150), Image.Resampling.BILINEAR))
    # JPEG (CMYK) is lossy; PNG round-trips exactly.
    assert np.abs(result.astype(int) - expected).mean() < (3 if mode == "CMYK" else 0.01)


def test_a_grayscale_image_gives_three_equal_channels() -> None:
    result = decode(encode(Image.fromarray(photo(200, 200)).convert("L"), "PNG"))
    assert np.array_equal(result[..., 0], result[..., 1])
    assert np.array_equal(result[..., 1], result[..., 2])


def test_a_16_bit_grayscale_png_keeps_its_brightness_instead_of_clipping_to_white() -> None:
    grey16 = np.full((200, 200), 128 * 257, dtype=np.uint16)  # mid-grey in 16 bits
    source = Image.fromarray(grey16)
    assert source.mode.startswith("I;16")
    result = decode(encode(source, "PNG"))
    assert np.all(result == 128)


def test_a_16_bit_rgb_png_is_reduced_to_8_bits_per_channel() -> None:
    rgb16 = np.zeros((100, 100, 3), dtype=">u2")
    rgb16[..., 0] = 200 * 257
    rgb16[..., 2] = 50 * 257
    # Pillow writes 16-bit RGB PNGs from raw data; build the file through the raw mode.
    source = Image.frombytes("RGB", (100, 100), rgb16.tobytes(), "raw", "RGB;16B")
    data = encode(source, "PNG")
    result = decode(data)
    assert tuple(result[75, 75]) == (200, 0, 50)


def test_a_png_with_alpha_is_composited_on_black() -> None:
    rgba = np.zeros((200, 200, 4), dtype=np.uint8)
    rgba[..., :3] = 255  # white everywhere, even under transparent pixels
    rgba[:, :100, 3] = 255  # left half opaque, right half fully transparent
    result = decode(encode(Image.fromarray(rgba, "RGBA"), "PNG"))
    assert np.all(result[:, :70] == 255)
    assert np.all(result[:, 80:] == 0)


def test_a_half_transparent_pixel_is_blended_with_the_background() -> None:
    rgba = np.full((160, 160, 4), 200, dtype=np.uint8)
    rgba[..., 3] = 128
    result = decode(encode(Image.fromarray(rgba, "RGBA"), "PNG"))
    assert np.all(np.abs(result.astype(int) - 100) <= 1)


def test_grayscale_with_alpha_is_composited_too() -> None:
    la = Image.fromarray(np.full((160, 160), 180, dtype=np.uint8), "L").convert("LA")
    la.putalpha(0)
    assert np.all(decode(encode(la, "PNG")) == 0)


def test_a_palette_image_with_a_transparent_colour_is_composited() -> None:
    palette = Image.new("P", (160, 160), 1)
    palette.putpalette([255, 255, 255, 0, 255, 0] + [0] * 762)
    palette.paste(0, (0, 0, 80, 160))  # left half uses colour 0 (white), declared transparent
    result = decode(encode(palette, "PNG", transparency=0))
    assert np.all(result[:, :70] == 0)
    assert np.all(result[:, 90:] == (0, 255, 0))


def test_exif_orientation_6_turns_the_image_upright() -> None:
    # A wide frame whose left half is dark; orientation 6 means "rotate 90 degrees clockwise to view".
    array = np.full((300, 600, 3), 230, dtype=np.uint8)
    array[:, :300] = 20
    result = decode(jpeg_with_orientation(array, 6))
    # After a clockwise turn the dark (left) half is on top.
    assert result[:60].mean() < 40
    assert result[-60:].mean() > 200


@pytest.mark.parametrize("orientation", [1, 2, 3, 4, 5, 6, 7, 8])
def test_every_exif_orientation_matches_pillows_exif_transpose(orientation: int) -> None:
    from PIL import ImageOps

    array = photo(400, 300, seed=orientation)
    data = jpeg_with_orientation(array, orientation)
    with Image.open(__import__("io").BytesIO(data)) as image:
        upright = ImageOps.exif_transpose(image).convert("RGB")
        expected = np.asarray(upright.resize((150, 150), Image.Resampling.BILINEAR)).astype(int)
    result = decode(data).astype(int)
    # Same picture; the JPEG draft decode and turning after the resize change rounding only.
    assert np.abs(result - expected).mean() < 3


def test_a_truncated_jpeg_is_invalid() -> None:
    data = jpeg(400, 300)
    with pytest.raises(InvalidImage):
        decode(data[: len(data) // 2])


def test_bytes_that_are_not_an_image_are_invalid() -> None:
    with pytest.raises(InvalidImage):
        decode(b"<html>definitely not a picture</html>")


def test_empty_bytes_are_invalid() -> None:
    with pytest.raises(InvalidImage):
        decode(b"")


@pytest.mark.parametrize("fmt", ["GIF", "TIFF"])
def test_a_valid_image_of_a_format_not_allowed_is_unsupported(fmt: str) -> None:
    data = encode(Image.fromarray(photo(100, 100)), fmt)
    with pytest.raises(UnsupportedMediaType, match=fmt):
        decode(data)


def test_a_format_can_be_allowed_by_setting() -> None:
    data = encode(Image.fromarray(photo(100, 100)), "GIF")
    assert decode(data, allowed_formats=ALLOWED | {"GIF"}).shape == (150, 150, 3)


def test_a_decompression_bomb_is_refused_from_its_header_without_decoding() -> None:
    bomb = png_bomb(50_000, 50_000)  # 2.5 gigapixels announced in a few hundred bytes
    assert len(bomb) < 10_000
    with pytest.raises(PayloadTooLarge, match="pixels"):
        decode(bomb)


def test_a_bomb_beyond_pillows_own_limit_is_refused_as_too_large_too() -> None:
    preprocess.configure_pillow(MAX_PIXELS)
    with pytest.raises(PayloadTooLarge):
        decode(png_bomb(100_000, 100_000))


def test_the_pixel_cap_is_exact() -> None:
    data = jpeg(400, 300)
    assert decode(data, max_pixels=400 * 300).shape == (150, 150, 3)
    with pytest.raises(PayloadTooLarge):
        decode(data, max_pixels=400 * 300 - 1)


def test_a_large_jpeg_is_decoded_at_reduced_scale_but_never_below_twice_the_target() -> None:
    import io

    with Image.open(io.BytesIO(jpeg(2400, 1800))) as image:
        image.draft("RGB", preprocess.DRAFT_SIZE)
        assert image.size == (600, 450)  # 1/4 scale: 1/8 would be 300x225, below 2 x 150 in height


def test_stacking_makes_one_contiguous_batch() -> None:
    arrays = [decode(jpeg(300, 200, seed=seed)) for seed in range(3)]
    batch = preprocess.stack(arrays)
    assert batch.shape == (3, 150, 150, 3)
    assert batch.flags["C_CONTIGUOUS"]
    assert np.array_equal(batch[1], arrays[1])


# --- decode work and memory, bounded from the header ---


def test_scans_are_counted_from_the_structure_not_from_stray_markers() -> None:
    assert preprocess.jpeg_scans(jpeg(320, 240), 32) == 1
    assert preprocess.jpeg_scans(jpeg(320, 240, progressive=True), 32) == 10  # libjpeg's colour script
    grey = encode(Image.fromarray(photo(320, 240)).convert("L"), "JPEG", progressive=True)
    assert preprocess.jpeg_scans(grey, 32) == 6
    # A progressive JPEG inside an APP segment (as EXIF thumbnails are) is metadata, not scans.
    inner = jpeg(64, 48, progressive=True)
    main = jpeg(320, 240)
    app15 = b"\xff\xef" + struct.pack(">H", len(inner) + 2) + inner
    assert preprocess.jpeg_scans(main[:2] + app15 + main[2:], 32) == 1


def test_a_progressive_scan_bomb_is_refused_from_its_markers_in_milliseconds() -> None:
    bomb = scan_bomb(2000, 2000, extra_scans=2000)  # about 30 KB: minutes of CPU if decoded
    assert len(bomb) < 64_000
    started = time.perf_counter()
    with pytest.raises(PayloadTooLarge, match="MAX_JPEG_SCANS"):
        decode(bomb, max_jpeg_scans=32)
    assert time.perf_counter() - started < 0.5
    assert decode(scan_bomb(300, 300, extra_scans=5), max_jpeg_scans=32).shape == (150, 150, 3)


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("40,000,000 x 1 grey PNG", lambda: png(40_000_000, 1, 0)),
        ("1 x 40,000,000 grey PNG", lambda: png(1, 40_000_000, 0)),
        ("6000 x 6000 RGBA PNG", lambda: png(6000, 6000, 6)),
        ("6000 x 6000 palette PNG with transparency", lambda: png(6000, 6000, 3, PLTE=b"\0" * 6, tRNS=b"\0")),
        ("6000 x 6000 16-bit RGBA PNG", lambda: png(6000, 6000, 6, 16)),
        (
            "16383 x 2400 lossless WebP",
            lambda: encode(Image.new("RGBA", (16383, 2400), (9, 9, 9, 9)), "WEBP", lossless=True),
        ),
    ],
)
def test_a_tiny_file_that_decodes_to_hundreds_of_mib_is_refused_before_decoding(name: str, data: Any) -> None:
    bomb = data()
    assert len(bomb) < 400_000, name
    with pytest.raises(PayloadTooLarge, match="MAX_DECODE_BYTES"):
        decode(bomb, max_decode_bytes=100 * 2**20)


def test_the_estimate_grows_with_what_the_pipeline_holds() -> None:
    limits = preprocess.Limits(allowed_formats=ALLOWED, max_pixels=MAX_PIXELS)
    cost = {
        mode: preprocess.probe(encode(Image.new(mode, (1000, 1000)), "PNG"), limits).cost
        for mode in ("L", "RGB", "RGBA")
    }
    assert cost["L"] < cost["RGB"] < cost["RGBA"]
    assert 4_000_000 < cost["RGB"] < 8_000_000
    baseline = preprocess.probe(jpeg(4000, 3000), limits).cost
    progressive = preprocess.probe(jpeg(4000, 3000, progressive=True), limits).cost
    assert progressive > 10 * baseline  # progressive keeps every coefficient until its last scan


def test_a_cancelled_decode_stops_at_its_next_read() -> None:
    cancel = threading.Event()
    limits = preprocess.Limits(allowed_formats=ALLOWED, max_pixels=MAX_PIXELS)
    probed = preprocess.probe(encode(Image.fromarray(photo(1500, 1000)), "PNG"), limits, cancel)
    cancel.set()
    with pytest.raises(preprocess.DecodeAbandoned):
        preprocess.finish(probed)


PEAK_PROBE = """
import sys
from pathlib import Path
from gateway import preprocess
def status(key):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
limits = preprocess.Limits(allowed_formats={"JPEG", "PNG", "WEBP", "BMP"}, max_pixels=10**9)
probed = preprocess.probe(Path(sys.argv[1]).read_bytes(), limits)
before = status("VmRSS")
Path("/proc/self/clear_refs").write_text("5")
preprocess.finish(probed)
print(probed.cost, status("VmHWM") - before)
"""


def measured_peak(gateway_python: Path, data: bytes, tmp_path: Path) -> tuple[int, int]:
    """(estimate, measured peak RSS growth) of decoding `data` in a fresh gateway interpreter."""
    path = tmp_path / "image"
    path.write_bytes(data)
    done = subprocess.run(
        [str(gateway_python), "-c", PEAK_PROBE, str(path)],
        capture_output=True, text=True, timeout=120, check=False, cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    if done.returncode != 0 and "clear_refs" in done.stderr:
        pytest.skip("this kernel does not let a process reset its peak RSS (/proc/self/clear_refs)")
    assert done.returncode == 0, done.stderr
    estimate, peak = map(int, done.stdout.split())
    return estimate, peak


@pytest.mark.process
@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("RGB PNG", lambda: png(3000, 3000, 2)),
        ("RGBA PNG", lambda: png(3000, 3000, 6)),
        ("grey+alpha PNG", lambda: png(3000, 3000, 4)),
        ("palette PNG", lambda: png(3000, 3000, 3, PLTE=b"\0" * 6)),
        ("palette PNG with transparency", lambda: png(3000, 3000, 3, PLTE=b"\0" * 6, tRNS=b"\0")),
        ("16-bit grey PNG", lambda: png(3000, 3000, 0, 16)),
        ("1-bit PNG", lambda: png(3000, 3000, 0, 1)),
        ("wide grey PNG", lambda: png(3_000_000, 1, 0)),
        ("tall grey PNG", lambda: png(1, 3_000_000, 0)),
        (
            "lossless WebP",
            lambda: encode(Image.new("RGBA", (2000, 2000), (9, 9, 9, 9)), "WEBP", lossless=True),
        ),
        ("progressive JPEG", lambda: jpeg(3000, 2000, progressive=True, subsampling=0)),
        ("baseline JPEG", lambda: jpeg(4000, 3000)),
    ],
)
def test_the_decode_estimate_bounds_the_measured_peak(
    gateway_python: Path, tmp_path: Path, name: str, data: Any
) -> None:
    estimate, peak = measured_peak(gateway_python, data(), tmp_path)
    mib = 2**20
    assert peak <= estimate, f"{name}: decoding took {peak / mib:.1f} MiB, estimated {estimate / mib:.1f} MiB"
    # Close, not wildly cautious: refusing what would fit is a cost too.
    assert estimate <= 1.3 * peak + 4 * mib, (
        f"{name}: estimated {estimate / mib:.1f} MiB for {peak / mib:.1f} MiB"
    )
