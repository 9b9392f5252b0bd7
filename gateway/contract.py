"""What the gateway expects of the model it serves: labels, signature, input and output tensors.

The gateway image ships without `model/` (and without TensorFlow), so these values are written out here.
`tests/gateway/test_contract.py` keeps them honest: it fails when they differ from `model.spec` or from the
exported `assets.extra/model_spec.json`, and at runtime `/readyz` compares them with TF Serving's
GetModelMetadata.
"""

from __future__ import annotations

from typing import Final

MODEL_NAME: Final = "species_model"

# Output order of the model's softmax.
LABELS: Final = (
    "antelope_duiker",
    "bird",
    "blank",
    "civet_genet",
    "hog",
    "leopard",
    "monkey_prosimian",
    "rodent",
)

IMAGE_HEIGHT: Final = 150
IMAGE_WIDTH: Final = 150
CHANNELS: Final = 3

SIGNATURE_NAME: Final = "serving_default"
INPUT_NAME: Final = "image"
INPUT_DTYPE: Final = "uint8"
# -1: any batch size.
INPUT_SHAPE: Final = (-1, IMAGE_HEIGHT, IMAGE_WIDTH, CHANNELS)
OUTPUT_NAME: Final = "probabilities"
OUTPUT_DTYPE: Final = "float32"
OUTPUT_SHAPE: Final = (-1, len(LABELS))

# Bytes of one preprocessed image on the wire (uint8 tensor_content).
IMAGE_BYTES: Final = IMAGE_HEIGHT * IMAGE_WIDTH * CHANNELS


def input_spec() -> dict[str, object]:
    """The input description `GET /model` answers with."""
    return {
        "name": INPUT_NAME,
        "dtype": INPUT_DTYPE,
        "shape": list(INPUT_SHAPE),
        "color": "RGB",
        "resize": "bilinear, antialiased",
    }
