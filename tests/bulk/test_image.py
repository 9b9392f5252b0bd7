"""The bulk CLI ships in the gateway image: its files reach the build context, and the image and
.venv-gateway keep the same botocore service models (level 3, static)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.support.dockerfiles import BuildContext
from tests.support.gateway import GATEWAY_PYTHON

pytestmark = pytest.mark.packaging

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "gateway" / "Dockerfile"


def makefile_services() -> list[str]:
    match = re.search(r"^BOTOCORE_SERVICES := (.+)$", (REPO / "Makefile").read_text(), re.MULTILINE)
    assert match, "the Makefile defines no BOTOCORE_SERVICES"
    return match.group(1).split()


def test_the_image_and_the_gateway_venv_keep_the_same_botocore_services() -> None:
    match = re.search(r'^ARG BOTOCORE_SERVICES="(.+)"$', DOCKERFILE.read_text(), re.MULTILINE)
    assert match, "gateway/Dockerfile defines no BOTOCORE_SERVICES"
    assert match.group(1).split() == makefile_services()


def test_the_gateway_venv_holds_only_those_service_models_and_s3_works_with_them() -> None:
    if not GATEWAY_PYTHON.exists():
        pytest.skip(f"{GATEWAY_PYTHON} missing: run `make venv`")
    probe = (
        "import os, boto3, botocore\n"
        "data = os.path.join(os.path.dirname(botocore.__file__), 'data')\n"
        "print(' '.join(sorted(n for n in os.listdir(data) if os.path.isdir(os.path.join(data, n)))))\n"
        "for name in os.environ['SERVICES'].split():\n"
        "    boto3.client(name, region_name='us-east-1')\n"
    )
    services = makefile_services()
    done = subprocess.run(
        [str(GATEWAY_PYTHON), "-c", probe],
        capture_output=True,
        text=True,
        check=False,
        env={"SERVICES": " ".join(services), "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == sorted(services)


def test_the_build_context_lets_the_bulk_package_and_its_pins_in() -> None:
    included = BuildContext.read(REPO / "gateway" / "Dockerfile.dockerignore").admits

    for path in sorted((REPO / "gateway" / "bulk").glob("*.py")):
        assert included(path.relative_to(REPO).as_posix()), path
    assert included("gateway/requirements-bulk.txt")
    text = DOCKERFILE.read_text()
    assert "COPY gateway/bulk/*.py /app/gateway/bulk/" in text
    assert "-r requirements-bulk.txt" in text
