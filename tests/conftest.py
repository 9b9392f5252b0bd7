"""Fixtures shared by every test level: where the repository, the demo model and the golden images are."""

from __future__ import annotations

from pathlib import Path

import pytest

from model import spec
from tests.support import standin as standin_support

REPO = Path(__file__).resolve().parent.parent
BUILD = REPO / "build"
GATEWAY_PYTHON = REPO / ".venv-gateway" / "bin" / "python"


# The order folders run in. Level 5 (e2e) goes last, and its cluster is made in the background from the start
# (tests/e2e/conftest.py): the folders first in line are the ones whose tests bound no latency, so the busy
# minutes of cluster creation and image loading fall on them, not on the gateway's and the stand-in's timing
# budgets (a /healthz under 1 s while under attack, load delays), which run once the cluster is up and idle.
ORDER = ["packaging", "model", "bulk", "controlplane", "monitoring", "serving", "gateway", "e2e"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> float:
        tests = REPO / "tests"
        parts = item.path.relative_to(tests).parts if item.path.is_relative_to(tests) else ()
        # A folder not listed runs just before level 5.
        return ORDER.index(parts[0]) if parts and parts[0] in ORDER else len(ORDER) - 1.5

    items.sort(key=rank)  # stable: each folder keeps its own order


@pytest.fixture(scope="session", autouse=True)
def _standin_logs(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Stand-in logs of tests that name no folder go to this session's temporary folder, not /tmp."""
    standin_support.LOG_DIR = tmp_path_factory.mktemp("standin-logs")


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
