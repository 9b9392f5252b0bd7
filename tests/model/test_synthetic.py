"""The synthetic demo data set: deterministic, and every class has its own look."""

from __future__ import annotations

import colorsys
from pathlib import Path

import numpy as np
import pytest

from model import spec, synthetic

pytestmark = pytest.mark.unit


def test_the_same_seed_writes_the_same_golden_files_byte_for_byte(tmp_path: Path) -> None:
    first = synthetic.write_golden(tmp_path / "a", seed=5)
    second = synthetic.write_golden(tmp_path / "b", seed=5)
    other = synthetic.write_golden(tmp_path / "c", seed=6)

    for label in spec.LABELS:
        assert first[label].read_bytes() == second[label].read_bytes(), label
        assert first[label].read_bytes() != other[label].read_bytes(), label


def test_golden_images_are_camera_sized_jpegs_named_after_their_label(tmp_path: Path) -> None:
    from PIL import Image

    paths = synthetic.write_golden(tmp_path)

    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"{label}.jpg" for label in spec.LABELS)
    for path in paths.values():
        with Image.open(path) as image:
            assert image.format == "JPEG"
            assert image.size == synthetic.GOLDEN_SIZE


def dominant_saturated_hue(image: np.ndarray) -> float | None:
    """Median hue (degrees) of strongly saturated, bright pixels; None when there are hardly any."""
    flat = image.reshape(-1, 3) / 255.0
    hsv = np.array([colorsys.rgb_to_hsv(*pixel) for pixel in flat[::7]])
    vivid = hsv[(hsv[:, 1] > 0.6) & (hsv[:, 2] > 0.45)]
    if len(vivid) < 0.01 * len(hsv):
        return None
    # Circular median is not needed: no signature hue sits next to 0/360 except red, handled by the shift.
    hues = (vivid[:, 0] * 360 + 20) % 360 - 20
    return float(np.median(hues))


@pytest.mark.parametrize("label", spec.LABELS)
def test_every_animal_shows_its_own_hue_and_blank_shows_none(label: str) -> None:
    rng = np.random.default_rng([99, spec.LABELS.index(label)])
    image = np.asarray(synthetic.render(label, rng, clear=True))

    hue = dominant_saturated_hue(image)

    if label == "blank":
        assert hue is None
    else:
        assert hue is not None
        assert abs(hue - synthetic.SIGNATURES[label].hue) < 12


def test_split_folders_get_the_asked_counts_and_no_image_twice(tmp_path: Path) -> None:
    written = synthetic.write_split_dataset(tmp_path, {"train": 3, "valid": 1, "test": 1}, seed=2)

    assert written == {"train": 24, "valid": 8, "test": 8}
    contents: dict[bytes, list[Path]] = {}
    for path in tmp_path.glob("*/*/*.jpg"):
        contents.setdefault(path.read_bytes(), []).append(path)
    assert len(contents) == 40
    assert all(len(list((tmp_path / "train" / label).iterdir())) == 3 for label in spec.LABELS)


def test_an_unknown_label_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown label 'zebra'"):
        synthetic.render("zebra", np.random.default_rng(0))
