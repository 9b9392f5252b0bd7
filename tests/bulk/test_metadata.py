"""Capture times from EXIF with the documented fallbacks; camera and size from the header (unit)."""

from __future__ import annotations

import io
from datetime import datetime

import pytest
from PIL import Image

from gateway.bulk.metadata import ImageFacts, exif_time, read_facts, with_file_time
from tests.bulk.collection import BURST, exif_jpeg

pytestmark = pytest.mark.unit


def jpeg_with(tags: dict[int, str], sub: dict[int, str] | None = None) -> bytes:
    exif = Image.Exif()
    for tag, value in tags.items():
        exif[tag] = value
    for tag, value in (sub or {}).items():
        exif.get_ifd(0x8769)[tag] = value
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48)).save(buffer, "JPEG", exif=exif.tobytes())
    return buffer.getvalue()


def test_date_time_original_wins_and_its_offset_is_kept() -> None:
    data = exif_jpeg(1, datetime(2024, 3, 1, 6, 0, 1), "+02:00", ("RECONYX", "HYPERFIRE 2"))
    facts = read_facts(data)
    assert (facts.captured, facts.captured_offset, facts.time_source) == (
        "2024-03-01T06:00:01",
        "+02:00",
        "DateTimeOriginal",
    )
    assert facts.camera == "RECONYX HYPERFIRE 2"
    assert (facts.width, facts.height, facts.media_type) == (320, 240, "image/jpeg")


def test_date_time_is_the_fallback_when_the_original_time_is_missing_or_blank() -> None:
    only_written = read_facts(jpeg_with({0x0132: "2023:12:24 23:59:58"}))
    assert (only_written.captured, only_written.time_source) == ("2023-12-24T23:59:58", "DateTime")
    blank_original = read_facts(jpeg_with({0x0132: "2023:12:24 23:59:58"}, {0x9003: "0000:00:00 00:00:00"}))
    assert blank_original.time_source == "DateTime"


def test_the_file_time_is_the_last_fallback_and_is_utc() -> None:
    facts = with_file_time(read_facts(jpeg_with({})), 1709272800.0)
    assert (facts.captured, facts.captured_offset, facts.time_source) == (
        "2024-03-01T06:00:00",
        "+00:00",
        "file",
    )
    assert with_file_time(ImageFacts(), None).time_source == "none"


def test_bytes_that_are_not_an_image_give_no_facts_and_no_error() -> None:
    assert read_facts(b"") == ImageFacts()
    assert read_facts(b"GIF89a garbage") == ImageFacts()


@pytest.mark.parametrize("text", ["2024:02:30 10:00:00", "", "    :  :     :  :  ", "yesterday"])
def test_impossible_exif_dates_are_ignored(text: str) -> None:
    assert exif_time(text) is None


def test_the_real_burst_has_its_capture_times_from_exif_not_from_the_file_name() -> None:
    if not BURST.is_dir():
        pytest.skip(f"{BURST} missing (../shared is absent in a user's clone)")
    times = [read_facts(path.read_bytes()) for path in sorted(BURST.glob("*.JPG"))]
    assert len(times) == 10
    assert {facts.time_source for facts in times} == {"DateTimeOriginal"}
    assert times[0].captured == "2021-04-11T20:43:09"
    assert times[-1].captured == "2021-04-11T20:43:15"
    assert {facts.camera for facts in times} == {"RECONYX HYPERFIRE 2 COVERT"}
