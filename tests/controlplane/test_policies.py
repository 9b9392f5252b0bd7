"""HorizontalPodAutoscalers, PodDisruptionBudgets and NetworkPolicies are accepted and target the right pods.

The EKS packaging carries all three (two replicas of each workload, HPAs with a minimum of two, PDBs), so the
eks overlay and the chart with values-eks.yaml are each applied here. The controllers in
kube-controller-manager resolve the references themselves: the HPA controller reads the scale of its target,
the disruption controller counts the pods its selector matches.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kubernetes import client

from tests.controlplane import cluster
from tests.packaging import checks, render
from tests.support.manifests import component_name, of_kind

OVERLAY = cluster.REPO / "k8s" / "overlays" / "eks"
# The HPA controller syncs every 15 s (kube-controller-manager --horizontal-pod-autoscaler-sync-period).
HPA_SYNC_TIMEOUT = 60


def _apply_eks_overlay(cp: cluster.ControlPlane) -> None:
    cp.kubectl("apply", "-k", str(OVERLAY))


def _install_chart_with_eks_values(cp: cluster.ControlPlane) -> None:
    [namespace] = of_kind(render.render_kustomize("eks"), "Namespace")
    cp.create_namespace(cluster.NAMESPACE, labels=namespace["metadata"]["labels"])
    result = cp.helm(
        "install",
        cluster.RELEASE,
        str(render.CHART),
        "-n",
        cluster.NAMESPACE,
        "-f",
        str(render.CHART / "values-eks.yaml"),
        "--wait",
        "--timeout",
        # values-eks.yaml lets the HPA own the replica count: the Deployment starts at 1 and the HPA
        # controller raises it to minReplicas on its next sync, so allow for that on a busy machine.
        "180s",
        check=False,
    )
    if result.returncode != 0:
        state = cp.kubectl(
            "-n", cluster.NAMESPACE, "get", "deploy,rs,pods,hpa,events", "-o", "wide", check=False
        ).stdout
        raise AssertionError(f"helm install with values-eks.yaml failed:\n{result.stderr}\n{state}")


@pytest.fixture(scope="module", params=["kustomize-eks", "chart-values-eks"])
def eks_overlay_applied(
    control_plane: cluster.ControlPlane, request: pytest.FixtureRequest
) -> Iterator[cluster.ControlPlane]:
    """The EKS packaging applied: `kubectl apply -k k8s/overlays/eks`, or the chart with values-eks.yaml."""
    if request.param != "kustomize-eks":
        reason = render.chart_available()
        if reason:
            pytest.skip(reason)
    try:
        # Inside the try: a failed install must not leave its namespace behind for the next module.
        if request.param == "kustomize-eks":
            _apply_eks_overlay(control_plane)
        else:
            _install_chart_with_eks_values(control_plane)
        for component in cluster.COMPONENTS:
            cluster.wait_for_rollout(control_plane, cluster.NAMESPACE, component_name(component))
        yield control_plane
    finally:
        if request.param == "kustomize-eks":
            control_plane.kubectl("delete", "-k", str(OVERLAY), "--ignore-not-found", "--wait=false")
        else:
            control_plane.helm("uninstall", cluster.RELEASE, "-n", cluster.NAMESPACE, "--wait", check=False)
        control_plane.delete_namespace(cluster.NAMESPACE)


def hpa_able_to_scale(
    cp: cluster.ControlPlane, namespace: str, name: str
) -> client.V2HorizontalPodAutoscaler:
    """Wait for the HPA controller's verdict on the scale target; fail with its message if unreadable."""
    autoscaling = client.AutoscalingV2Api(cp.api)
    verdict: list[client.V2HorizontalPodAutoscalerCondition] = []

    def decided() -> bool:
        hpa = autoscaling.read_namespaced_horizontal_pod_autoscaler(name, namespace)
        verdict[:] = [c for c in hpa.status.conditions or [] if c.type == "AbleToScale"]
        return bool(verdict)

    cluster.wait_until(decided, HPA_SYNC_TIMEOUT, f"HPA {name} never reported AbleToScale")
    assert verdict[0].status == "True", f"HPA {name}: {verdict[0].reason}: {verdict[0].message}"
    return autoscaling.read_namespaced_horizontal_pod_autoscaler(name, namespace)


def pods_selected(cp: cluster.ControlPlane, namespace: str, match_labels: dict[str, str]) -> set[str]:
    selector = ",".join(f"{k}={v}" for k, v in sorted(match_labels.items()))
    return {
        pod.metadata.name
        for pod in cp.core.list_namespaced_pod(namespace, label_selector=selector).items
        if pod.metadata.deletion_timestamp is None
    }


def deployment_pod_names(cp: cluster.ControlPlane, component: str) -> set[str]:
    return {
        p.metadata.name for p in cluster.deployment_pods(cp, cluster.NAMESPACE, component_name(component))
    }


@pytest.mark.parametrize("component", cluster.COMPONENTS)
def test_the_hpa_can_read_the_scale_of_its_deployment(
    eks_overlay_applied: cluster.ControlPlane, component: str
) -> None:
    name = component_name(component)

    hpa = hpa_able_to_scale(eks_overlay_applied, cluster.NAMESPACE, name)

    target = hpa.spec.scale_target_ref
    assert (target.api_version, target.kind, target.name) == ("apps/v1", "Deployment", name)
    assert hpa.spec.min_replicas >= 2


@pytest.mark.parametrize("component", cluster.COMPONENTS)
def test_the_pdb_counts_exactly_the_deployments_pods_and_allows_one_disruption(
    eks_overlay_applied: cluster.ControlPlane, component: str
) -> None:
    name = component_name(component)
    policy = client.PolicyV1Api(eks_overlay_applied.api)
    dep = eks_overlay_applied.apps.read_namespaced_deployment(name, cluster.NAMESPACE)

    def counted() -> bool:
        status = policy.read_namespaced_pod_disruption_budget(name, cluster.NAMESPACE).status
        return (status.observed_generation or 0) > 0 and status.expected_pods == dep.spec.replicas

    cluster.wait_until(
        counted, 30, f"PDB {name} never counted the {dep.spec.replicas} pods of its Deployment"
    )
    pdb = policy.read_namespaced_pod_disruption_budget(name, cluster.NAMESPACE)
    assert pods_selected(eks_overlay_applied, cluster.NAMESPACE, pdb.spec.selector.match_labels) == (
        deployment_pod_names(eks_overlay_applied, component)
    )
    assert pdb.status.current_healthy == dep.spec.replicas
    assert pdb.status.disruptions_allowed == 1


def test_the_serving_network_policy_admits_only_gateway_pods_to_the_grpc_port(
    eks_overlay_applied: cluster.ControlPlane,
) -> None:
    networking = client.NetworkingV1Api(eks_overlay_applied.api)
    policy = networking.read_namespaced_network_policy(component_name("serving"), cluster.NAMESPACE)

    assert pods_selected(eks_overlay_applied, cluster.NAMESPACE, policy.spec.pod_selector.match_labels) == (
        deployment_pod_names(eks_overlay_applied, "serving")
    )
    # Egress restricted, with no rule: TF Serving pods may send nothing.
    assert policy.spec.policy_types == ["Ingress", "Egress"]
    assert not policy.spec.egress
    [rule] = policy.spec.ingress
    [peer] = rule.var_from
    assert pods_selected(eks_overlay_applied, cluster.NAMESPACE, peer.pod_selector.match_labels) == (
        deployment_pod_names(eks_overlay_applied, "gateway")
    )
    # A named port resolves against each selected pod's container ports.
    ports = container_ports(eks_overlay_applied, "serving")
    assert [ports.get(p.port, p.port) for p in rule.ports] == [8500]


def container_ports(cp: cluster.ControlPlane, component: str) -> dict[str, int]:
    """Named container ports of a live pod of the component, as the API server stored it."""
    pod = cluster.deployment_pods(cp, cluster.NAMESPACE, component_name(component))[0]
    return {p.name: p.container_port for c in pod.spec.containers for p in c.ports}


def test_the_gateway_network_policy_opens_http_to_all_and_metrics_to_pods_in_the_cluster(
    eks_overlay_applied: cluster.ControlPlane,
) -> None:
    networking = client.NetworkingV1Api(eks_overlay_applied.api)
    policy = networking.read_namespaced_network_policy(component_name("gateway"), cluster.NAMESPACE)

    assert pods_selected(eks_overlay_applied, cluster.NAMESPACE, policy.spec.pod_selector.match_labels) == (
        deployment_pod_names(eks_overlay_applied, "gateway")
    )
    ports = container_ports(eks_overlay_applied, "gateway")
    opened = {ports.get(p.port, p.port): rule.var_from for rule in policy.spec.ingress for p in rule.ports}
    assert set(opened) == {9696, 9697}
    assert opened[9696] is None, "the HTTP port admits every source"
    [peer] = opened[9697]
    # An empty namespaceSelector: every pod in every namespace, and nothing from outside the cluster.
    assert peer.ip_block is None
    assert peer.pod_selector is None
    assert not peer.namespace_selector.match_labels
    assert not peer.namespace_selector.match_expressions


def test_the_gateway_may_send_only_to_tf_serving_dns_and_public_addresses_on_the_fetch_ports(
    eks_overlay_applied: cluster.ControlPlane,
) -> None:
    networking = client.NetworkingV1Api(eks_overlay_applied.api)
    policy = networking.read_namespaced_network_policy(component_name("gateway"), cluster.NAMESPACE)
    assert "Egress" in policy.spec.policy_types

    serving_rule, dns_rule, public_rule = policy.spec.egress
    [serving_peer] = serving_rule.to
    assert pods_selected(eks_overlay_applied, cluster.NAMESPACE, serving_peer.pod_selector.match_labels) == (
        deployment_pod_names(eks_overlay_applied, "serving")
    )
    assert [(p.port, p.protocol) for p in serving_rule.ports] == [(8500, "TCP")]
    [dns_peer] = dns_rule.to
    assert dns_peer.namespace_selector.match_labels == {"kubernetes.io/metadata.name": "kube-system"}
    assert sorted((p.port, p.protocol) for p in dns_rule.ports) == [(53, "TCP"), (53, "UDP")]
    # What the API server stored is what the gateway Deployment it runs was told: the same fetch ports.
    blocks = [peer.ip_block for peer in public_rule.to]
    assert {b.cidr for b in blocks} == {"0.0.0.0/0", "::/0"}
    for block in blocks:
        assert checks.non_public_reached({"cidr": block.cidr, "except": block._except}) == [], block.cidr
    name = component_name("gateway")
    gateway = eks_overlay_applied.apps.read_namespaced_deployment(name, cluster.NAMESPACE)
    env = gateway.spec.template.spec.containers[0].env
    [fetch_ports] = [e.value for e in env if e.name == "FETCH_ALLOWED_PORTS"]
    assert fetch_ports == ",".join(str(p.port) for p in public_rule.ports)


def test_an_hpa_whose_target_does_not_exist_is_reported_unable_to_scale(
    control_plane: cluster.ControlPlane, scratch_namespace: str
) -> None:
    hpas = cluster.into_namespace(
        of_kind(render.render_kustomize("eks"), "HorizontalPodAutoscaler"), scratch_namespace
    )
    hpa = hpas[0]
    hpa["spec"]["scaleTargetRef"]["name"] += "-typo"
    control_plane.apply([hpa])

    with pytest.raises(AssertionError, match="FailedGetScale"):
        hpa_able_to_scale(control_plane, scratch_namespace, hpa["metadata"]["name"])


@pytest.mark.parametrize("component", cluster.COMPONENTS)
def test_with_two_replicas_the_service_lists_both_pods_spread_over_nodes(
    eks_overlay_applied: cluster.ControlPlane, component: str
) -> None:
    name = component_name(component)
    ports = {"gateway": {"http": 9696}, "serving": {"grpc": 8500, "http": 8501}}[component]

    cluster.assert_service_endpoints_are_deployment_pods(
        eks_overlay_applied, cluster.NAMESPACE, name, name, ports
    )
    pods = cluster.deployment_pods(eks_overlay_applied, cluster.NAMESPACE, name)
    assert len(pods) == 2
    # The topology spread constraint on kubernetes.io/hostname puts the two replicas on different nodes.
    assert len({pod.spec.node_name for pod in pods}) == 2
