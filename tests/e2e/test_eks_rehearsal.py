"""Level 5: the EKS install rehearsed on kind, with a real LoadBalancer, real autoscaling, spread and budgets.

EKS itself cannot be reached from here, but everything in its install except AWS's own controllers can run
on the kind cluster: `make kind-addons` adds MetalLB (a LoadBalancer implementation, addresses from kind's
Docker network) and metrics-server (the HPAs' metrics). The chart goes in with values-eks.yaml plus
ci/eks-on-kind-values.yaml (registry, load balancer class, a short scale-in window; level 3 checks it changes
nothing else), and k8s/overlays/eks-on-kind is applied too. Traffic goes to the load balancer's address on
kind's network, which this project created. Measured numbers go to build/e2e/results.json.
"""

from __future__ import annotations

import ipaddress
import re
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from model import spec
from tests.e2e import chart
from tests.e2e.kube import CONTEXT, kubectl_binary
from tests.e2e.load import SteadyLoad

NAMESPACE = "species-classifier-eks-chart"
OVERLAY_NAMESPACE = "species-classifier-eks"
RELEASE = "species-classifier"


@pytest.fixture(scope="module")
def release(addons: None, core: Any, apps: Any, golden_dir: Path) -> Iterator[chart.Release]:
    images = chart.overlay_images(apps)
    flags = [
        "-f",
        str(chart.CHART / "values-eks.yaml"),
        "-f",
        str(chart.CHART / "ci" / "eks-on-kind-values.yaml"),
        # The repositories and tags kind-up loaded (the stand-in's where TF Serving cannot be pulled); the
        # registry is the rehearsal file's.
        *chart.image_values(images, registry=False),
        *chart.golden_values(golden_dir),
    ]
    chart.delete_namespace(core, NAMESPACE)
    chart.create_namespace(core, NAMESPACE)
    installed = chart.Release(RELEASE, NAMESPACE, flags)
    installed.upgrade()
    try:
        # An address is assigned at once, but MetalLB answers ARP for it only once a speaker has taken it up:
        # seconds, longer on a busy machine. The tests start from a load balancer that serves.
        url = f"http://{chart.load_balancer_address(core, NAMESPACE)}"
        chart.wait_for(lambda: chart.http_status(f"{url}/readyz") == 200, 180, 1, what=f"{url}/readyz 200")
        yield installed
    finally:
        chart.delete_namespace(core, NAMESPACE, wait=False)  # the release with it: its objects all live there


def kind_network() -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    subnets = subprocess.run(
        ["docker", "network", "inspect", "kind", "--format", "{{range .IPAM.Config}}{{.Subnet}} {{end}}"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout.split()
    return ipaddress.ip_network(next(s for s in subnets if ":" not in s))


def test_the_gateway_service_gets_an_address_from_metallb_on_kinds_network(
    release: chart.Release, core: Any
) -> None:
    address = chart.load_balancer_address(core, NAMESPACE)
    assert ipaddress.ip_address(address) in kind_network()
    chart.record("eks_rehearsal_load_balancer", {"address": address})


def test_every_golden_image_comes_back_with_its_label_through_the_load_balancer(
    release: chart.Release, core: Any, golden_dir: Path
) -> None:
    url = f"http://{chart.load_balancer_address(core, NAMESPACE)}"
    for label in spec.LABELS:
        body = chart.predict(url, label, golden_dir)
        assert body["label"] == label, body


def test_the_notes_tell_the_truth_about_how_to_reach_the_load_balancer(
    release: chart.Release, core: Any
) -> None:
    notes = release.helm("get", "notes", RELEASE)
    command = re.search(r"ADDRESS=\$\((kubectl .*)\)", notes)
    assert command, notes
    argv = command.group(1).replace("'", "").split()
    printed = subprocess.run(
        [kubectl_binary(), "--context", CONTEXT, *argv[1:]],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    assert printed == chart.load_balancer_address(core, NAMESPACE)
    port = re.search(r"http://\$ADDRESS:(\d+)/predict", notes)
    assert port, notes
    assert chart.http_status(f"http://{printed}:{port.group(1)}/readyz") == 200


def test_helm_test_passes_against_the_eks_values(release: chart.Release) -> None:
    output = release.helm("test", RELEASE, "--logs", "--timeout", "300s")
    wanted = len(chart.HELM_TEST_LABELS)
    assert f"{wanted}/{wanted} golden images labelled correctly" in output, output


def test_the_two_gateways_and_the_two_tf_servings_run_on_different_workers(
    release: chart.Release, core: Any
) -> None:
    for component in ("gateway", "serving"):
        pods = chart.pods_of(core, NAMESPACE, RELEASE, component)
        assert len(pods) == 2, component
        assert len({p.spec.node_name for p in pods}) == 2, f"{component}: {[p.spec.node_name for p in pods]}"


def test_deleting_one_of_two_serving_pods_loses_no_request(
    release: chart.Release, core: Any, golden_dir: Path
) -> None:
    url = f"http://{chart.load_balancer_address(core, NAMESPACE)}"
    victim = chart.pods_of(core, NAMESPACE, RELEASE, "serving")[0].metadata.name
    with SteadyLoad(url, golden_dir) as load:
        time.sleep(3)
        core.delete_namespaced_pod(victim, NAMESPACE, grace_period_seconds=0)
        chart.wait_for(
            lambda: chart.ready_count(core, NAMESPACE, RELEASE, "serving") == 2,
            300,
            what="two serving pods Ready again",
        )
        time.sleep(3)
    report = load.report()
    chart.record("eks_rehearsal_one_of_two_serving_pods_deleted", report.summary())
    assert report.failed == 0, report.describe_failures()


def test_draining_a_worker_respects_the_budgets_and_loses_no_request(
    release: chart.Release, core: Any, golden_dir: Path
) -> None:
    url = f"http://{chart.load_balancer_address(core, NAMESPACE)}"
    node = chart.pods_of(core, NAMESPACE, RELEASE, "gateway")[0].spec.node_name
    fewest_ready = {"gateway": 2, "serving": 2}
    stop = threading.Event()

    def watch() -> None:
        while not stop.wait(0.5):
            for component in fewest_ready:
                ready = chart.ready_count(core, NAMESPACE, RELEASE, component)
                fewest_ready[component] = min(fewest_ready[component], ready)

    watcher = threading.Thread(target=watch, daemon=True)
    started = time.monotonic()
    # 5 requests/s, not 10: the drain restarts TF Serving pods of both installs on the other worker, and on
    # this machine's two cores their start (TensorFlow's import, about a core each for ~15 s) leaves the one
    # gateway left too little CPU for 10/s; its MAX_IN_FLIGHT admission then refuses a few requests with 503
    # and Retry-After (measured: 2 of 364). On EKS the nodes have 4 vCPUs each.
    with SteadyLoad(url, golden_dir, rate=5) as load:
        watcher.start()
        try:
            chart.run(
                [
                    kubectl_binary(),
                    "--context",
                    CONTEXT,
                    "drain",
                    node,
                    "--ignore-daemonsets",
                    "--delete-emptydir-data",
                    "--timeout",
                    "600s",
                ],
                timeout=700,
            )
            drained = time.monotonic() - started
            time.sleep(5)
        finally:
            # Maintenance done: the node comes back, and the replacements that did not fit on the other
            # worker (two nodes of this machine's two cores) are scheduled again.
            chart.run([kubectl_binary(), "--context", CONTEXT, "uncordon", node])
        for component in ("gateway", "serving"):
            release.rollout_status(component)
        time.sleep(3)
        stop.set()
        watcher.join()
    report = load.report()
    chart.record(
        "eks_rehearsal_drain",
        {"drain_s": round(drained, 1), "fewest_ready": dict(fewest_ready), **report.summary()},
    )
    assert report.failed == 0, report.describe_failures()
    assert fewest_ready["gateway"] >= 1
    assert fewest_ready["serving"] >= 1


def hpa(kind_api: Any, component: str) -> Any:
    return client.AutoscalingV2Api(kind_api).read_namespaced_horizontal_pod_autoscaler(
        f"{RELEASE}-{component}", NAMESPACE
    )


def hpa_status(kind_api: Any, component: str) -> Any:
    return hpa(kind_api, component).status


def test_the_gateway_hpa_scales_out_under_load_and_back_in_after_without_a_failed_request(
    release: chart.Release, kind_api: Any, core: Any, golden_dir: Path
) -> None:
    url = f"http://{chart.load_balancer_address(core, NAMESPACE)}"
    minimum = hpa(kind_api, "gateway").spec.min_replicas
    # The test starts from the minimum, with metrics for it: the earlier tests' load may have scaled the
    # gateway out (their extra pods go 15 s after it stops), and the metrics API must report the pods
    # before the HPA can act.
    settled_after = chart.wait_for(
        lambda: (
            bool(hpa_status(kind_api, "gateway").current_metrics)
            and hpa_status(kind_api, "gateway").desired_replicas == minimum
            and len(chart.pods_of(core, NAMESPACE, RELEASE, "gateway")) == minimum
        ),
        240,
        2,
        what="the gateway HPA at its minimum, with metrics",
    )
    with SteadyLoad(url, golden_dir, rate=10) as heavy:
        out_after = chart.wait_for(
            lambda: hpa_status(kind_api, "gateway").desired_replicas > minimum, 240, 2, what="scale-out"
        )
        chart.wait_for(
            lambda: (
                sum(chart.pod_ready(p) for p in chart.pods_of(core, NAMESPACE, RELEASE, "gateway")) > minimum
            ),
            180,
            2,
            what="the added gateway pods Ready",
        )
        ready_after = heavy.elapsed()
        time.sleep(5)
    peak = hpa_status(kind_api, "gateway").desired_replicas
    # A light load goes on while the HPA removes the pods again.
    with SteadyLoad(url, golden_dir, rate=2) as light:
        in_after = chart.wait_for(
            lambda: hpa_status(kind_api, "gateway").desired_replicas == minimum, 480, 2, what="scale-in"
        )
        chart.wait_for(
            lambda: len(chart.pods_of(core, NAMESPACE, RELEASE, "gateway")) == minimum,
            120,
            2,
            what="pods removed",
        )
        time.sleep(3)
    chart.record(
        "eks_rehearsal_hpa",
        {
            "min_replicas": minimum,
            "at_minimum_with_metrics_s": round(settled_after, 1),
            "peak_desired_replicas": peak,
            "scale_out_decided_s": round(out_after, 1),
            "scale_out_ready_s": round(ready_after, 1),
            "scale_in_s": round(in_after, 1),
            "under_load": heavy.report().summary(),
            "during_scale_in": light.report().summary(),
        },
    )
    assert heavy.report().failed == 0, heavy.report().describe_failures()
    assert light.report().failed == 0, light.report().describe_failures()
