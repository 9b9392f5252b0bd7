"""Level 5: the cluster `make kind-up` made serves the classifier end to end.

Talks to the kubeconfig context `kind-species-classifier` with the `kubernetes` client: both rollouts
complete, each Service's EndpointSlices list one ready endpoint per pod, the headless serving Service lists
every serving pod, and every golden image is labelled correctly through the gateway's NodePort, published
on http://localhost:8080 by kind-config.yaml. Skipped, with the reason, when no such cluster answers.
"""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from model import spec

pytestmark = pytest.mark.e2e

CONTEXT = "kind-species-classifier"
NAMESPACE = "species-classifier"
DEPLOYMENTS = ("species-classifier-gateway", "species-classifier-serving")
NODE_PORT_URL = "http://localhost:8080"

try:
    from kubernetes import client, config

    config.load_kube_config(context=CONTEXT)
    client.VersionApi().get_code(_request_timeout=5)
except Exception as error:  # no kubeconfig, no such context, or the API server does not answer
    pytest.skip(f"no kind cluster reachable: {error}", allow_module_level=True)


@pytest.fixture(scope="module")
def apps() -> Any:
    return client.AppsV1Api()


@pytest.fixture(scope="module")
def core() -> Any:
    return client.CoreV1Api()


def selector_of(deployment: Any) -> str:
    return ",".join(f"{k}={v}" for k, v in deployment.spec.selector.match_labels.items())


def ready_endpoints(service: str) -> list[Any]:
    slices = client.DiscoveryV1Api().list_namespaced_endpoint_slice(
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
def test_the_service_has_one_ready_endpoint_per_pod(apps: Any, name: str) -> None:
    # Service and Deployment share the name (K8S_CONTRACT.md).
    wanted = apps.read_namespaced_deployment(name, NAMESPACE).spec.replicas
    assert len(ready_endpoints(name)) == wanted


def test_the_headless_serving_service_lists_every_serving_pod(apps: Any, core: Any) -> None:
    name = "species-classifier-serving"
    assert core.read_namespaced_service(name, NAMESPACE).spec.cluster_ip == "None"
    deployment = apps.read_namespaced_deployment(name, NAMESPACE)
    pods = core.list_namespaced_pod(NAMESPACE, label_selector=selector_of(deployment)).items
    running = {p.metadata.name: p.status.pod_ip for p in pods if p.status.phase == "Running"}
    endpoints = ready_endpoints(name)
    assert {e.target_ref.name for e in endpoints} == set(running)
    assert {address for e in endpoints for address in e.addresses} == set(running.values())


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


def test_a_pod_without_the_gateway_labels_cannot_reach_tf_serving(core: Any) -> None:
    # kind enforces NetworkPolicy (kindnet, since kind v0.24). The gateway image has Python; this pod runs it
    # with other labels and tries TF Serving's gRPC port. The golden-image test is the positive control.
    name = "e2e-networkpolicy-probe"
    connect = (
        "import socket, sys\n"
        "try:\n"
        "    socket.create_connection(('species-classifier-serving', 8500), timeout=5).close()\n"
        "except OSError as error:\n"
        "    print('blocked:', error); sys.exit(3)\n"
        "print('connected'); sys.exit(0)\n"
    )
    pod = client.V1Pod(
        metadata=client.V1ObjectMeta(name=name, labels={"app.kubernetes.io/name": "e2e-probe"}),
        spec=client.V1PodSpec(
            restart_policy="Never",
            automount_service_account_token=False,
            security_context=client.V1PodSecurityContext(
                run_as_non_root=True,
                run_as_user=10001,
                run_as_group=10001,
                seccomp_profile=client.V1SeccompProfile(type="RuntimeDefault"),
            ),
            containers=[
                client.V1Container(
                    name="probe",
                    image="docker.io/species-classifier/gateway:0.1.0",
                    image_pull_policy="IfNotPresent",
                    command=["python", "-c", connect],
                    security_context=client.V1SecurityContext(
                        allow_privilege_escalation=False,
                        read_only_root_filesystem=True,
                        capabilities=client.V1Capabilities(drop=["ALL"]),
                    ),
                )
            ],
        ),
    )
    core.create_namespaced_pod(NAMESPACE, pod)
    try:
        deadline = time.monotonic() + 120
        phase = None
        while time.monotonic() < deadline:
            phase = core.read_namespaced_pod(name, NAMESPACE).status.phase
            if phase in ("Succeeded", "Failed"):
                break
            time.sleep(2)
        output = core.read_namespaced_pod_log(name, NAMESPACE)
        assert phase == "Failed", f"phase {phase}: {output}"
        assert output.startswith("blocked:"), output
    finally:
        core.delete_namespaced_pod(name, NAMESPACE, grace_period_seconds=0)
