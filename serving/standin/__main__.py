"""`python -m serving.standin`: serve exported SavedModels over TF Serving's gRPC API on this machine.

For development and tests only; Kubernetes runs the real TF Serving image (serving/Dockerfile).

    python -m serving.standin --model-base-path build/models/species_model [--model-name species_model]
        [--host 127.0.0.1] [--port 8500] [--max-message-mb N] [--max-batch-size 32]
        [--version-label stable=1] [--tensor-content] [--no-warmup] [--delay-ms N]

Logs one line when ready ("stand-in serving species_model versions [1] on 127.0.0.1:8500") and stops
cleanly, exit status 0, on SIGINT or SIGTERM. Exits 1 when the model cannot be loaded or warmed up.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from model import spec
from serving.standin.server import TF_SERVING_MAX_MESSAGE_BYTES, Options, StandIn, WarmupError, load_model

log = logging.getLogger("serving.standin")


def _version_label(text: str) -> tuple[str, int]:
    label, sep, version = text.partition("=")
    if not sep or not label or not version.isdigit():
        raise argparse.ArgumentTypeError(f"expected LABEL=VERSION, got {text!r}")
    return label, int(version)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m serving.standin",
        description="A local stand-in for TF Serving's gRPC API (development and tests only).",
    )
    parser.add_argument(
        "--model-base-path",
        type=Path,
        required=True,
        help="TF Serving model base path with numeric version folders, e.g. build/models/species_model",
    )
    parser.add_argument("--model-name", default=spec.MODEL_NAME, help="name clients use in ModelSpec.name")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=_non_negative, default=8500, help="gRPC port (default 8500; 0 = any)")
    parser.add_argument(
        "--max-message-mb",
        type=_positive,
        default=None,
        help="largest gRPC message accepted or sent, in MiB (default: 2 GiB, as TF Serving)",
    )
    parser.add_argument(
        "--max-batch-size",
        type=_non_negative,
        default=Options.max_batch_size,
        help="refuse Predict batches larger than this, as TF Serving's batcher does "
        "(default: serving/batching.config's max_batch_size; 0 = no limit)",
    )
    parser.add_argument(
        "--version-label",
        type=_version_label,
        action="append",
        default=[],
        metavar="LABEL=VERSION",
        help="accept ModelSpec.version_label LABEL for VERSION (repeatable; models.config's version_labels)",
    )
    parser.add_argument(
        "--tensor-content",
        action="store_true",
        help="send outputs as packed tensor_content, like --enable_serialization_as_tensor_content",
    )
    parser.add_argument(
        "--rest-port",
        type=_non_negative,
        default=None,
        help="also serve TF Serving's REST model status and metrics path on this port (8501 in the image; "
        "default: off)",
    )
    parser.add_argument("--no-warmup", action="store_true", help="skip assets.extra warmup requests")
    parser.add_argument(
        "--load-delay-s",
        type=float,
        default=float(os.environ.get("STANDIN_LOAD_DELAY_S") or 0),
        help="report NOT_SERVING / LOADING for this long after the ports open, like a slow model load "
        "(default: $STANDIN_LOAD_DELAY_S or 0)",
    )
    parser.add_argument(
        "--delay-ms",
        type=_non_negative,
        default=0,
        help="add this much latency to every Predict (for clients' deadline tests)",
    )
    return parser.parse_args(argv)


def configure_threads(cpus: str | None) -> None:
    """TensorFlow's thread pools from TF_SERVING_CPUS, as serving/entrypoint.sh sizes TF Serving's: in a pod
    it is the CPU limit (downward API), so a 1-CPU pod does not run one thread per node core."""
    if not cpus:
        return
    try:
        count = int(cpus)
    except ValueError:
        count = 0
    if count < 1:
        log.warning("TF_SERVING_CPUS=%r is not a positive integer; using 1", cpus)
        count = 1
    import tensorflow as tf  # deferred: importing TensorFlow takes seconds

    tf.config.threading.set_intra_op_parallelism_threads(count)
    tf.config.threading.set_inter_op_parallelism_threads(count)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("received %s; stopping", signal.Signals(signum).name)
        stop.set()

    # Installed before the (slow) model load so a signal during loading still ends in a clean exit.
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    configure_threads(os.environ.get("TF_SERVING_CPUS"))
    try:
        model = load_model(
            args.model_name,
            args.model_base_path,
            version_labels=dict(args.version_label),
            warmup=not args.no_warmup,
        )
    except (OSError, ValueError, WarmupError) as error:
        log.error("cannot load %s from %s: %s", args.model_name, args.model_base_path, error)
        return 1
    if stop.is_set():
        return 0

    max_bytes = TF_SERVING_MAX_MESSAGE_BYTES
    if args.max_message_mb is not None:
        max_bytes = min(args.max_message_mb * 1024 * 1024, TF_SERVING_MAX_MESSAGE_BYTES)
    options = Options(
        max_batch_size=args.max_batch_size or None,
        as_tensor_content=args.tensor_content,
        delay_seconds=args.delay_ms / 1000,
        load_delay_seconds=max(args.load_delay_s, 0.0),
    )
    try:
        server = StandIn(
            model,
            host=args.host,
            port=args.port,
            options=options,
            max_message_bytes=max_bytes,
            rest_port=args.rest_port,
        )
    except (OSError, RuntimeError) as error:
        log.error("cannot listen on %s:%s: %s", args.host, args.port, error)
        return 1
    server.start()
    log.info("stand-in serving %s versions %s on %s", model.name, model.versions, server.address)

    stop.wait()
    server.stop()
    log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
