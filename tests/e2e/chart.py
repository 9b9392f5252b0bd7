"""The Helm chart on the kind cluster for the level-5 tests: helm, releases, namespaces, pods, results.

A release goes into its own namespace enforcing Pod Security "restricted", with the images the kind path
built (the serving image is whatever the overlay's serving Deployment runs: TF Serving's, or the stand-in's
where TF Serving cannot be pulled), and the golden images for `helm test`.
"""

from __future__ import annotations

import base64
import contextlib
import json
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes import client

from tests.controlplane import cluster
from tests.e2e.kube import CONTEXT, NAMESPACE, REPO, kubectl_binary

CHART = REPO / "charts" / "species-classifier"
HELM = REPO / "bin" / "helm"
WORK = REPO / "build" / "e2e"
# `helm test` classifies three golden images: a Helm release (a Secret) holds at most 1 MiB, and the values
# and the rendered hook ConfigMap each carry the images, base64-encoded. The other labels are checked
# through the NodePort and the port-forward.
HELM_TEST_LABELS = ("leopard", "bird", "blank")
RESTRICTED = {
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/enforce-version": "latest",
}


def run(command: Sequence[str], timeout: float = 600) -> str:
    result = subprocess.run(list(command), capture_output=True, text=True, check=False, timeout=timeout)
    if result.returncode != 0:
        raise AssertionError(
            f"{' '.join(command)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
        )
    return result.stdout


def overlay_images(apps: Any) -> dict[str, str]:
    """component -> image of the overlay's Deployments (what kind-up built and loaded)."""
    images = {}
    for component in ("gateway", "serving"):
        deployment = apps.read_namespaced_deployment(f"species-classifier-{component}", NAMESPACE)
        images[component] = deployment.spec.template.spec.containers[0].image
    return images


def image_values(images: dict[str, str], registry: bool = True) -> list[str]:
    """--set flags pointing the chart at `registry/repository:tag` images (the registry left to the values
    files when `registry` is false)."""
    flags = []
    for component, image in images.items():
        host, rest = image.split("/", 1)
        repository, tag = rest.rsplit(":", 1)
        if registry:
            flags += ["--set", f"{component}.image.registry={host}"]
        flags += [
            "--set",
            f"{component}.image.repository={repository}",
            "--set",
            f"{component}.image.tag={tag}",
        ]
    return flags


def golden_values(golden_dir: Path) -> list[str]:
    WORK.mkdir(parents=True, exist_ok=True)
    flags = []
    for label in HELM_TEST_LABELS:
        encoded = WORK / f"golden-{label}.b64"
        encoded.write_text(
            base64.b64encode((golden_dir / f"{label}.jpg").read_bytes()).decode(), encoding="ascii"
        )
        flags += ["--set-file", f"tests.predict.goldenImages.{label}={encoded}"]
    return flags


@dataclass
class Release:
    name: str
    namespace: str
    base_flags: list[str]

    def helm(self, *args: str, timeout: float = 600) -> str:
        return run(
            [str(HELM), "--kube-context", CONTEXT, "--namespace", self.namespace, *args],
            timeout=timeout,
        )

    def upgrade(self, *extra: str, timeout: str = "600s") -> str:
        return self.helm(
            "upgrade",
            "--install",
            self.name,
            str(CHART),
            "--wait",
            "--timeout",
            timeout,
            *self.base_flags,
            *extra,
        )

    def kubectl(self, *args: str, timeout: float = 300) -> str:
        return run(
            [kubectl_binary(), "--context", CONTEXT, "--namespace", self.namespace, *args], timeout=timeout
        )

    def deployment(self, component: str) -> str:
        return f"deployment/{self.name}-{component}"

    def rollout_status(self, component: str, timeout: str = "600s") -> None:
        self.kubectl("rollout", "status", self.deployment(component), "--timeout", timeout, timeout=700)


def create_namespace(core: Any, name: str) -> None:
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name, labels=RESTRICTED)))


def delete_namespace(core: Any, name: str, timeout: float = 300, wait: bool = True) -> None:
    """Deletes namespace `name` and waits until it is gone (`wait=False`: until its pods are).

    Its pods get a 1 s grace period: a test's namespace is thrown away, and their own (the preStop pause,
    the gateway's drain; up to 45 s with the EKS values) would only make the next test wait. They go before
    the namespace does: first their controllers, leaving the pods (so nothing makes new ones), then the pods,
    and the namespace once none is left. The namespace controller, finding pods still terminating, waits as
    long as their spec's terminationGracePeriodSeconds before it looks again, whatever grace they were
    deleted with. A module's teardown need not wait for the namespace itself (seconds of the namespace
    controller emptying it): the pods, which hold the nodes' CPU and memory, are gone by then, and every
    module's setup deletes its namespace and waits for it before making it again.
    """
    apps = client.AppsV1Api(core.api_client)
    # 404: no such namespace. A pod outliving the bounded wait is left to the namespace controller.
    with contextlib.suppress(client.ApiException, TimeoutError):
        apps.delete_collection_namespaced_deployment(name, propagation_policy="Orphan")
        apps.delete_collection_namespaced_replica_set(name, propagation_policy="Orphan")
        core.delete_collection_namespaced_pod(name, grace_period_seconds=1)
        wait_for(lambda: not core.list_namespaced_pod(name).items, timeout=30, what=f"pods of {name} gone")
    try:
        core.delete_namespace(name)
    except client.ApiException as error:
        if error.status == 404:
            return
        raise
    if wait:
        wait_for(
            lambda: not cluster.exists(lambda: core.read_namespace(name)),
            timeout,
            what=f"namespace {name} gone",
        )


def pods_of(core: Any, namespace: str, release: str, component: str) -> list[Any]:
    selector = f"app.kubernetes.io/instance={release},app.kubernetes.io/component={component}"
    return [
        p
        for p in core.list_namespaced_pod(namespace, label_selector=selector).items
        if p.metadata.deletion_timestamp is None
    ]


def restarts(core: Any, namespace: str, release: str, component: str) -> dict[str, int]:
    return {
        p.metadata.name: sum(s.restart_count for s in p.status.container_statuses or [])
        for p in pods_of(core, namespace, release, component)
    }


def wait_for(predicate: Any, timeout: float, interval: float = 0.5, what: str = "condition") -> float:
    """Polls `predicate` until true; returns the seconds it took."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if predicate():
            return time.monotonic() - start
        time.sleep(interval)
    raise TimeoutError(f"{what} not met after {timeout} s")


def wait_settled(core: Any, namespace: str, timeout: float = 120) -> None:
    """Waits until no pod in `namespace` is terminating: what a previous step rolled is really gone."""
    wait_for(
        lambda: all(p.metadata.deletion_timestamp is None for p in core.list_namespaced_pod(namespace).items),
        timeout,
        what=f"no terminating pod in {namespace}",
    )


def ready_count(core: Any, namespace: str, release: str, component: str) -> int:
    return sum(pod_ready(p) for p in pods_of(core, namespace, release, component))


def pod_ready(pod: Any) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])


def http_status(url: str, timeout: float = 3.0) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
    except OSError:
        return None


def record(name: str, result: dict[str, Any]) -> None:
    """Adds one measured result to build/e2e/results.json (the README's level-5 numbers come from it)."""
    WORK.mkdir(parents=True, exist_ok=True)
    path = WORK / "results.json"
    results = json.loads(path.read_text()) if path.exists() else {}
    results[name] = result
    path.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")


def load_balancer_address(core: Any, namespace: str, timeout: float = 120) -> str:
    service = "species-classifier-gateway"

    def address() -> str | None:
        ingress = core.read_namespaced_service(service, namespace).status.load_balancer.ingress
        return ingress[0].ip if ingress else None

    wait_for(lambda: address() is not None, timeout, what=f"an address for {namespace}/{service}")
    found = address()
    assert found
    return found


def predict(url: str, label: str, golden_dir: Path) -> dict[str, Any]:
    request = urllib.request.Request(
        f"{url}/predict",
        data=(golden_dir / f"{label}.jpg").read_bytes(),
        headers={"Content-Type": "image/jpeg"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        result: dict[str, Any] = json.load(response)
        return result
