"""Fixtures for test level 4: one control plane for the whole session, started by hack/sim/cluster.sh.

It runs apart from a `make sim-up` cluster (its own state folder build/sim/pytest and cluster name), on
127.0.0.1 with free ports, and is torn down at the end of the session. Every test here is skipped, with the
reason, when the binaries are not built (`make sim-bins`, which `make test` runs first).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator

import pytest

from tests.controlplane import cluster
from tests.packaging import render

SIM_DIR = cluster.REPO / "build" / "sim" / "pytest"
SIM_NAME = "species-classifier-pytest"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.is_relative_to(cluster.REPO / "tests" / "controlplane"):
            item.add_marker(pytest.mark.controlplane)


def _sim(command: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SIM_DIR": str(SIM_DIR), "SIM_NAME": SIM_NAME}
    return subprocess.run(
        [str(cluster.SIM_SCRIPT), command], env=env, capture_output=True, text=True, check=False, timeout=600
    )


# Package-scoped: stopped once this folder's tests are done, so it takes no CPU from the later levels.
@pytest.fixture(scope="package")
def control_plane() -> Iterator[cluster.ControlPlane]:
    checked = _sim("check")
    if checked.returncode == 3:
        pytest.skip(checked.stderr.strip())
    # A cluster left behind by an interrupted session is replaced: every session starts from an empty one.
    _sim("down")
    started = _sim("up")
    if started.returncode != 0:
        logs = SIM_DIR / "kwok" / "clusters" / SIM_NAME / "logs"
        _sim("down")
        pytest.fail(f"control plane did not start (logs in {logs}):\n{started.stderr}\n{started.stdout}")
    kubectl = cluster.BIN / f"kubectl-{cluster.sim_version('KUBE_VERSION')}"
    try:
        yield cluster.ControlPlane(kubeconfig=SIM_DIR / "kubeconfig", kubectl_path=kubectl)
    finally:
        _sim("down")


@pytest.fixture(scope="package")
def helm_ready(control_plane: cluster.ControlPlane) -> cluster.ControlPlane:
    """The control plane, for tests that also need bin/helm and the chart."""
    reason = render.chart_available()
    if reason:
        pytest.skip(reason)
    return control_plane


@pytest.fixture
def scratch_namespace(control_plane: cluster.ControlPlane, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace enforcing Pod Security "restricted", deleted after the test.

    Its name is unique and its objects hold no fixed NodePort (see cluster.into_namespace), so the deletion
    is not waited for: the next test never needs anything it frees.
    """
    name = cluster.unique_namespace_name(request.node.name)
    control_plane.create_namespace(name, labels=cluster.RESTRICTED)
    try:
        yield name
    finally:
        control_plane.delete_namespace(name, wait=False)
