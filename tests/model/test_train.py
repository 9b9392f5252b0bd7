"""Training: the seed's CNN, labels in the contract's order, a best model on disk, reproducible runs."""

from __future__ import annotations

import contextlib
import csv
import io
from pathlib import Path

import keras
import numpy as np
import pytest

from model import spec, synthetic, train

pytestmark = pytest.mark.unit


def test_the_network_is_the_seeds_cnn() -> None:
    model = train.build_model()

    kinds = [type(layer).__name__ for layer in model.layers]
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]

    assert kinds == [
        "InputLayer",
        "Rescaling",
        "Conv2D",
        "MaxPooling2D",
        "Conv2D",
        "MaxPooling2D",
        "Conv2D",
        "MaxPooling2D",
        "Conv2D",
        "MaxPooling2D",
        "Conv2D",
        "Flatten",
        "Dropout",
        "Dense",
        "Dropout",
        "Dense",
        "Dropout",
        "Dense",
    ]
    assert [c.filters for c in convs] == [32, 64, 64, 128, 256]
    assert all(c.kernel_size == (3, 3) and c.activation.__name__ == "relu" for c in convs)
    assert all(p.pool_size == (2, 2) for p in model.layers if isinstance(p, keras.layers.MaxPooling2D))
    assert [d.units for d in dense] == [64, 32, len(spec.LABELS)]
    assert [d.activation.__name__ for d in dense] == ["relu", "relu", "softmax"]
    assert model.layers[1].scale == pytest.approx(1 / 255)
    assert model.input_shape == (None, 150, 150, 3)
    assert model.output_shape == (None, len(spec.LABELS))


def test_the_network_takes_0_to_255_pixels_and_outputs_probabilities() -> None:
    model = train.build_model()
    images = np.random.default_rng(0).integers(0, 256, size=(3, 150, 150, 3)).astype("float32")

    probabilities = model.predict(images, verbose=0)

    assert probabilities.shape == (3, 8)
    assert np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)


def test_label_indices_follow_the_contract_not_the_folders_present(tmp_path: Path) -> None:
    for label in ("rodent", "bird"):
        (tmp_path / label).mkdir()
        (tmp_path / label / f"{label}.jpg").write_bytes(b"")
    (tmp_path / "rodent" / "notes.txt").write_text("not an image")

    paths, labels = train.list_images(tmp_path)

    assert [Path(p).name for p in paths] == ["bird.jpg", "rodent.jpg"]
    assert labels == [spec.LABELS.index("bird"), spec.LABELS.index("rodent")]


def test_a_folder_that_is_not_a_label_is_refused(tmp_path: Path) -> None:
    (tmp_path / "zebra").mkdir()

    with pytest.raises(ValueError, match="zebra"):
        train.list_images(tmp_path)


@pytest.fixture(scope="module")
def tiny_split(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tiny-split")
    synthetic.write_split_dataset(root, {"train": 8, "valid": 2, "test": 2}, seed=1, size=(200, 150))
    return root


@pytest.fixture(scope="module")
def trained(tiny_split: Path, tmp_path_factory: pytest.TempPathFactory) -> train.TrainResult:
    return train.train(
        tiny_split, tmp_path_factory.mktemp("run-a"), epochs=1, batch_size=8, seed=3, verbose=0
    )


def test_one_epoch_writes_a_loadable_best_model_and_a_test_accuracy(trained: train.TrainResult) -> None:
    assert trained.model_path.name == "best_model.keras"
    model = keras.models.load_model(trained.model_path)
    assert model.output_shape == (None, len(spec.LABELS))
    assert trained.epochs_run == 1
    assert trained.test_accuracy is not None
    assert 0.0 <= trained.test_accuracy <= 1.0
    with (trained.model_path.parent / "history.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 1
    assert float(rows[0]["val_loss"]) == pytest.approx(trained.best_val_loss)


@pytest.fixture(scope="module")
def trained_by_the_cli(tiny_split: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[int, str, Path]:
    """`python -m model.train` with the seed and batch size of `trained`: its status, output and folder."""
    out = tmp_path_factory.mktemp("run-cli")
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        status = train.main(
            [
                *("--data", str(tiny_split), "--out", str(out)),
                *("--epochs", "1", "--batch-size", "8", "--seed", "3"),
            ]
        )
    return status, printed.getvalue(), out


def test_the_same_seed_trains_the_same_weights(
    trained: train.TrainResult, trained_by_the_cli: tuple[int, str, Path]
) -> None:
    status, _, out = trained_by_the_cli
    assert status == 0

    first = keras.models.load_model(trained.model_path).get_weights()
    second = keras.models.load_model(out / "best_model.keras").get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(first, second, strict=True))


def test_the_cli_prints_the_test_accuracy(trained_by_the_cli: tuple[int, str, Path]) -> None:
    status, output, out = trained_by_the_cli

    assert status == 0
    assert "test accuracy: " in output
    assert (out / "best_model.keras").is_file()


def test_the_cli_exits_2_when_a_split_folder_is_missing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = train.main(["--data", str(tmp_path), "--out", str(tmp_path / "out"), "--epochs", "1"])

    assert status == 2
    assert "train" in capsys.readouterr().err
