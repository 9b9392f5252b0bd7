"""A deterministic synthetic camera-trap data set for the demo model and the tests.

The real Conser-vision images cannot ship with the project, so `make model` trains on pictures drawn here.
Every frame is a noisy, blotchy, low-saturation "ground" scene, like a camera-trap background. Each animal
class adds one object with its own signature: a saturated hue, a shape and a texture (solid, spots, stripes
or rings). Position, size, rotation, colour and noise vary from image to image, so the model has to learn
the signature rather than memorise pixels. `blank` is the background alone, as in the real data set.

Images are written as JPEG at a camera-trap-like size (320 x 240 for training, 640 x 480 for the golden
images), so every consumer has to resize them exactly as a real photo would be resized. One seed gives the
same files, byte for byte, on every run; each image has its own random stream keyed by (seed, purpose,
label, index), so changing the number of images does not change the ones already drawn.
"""

import colorsys
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from model import spec

logger = logging.getLogger(__name__)

TRAIN_SIZE = (320, 240)  # width, height
GOLDEN_SIZE = (640, 480)
JPEG_QUALITY = 90

# Keys that separate the random streams of the training images and of the golden images: the golden images
# are never drawn from the streams the model is trained on, whatever the seed.
_PURPOSE_SPLIT = 1
_PURPOSE_GOLDEN = 2


@dataclass(frozen=True)
class Signature:
    hue: float  # degrees
    shape: str  # ellipse, triangle, box, disc, cross, diamond
    texture: str  # solid, spots, stripes, rings
    aspect: float  # width / height of the object's bounding box


# One visual signature per animal label; `blank` has none. Hues are at least ~25 degrees apart and each
# class also differs in shape, so the classes stay separable after a 150 x 150 resize and JPEG artefacts.
SIGNATURES: Mapping[str, Signature] = {
    "antelope_duiker": Signature(hue=0, shape="ellipse", texture="solid", aspect=1.8),
    "bird": Signature(hue=220, shape="triangle", texture="solid", aspect=1.0),
    "civet_genet": Signature(hue=55, shape="ellipse", texture="spots", aspect=2.2),
    "hog": Signature(hue=315, shape="box", texture="stripes", aspect=1.5),
    "leopard": Signature(hue=28, shape="disc", texture="rings", aspect=1.0),
    "monkey_prosimian": Signature(hue=150, shape="cross", texture="solid", aspect=1.0),
    "rodent": Signature(hue=270, shape="diamond", texture="spots", aspect=1.3),
}
assert set(SIGNATURES) | {"blank"} == set(spec.LABELS)


def _rgb(hue: float, saturation: float, value: float) -> tuple[int, int, int]:
    r, g, b = colorsys.hsv_to_rgb((hue % 360) / 360, saturation, value)
    return round(r * 255), round(g * 255), round(b * 255)


def _background(rng: np.random.Generator, width: int, height: int) -> Image.Image:
    """Earth and foliage tones, a light gradient, soft blotches and a few twigs."""
    base_hue = rng.uniform(25, 110)  # brown to olive green
    top = np.array(_rgb(base_hue, rng.uniform(0.1, 0.3), rng.uniform(0.35, 0.6)), dtype=np.float32)
    bottom = np.array(_rgb(base_hue + rng.uniform(-15, 15), rng.uniform(0.1, 0.3), rng.uniform(0.25, 0.5)))
    ramp = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
    pixels = top * (1 - ramp) + bottom.astype(np.float32) * ramp
    image = Image.fromarray(np.broadcast_to(pixels, (height, width, 3)).astype(np.uint8))

    blotches = Image.new("RGB", (width, height))
    mask = Image.new("L", (width, height), 0)
    draw_colour = ImageDraw.Draw(blotches)
    draw_mask = ImageDraw.Draw(mask)
    for _ in range(int(rng.integers(6, 14))):
        cx, cy = rng.uniform(0, width), rng.uniform(0, height)
        rx, ry = rng.uniform(0.05, 0.25) * width, rng.uniform(0.05, 0.2) * height
        box = (cx - rx, cy - ry, cx + rx, cy + ry)
        colour = _rgb(base_hue + rng.uniform(-25, 25), rng.uniform(0.05, 0.35), rng.uniform(0.2, 0.65))
        draw_colour.ellipse(box, fill=colour)
        draw_mask.ellipse(box, fill=int(rng.integers(60, 160)))
    blur = max(width, height) / 40
    image = Image.composite(
        blotches.filter(ImageFilter.GaussianBlur(blur)), image, mask.filter(ImageFilter.GaussianBlur(blur))
    )

    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(0, 5))):
        x0, y0 = rng.uniform(0, width), rng.uniform(0, height)
        angle, length = rng.uniform(0, math.pi), rng.uniform(0.1, 0.4) * width
        colour = _rgb(base_hue + rng.uniform(-10, 10), rng.uniform(0.1, 0.4), rng.uniform(0.15, 0.45))
        end = (x0 + length * math.cos(angle), y0 + length * math.sin(angle))
        draw.line([(x0, y0), end], fill=colour, width=max(1, round(width / 160 * rng.uniform(0.5, 2))))
    return image


def _outline(shape: str, cx: float, cy: float, w: float, h: float, angle: float) -> list[tuple[float, float]]:
    """Polygon points of a shape centred at (cx, cy) in a w x h box, rotated by `angle` radians."""
    if shape == "triangle":
        points = [(0.0, -0.5), (0.5, 0.5), (-0.5, 0.5)]
    elif shape == "box":
        points = [(-0.5, -0.5), (0.5, -0.5), (0.5, 0.5), (-0.5, 0.5)]
    elif shape == "diamond":
        points = [(0.0, -0.5), (0.5, 0.0), (0.0, 0.5), (-0.5, 0.0)]
    elif shape == "cross":
        a, b = 0.5, 0.17
        points = [
            (-b, -a),
            (b, -a),
            (b, -b),
            (a, -b),
            (a, b),
            (b, b),
            (b, a),
            (-b, a),
            (-b, b),
            (-a, b),
            (-a, -b),
            (-b, -b),
        ]
    else:  # ellipse and disc: a 48-gon, so they rotate like every other shape
        points = [
            (0.5 * math.cos(t), 0.5 * math.sin(t)) for t in np.linspace(0, 2 * math.pi, 48, endpoint=False)
        ]
    cos, sin = math.cos(angle), math.sin(angle)
    return [(cx + x * w * cos - y * h * sin, cy + x * w * sin + y * h * cos) for x, y in points]


def _texture(
    rng: np.random.Generator,
    signature: Signature,
    size: tuple[int, int],
    box: tuple[float, float, float, float],
) -> Image.Image:
    """The object's fill: its hue with a dark pattern, covering the object's bounding box."""
    hue = signature.hue + rng.uniform(-6, 6)
    fill = Image.new("RGB", size, _rgb(hue, rng.uniform(0.7, 1.0), rng.uniform(0.65, 1.0)))
    draw = ImageDraw.Draw(fill)
    dark = _rgb(hue, rng.uniform(0.6, 1.0), rng.uniform(0.1, 0.3))
    x0, y0, x1, y1 = box
    span = max(x1 - x0, y1 - y0)
    if signature.texture == "spots":
        for _ in range(int(rng.integers(10, 20))):
            r = span * rng.uniform(0.04, 0.08)
            cx, cy = rng.uniform(x0, x1), rng.uniform(y0, y1)
            draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=dark)
    elif signature.texture == "stripes":
        step = span * rng.uniform(0.12, 0.18)
        stripe = max(1.0, step * 0.45)
        x = x0 - span
        while x < x1 + span:
            draw.polygon(
                [(x, y0), (x + stripe, y0), (x + stripe + span * 0.3, y1), (x + span * 0.3, y1)], fill=dark
            )
            x += step
    elif signature.texture == "rings":
        for _ in range(int(rng.integers(6, 12))):
            r = span * rng.uniform(0.05, 0.09)
            cx, cy = rng.uniform(x0, x1), rng.uniform(y0, y1)
            draw.ellipse((cx - r, cy - r, cx + r, cy + r), outline=dark, width=max(1, round(r * 0.4)))
    return fill


def render(
    label: str, rng: np.random.Generator, size: tuple[int, int] = TRAIN_SIZE, *, clear: bool = False
) -> Image.Image:
    """Draws one RGB image of `label`.

    `clear` draws the object large and fully in frame (the golden images are meant as unambiguous examples);
    the training images also have small objects and objects partly out of frame.
    """
    if label not in spec.LABELS:
        raise ValueError(f"unknown label {label!r}; expected one of {', '.join(spec.LABELS)}")
    width, height = size
    image = _background(rng, width, height)
    signature = SIGNATURES.get(label)
    if signature is not None:
        scale = rng.uniform(0.35, 0.5) if clear else rng.uniform(0.2, 0.5)
        h = scale * height
        w = min(h * signature.aspect * rng.uniform(0.85, 1.15), 0.8 * width)
        margin = 0.5 * max(w, h) if clear else 0.3 * max(w, h)
        cx, cy = rng.uniform(margin, width - margin), rng.uniform(margin, height - margin)
        angle = (
            rng.uniform(-0.35, 0.35)
            if signature.shape in {"triangle", "cross"}
            else rng.uniform(-math.pi, math.pi)
        )
        points = _outline(signature.shape, cx, cy, w, h, angle)
        xs, ys = [p[0] for p in points], [p[1] for p in points]
        mask = Image.new("L", size, 0)
        ImageDraw.Draw(mask).polygon(points, fill=255)
        fill = _texture(rng, signature, size, (min(xs), min(ys), max(xs), max(ys)))
        image = Image.composite(fill, image, mask.filter(ImageFilter.GaussianBlur(0.6)))

    # Sensor noise and an overall exposure change, as in night and day camera-trap frames.
    pixels = np.asarray(image, dtype=np.float32) * rng.uniform(0.8, 1.15)
    pixels += rng.normal(0.0, rng.uniform(4.0, 14.0), size=pixels.shape)
    return Image.fromarray(np.clip(np.rint(pixels), 0, 255).astype(np.uint8))


def _rng(seed: int, purpose: int, label: str, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, purpose, spec.LABELS.index(label), index])


def write_split_dataset(
    out_dir: Path, per_class: Mapping[str, int], *, seed: int = 0, size: tuple[int, int] = TRAIN_SIZE
) -> dict[str, int]:
    """Writes `<out>/<split>/<label>/<label>_<n>.jpg`; `per_class` maps a split name to images per label.

    Returns the number of images written per split.
    """
    written: dict[str, int] = {}
    offset = 0
    for split, count in per_class.items():
        for label in spec.LABELS:
            folder = out_dir / split / label
            folder.mkdir(parents=True, exist_ok=True)
            for index in range(offset, offset + count):
                image = render(label, _rng(seed, _PURPOSE_SPLIT, label, index), size)
                image.save(folder / f"{label}_{index:05d}.jpg", quality=JPEG_QUALITY)
        written[split] = count * len(spec.LABELS)
        offset += count  # every split draws from its own indices, so no image is in two splits
    logger.info("wrote synthetic images %s into %s", written, out_dir)
    return written


def golden_image(label: str, *, seed: int = 0, size: tuple[int, int] = GOLDEN_SIZE) -> Image.Image:
    """The golden image of `label`: a clear example, from a random stream no training image uses."""
    return render(label, _rng(seed, _PURPOSE_GOLDEN, label, 0), size, clear=True)


def write_golden(out_dir: Path, *, seed: int = 0, size: tuple[int, int] = GOLDEN_SIZE) -> dict[str, Path]:
    """Writes `<out>/<label>.jpg` for every label and returns the paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for label in spec.LABELS:
        path = out_dir / f"{label}.jpg"
        golden_image(label, seed=seed, size=size).save(path, quality=JPEG_QUALITY)
        paths[label] = path
    return paths
