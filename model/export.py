"""Export of a trained Keras model as a TF Serving model version.

Writes `<out>/species_model/<version>/`, the layout TF Serving loads from a model base path:

    saved_model.pb, variables/       the SavedModel, signature `serving_default`: input `image`
                                     uint8 [-1, 150, 150, 3] -> output `probabilities` float32 [-1, 8]
    assets.extra/tf_serving_warmup_requests
                                     PredictionLog records TF Serving replays before it reports the version
                                     AVAILABLE, so the first real request does not pay for graph warm-up
    assets.extra/model_spec.json     spec.spec_document() plus the version, which the gateway checks

The version is written to a hidden temporary folder next to its final place and renamed into place, so TF
Serving, which polls the base path for numeric folders, never sees a half-written version.

    python -m model.export --model best_model.keras --out build/models [--version N] [--force]
"""

import argparse
import json
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

from model import preprocess, spec

logger = logging.getLogger(__name__)

# Batch sizes of the warm-up requests: a single image (the /predict path) and a small batch (/predict/batch).
WARMUP_BATCH_SIZES = (1, 8)


class ExportError(RuntimeError):
    """The export cannot proceed (for example the version exists and --force was not given)."""


def _load(model_or_path: keras.Model | str | os.PathLike[str]) -> keras.Model:
    if isinstance(model_or_path, keras.Model):
        return model_or_path
    return keras.models.load_model(model_or_path)


def _check_model(model: keras.Model) -> None:
    input_shape = tuple(model.input_shape[1:])
    output_shape = tuple(model.output_shape[1:])
    if input_shape != preprocess.IMAGE_SHAPE or output_shape != (len(spec.LABELS),):
        raise ExportError(
            f"model maps {input_shape} to {output_shape}; the contract is {preprocess.IMAGE_SHAPE} "
            f"to ({len(spec.LABELS)},)"
        )


def _write_saved_model(model: keras.Model, path: Path) -> None:
    archive = keras.export.ExportArchive()
    archive.track(model)

    def serve(image: tf.Tensor) -> dict[str, tf.Tensor]:
        # uint8 on the wire; the cast happens here and the model's own Rescaling layer does the 1/255.
        probabilities = model(tf.cast(image, tf.float32), training=False)
        return {spec.OUTPUT_NAME: tf.cast(probabilities, tf.float32)}

    archive.add_endpoint(
        name=spec.SIGNATURE_NAME,
        fn=serve,
        input_signature=[tf.TensorSpec([None, *preprocess.IMAGE_SHAPE], tf.uint8, name=spec.INPUT_NAME)],
    )
    archive.write_out(str(path), verbose=False)


def _warmup_records(batch_sizes: Sequence[int]) -> list[bytes]:
    """Serialized PredictionLog records: one Predict request per batch size, of deterministic noise images."""
    rng = np.random.default_rng(0)
    records = []
    for batch_size in batch_sizes:
        images = rng.integers(0, 256, size=(batch_size, *preprocess.IMAGE_SHAPE), dtype=np.uint8)
        request = predict_pb2.PredictRequest(
            model_spec=model_pb2.ModelSpec(name=spec.MODEL_NAME, signature_name=spec.SIGNATURE_NAME)
        )
        request.inputs[spec.INPUT_NAME].CopyFrom(tf.make_tensor_proto(images, dtype=tf.uint8))
        log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
        records.append(log.SerializeToString())
    return records


def _write_assets_extra(path: Path, version: int) -> None:
    extra = path / "assets.extra"
    extra.mkdir()
    # TF Serving reads warm-up data from exactly this file name, a TFRecord of PredictionLog
    # (https://www.tensorflow.org/tfx/serving/saved_model_warmup).
    with tf.io.TFRecordWriter(str(extra / spec.WARMUP_FILENAME)) as writer:
        for record in _warmup_records(WARMUP_BATCH_SIZES):
            writer.write(record)
    document = {**spec.spec_document(), "version": version}
    (extra / spec.SPEC_FILENAME).write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")


def verify_signature(version_dir: Path) -> None:
    """Loads the SavedModel and checks its serving signature against the contract (ExportError if not)."""
    loaded = tf.saved_model.load(str(version_dir))
    if spec.SIGNATURE_NAME not in loaded.signatures:
        raise ExportError(f"{version_dir}: no signature {spec.SIGNATURE_NAME!r} in {list(loaded.signatures)}")
    signature = loaded.signatures[spec.SIGNATURE_NAME]
    _, inputs = signature.structured_input_signature
    outputs = signature.structured_outputs
    expected_input = tf.TensorSpec([None, *preprocess.IMAGE_SHAPE], tf.as_dtype(spec.INPUT_DTYPE))
    expected_output = tf.TensorSpec([None, len(spec.LABELS)], tf.as_dtype(spec.OUTPUT_DTYPE))
    problems = []
    if set(inputs) != {spec.INPUT_NAME} or not expected_input.is_compatible_with(inputs[spec.INPUT_NAME]):
        problems.append(f"inputs {inputs}, expected {spec.INPUT_NAME}: {expected_input}")
    if set(outputs) != {spec.OUTPUT_NAME} or not expected_output.is_compatible_with(
        outputs[spec.OUTPUT_NAME]
    ):
        problems.append(f"outputs {outputs}, expected {spec.OUTPUT_NAME}: {expected_output}")
    if problems:
        raise ExportError(
            f"{version_dir}: signature {spec.SIGNATURE_NAME} does not match: " + "; ".join(problems)
        )


def export_model(
    model_or_path: keras.Model | str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    version: int = 1,
    *,
    force: bool = False,
) -> Path:
    """Exports the model as `<out_dir>/species_model/<version>/` and returns that path.

    Raises ExportError when the version folder exists and `force` is false, or when the model or the written
    signature does not match the contract in model.spec.
    """
    if version < 1:
        raise ExportError(f"version must be a positive integer, got {version}")
    model = _load(model_or_path)
    _check_model(model)
    base = Path(out_dir) / spec.MODEL_NAME
    final = base / str(version)
    if final.exists() and not force:
        raise ExportError(f"{final} exists; pass --force to replace it")
    base.mkdir(parents=True, exist_ok=True)

    # A dot-prefixed, non-numeric name: TF Serving ignores it while the version is being written.
    staging = Path(tempfile.mkdtemp(prefix=f".export-{version}-", dir=base))
    try:
        version_dir = staging / "version"
        _write_saved_model(model, version_dir)
        _write_assets_extra(version_dir, version)
        verify_signature(version_dir)
        if final.exists():
            # Two renames keep the window without a version as short as possible; the old one goes last.
            retired = staging / "retired"
            final.rename(retired)
        version_dir.rename(final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    logger.info("exported %s version %d to %s", spec.MODEL_NAME, version, final)
    return final


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m model.export",
        description="Export a trained Keras model as a TF Serving model version.",
    )
    parser.add_argument("--model", type=Path, required=True, help="the .keras file, e.g. best_model.keras")
    parser.add_argument("--out", type=Path, required=True, help="folder that gets species_model/<version>/")
    parser.add_argument("--version", type=int, default=1, help="model version number (default 1)")
    parser.add_argument("--force", action="store_true", help="replace the version if it exists")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if not args.model.is_file():
        print(f"error: {args.model} does not exist", file=sys.stderr)
        return 2
    try:
        path = export_model(args.model, args.out, args.version, force=args.force)
    except ExportError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"exported {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
