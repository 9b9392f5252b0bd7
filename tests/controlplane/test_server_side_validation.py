"""The API server of the pinned Kubernetes accepts every render: `kubectl apply --dry-run=server` runs the
objects through the real decoding, defaulting, validation and admission chain, Pod Security included."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.controlplane import cluster
from tests.packaging import render
from tests.packaging.conftest import RENDER_CASES
from tests.support.manifests import component_name, get, of_kind

# Kinds whose API comes from a CRD this control plane does not have (the Prometheus Operator's).
NOT_SERVED_GROUPS = ("monitoring.coreos.com/",)

# The renders level 3 checks: both overlays, the kind overlay with the bulk component, the chart with its
# presets and every ci/*-values.yaml.
RENDERS = RENDER_CASES


@pytest.fixture(scope="module")
def target_namespace(control_plane: cluster.ControlPlane) -> Iterator[str]:
    """The namespace every render targets, labelled like the overlays' Namespace (restricted)."""
    control_plane.create_namespace(cluster.NAMESPACE, labels=cluster.RESTRICTED)
    try:
        yield cluster.NAMESPACE
    finally:
        control_plane.delete_namespace(cluster.NAMESPACE)


@pytest.mark.parametrize("name", sorted(RENDERS))
def test_the_api_server_accepts_every_object_of_the_render(
    control_plane: cluster.ControlPlane, target_namespace: str, name: str
) -> None:
    try:
        objects = RENDERS[name]()
    except render.NotRenderable as missing:
        pytest.skip(str(missing))
    served = [obj for obj in objects if not obj["apiVersion"].startswith(NOT_SERVED_GROUPS)]
    assert served, f"{name} rendered nothing"
    # The helm test Pod is admitted only if its ServiceAccount exists, as it does when the hook runs after
    # an install; a dry run creates nothing, so the render's ServiceAccounts are created for real first.
    service_accounts = of_kind(served, "ServiceAccount")
    if service_accounts:
        control_plane.apply(service_accounts)

    result = control_plane.apply(served, "--dry-run=server")

    accepted = [line for line in result.stdout.splitlines() if line.endswith("(server dry run)")]
    assert len(accepted) == len(served), result.stdout
    # The Deployments' pod templates are checked by Pod Security too (as warnings: it enforces on Pods).
    assert "violate PodSecurity" not in result.stderr, result.stderr


def test_a_render_with_an_invalid_field_is_rejected_by_the_server(
    control_plane: cluster.ControlPlane, target_namespace: str
) -> None:
    objects = render.render_kustomize("kind")
    service = get(objects, "Service", component_name("gateway"))
    service["spec"]["ports"][0]["port"] = 70000

    result = control_plane.apply(objects, "--dry-run=server", check=False)

    assert result.returncode != 0
    assert "spec.ports[0].port" in result.stderr
