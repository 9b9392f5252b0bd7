"""Pod Security admission ("restricted") admits every pod both workloads (and the chart's test hook) create.

Each pod template is sent to the API server as a Pod, with server-side dry run, into a namespace labelled
`pod-security.kubernetes.io/enforce=restricted`: exactly what the ReplicaSet controller or `helm test` meets.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.controlplane import cluster
from tests.packaging import render
from tests.support.manifests import component_name, container, pod_spec, pod_templates

RENDERS: dict[str, Callable[[], list[render.Manifest]]] = {
    "kustomize-kind": lambda: render.render_kustomize("kind"),
    "kustomize-eks": lambda: render.render_kustomize("eks"),
    "chart-values-kind": lambda: render.render_chart(["values-kind.yaml"]),
    "chart-values-eks": lambda: render.render_chart(["values-eks.yaml"]),
}


def _render(name: str) -> list[render.Manifest]:
    try:
        return RENDERS[name]()
    except render.NotRenderable as missing:
        pytest.skip(str(missing))


@pytest.mark.parametrize("name", sorted(RENDERS))
def test_every_pod_of_the_render_is_admitted_by_a_restricted_namespace(
    control_plane: cluster.ControlPlane, scratch_namespace: str, name: str
) -> None:
    objects = _render(name)
    sources = [pod.owner for pod in pod_templates(objects)]
    assert {f"Deployment/species-classifier-{c}" for c in cluster.COMPONENTS} <= set(sources)

    assert cluster.pod_security_rejections(control_plane, scratch_namespace, objects) == {}


def test_a_pod_that_may_escalate_privileges_is_rejected_by_a_restricted_namespace(
    control_plane: cluster.ControlPlane, scratch_namespace: str
) -> None:
    objects = render.render_kustomize("kind")
    serving = container(objects, component_name("serving"))
    serving["securityContext"]["allowPrivilegeEscalation"] = True
    del serving["securityContext"]["capabilities"]

    rejected = cluster.pod_security_rejections(control_plane, scratch_namespace, objects)

    assert set(rejected) == {"Deployment/species-classifier-serving"}
    assert "violates PodSecurity" in rejected["Deployment/species-classifier-serving"]
    assert "allowPrivilegeEscalation" in rejected["Deployment/species-classifier-serving"]


def test_a_pod_that_may_run_as_root_is_rejected_by_a_restricted_namespace(
    control_plane: cluster.ControlPlane, scratch_namespace: str
) -> None:
    objects = render.render_kustomize("kind")
    pod_security = pod_spec(objects, component_name("gateway"))["securityContext"]
    del pod_security["runAsNonRoot"]
    del pod_security["runAsUser"]

    rejected = cluster.pod_security_rejections(control_plane, scratch_namespace, objects)

    assert set(rejected) == {"Deployment/species-classifier-gateway"}
    assert "runAsNonRoot" in rejected["Deployment/species-classifier-gateway"]
