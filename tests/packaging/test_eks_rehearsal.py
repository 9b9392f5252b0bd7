"""Level 3: the EKS rehearsal on kind stays honest.

Level 5 installs the chart with values-eks.yaml plus ci/eks-on-kind-values.yaml, and applies
k8s/overlays/eks-on-kind (the EKS overlay plus a few lines), on a kind cluster. What that proves holds for EKS
only if the rehearsal changes nothing but what kind cannot share: the image registry, the load balancer class
that only the AWS Load Balancer Controller serves, the HPAs' scale-in window, the gateway's CPU request (the
HPA's yardstick, sized for two shared cores), and for the overlay its namespace, so it runs beside the kind
overlay. Each render is compared with the EKS one object by object.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.packaging import render
from tests.support.manifests import Manifest, name_of

pytestmark = pytest.mark.packaging

EKS_NAMESPACE = "species-classifier-eks"


def by_name(objs: list[Manifest]) -> dict[str, Manifest]:
    return {name_of(obj): obj for obj in objs}


def differences(a: Any, b: Any, path: str = "") -> list[str]:
    """Paths where two objects differ (a key only in one counts)."""
    if isinstance(a, dict) and isinstance(b, dict):
        found = []
        for key in sorted(set(a) | set(b)):
            found += differences(a.get(key), b.get(key), f"{path}.{key}" if path else key)
        return found
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [
            d for i, (x, y) in enumerate(zip(a, b, strict=True)) for d in differences(x, y, f"{path}[{i}]")
        ]
    return [] if a == b else [path]


def allowed(name: str, path: str) -> bool:
    return (
        path.endswith(".image")  # registry only: checked below
        or path == "spec.loadBalancerClass"
        or path.startswith("spec.behavior")
        or path == "metadata.namespace"
        # The gateway's CPU request, the HPA's yardstick (the rehearsal file says why).
        or (name == "Deployment/species-classifier-gateway" and path.endswith(".resources.requests.cpu"))
    )


def repository(obj: Manifest, path: str) -> str:
    """The image at `path` without its registry."""
    return str(resolve(obj, path)).split("/", 1)[1]


def check(eks: list[Manifest], rehearsal: list[Manifest]) -> list[str]:
    problems = []
    eks_objects, rehearsal_objects = by_name(eks), by_name(rehearsal)
    if set(eks_objects) != set(rehearsal_objects):
        problems.append(f"objects differ: {sorted(set(eks_objects) ^ set(rehearsal_objects))}")
    for name in sorted(set(eks_objects) & set(rehearsal_objects)):
        a, b = eks_objects[name], rehearsal_objects[name]
        for path in differences(a, b):
            if not allowed(name, path):
                problems.append(f"{name}: {path} differs")
            elif path.endswith(".image") and repository(a, path) != repository(b, path):
                problems.append(f"{name}: {path} changes more than the registry")
    return problems


def resolve(obj: Any, path: str) -> Any:
    for part in path.replace("]", "").replace("[", ".").split("."):
        obj = obj[int(part)] if isinstance(obj, list) else obj[part]
    return obj


@pytest.fixture(scope="module")
def chart_renders() -> tuple[list[Manifest], list[Manifest]]:
    try:
        eks = render.render_chart(["values-eks.yaml"])
        rehearsal = render.render_chart(["values-eks.yaml", "ci/eks-on-kind-values.yaml"])
    except render.NotRenderable as error:
        pytest.skip(str(error))
    return eks, rehearsal


@pytest.fixture(scope="module")
def overlay_renders() -> tuple[list[Manifest], list[Manifest]]:
    try:
        eks = render.render_kustomize("eks")
        rehearsal = render.render_kustomize("eks-on-kind")
    except render.NotRenderable as error:
        pytest.skip(str(error))
    # Moved to its own namespace on purpose; compared as if it had stayed.
    for obj in rehearsal:
        if obj.get("kind") == "Namespace":
            obj["metadata"]["name"] = render.NAMESPACE
    return eks, rehearsal


def test_the_chart_rehearsal_changes_only_registry_load_balancer_class_and_scale_in_window(
    chart_renders: tuple[list[Manifest], list[Manifest]],
) -> None:
    eks, rehearsal = chart_renders
    assert check(eks, rehearsal) == []
    service = by_name(rehearsal)["Service/species-classifier-gateway"]
    assert service["spec"]["type"] == "LoadBalancer"
    assert "loadBalancerClass" not in service["spec"]


def test_the_overlay_rehearsal_changes_only_registry_load_balancer_class_and_namespace(
    overlay_renders: tuple[list[Manifest], list[Manifest]],
) -> None:
    eks, rehearsal = overlay_renders
    assert check(eks, rehearsal) == []
    assert {obj["metadata"].get("namespace") for obj in rehearsal if obj["kind"] != "Namespace"} == {
        EKS_NAMESPACE
    }


def test_the_checker_reports_a_rehearsal_that_changes_more(
    chart_renders: tuple[list[Manifest], list[Manifest]],
) -> None:
    eks, rehearsal = chart_renders
    broken = copy.deepcopy(rehearsal)
    deployment = by_name(broken)["Deployment/species-classifier-gateway"]
    deployment["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["memory"] = "1Mi"
    deployment["spec"]["template"]["spec"]["containers"][0]["image"] = "docker.io/other/gateway:0.1.0"
    problems = check(eks, broken)
    assert any("resources" in p for p in problems)
    assert any("more than the registry" in p for p in problems)
