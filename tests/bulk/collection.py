"""Camera-trap collections made on disk for the bulk tests: folders of cameras, bursts, broken files.

`make_collection(root)` writes (deterministically, file times included):

- `siteA/cam1`, `siteA/cam2`, `siteB/cam1`: small JPEGs in bursts of 3 one second apart, bursts ten
  minutes apart, with EXIF DateTimeOriginal (+ OffsetTimeOriginal on siteB), camera make and model;
- `siteB/cam1/png/`: PNGs without EXIF (capture time falls back to the file time);
- `siteC/heron`: the real 10-image RECONYX burst from ../shared, when it is there (EXIF DateTime, no
  offset);
- broken files that must be recorded as failures, never stop a run: empty, text, truncated JPEG, a GIF
  named .jpg (format not accepted), a PNG announcing more pixels than the gateway allows;
- files that are not part of the collection: hidden files, a README.
"""

from __future__ import annotations

import io
import os
import shutil
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from PIL import Image

from tests.gateway.images import jpeg, photo, png_bomb

REPO = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("SHARED_DIR", REPO.parent / "shared"))
BURST = SHARED / "data" / "camera-trap-burst"
SCHEMAS = SHARED / "schemas" / "camtrap-dp-1.0.2"
# 2024-03-01T06:00:00Z: every file gets a fixed modification time, so two collections made alike (or
# one collection listed twice) have identical fingerprints and file-time fallbacks.
FILE_TIME = 1709272800
BROKEN = {
    "siteA/cam1/empty.jpg": "invalid_image",
    "siteA/cam1/notes.jpg": "invalid_image",
    "siteA/cam2/truncated.jpg": "invalid_image",
    "siteA/cam2/animated.jpg": "unsupported_media_type",
    "siteB/cam1/bomb.png": "payload_too_large",
}


@dataclass(frozen=True)
class Collection:
    root: Path
    images: list[str]
    broken: dict[str, str]
    burst: list[str]


def exif_jpeg(seed: int, moment: datetime, offset: str | None, camera: tuple[str, str]) -> bytes:
    exif = Image.Exif()
    exif[0x010F], exif[0x0110] = camera
    exif[0x0132] = moment.strftime("%Y:%m:%d %H:%M:%S")
    sub = exif.get_ifd(0x8769)
    sub[0x9003] = moment.strftime("%Y:%m:%d %H:%M:%S")
    if offset:
        sub[0x9011] = offset
    buffer = io.BytesIO()
    Image.fromarray(photo(320, 240, seed)).save(buffer, "JPEG", quality=85, exif=exif.tobytes())
    return buffer.getvalue()


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def make_collection(root: Path, *, per_camera: int = 81, with_burst: bool = True) -> Collection:
    images: list[str] = []
    cameras = {
        "siteA/cam1": (None, ("BUSHNELL", "CORE DS")),
        "siteA/cam2": (None, ("BUSHNELL", "CORE DS")),
        "siteB/cam1": ("+00:00", ("RECONYX", "HYPERFIRE 2")),
    }
    seed = 0
    for number, (folder, (offset, camera)) in enumerate(cameras.items()):
        start = datetime(2024, 3, 1, 6, 0, 0) + timedelta(days=number)
        for index in range(per_camera):
            burst, frame = divmod(index, 3)
            moment = start + timedelta(minutes=10 * burst, seconds=frame)
            seed += 1
            name = f"{folder}/IMG_{index:04d}.JPG"
            _write(root / name, exif_jpeg(seed, moment, offset, camera))
            images.append(name)
    for index in range(4):
        name = f"siteB/cam1/png/frame{index}.png"
        buffer = io.BytesIO()
        Image.fromarray(photo(200, 150, 100 + index)).save(buffer, "PNG")
        _write(root / name, buffer.getvalue())
        images.append(name)
    burst: list[str] = []
    if with_burst and BURST.is_dir():
        for source in sorted(BURST.glob("*.JPG")):
            name = f"siteC/heron/{source.name}"
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, root / name)
            images.append(name)
            burst.append(name)
    gif = io.BytesIO()
    Image.new("P", (40, 30)).save(gif, "GIF")
    broken_data = {
        "siteA/cam1/empty.jpg": b"",
        "siteA/cam1/notes.jpg": b"field notes, not a photo\n",
        "siteA/cam2/truncated.jpg": jpeg(640, 480, 7)[:3000],
        "siteA/cam2/animated.jpg": gif.getvalue(),
        "siteB/cam1/bomb.png": png_bomb(20000, 20000),
    }
    for name, data in broken_data.items():
        _write(root / name, data)
        images.append(name)
    _write(root / "siteA/cam1/.DS_Store", b"\0\0\0\1Bud1")
    _write(root / ".thumbnails/IMG_0001.JPG", jpeg(64, 48, 1))
    _write(root / "README.txt", b"Survey 2024\n")
    for path in root.rglob("*"):
        if path.is_file():
            os.utime(path, (FILE_TIME, FILE_TIME))
    return Collection(root, sorted(images), dict(BROKEN), burst)
