"""The level-4 control plane as the tests see it: where its binaries and kubeconfig are, how to run kubectl
and helm against it, and the checks the tests assert (each raises AssertionError naming what is wrong, so the
"broken copy" tests can show that every check fails when it should).

The control plane itself is started by hack/sim/cluster.sh (kwokctl's binary runtime); see conftest.py.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import re
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException

from tests.support.manifests import VERSION, Manifest, of_kind, pod_templates

REPO = Path(__file__).resolve().parents[2]
SIM_MK = REPO / "hack" / "sim.mk"
SIM_SCRIPT = REPO / "hack" / "sim" / "cluster.sh"
BIN = REPO / "bin"
HELM = BIN / "helm"

NAMESPACE = "species-classifier"
RELEASE = "species-classifier"
COMPONENTS = ("gateway", "serving")
# Pod Security admission's namespace labels: https://kubernetes.io/docs/concepts/security/pod-security-admission/
RESTRICTED = {
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/enforce-version": "latest",
}
# kwok never makes a pod with an image of this tag ready (hack/sim/kwok.yaml, stage pod-image-never-ready).
NEVER_READY_TAG = "never-ready"
# An image tag other than the release's, for upgrade tests.
NEXT_TAG = f"{VERSION}-next"


def sim_version(name: str) -> str:
    """A version pinned in hack/sim.mk (KUBE_VERSION, ETCD_VERSION, KWOK_VERSION), read by make and tests."""
    match = re.search(rf"^{name} := (\S+)$", SIM_MK.read_text(), re.MULTILINE)
    if not match:
        raise LookupError(f"{name} is not set in {SIM_MK}")
    return match.group(1)


@dataclass
class ControlPlane:
    """A running control plane: its kubeconfig, the pinned kubectl and typed API clients."""

    kubeconfig: Path
    kubectl_path: Path
    api: client.ApiClient = field(init=False)

    def __post_init__(self) -> None:
        self.api = config.new_client_from_config(config_file=str(self.kubeconfig))

    @property
    def core(self) -> client.CoreV1Api:
        return client.CoreV1Api(self.api)

    @property
    def apps(self) -> client.AppsV1Api:
        return client.AppsV1Api(self.api)

    @property
    def discovery(self) -> client.DiscoveryV1Api:
        return client.DiscoveryV1Api(self.api)

    def run(
        self, argv: list[str], stdin: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run a CLI (kubectl, helm) with this cluster's kubeconfig; a failure names the command."""
        result = subprocess.run(
            argv,
            input=stdin,
            capture_output=True,
            text=True,
            cwd=REPO,
            env={**os.environ, "KUBECONFIG": str(self.kubeconfig)},
            check=False,
            timeout=300,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"{' '.join(argv)} exited {result.returncode}:\n"
                f"{result.stderr.strip()}\n{result.stdout.strip()}"
            )
        return result

    def kubectl(
        self, *args: str, stdin: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        return self.run([str(self.kubectl_path), *args], stdin=stdin, check=check)

    def helm(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run([str(HELM), *args], check=check)

    def apply(
        self, objects: Iterable[Manifest], *extra: str, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """`kubectl apply -f -` of the given objects (extra flags such as --dry-run=server appended)."""
        return self.kubectl("apply", "-f", "-", *extra, stdin=yaml.safe_dump_all(list(objects)), check=check)

    # --- namespaces ------------------------------------------------------------------------------------

    def create_namespace(self, name: str, labels: dict[str, str] | None = None) -> None:
        body = client.V1Namespace(metadata=client.V1ObjectMeta(name=name, labels=labels or {}))
        self.core.create_namespace(body)
        # The ServiceAccount admission plugin wants the namespace's default ServiceAccount before pods.
        wait_until(
            lambda: exists(lambda: self.core.read_namespaced_service_account("default", name)),
            60,
            f"namespace {name} never got its default ServiceAccount",
        )

    def delete_namespace(self, name: str, wait: bool = True, timeout: float = 120) -> None:
        """Delete a namespace; with `wait`, until it is gone (its name and NodePorts are free again)."""
        with contextlib.suppress(ApiException):
            self.core.delete_namespace(name)
        if not wait:
            return
        wait_until(
            lambda: not exists(lambda: self.core.read_namespace(name)),
            timeout,
            f"namespace {name} still terminating after {timeout}s",
        )


def unique_namespace_name(test_name: str) -> str:
    """A valid, unique namespace name that says which test made it."""
    slug = re.sub(r"[^a-z0-9]+", "-", test_name.removeprefix("test_").lower())[:40].strip("-")
    return f"sim-{slug}-{uuid.uuid4().hex[:5]}"


def exists(read: Callable[[], object]) -> bool:
    """Whether `read` (an API read of one object) finds it: False on 404, any other error raised."""
    try:
        read()
    except ApiException as error:
        if error.status == 404:
            return False
        raise
    return True


def wait_until(condition: Callable[[], bool], timeout: float, message: str, interval: float = 0.5) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(message)
        time.sleep(interval)


# --- renders -----------------------------------------------------------------------------------------


def into_namespace(objects: Iterable[Manifest], namespace: str) -> list[Manifest]:
    """A render moved into another namespace, so a modified copy never touches the real one.

    The Namespace object is dropped (the test creates its own) and fixed NodePorts are released: node ports
    are cluster-wide, and the kind overlay's 30080 may be held by the real apply.
    """
    moved = []
    for obj in objects:
        if obj.get("kind") == "Namespace":
            continue
        obj["metadata"]["namespace"] = namespace
        for port in obj.get("spec", {}).get("ports", []) if obj.get("kind") == "Service" else []:
            port.pop("nodePort", None)
        moved.append(obj)
    return moved


# --- checks ------------------------------------------------------------------------------------------


def pod_security_rejections(cp: ControlPlane, namespace: str, objects: Iterable[Manifest]) -> dict[str, str]:
    """Create every pod of the render as a Pod with server-side dry run; the admission errors, by source.

    Pod Security admission enforces on Pods only (a Deployment merely draws a warning), so this is what a
    ReplicaSet controller or `helm test` would meet in the namespace.
    """
    objects = list(objects)
    # The ServiceAccount admission plugin runs first and wants the pods' ServiceAccounts to exist.
    service_accounts = of_kind(objects, "ServiceAccount")
    if service_accounts:
        cp.apply(into_namespace(copy.deepcopy(service_accounts), namespace))
    rejected: dict[str, str] = {}
    for template in pod_templates(objects):
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"generateName": "psa-check-", "labels": template.labels},
            "spec": template.spec,
        }
        try:
            cp.core.create_namespaced_pod(namespace, pod, dry_run="All")
        except ApiException as error:
            message = json.loads(error.body).get("message", error.body) if error.body else str(error)
            rejected[template.owner] = message
    return rejected


def wait_for_rollout(cp: ControlPlane, namespace: str, name: str, timeout: float = 90) -> client.V1Deployment:
    """Wait until a Deployment's newest ReplicaSet has every replica ready and available, no old pod left.

    The same condition as `kubectl rollout status`; on timeout the error carries the Deployment status and the
    ReplicaSets' failure conditions (a Pod Security rejection shows up there as FailedCreate).
    """
    deadline = time.monotonic() + timeout
    while True:
        dep = cp.apps.read_namespaced_deployment(name, namespace)
        status, want = dep.status, dep.spec.replicas
        if (
            (status.observed_generation or 0) >= dep.metadata.generation
            and (status.updated_replicas or 0) == want
            and (status.replicas or 0) == want
            and (status.available_replicas or 0) == want
            and (status.ready_replicas or 0) == want
        ):
            return dep
        if time.monotonic() > deadline:
            raise AssertionError(
                f"Deployment {namespace}/{name} did not roll out in {timeout}s: "
                + _diagnose(cp, namespace, dep)
            )
        time.sleep(0.5)


def _diagnose(cp: ControlPlane, namespace: str, dep: client.V1Deployment) -> str:
    status = dep.status
    lines = [
        f"replicas={status.replicas} updated={status.updated_replicas} ready={status.ready_replicas} "
        f"available={status.available_replicas} (want {dep.spec.replicas})"
    ]
    for cond in status.conditions or []:
        lines.append(f"Deployment {cond.type}={cond.status} {cond.reason}: {cond.message}")
    for rs in owned_replicasets(cp, namespace, dep):
        for cond in rs.status.conditions or []:
            lines.append(
                f"ReplicaSet {rs.metadata.name} {cond.type}={cond.status} {cond.reason}: {cond.message}"
            )
    for pod in deployment_pods(cp, namespace, dep.metadata.name):
        waiting = [
            cs.state.waiting.reason
            for cs in pod.status.container_statuses or []
            if cs.state and cs.state.waiting
        ]
        lines.append(f"Pod {pod.metadata.name} phase={pod.status.phase} waiting={waiting}")
    return "; ".join(lines)


def owned_replicasets(
    cp: ControlPlane, namespace: str, dep: client.V1Deployment
) -> list[client.V1ReplicaSet]:
    return [
        rs
        for rs in cp.apps.list_namespaced_replica_set(namespace).items
        if any(ref.uid == dep.metadata.uid for ref in rs.metadata.owner_references or [])
    ]


def deployment_pods(cp: ControlPlane, namespace: str, name: str) -> list[client.V1Pod]:
    """The live (not terminating) pods of a Deployment, found by ownership rather than by labels."""
    dep = cp.apps.read_namespaced_deployment(name, namespace)
    rs_uids = {rs.metadata.uid for rs in owned_replicasets(cp, namespace, dep)}
    return [
        pod
        for pod in cp.core.list_namespaced_pod(namespace).items
        if pod.metadata.deletion_timestamp is None
        and any(ref.uid in rs_uids for ref in pod.metadata.owner_references or [])
    ]


def endpoint_pods(cp: ControlPlane, namespace: str, service: str) -> dict[str, dict[str, Any]]:
    """Pods named by a Service's EndpointSlices: pod name -> addresses, readiness and the slice's ports."""
    found: dict[str, dict[str, Any]] = {}
    slices = cp.discovery.list_namespaced_endpoint_slice(
        namespace, label_selector=f"kubernetes.io/service-name={service}"
    ).items
    for eps in slices:
        ports = sorted((p.name, p.port) for p in eps.ports or [])
        for ep in eps.endpoints or []:
            if ep.target_ref is None or ep.target_ref.kind != "Pod":
                continue
            found[ep.target_ref.name] = {
                "addresses": sorted(ep.addresses),
                "ready": bool(ep.conditions and ep.conditions.ready),
                "ports": ports,
            }
    return found


def assert_service_endpoints_are_deployment_pods(
    cp: ControlPlane,
    namespace: str,
    service: str,
    deployment: str,
    ports: dict[str, int],
    timeout: float = 30,
) -> None:
    """A Service's EndpointSlices list exactly the Deployment's pods: ready, at the pod IP, right ports.

    The EndpointSlice controller catches up asynchronously, so the comparison is retried until `timeout`.
    """
    want_ports = sorted(ports.items())
    last = ""
    deadline = time.monotonic() + timeout
    while True:
        pods = {pod.metadata.name: pod for pod in deployment_pods(cp, namespace, deployment)}
        endpoints = endpoint_pods(cp, namespace, service)
        problems = []
        if set(endpoints) != set(pods):
            problems.append(
                f"EndpointSlices of Service {service} list pods {sorted(endpoints)}, "
                f"Deployment {deployment} has {sorted(pods)}"
            )
        for name, ep in endpoints.items():
            pod = pods.get(name)
            if pod is not None and ep["addresses"] != sorted(ip.ip for ip in pod.status.pod_ips or []):
                problems.append(f"endpoint {name} has addresses {ep['addresses']}, pod IPs differ")
            if not ep["ready"]:
                problems.append(f"endpoint {name} is not ready")
            if ep["ports"] != want_ports:
                problems.append(f"endpoint {name} has ports {ep['ports']}, want {want_ports}")
        if not pods:
            problems.append(f"Deployment {deployment} has no pods")
        if not problems:
            return
        last = "; ".join(problems)
        if time.monotonic() > deadline:
            raise AssertionError(last)
        time.sleep(0.5)


@dataclass
class WatchRecorder:
    """Watches one kind of object in a namespace from a thread and records every (event type, object) seen.

    Short watches resumed from the last resourceVersion: no change is missed between two of them, and the
    thread stops within a second of leaving the `with` block.
    """

    list_function: Callable[..., Any]
    namespace: str
    label_selector: str = ""
    events: list[tuple[str, Any]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> WatchRecorder:
        # List first, then watch from the list's resourceVersion: the state before the `with` body is recorded
        # before it runs, and no change after it is missed.
        listed = self.list_function(self.namespace, label_selector=self.label_selector)
        self.events.extend(("LISTED", obj) for obj in listed.items)
        resource_version = listed.metadata.resource_version

        def run() -> None:
            nonlocal resource_version
            while not self._stop.is_set():
                for event in watch.Watch().stream(
                    self.list_function,
                    self.namespace,
                    label_selector=self.label_selector,
                    resource_version=resource_version,
                    timeout_seconds=1,
                ):
                    resource_version = event["object"].metadata.resource_version
                    self.events.append((event["type"], event["object"]))

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(10)

    def names_added(self) -> list[str]:
        return [obj.metadata.name for kind, obj in self.events if kind == "ADDED"]

    def lowest_available(self, deployment: str) -> tuple[int, int]:
        """For a Deployment watch: (fewest available replicas seen, desired replicas at that moment)."""
        seen = [
            (obj.status.available_replicas or 0, obj.spec.replicas)
            for _kind, obj in self.events
            if obj.metadata.name == deployment
        ]
        if not seen:
            raise AssertionError(f"no status of Deployment {deployment} was observed")
        return min(seen, key=lambda s: s[0] - s[1])
