"""What the outputs need from an image file besides its label: capture time, camera, size, media type.

Read from the header only (Pillow opens the file lazily; no pixel is decoded). Capture time, in order of
preference (the first valid one wins, and `time_source` says which):

1. EXIF `DateTimeOriginal` (tag 36867, when the shutter fired), with `OffsetTimeOriginal` if the camera
   wrote one;
2. EXIF `DateTime` (tag 306, when the file was written; many camera traps set only this), with `OffsetTime`;
3. the file's modification time (or S3 LastModified, or HTTP Last-Modified), an instant in UTC: often the
   copy time, not the capture time, which is why it comes last.

EXIF times are the camera's local clock; without an offset in the file the run's `--timezone` applies.
"""

from __future__ import annotations

import io
import re
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime

from PIL import ExifTags, Image

_MEDIA_TYPES = {
    "JPEG": "image/jpeg",
    "MPO": "image/jpeg",
    "PNG": "image/png",
    "WEBP": "image/webp",
    "BMP": "image/bmp",
    "GIF": "image/gif",
    "TIFF": "image/tiff",
}
_OFFSET = re.compile(r"^[+-]\d{2}:\d{2}$")
_TAG_OFFSET_TIME = 0x9010
_TAG_OFFSET_TIME_ORIGINAL = 0x9011


@dataclass(frozen=True)
class ImageFacts:
    captured: str | None = None
    captured_offset: str | None = None
    time_source: str = "none"
    media_type: str | None = None
    camera: str | None = None
    width: int | None = None
    height: int | None = None


def exif_time(value: object) -> str | None:
    """EXIF "YYYY:MM:DD HH:MM:SS" -> "YYYY-MM-DDTHH:MM:SS"; None for blanks and impossible dates."""
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    if not isinstance(value, str):
        return None
    text = value.strip().strip("\x00")
    try:
        parsed = datetime.strptime(text[:19], "%Y:%m:%d %H:%M:%S")
    except ValueError:
        return None
    return parsed.strftime("%Y-%m-%dT%H:%M:%S")


def _offset(value: object) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    if isinstance(value, str) and _OFFSET.match(value.strip().strip("\x00")):
        return value.strip().strip("\x00")
    return None


def _text(value: object) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if not isinstance(value, str):
        return None
    text = " ".join(value.replace("\x00", " ").split())
    return text or None


def read_facts(data: bytes) -> ImageFacts:
    """The header facts of an encoded image; an unreadable header gives empty facts (never an error: the
    gateway, not this, decides whether an image is valid)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data)) as image:
                exif = image.getexif()
                sub = exif.get_ifd(ExifTags.IFD.Exif)
                width, height = image.size
                media_type = _MEDIA_TYPES.get(image.format or "")
    except Exception:  # any parser failure on arbitrary bytes: no facts
        return ImageFacts()
    camera = " ".join(
        part for part in (_text(exif.get(ExifTags.Base.Make)), _text(exif.get(ExifTags.Base.Model))) if part
    )
    captured, offset, source = None, None, "none"
    original = exif_time(sub.get(ExifTags.Base.DateTimeOriginal))
    written = exif_time(exif.get(ExifTags.Base.DateTime))
    if original:
        captured, offset, source = original, _offset(sub.get(_TAG_OFFSET_TIME_ORIGINAL)), "DateTimeOriginal"
    elif written:
        captured, offset, source = written, _offset(sub.get(_TAG_OFFSET_TIME)), "DateTime"
    return ImageFacts(captured, offset, source, media_type, camera or None, width, height)


def with_file_time(facts: ImageFacts, file_time: float | None) -> ImageFacts:
    """Falls back to the file time (UTC) when the image carries no capture time."""
    if facts.captured is not None or file_time is None:
        return facts
    moment = datetime.fromtimestamp(file_time, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return ImageFacts(moment, "+00:00", "file", facts.media_type, facts.camera, facts.width, facts.height)
