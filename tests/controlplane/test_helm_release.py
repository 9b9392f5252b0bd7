"""The chart's whole release lifecycle with the pinned helm against the control plane: install with the kind
values, `helm test`, an upgrade that changes an image tag, rollback, uninstall; and an upgrade that cannot
roll out. kwok plays the pods: they become ready at once (or never, for an image tagged `never-ready`), and a
`helm test` pod runs to completion, so these tests prove what Kubernetes does with the objects, not what the
containers do."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.controlplane import cluster
from tests.packaging import render
from tests.support.manifests import VERSION, component_name, of_kind

CHART = str(render.CHART)
KIND_VALUES = str(render.CHART / "values-kind.yaml")
TIMEOUT = "90s"
SERVICE_PORTS = {"gateway": {"http": 9696}, "serving": {"grpc": 8500, "http": 8501}}


@pytest.fixture
def release_namespace(helm_ready: cluster.ControlPlane, request: pytest.FixtureRequest) -> Iterator[str]:
    """A namespace of its own for each test's release, labelled like the kind overlay's Namespace (Pod
    Security restricted). `helm uninstall --wait` frees the kind values' NodePort 30080 for the next test."""
    [namespace] = of_kind(render.render_kustomize("kind"), "Namespace")
    name = cluster.unique_namespace_name(request.node.name)
    helm_ready.create_namespace(name, labels=namespace["metadata"]["labels"])
    try:
        yield name
    finally:
        helm_ready.helm("uninstall", cluster.RELEASE, "-n", name, "--ignore-not-found", "--wait", check=False)
        helm_ready.delete_namespace(name, wait=False)


def install(cp: cluster.ControlPlane, namespace: str, *extra: str) -> None:
    cp.helm(
        "install",
        cluster.RELEASE,
        CHART,
        "-n",
        namespace,
        "-f",
        KIND_VALUES,
        "--wait",
        "--timeout",
        TIMEOUT,
        *extra,
    )


def kind_image(component: str, tag: str = VERSION) -> str:
    """The image values-kind.yaml runs, with the release's tag unless another is given."""
    return f"docker.io/species-classifier/{component}:{tag}"


def image_of(cp: cluster.ControlPlane, namespace: str, component: str) -> str:
    dep = cp.apps.read_namespaced_deployment(component_name(component), namespace)
    return str(dep.spec.template.spec.containers[0].image)


def test_helm_install_with_kind_values_rolls_out_both_workloads_behind_their_services(
    helm_ready: cluster.ControlPlane, release_namespace: str
) -> None:
    install(helm_ready, release_namespace)

    for component in cluster.COMPONENTS:
        name = component_name(component)
        cluster.wait_for_rollout(helm_ready, release_namespace, name)
        cluster.assert_service_endpoints_are_deployment_pods(
            helm_ready, release_namespace, name, name, SERVICE_PORTS[component]
        )
    assert image_of(helm_ready, release_namespace, "gateway") == kind_image("gateway")
    assert image_of(helm_ready, release_namespace, "serving") == kind_image("serving")


def test_helm_test_creates_its_pod_in_the_restricted_namespace(
    helm_ready: cluster.ControlPlane, release_namespace: str
) -> None:
    install(helm_ready, release_namespace)
    with cluster.WatchRecorder(
        helm_ready.core.list_namespaced_pod, release_namespace, "app.kubernetes.io/component=test"
    ) as test_pods:
        result = helm_ready.helm("test", cluster.RELEASE, "-n", release_namespace, "--timeout", TIMEOUT)

    assert re.search(r"^Phase:\s+Succeeded$", result.stdout, re.MULTILINE), result.stdout
    # The hook pod is deleted once it succeeds (hook-delete-policy), so its creation is what the watch saw.
    assert test_pods.names_added() == [f"{cluster.RELEASE}-test-predict"]


def test_helm_test_with_golden_images_mounts_them_from_a_hook_configmap_and_cleans_both_up(
    helm_ready: cluster.ControlPlane, release_namespace: str, tmp_path: Path
) -> None:
    # kwok runs no container, so any bytes stand in for the JPEG: what is tested is the hook objects.
    golden = tmp_path / "leopard.b64"
    golden.write_text(base64.b64encode(b"\xff\xd8\xff\xe0 stand-in for build/golden/leopard.jpg").decode())
    install(helm_ready, release_namespace, "--set-file", f"tests.predict.goldenImages.leopard={golden}")
    selector = "app.kubernetes.io/component=test"
    with (
        cluster.WatchRecorder(helm_ready.core.list_namespaced_pod, release_namespace, selector) as pods,
        cluster.WatchRecorder(
            helm_ready.core.list_namespaced_config_map, release_namespace, selector
        ) as maps,
    ):
        helm_ready.helm("test", cluster.RELEASE, "-n", release_namespace, "--timeout", TIMEOUT)

    assert maps.names_added() == [f"{cluster.RELEASE}-test-golden"]
    [pod] = [obj for kind, obj in pods.events if kind == "ADDED"]
    assert [v.config_map.name for v in pod.spec.volumes if v.config_map] == [f"{cluster.RELEASE}-test-golden"]
    # hook-delete-policy hook-succeeded: neither outlives a passing test.
    cluster.wait_until(
        lambda: (
            not helm_ready.core.list_namespaced_config_map(release_namespace, label_selector=selector).items
            and not helm_ready.core.list_namespaced_pod(release_namespace, label_selector=selector).items
        ),
        10,
        "the helm test hook objects were not deleted after the test passed",
    )


def test_helm_upgrade_of_an_image_tag_rolls_out_a_new_replicaset_without_losing_a_ready_pod(
    helm_ready: cluster.ControlPlane, release_namespace: str
) -> None:
    gateway = component_name("gateway")
    # Three gateway replicas, so the rollout takes several surge-then-retire steps.
    install(helm_ready, release_namespace, "--set", "gateway.replicaCount=3")
    dep = cluster.wait_for_rollout(helm_ready, release_namespace, gateway)
    first_replicasets = {
        rs.metadata.name for rs in cluster.owned_replicasets(helm_ready, release_namespace, dep)
    }

    with cluster.WatchRecorder(helm_ready.apps.list_namespaced_deployment, release_namespace) as recorder:
        helm_ready.helm(
            "upgrade",
            cluster.RELEASE,
            CHART,
            "-n",
            release_namespace,
            "-f",
            KIND_VALUES,
            "--set",
            "gateway.replicaCount=3",
            "--set",
            f"gateway.image.tag={cluster.NEXT_TAG}",
            "--wait",
            "--timeout",
            TIMEOUT,
        )
        dep = cluster.wait_for_rollout(helm_ready, release_namespace, gateway)

    assert image_of(helm_ready, release_namespace, "gateway") == kind_image("gateway", cluster.NEXT_TAG)
    replicasets = cluster.owned_replicasets(helm_ready, release_namespace, dep)
    new = [rs for rs in replicasets if rs.metadata.name not in first_replicasets]
    assert len(new) == 1, "the upgrade did not create exactly one new ReplicaSet"
    assert new[0].status.ready_replicas == 3
    assert all(rs.spec.replicas == 0 for rs in replicasets if rs.metadata.name in first_replicasets)
    lowest, desired = recorder.lowest_available(gateway)
    assert lowest >= desired, f"available gateway replicas fell to {lowest} of {desired} during the rollout"
    # The serving Deployment was not touched by a gateway-only change.
    assert image_of(helm_ready, release_namespace, "serving") == kind_image("serving")

    with cluster.WatchRecorder(helm_ready.apps.list_namespaced_deployment, release_namespace) as recorder:
        helm_ready.helm(
            "rollback", cluster.RELEASE, "1", "-n", release_namespace, "--wait", "--timeout", TIMEOUT
        )
        cluster.wait_for_rollout(helm_ready, release_namespace, gateway)

    assert image_of(helm_ready, release_namespace, "gateway") == kind_image("gateway")
    lowest, desired = recorder.lowest_available(gateway)
    assert lowest >= desired, f"available gateway replicas fell to {lowest} of {desired} during the rollback"
    history = helm_ready.helm("history", cluster.RELEASE, "-n", release_namespace, "-o", "json").stdout
    assert '"revision":3' in history.replace(" ", "")


def test_helm_uninstall_leaves_nothing_behind(
    helm_ready: cluster.ControlPlane, release_namespace: str
) -> None:
    install(helm_ready, release_namespace)
    helm_ready.helm("test", cluster.RELEASE, "-n", release_namespace, "--timeout", TIMEOUT)

    helm_ready.helm("uninstall", cluster.RELEASE, "-n", release_namespace, "--wait", "--timeout", TIMEOUT)

    def leftovers() -> list[str]:
        kinds = helm_ready.kubectl(
            "api-resources", "--namespaced", "--verbs=list", "-o", "name"
        ).stdout.split()
        # Events are the cluster's record of what happened, not objects the release owns.
        kinds = [k for k in kinds if k not in {"events", "events.events.k8s.io"}]
        names = helm_ready.kubectl(
            "get", ",".join(kinds), "-n", release_namespace, "-o", "name"
        ).stdout.split()
        # Every namespace gets these from the control plane itself.
        own = {"configmap/kube-root-ca.crt", "serviceaccount/default"}
        return sorted(set(names) - own)

    remaining: list[str] = []

    def nothing_left() -> bool:
        remaining[:] = leftovers()
        return not remaining

    cluster.wait_until(nothing_left, 30, f"objects left after helm uninstall: {remaining}")


def test_a_helm_upgrade_whose_pods_never_become_ready_fails_and_keeps_the_old_pods_serving(
    helm_ready: cluster.ControlPlane, release_namespace: str
) -> None:
    gateway = component_name("gateway")
    install(helm_ready, release_namespace)
    cluster.wait_for_rollout(helm_ready, release_namespace, gateway)
    serving_before = {
        p.metadata.name for p in cluster.deployment_pods(helm_ready, release_namespace, gateway)
    }

    upgrade = helm_ready.helm(
        "upgrade",
        cluster.RELEASE,
        CHART,
        "-n",
        release_namespace,
        "-f",
        KIND_VALUES,
        "--set",
        f"gateway.image.tag={cluster.NEVER_READY_TAG}",
        "--wait",
        "--timeout",
        "10s",
        check=False,
    )

    assert upgrade.returncode != 0, upgrade.stdout
    with pytest.raises(AssertionError, match="ImagePullBackOff"):
        cluster.wait_for_rollout(helm_ready, release_namespace, gateway, timeout=5)
    # maxUnavailable 0: the old pod keeps serving while the new one cannot start.
    endpoints = cluster.endpoint_pods(helm_ready, release_namespace, gateway)
    assert {name for name, ep in endpoints.items() if ep["ready"]} == serving_before

    helm_ready.helm("rollback", cluster.RELEASE, "1", "-n", release_namespace, "--wait", "--timeout", TIMEOUT)
    cluster.wait_for_rollout(helm_ready, release_namespace, gateway)
    assert image_of(helm_ready, release_namespace, "gateway") == kind_image("gateway")
