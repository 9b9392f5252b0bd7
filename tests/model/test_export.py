"""Export: a .keras file becomes a TF Serving model version with the documented signature and warm-up data."""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import prediction_log_pb2

from model import export, spec

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def exported(untrained_model_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export.export_model(untrained_model_file, tmp_path_factory.mktemp("models"), 3)


def test_the_version_lands_in_the_tf_serving_base_path_layout(exported: Path) -> None:
    assert exported.parts[-2:] == (spec.MODEL_NAME, "3")
    assert (exported / "saved_model.pb").is_file()
    assert (exported / "variables").is_dir()
    assert (exported / "assets.extra" / spec.WARMUP_FILENAME).is_file()
    # Nothing else next to the version: TF Serving would try to load any numeric folder.
    assert [p.name for p in exported.parent.iterdir()] == ["3"]


def test_the_serving_signature_takes_uint8_images_and_returns_8_probabilities(exported: Path) -> None:
    signatures = tf.saved_model.load(str(exported)).signatures

    signature = signatures[spec.SIGNATURE_NAME]
    _, inputs = signature.structured_input_signature
    assert list(inputs) == ["image"]
    assert inputs["image"].dtype == tf.uint8
    assert inputs["image"].shape.as_list() == [None, 150, 150, 3]
    assert list(signature.structured_outputs) == ["probabilities"]
    assert signature.structured_outputs["probabilities"].dtype == tf.float32
    assert signature.structured_outputs["probabilities"].shape.as_list() == [None, 8]


def test_served_predictions_sum_to_one_and_equal_the_keras_model_on_0_255_floats(
    exported: Path, untrained_model_file: Path
) -> None:
    images = np.random.default_rng(1).integers(0, 256, size=(4, 150, 150, 3), dtype=np.uint8)
    serve = tf.saved_model.load(str(exported)).signatures[spec.SIGNATURE_NAME]

    served = serve(image=tf.constant(images))["probabilities"].numpy()
    direct = keras.models.load_model(untrained_model_file).predict(images.astype("float32"), verbose=0)

    assert np.allclose(served.sum(axis=1), 1.0, atol=1e-5)
    assert np.allclose(served, direct, atol=1e-6)


def test_the_warmup_file_holds_predict_requests_for_the_serving_signature(exported: Path) -> None:
    path = exported / "assets.extra" / spec.WARMUP_FILENAME

    logs = []
    for record in tf.data.TFRecordDataset(str(path)):
        log = prediction_log_pb2.PredictionLog()
        log.ParseFromString(record.numpy())
        logs.append(log)

    assert len(logs) == len(export.WARMUP_BATCH_SIZES)
    for log, batch_size in zip(logs, export.WARMUP_BATCH_SIZES, strict=True):
        request = log.predict_log.request
        assert request.model_spec.name == spec.MODEL_NAME
        assert request.model_spec.signature_name == spec.SIGNATURE_NAME
        images = tf.make_ndarray(request.inputs["image"])
        assert images.dtype == np.uint8
        assert images.shape == (batch_size, 150, 150, 3)


def test_the_spec_document_is_written_with_the_version(exported: Path) -> None:
    document = json.loads((exported / "assets.extra" / spec.SPEC_FILENAME).read_text())

    assert document == {**spec.spec_document(), "version": 3}


def test_an_existing_version_is_kept_unless_forced(untrained_model_file: Path, tmp_path: Path) -> None:
    first = export.export_model(untrained_model_file, tmp_path, 1)
    marker = first / "marker"
    marker.write_text("old")

    with pytest.raises(export.ExportError, match="exists"):
        export.export_model(untrained_model_file, tmp_path, 1)
    assert marker.exists()

    replaced = export.export_model(untrained_model_file, tmp_path, 1, force=True)
    assert replaced == first
    assert not marker.exists()
    assert (replaced / "saved_model.pb").is_file()
    assert sorted(p.name for p in replaced.parent.iterdir()) == ["1"]


def test_a_model_with_the_wrong_output_size_is_refused(tmp_path: Path) -> None:
    wrong = keras.Sequential([keras.Input((150, 150, 3)), keras.layers.Flatten(), keras.layers.Dense(5)])

    with pytest.raises(export.ExportError, match="contract"):
        export.export_model(wrong, tmp_path, 1)
    assert not (tmp_path / spec.MODEL_NAME / "1").exists()


def test_the_cli_exports_and_refuses_to_overwrite(
    untrained_model_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    arguments = ["--model", str(untrained_model_file), "--out", str(tmp_path), "--version", "2"]

    assert export.main(arguments) == 0
    assert export.main(arguments) == 2
    assert "--force" in capsys.readouterr().err
    assert export.main([*arguments, "--force"]) == 0
