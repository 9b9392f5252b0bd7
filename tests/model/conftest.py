"""Fixtures for the model tests: a small data set in the Conser-vision layout and an untrained model file."""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from model import spec

ConservisionFactory = Callable[..., Path]


def write_conservision(
    root: Path,
    labels_per_site: dict[str, list[str]],
    *,
    features_name: str = "train_features.csv",
    labels_name: str = "train_labels.csv",
) -> Path:
    """Writes the competition's layout: features CSV, one-hot labels CSV, tiny JPEGs in train_features/."""
    image_dir = root / "train_features"
    image_dir.mkdir(parents=True)
    rng = np.random.default_rng(0)
    features = []
    labels = []
    index = 0
    for site, site_labels in labels_per_site.items():
        for label in site_labels:
            image_id = f"ZJ{index:06d}"
            index += 1
            pixels = rng.integers(0, 256, size=(12, 16, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(image_dir / f"{image_id}.jpg")
            features.append([image_id, f"train_features/{image_id}.jpg", site])
            # The competition's labels CSV holds floats ("1.0"), not integers.
            labels.append([image_id, *("1.0" if name == label else "0.0" for name in spec.LABELS)])
    with (root / features_name).open("w", newline="") as handle:
        csv.writer(handle).writerows([["id", "filepath", "site"], *features])
    with (root / labels_name).open("w", newline="") as handle:
        csv.writer(handle).writerows([["id", *spec.LABELS], *labels])
    return root


@pytest.fixture
def conservision(tmp_path: Path) -> ConservisionFactory:
    """Makes a Conser-vision-like data root under tmp_path from {site: [label, ...]}."""

    def make(labels_per_site: dict[str, list[str]], **names: str) -> Path:
        return write_conservision(tmp_path / "conservision", labels_per_site, **names)

    return make


@pytest.fixture
def balanced_root(conservision: ConservisionFactory) -> Path:
    """20 images of every label spread over 10 sites, each site holding two images of each label."""
    return conservision(
        {f"S{site:04d}": [label for label in spec.LABELS for _ in range(2)] for site in range(10)}
    )


@pytest.fixture(scope="session")
def untrained_model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real architecture, untrained, saved as .keras the way training saves best_model.keras."""
    import keras

    from model.train import build_model

    keras.utils.set_random_seed(7)
    path = tmp_path_factory.mktemp("untrained") / "best_model.keras"
    build_model().save(path)
    return path
