"""A tiny, untrained model with the real serving contract, exported in seconds for process tests.

`export_tiny_model(out_dir, versions=(1, 2))` writes `<out_dir>/species_model/<version>/` through the
project's own exporter (`model.export.export_model`), so the SavedModel, its `serving_default` signature
(uint8 `image` [-1, 150, 150, 3] -> float32 `probabilities` [-1, 8]) and its warmup records are exactly
what the demo model gets, only the network is a one-layer stand-in: mean colour -> softmax. Each version
has different weights, so a test can tell versions apart by their outputs.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path


def export_tiny_model(out_dir: Path, versions: Iterable[int] = (1,)) -> Path:
    """Exports one tiny model per version and returns the TF Serving base path `<out_dir>/species_model`."""
    import keras

    from model import preprocess, spec
    from model.export import export_model

    base = Path(out_dir) / spec.MODEL_NAME
    for version in versions:
        keras.utils.set_random_seed(version)
        network = keras.Sequential(
            [
                keras.Input(preprocess.IMAGE_SHAPE),
                keras.layers.Rescaling(1 / 255),
                keras.layers.GlobalAveragePooling2D(),
                keras.layers.Dense(len(spec.LABELS), activation="softmax"),
            ]
        )
        export_model(network, out_dir, version)
    return base
