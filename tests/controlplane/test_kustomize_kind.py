"""`kubectl apply -k k8s/overlays/kind` on the control plane: both workloads roll out on kwok's simulated
nodes, and their Services route to exactly their pods. The broken copies show each check failing."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.controlplane import cluster
from tests.packaging import render
from tests.support.manifests import component_name, container, get

OVERLAY = cluster.REPO / "k8s" / "overlays" / "kind"
SERVICE_PORTS = {"gateway": {"http": 9696}, "serving": {"grpc": 8500, "http": 8501}}


@pytest.fixture(scope="module")
def kind_overlay_applied(control_plane: cluster.ControlPlane) -> Iterator[cluster.ControlPlane]:
    control_plane.kubectl("apply", "-k", str(OVERLAY))
    try:
        yield control_plane
    finally:
        control_plane.kubectl("delete", "-k", str(OVERLAY), "--ignore-not-found", "--wait=false")
        control_plane.delete_namespace(cluster.NAMESPACE)


@pytest.mark.parametrize("component", cluster.COMPONENTS)
def test_the_deployment_rolls_out_with_every_replica_ready(
    kind_overlay_applied: cluster.ControlPlane, component: str
) -> None:
    dep = cluster.wait_for_rollout(kind_overlay_applied, cluster.NAMESPACE, component_name(component))

    pods = cluster.deployment_pods(kind_overlay_applied, cluster.NAMESPACE, dep.metadata.name)
    assert len(pods) == dep.spec.replicas
    assert all(pod.status.phase == "Running" and pod.spec.node_name for pod in pods)


def test_the_namespace_enforces_restricted_and_admitted_every_pod(
    kind_overlay_applied: cluster.ControlPlane,
) -> None:
    namespace = kind_overlay_applied.core.read_namespace(cluster.NAMESPACE)
    assert namespace.metadata.labels["pod-security.kubernetes.io/enforce"] == "restricted"

    for component in cluster.COMPONENTS:
        dep = cluster.wait_for_rollout(kind_overlay_applied, cluster.NAMESPACE, component_name(component))
        for rs in cluster.owned_replicasets(kind_overlay_applied, cluster.NAMESPACE, dep):
            failures = [c.message for c in rs.status.conditions or [] if c.type == "ReplicaFailure"]
            assert failures == [], f"ReplicaSet {rs.metadata.name} could not create pods: {failures}"


@pytest.mark.parametrize("component", cluster.COMPONENTS)
def test_the_services_endpointslices_list_exactly_the_deployments_pods(
    kind_overlay_applied: cluster.ControlPlane, component: str
) -> None:
    name = component_name(component)
    cluster.wait_for_rollout(kind_overlay_applied, cluster.NAMESPACE, name)

    cluster.assert_service_endpoints_are_deployment_pods(
        kind_overlay_applied, cluster.NAMESPACE, name, name, SERVICE_PORTS[component]
    )


def test_the_metrics_service_lists_every_gateway_pod_on_the_metrics_port(
    kind_overlay_applied: cluster.ControlPlane,
) -> None:
    gateway = component_name("gateway")
    cluster.wait_for_rollout(kind_overlay_applied, cluster.NAMESPACE, gateway)

    cluster.assert_service_endpoints_are_deployment_pods(
        kind_overlay_applied, cluster.NAMESPACE, f"{gateway}-metrics", gateway, {"metrics": 9697}
    )


def test_the_headless_serving_service_resolves_to_every_serving_pod(
    kind_overlay_applied: cluster.ControlPlane,
) -> None:
    name = component_name("serving")
    cluster.wait_for_rollout(kind_overlay_applied, cluster.NAMESPACE, name)
    service = kind_overlay_applied.core.read_namespaced_service(name, cluster.NAMESPACE)
    assert service.spec.cluster_ip == "None"
    assert not service.spec.publish_not_ready_addresses

    # Cluster DNS answers a headless name with the ready addresses of its EndpointSlices.
    cluster.assert_service_endpoints_are_deployment_pods(
        kind_overlay_applied, cluster.NAMESPACE, name, name, SERVICE_PORTS["serving"]
    )
    pod_ips = {
        ip.ip
        for pod in cluster.deployment_pods(kind_overlay_applied, cluster.NAMESPACE, name)
        for ip in pod.status.pod_ips
    }
    endpoint_ips = {
        address
        for endpoint in cluster.endpoint_pods(kind_overlay_applied, cluster.NAMESPACE, name).values()
        for address in endpoint["addresses"]
    }
    assert endpoint_ips == pod_ips


def test_the_gateway_service_is_published_on_node_port_30080(
    kind_overlay_applied: cluster.ControlPlane,
) -> None:
    service = kind_overlay_applied.core.read_namespaced_service(component_name("gateway"), cluster.NAMESPACE)

    assert service.spec.type == "NodePort"
    assert [(p.name, p.port, p.node_port) for p in service.spec.ports] == [("http", 80, 30080)]


# --- broken copies: each check above fails on a copy of the overlay broken on purpose --------------------


def test_a_service_selector_that_matches_no_pod_leaves_the_service_without_endpoints(
    control_plane: cluster.ControlPlane, scratch_namespace: str
) -> None:
    objects = cluster.into_namespace(render.render_kustomize("kind"), scratch_namespace)
    gateway = component_name("gateway")
    service = get(objects, "Service", gateway)
    service["spec"]["selector"]["app.kubernetes.io/component"] = "gatewy"
    control_plane.apply(objects)
    cluster.wait_for_rollout(control_plane, scratch_namespace, gateway)

    with pytest.raises(AssertionError, match=r"EndpointSlices of Service \S+ list pods \[\]"):
        cluster.assert_service_endpoints_are_deployment_pods(
            control_plane, scratch_namespace, gateway, gateway, SERVICE_PORTS["gateway"], timeout=5
        )


def test_a_service_selector_that_matches_both_workloads_lists_foreign_pods(
    control_plane: cluster.ControlPlane, scratch_namespace: str
) -> None:
    objects = cluster.into_namespace(render.render_kustomize("kind"), scratch_namespace)
    serving = component_name("serving")
    service = get(objects, "Service", serving)
    del service["spec"]["selector"]["app.kubernetes.io/component"]
    control_plane.apply(objects)
    for component in cluster.COMPONENTS:
        cluster.wait_for_rollout(control_plane, scratch_namespace, component_name(component))
    # The EndpointSlice controller catches up asynchronously: wait until it has seen the foreign pod, or the
    # check below could pass on a slice that lists only the serving pod so far.
    gateway_pod = f"{component_name('gateway')}-"
    cluster.wait_until(
        lambda: any(
            name.startswith(gateway_pod)
            for name in cluster.endpoint_pods(control_plane, scratch_namespace, serving)
        ),
        30,
        f"Service {serving} with the loosened selector never listed a gateway pod",
    )

    with pytest.raises(AssertionError, match="species-classifier-gateway-"):
        cluster.assert_service_endpoints_are_deployment_pods(
            control_plane, scratch_namespace, serving, serving, SERVICE_PORTS["serving"], timeout=5
        )


def test_a_pod_template_that_is_not_restricted_is_rejected_and_never_rolls_out(
    control_plane: cluster.ControlPlane, scratch_namespace: str
) -> None:
    objects = cluster.into_namespace(render.render_kustomize("kind"), scratch_namespace)
    gateway = component_name("gateway")
    container(objects, gateway)["securityContext"]["allowPrivilegeEscalation"] = True
    control_plane.apply(objects)

    with pytest.raises(AssertionError, match="violates PodSecurity"):
        cluster.wait_for_rollout(control_plane, scratch_namespace, gateway, timeout=8)


def test_a_rollout_allowed_to_take_a_pod_down_first_is_seen_below_the_desired_count(
    control_plane: cluster.ControlPlane, scratch_namespace: str
) -> None:
    # The counterpart of the helm upgrade test's `maxUnavailable: 0` check: the same recording, on a copy
    # whose strategy retires an old pod before starting a new one, does see the dip.
    objects = cluster.into_namespace(render.render_kustomize("kind"), scratch_namespace)
    gateway = component_name("gateway")
    deployment = get(objects, "Deployment", gateway)
    deployment["spec"]["replicas"] = 3
    deployment["spec"]["strategy"]["rollingUpdate"] = {"maxSurge": 0, "maxUnavailable": 1}
    control_plane.apply(objects)
    cluster.wait_for_rollout(control_plane, scratch_namespace, gateway)

    with cluster.WatchRecorder(control_plane.apps.list_namespaced_deployment, scratch_namespace) as rollout:
        control_plane.kubectl(
            "set",
            "image",
            f"deployment/{gateway}",
            f"gateway=docker.io/species-classifier/gateway:{cluster.NEXT_TAG}",
            "-n",
            scratch_namespace,
        )
        cluster.wait_for_rollout(control_plane, scratch_namespace, gateway)

    lowest, desired = rollout.lowest_available(gateway)
    assert lowest < desired
