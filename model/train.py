"""Training of the species classifier: the seed project's small CNN on 150 x 150 RGB images.

Reads the split folders that `model.data` (or `model.synthetic`) writes, `<data>/{train,valid,test}/<label>/`,
preprocesses every image with `model.preprocess`, trains with Adam on sparse categorical cross-entropy, keeps
the model with the best validation loss as `<out>/best_model.keras` and prints its test accuracy.

    python -m model.train --data DIR --out DIR [--epochs N] [--batch-size N] [--seed N]
"""

import argparse
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import keras
import tensorflow as tf

from model import preprocess, spec

logger = logging.getLogger(__name__)

BEST_MODEL_FILENAME = "best_model.keras"
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif"})

# Hyperparameters the seed project does not fix; chosen for the demo data and kept as CLI options.
DEFAULT_DROPOUT = 0.2
DEFAULT_LEARNING_RATE = 1e-3


@dataclass(frozen=True)
class TrainResult:
    model_path: Path
    epochs_run: int
    best_val_loss: float
    test_accuracy: float | None  # None when the test split is empty


def build_model(dropout: float = DEFAULT_DROPOUT) -> keras.Model:
    """The seed's architecture; takes images in the 0..255 range and rescales them itself."""
    inputs = keras.Input(shape=preprocess.IMAGE_SHAPE, name=spec.INPUT_NAME)
    x = keras.layers.Rescaling(1.0 / 255)(inputs)
    for index, filters in enumerate((32, 64, 64, 128, 256)):
        if index:
            x = keras.layers.MaxPooling2D((2, 2))(x)
        x = keras.layers.Conv2D(filters, (3, 3), activation="relu")(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dropout(dropout)(x)
    x = keras.layers.Dense(64, activation="relu")(x)
    x = keras.layers.Dropout(dropout)(x)
    x = keras.layers.Dense(32, activation="relu")(x)
    x = keras.layers.Dropout(dropout)(x)
    outputs = keras.layers.Dense(len(spec.LABELS), activation="softmax", name=spec.OUTPUT_NAME)(x)
    return keras.Model(inputs, outputs, name=spec.MODEL_NAME)


def compile_model(model: keras.Model, learning_rate: float = DEFAULT_LEARNING_RATE) -> None:
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )


def list_images(split_dir: Path) -> tuple[list[str], list[int]]:
    """Image paths under `<split_dir>/<label>/` and their label indices, in spec.LABELS order.

    The index is the label's position in spec.LABELS, never the folder's position in a directory listing,
    so the model's output order is the contract's order whatever folders exist.
    """
    if not split_dir.is_dir():
        raise FileNotFoundError(f"split folder {split_dir} does not exist")
    unknown = sorted(p.name for p in split_dir.iterdir() if p.is_dir() and p.name not in spec.LABELS)
    if unknown:
        raise ValueError(
            f"{split_dir}: folder(s) {', '.join(unknown)} are not labels ({', '.join(spec.LABELS)})"
        )
    paths: list[str] = []
    labels: list[int] = []
    for index, label in enumerate(spec.LABELS):
        label_dir = split_dir / label
        if not label_dir.is_dir():
            continue
        for path in sorted(label_dir.iterdir()):
            if path.suffix.lower() in IMAGE_SUFFIXES:
                paths.append(str(path))
                labels.append(index)
    return paths, labels


def make_dataset(split_dir: Path, batch_size: int, *, shuffle: bool, seed: int) -> tf.data.Dataset:
    """Batches of (float32 images in 0..255, int32 label indices) from one split folder."""
    paths, labels = list_images(split_dir)
    if not paths:
        raise ValueError(f"{split_dir} holds no images")
    dataset = tf.data.Dataset.from_tensor_slices((paths, tf.constant(labels, dtype=tf.int32)))
    dataset = dataset.map(
        lambda path, label: (preprocess.load_image(path), label),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )
    # Decoded 150 x 150 uint8 images are small (67 kB each; about 1.1 GB for the 16,488 Conser-vision training
    # images): cache them in memory so later epochs skip decoding.
    dataset = dataset.cache()
    if shuffle:
        dataset = dataset.shuffle(len(paths), seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(batch_size)
    dataset = dataset.map(lambda images, labels: (tf.cast(images, tf.float32), labels))
    return dataset.prefetch(tf.data.AUTOTUNE)


def set_determinism(seed: int) -> None:
    """Seeds Python, NumPy and TensorFlow and makes TensorFlow ops deterministic (same data, same weights).

    Op determinism is process-wide and cannot be switched off again, which suits the one-run CLIs.
    """
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def train(
    data_dir: Path,
    out_dir: Path,
    *,
    epochs: int = 10,
    batch_size: int = 32,
    seed: int = 42,
    dropout: float = DEFAULT_DROPOUT,
    learning_rate: float = DEFAULT_LEARNING_RATE,
    verbose: int | str = "auto",
) -> TrainResult:
    """Trains on `<data_dir>/train`, selects on `valid`, reports accuracy on `test`."""
    set_determinism(seed)
    train_ds = make_dataset(data_dir / "train", batch_size, shuffle=True, seed=seed)
    valid_ds = make_dataset(data_dir / "valid", batch_size, shuffle=False, seed=seed)
    test_paths, _ = list_images(data_dir / "test") if (data_dir / "test").is_dir() else ([], [])

    out_dir.mkdir(parents=True, exist_ok=True)
    model_path = out_dir / BEST_MODEL_FILENAME
    model = build_model(dropout)
    compile_model(model, learning_rate)
    callbacks = [
        keras.callbacks.ModelCheckpoint(model_path, monitor="val_loss", save_best_only=True),
        keras.callbacks.CSVLogger(str(out_dir / "history.csv")),
    ]
    if verbose == "auto":
        # A progress bar on a terminal; one line per epoch in logs (make, CI), where bars turn into noise.
        verbose = 1 if sys.stdout.isatty() else 2
    # The dataset shuffles itself, seeded; Keras's own shuffle does not apply to a tf.data.Dataset.
    history = model.fit(
        train_ds, validation_data=valid_ds, epochs=epochs, callbacks=callbacks, verbose=verbose, shuffle=False
    )

    best = keras.models.load_model(model_path)
    test_accuracy = None
    if test_paths:
        test_ds = make_dataset(data_dir / "test", batch_size, shuffle=False, seed=seed)
        _, accuracy = best.evaluate(test_ds, verbose=0)
        test_accuracy = float(accuracy)
    else:
        logger.warning("%s holds no images; no test accuracy", data_dir / "test")
    return TrainResult(
        model_path=model_path,
        epochs_run=len(history.history["loss"]),
        best_val_loss=float(min(history.history["val_loss"])),
        test_accuracy=test_accuracy,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m model.train", description="Train the species classifier."
    )
    parser.add_argument(
        "--data", type=Path, required=True, help="folder with train/ valid/ test/ split folders"
    )
    parser.add_argument("--out", type=Path, required=True, help=f"output folder for {BEST_MODEL_FILENAME}")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--dropout", type=float, default=DEFAULT_DROPOUT)
    parser.add_argument("--learning-rate", type=float, default=DEFAULT_LEARNING_RATE)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        result = train(
            args.data,
            args.out,
            epochs=args.epochs,
            batch_size=args.batch_size,
            seed=args.seed,
            dropout=args.dropout,
            learning_rate=args.learning_rate,
        )
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(
        f"best model: {result.model_path} (val_loss {result.best_val_loss:.4f}, {result.epochs_run} epochs)"
    )
    if result.test_accuracy is not None:
        print(f"test accuracy: {result.test_accuracy:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
