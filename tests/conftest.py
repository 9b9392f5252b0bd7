"""Fixtures shared by every test level: where the repository, the demo model and the golden images are."""

from __future__ import annotations

from pathlib import Path

import pytest

from model import spec

REPO = Path(__file__).resolve().parent.parent
BUILD = REPO / "build"
GATEWAY_PYTHON = REPO / ".venv-gateway" / "bin" / "python"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def demo_model_base() -> Path:
    """`build/models/species_model`, the TF Serving base path `make model` writes."""
    base = BUILD / "models" / spec.MODEL_NAME
    if not (base / "1" / "saved_model.pb").exists():
        pytest.skip(f"demo model not built at {base}/1: run `make model` (make test does)")
    return base


@pytest.fixture(scope="session")
def demo_model_dir(demo_model_base: Path) -> Path:
    return demo_model_base / "1"


@pytest.fixture(scope="session")
def golden_dir() -> Path:
    golden = BUILD / "golden"
    missing = [label for label in spec.LABELS if not (golden / f"{label}.jpg").exists()]
    if missing:
        pytest.skip(f"golden images missing in {golden} ({', '.join(missing)}): run `make model`")
    return golden


@pytest.fixture(scope="session")
def gateway_python() -> Path:
    """The interpreter of `.venv-gateway`, the environment the gateway image ships (no TensorFlow)."""
    if not GATEWAY_PYTHON.exists():
        pytest.skip(f"{GATEWAY_PYTHON} missing: run `make venv` (make test does)")
    return GATEWAY_PYTHON
