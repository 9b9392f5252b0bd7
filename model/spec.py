"""The model contract: the one place that names the model, its labels and its input.

Training, export and the stand-in read these values; the export writes them next to the SavedModel
(`assets.extra/model_spec.json`), and the gateway checks itself against that file and against TF Serving's
GetModelMetadata. This module imports nothing heavy so that any tool may read it.
"""

from typing import Final

MODEL_NAME: Final = "species_model"

# Output order of the softmax layer; never reorder without retraining.
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
CHANNEL_ORDER: Final = "RGB"

# Resize used both in training (tf.image.resize(..., antialias=True)) and in the gateway (Pillow BILINEAR,
# which is also an antialiased triangle filter when downscaling).
RESIZE_METHOD: Final = "bilinear"

# Serving signature. uint8 on the wire is 4x fewer bytes than float32; the cast and the 1/255 rescale live
# inside the graph.
SIGNATURE_NAME: Final = "serving_default"
INPUT_NAME: Final = "image"
INPUT_DTYPE: Final = "uint8"
OUTPUT_NAME: Final = "probabilities"
OUTPUT_DTYPE: Final = "float32"

# Written by the export next to saved_model.pb.
SPEC_FILENAME: Final = "model_spec.json"
WARMUP_FILENAME: Final = "tf_serving_warmup_requests"


def spec_document() -> dict[str, object]:
    """The JSON document the export writes as `assets.extra/model_spec.json`."""
    return {
        "model_name": MODEL_NAME,
        "labels": list(LABELS),
        "signature_name": SIGNATURE_NAME,
        "input": {
            "name": INPUT_NAME,
            "dtype": INPUT_DTYPE,
            "shape": [-1, IMAGE_HEIGHT, IMAGE_WIDTH, CHANNELS],
        },
        "output": {"name": OUTPUT_NAME, "dtype": OUTPUT_DTYPE, "shape": [-1, len(LABELS)]},
        "preprocessing": {
            "height": IMAGE_HEIGHT,
            "width": IMAGE_WIDTH,
            "channel_order": CHANNEL_ORDER,
            "resize_method": RESIZE_METHOD,
            "antialias": True,
            "rescale": "1/255, inside the graph",
        },
    }
