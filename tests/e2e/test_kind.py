"""Level 5: the cluster `make kind-up` made serves the classifier end to end.

Talks to the kubeconfig context `kind-species-classifier` with the `kubernetes` client: both rollouts
complete, each Service's EndpointSlices list one ready endpoint per pod, the headless serving Service lists
every serving pod, and every golden image is labelled correctly through the gateway's NodePort (published on
http://localhost:8080 by kind-config.yaml) and through `kubectl port-forward` with `gateway.client`, the two
ways users reach the local cluster. A pod without the gateway's labels cannot open TF Serving's gRPC port.
"""

from __future__ import annotations

import json
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from model import spec
from tests.e2e.kube import NAMESPACE, kubectl, port_forward, restricted_pod, run_pod, selector_of

DEPLOYMENTS = ("species-classifier-gateway", "species-classifier-serving")
NODE_PORT_URL = "http://localhost:8080"


def ready_endpoints(kind_api: Any, service: str) -> list[Any]:
    slices = client.DiscoveryV1Api(kind_api).list_namespaced_endpoint_slice(
        NAMESPACE, label_selector=f"kubernetes.io/service-name={service}"
    )
    return [
        endpoint
        for endpoint_slice in slices.items
        for endpoint in endpoint_slice.endpoints or []
        if endpoint.conditions and endpoint.conditions.ready
    ]


@pytest.mark.parametrize("name", DEPLOYMENTS)
def test_the_deployment_has_rolled_out_every_replica(apps: Any, name: str) -> None:
    deployment = apps.read_namespaced_deployment(name, NAMESPACE)
    status, wanted = deployment.status, deployment.spec.replicas
    assert status.observed_generation >= deployment.metadata.generation, "controller has not seen the spec"
    assert (status.replicas, status.updated_replicas, status.ready_replicas, status.available_replicas) == (
        wanted,
        wanted,
        wanted,
        wanted,
    ), f"{name}: {status}"


@pytest.mark.parametrize("name", DEPLOYMENTS)
def test_the_service_has_one_ready_endpoint_per_pod(kind_api: Any, apps: Any, name: str) -> None:
    # Service and Deployment share the name.
    wanted = apps.read_namespaced_deployment(name, NAMESPACE).spec.replicas
    assert len(ready_endpoints(kind_api, name)) == wanted


def test_the_headless_serving_service_lists_every_serving_pod(kind_api: Any, apps: Any, core: Any) -> None:
    name = "species-classifier-serving"
    assert core.read_namespaced_service(name, NAMESPACE).spec.cluster_ip == "None"
    deployment = apps.read_namespaced_deployment(name, NAMESPACE)
    pods = core.list_namespaced_pod(NAMESPACE, label_selector=selector_of(deployment)).items
    running = {p.metadata.name: p.status.pod_ip for p in pods if p.status.phase == "Running"}
    endpoints = ready_endpoints(kind_api, name)
    assert {e.target_ref.name for e in endpoints} == set(running)
    assert {address for e in endpoints for address in e.addresses} == set(running.values())


def test_the_containers_were_started_by_containerd_under_real_kubelets(core: Any) -> None:
    nodes = core.list_node().items
    assert nodes, "no nodes"
    for node in nodes:
        info = node.status.node_info
        assert info.container_runtime_version.startswith("containerd://2."), info
        assert info.kubelet_version.startswith("v1.37."), info
    pods = core.list_namespaced_pod(NAMESPACE).items
    started = [s for p in pods for s in p.status.container_statuses or [] if s.state.running]
    assert started
    assert all(s.container_id.startswith("containerd://") for s in started)


def test_the_namespace_enforces_pod_security_restricted(core: Any) -> None:
    # The pods above were admitted under it, so they pass "restricted" on a real API server.
    labels = core.read_namespace(NAMESPACE).metadata.labels
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"


@pytest.mark.parametrize("label", spec.LABELS)
def test_the_golden_image_is_labelled_correctly_through_the_node_port(golden_dir: Path, label: str) -> None:
    request = urllib.request.Request(
        f"{NODE_PORT_URL}/predict",
        data=(golden_dir / f"{label}.jpg").read_bytes(),
        headers={"Content-Type": "image/jpeg"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        body = json.load(response)
    assert body["label"] == label, body
    assert set(body["predictions"]) == set(spec.LABELS)


def test_every_golden_image_is_labelled_correctly_through_a_port_forward_with_the_client(
    kind_api: Any, golden_dir: Path, gateway_python: Path
) -> None:
    with port_forward("svc/species-classifier-gateway", 80) as endpoint:
        for label in spec.LABELS:
            result = subprocess.run(
                [
                    str(gateway_python),
                    "-m",
                    "gateway.client",
                    "--endpoint",
                    endpoint,
                    "--expect-label",
                    label,
                    str(golden_dir / f"{label}.jpg"),
                ],
                capture_output=True,
                text=True,
                check=False,
                timeout=60,
            )
            assert result.returncode == 0, f"{label}: {result.stdout}{result.stderr}"
            assert label in result.stdout


def test_a_pod_without_the_gateway_labels_cannot_reach_tf_serving(core: Any, apps: Any) -> None:
    # The CNI (kube-router in the offline node image, kindnet in kind's own) enforces NetworkPolicy. The
    # gateway image has Python; this pod runs it with other labels and tries TF Serving's gRPC port. The
    # golden-image tests are the positive control.
    name = "e2e-networkpolicy-probe"
    connect = (
        "import socket, sys\n"
        "try:\n"
        "    socket.create_connection(('species-classifier-serving', 8500), timeout=5).close()\n"
        "except OSError as error:\n"
        "    print('blocked:', error); sys.exit(3)\n"
        "print('connected'); sys.exit(0)\n"
    )
    image = (
        apps.read_namespaced_deployment("species-classifier-gateway", NAMESPACE)
        .spec.template.spec.containers[0]
        .image
    )
    pod = restricted_pod(image, name, {"app.kubernetes.io/name": "e2e-probe"}, ["python", "-c", connect])
    phase, output = run_pod(core, pod, timeout=120)
    assert phase == "Failed", f"phase {phase}: {output}"
    assert output.startswith("blocked:"), output


PROBE = """
import socket, sys
results = {}
for name, host, port in [tuple(x.split(",")) for x in sys.argv[1:]]:
    try:
        socket.create_connection((host, int(port)), timeout=4).close()
        results[name] = "open"
    except OSError as error:
        results[name] = type(error).__name__
try:
    socket.getaddrinfo("species-classifier-serving", 8500)
    results["dns"] = "open"
except OSError as error:
    results["dns"] = type(error).__name__
print(results)
"""


def reachable_from(core: Any, component: str, targets: dict[str, tuple[str, int]]) -> dict[str, str]:
    """Tries each target from inside a running pod of `component` (its own network namespace and policy)."""
    pods = core.list_namespaced_pod(
        NAMESPACE, label_selector=f"app.kubernetes.io/component={component}"
    ).items
    pod = next(p for p in pods if p.status.phase == "Running" and p.metadata.deletion_timestamp is None)
    args = [f"{name},{host},{port}" for name, (host, port) in targets.items()]
    output = kubectl("exec", pod.metadata.name, "--", "python", "-c", PROBE, *args, timeout=120).stdout
    import ast

    result: dict[str, str] = ast.literal_eval(output.strip().splitlines()[-1])
    return result


def pod_ip(core: Any, component: str) -> str:
    pods = core.list_namespaced_pod(
        NAMESPACE, label_selector=f"app.kubernetes.io/component={component}"
    ).items
    return str(next(p.status.pod_ip for p in pods if p.status.phase == "Running"))


def test_the_gateway_pod_reaches_tf_serving_and_dns_and_nothing_its_egress_policy_forbids(core: Any) -> None:
    api_server = core.read_namespaced_service("kubernetes", "default").spec.cluster_ip
    serving_ip = pod_ip(core, "serving")
    found = reachable_from(
        core,
        "gateway",
        {
            "tf_serving_grpc": ("species-classifier-serving", 8500),
            "api_server": (api_server, 443),
            "serving_pod_rest_port": (serving_ip, 8501),
            "cloud_metadata": ("169.254.169.254", 80),
        },
    )
    assert found["tf_serving_grpc"] == "open", found
    assert found["dns"] == "open", found
    # Refused or silently dropped, never connected.
    for blocked in ("api_server", "serving_pod_rest_port", "cloud_metadata"):
        assert found[blocked] != "open", found


def test_a_tf_serving_pod_can_open_no_connection_at_all(core: Any) -> None:
    api_server = core.read_namespaced_service("kubernetes", "default").spec.cluster_ip
    found = reachable_from(
        core,
        "serving",
        {"gateway_pod": (pod_ip(core, "gateway"), 9696), "api_server": (api_server, 443)},
    )
    assert found["gateway_pod"] != "open", found
    assert found["api_server"] != "open", found
    assert found["dns"] != "open", found  # the chart and overlays give TF Serving no egress, not even DNS
