"""Level 5: the Helm chart under real kubelets, with values-kind.yaml, beside the overlay.

Installed into its own namespace enforcing Pod Security "restricted", its gateway published on NodePort
30081 (kind-config.yaml maps it to http://localhost:8081). With a steady, bounded load of golden images
(tests/e2e/load.py, 10 requests/s from this machine), the tests prove what level 4 could only describe:
probes that gate traffic, rolling changes without a failed request, and recovery without a hand on it. Each
measured number is written to build/e2e/results.json; the README's level-5 section reports them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from tests.e2e import chart
from tests.e2e.kube import port_forward
from tests.e2e.load import SteadyLoad

NAMESPACE = "species-classifier-chart"
RELEASE = "species-classifier"
ENDPOINT = "http://localhost:8081"
# The gateway's own deadline for one Predict (SERVING_TIMEOUT_S) plus time for the HTTP round trip.
ANSWER_BOUND_S = 5.0 + 2.0


@pytest.fixture(scope="module")
def release(core: Any, apps: Any, golden_dir: Path) -> Iterator[chart.Release]:
    images = chart.overlay_images(apps)
    flags = [
        "-f",
        str(chart.CHART / "values-kind.yaml"),
        "--set",
        "gateway.service.nodePort=30081",
        *chart.image_values(images),
        *chart.golden_values(golden_dir),
    ]
    chart.delete_namespace(core, NAMESPACE)
    chart.create_namespace(core, NAMESPACE)
    installed = chart.Release(RELEASE, NAMESPACE, flags)
    installed.upgrade()
    try:
        yield installed
    finally:
        # The release with it (the last test uninstalls it first): the chart's objects all live there.
        chart.delete_namespace(core, NAMESPACE, wait=False)


def serving_is_the_stand_in(apps: Any) -> bool:
    return "serving-standin" in chart.overlay_images(apps)["serving"]


def test_every_pod_of_the_chart_becomes_ready_in_a_restricted_namespace(
    release: chart.Release, core: Any, apps: Any
) -> None:
    assert (
        core.read_namespace(NAMESPACE).metadata.labels["pod-security.kubernetes.io/enforce"] == "restricted"
    )

    def ready(component: str) -> bool:
        deployment = apps.read_namespaced_deployment(f"{RELEASE}-{component}", NAMESPACE)
        pods = chart.pods_of(core, NAMESPACE, RELEASE, component)
        return deployment.status.ready_replicas == deployment.spec.replicas == 1 and all(
            chart.pod_ready(p) for p in pods
        )

    for component in ("gateway", "serving"):
        chart.wait_for(lambda c=component: ready(c), 120, what=f"the chart's {component} Ready")
    # The node port of a Service just created answers once kube-proxy has programmed it (seconds, longer
    # on a busy machine).
    chart.wait_for(lambda: chart.http_status(f"{ENDPOINT}/readyz") == 200, 60, what=f"{ENDPOINT}/readyz 200")


def test_helm_test_runs_the_golden_image_hook_pod_and_passes(release: chart.Release) -> None:
    output = release.helm("test", RELEASE, "--logs", "--timeout", "300s")
    assert "Phase:          Succeeded" in output, output
    wanted = len(chart.HELM_TEST_LABELS)
    assert f"{wanted}/{wanted} golden images labelled correctly" in output, output


def test_the_gateway_is_unready_while_no_serving_pod_is_ready_and_ready_again_by_itself(
    release: chart.Release, core: Any
) -> None:
    gateway_before = chart.restarts(core, NAMESPACE, RELEASE, "gateway")
    (gateway_pod,) = gateway_before
    # Straight to the pod: once unready it leaves the Service, and /readyz is what is being watched.
    with port_forward(f"pod/{gateway_pod}", 9696, namespace=NAMESPACE) as pod_url:
        release.kubectl("scale", release.deployment("serving"), "--replicas=0")
        chart.wait_for(
            lambda: not chart.pods_of(core, NAMESPACE, RELEASE, "serving"), 120, what="serving pods gone"
        )
        unready_after = chart.wait_for(
            lambda: chart.http_status(f"{pod_url}/readyz") == 503, 60, what="/readyz 503"
        )
        assert chart.http_status(f"{pod_url}/healthz") == 200  # alive, so liveness leaves it alone
        # ...and its readiness probe takes it out of the Service.
        chart.wait_for(
            lambda: not any(chart.pod_ready(p) for p in chart.pods_of(core, NAMESPACE, RELEASE, "gateway")),
            60,
            what="gateway NotReady",
        )

        release.kubectl("scale", release.deployment("serving"), "--replicas=1")
        chart.wait_for(
            lambda: any(chart.pod_ready(p) for p in chart.pods_of(core, NAMESPACE, RELEASE, "serving")),
            300,
            what="serving Ready",
        )
        serving_ready = time.monotonic()
        chart.wait_for(
            lambda: all(chart.pod_ready(p) for p in chart.pods_of(core, NAMESPACE, RELEASE, "gateway")),
            120,
            what="gateway Ready",
        )
        gateway_ready_gap = time.monotonic() - serving_ready
        assert chart.http_status(f"{pod_url}/readyz") == 200
    assert chart.restarts(core, NAMESPACE, RELEASE, "gateway") == gateway_before, "the gateway was restarted"
    chart.record(
        "readiness",
        {
            "gateway_readyz_503_after_serving_gone_s": round(unready_after, 1),
            "serving_ready_to_gateway_ready_s": round(gateway_ready_gap, 1),
        },
    )


def test_a_serving_pod_still_loading_its_model_gets_no_traffic_until_it_is_ready(
    release: chart.Release, core: Any, apps: Any, golden_dir: Path
) -> None:
    if not serving_is_the_stand_in(apps):
        pytest.skip(
            "the load delay is the stand-in's (STANDIN_LOAD_DELAY_S); TF Serving loads at its own pace"
        )
    # The startup probe looks every 10 s: 10 s of delay plus the stand-in's own start are over before its
    # look at 20 s (with 25 s and with 15 s the pod became Ready at the look at 30 s: they only took longer).
    delay = 10
    # The load starts on a settled release that serves: once, the first second's requests were reset by
    # whatever the previous test had just restored.
    chart.wait_settled(core, NAMESPACE)
    chart.wait_for(lambda: chart.http_status(f"{ENDPOINT}/readyz") == 200, 60, what=f"{ENDPOINT}/readyz 200")
    before = {p.metadata.name for p in chart.pods_of(core, NAMESPACE, RELEASE, "serving")}
    with SteadyLoad(ENDPOINT, golden_dir) as load:
        release.kubectl("set", "env", release.deployment("serving"), f"STANDIN_LOAD_DELAY_S={delay}")
        chart.wait_for(
            lambda: any(
                p.metadata.name not in before and p.status.pod_ip
                for p in chart.pods_of(core, NAMESPACE, RELEASE, "serving")
            ),
            120,
            what="the new serving pod",
        )
        (new,) = [
            p for p in chart.pods_of(core, NAMESPACE, RELEASE, "serving") if p.metadata.name not in before
        ]
        # While its model "loads", the new pod is not Ready and no EndpointSlice offers it as ready.
        unready_seen = 0
        while not chart.pod_ready(core.read_namespaced_pod(new.metadata.name, NAMESPACE)):
            assert new.status.pod_ip not in ready_addresses(core, f"{RELEASE}-serving")
            unready_seen += 1
            time.sleep(1)
        started = new.status.start_time
        ready_at = next(
            c.last_transition_time
            for c in core.read_namespaced_pod(new.metadata.name, NAMESPACE).status.conditions
            if c.type == "Ready"
        )
        release.rollout_status("serving")
        time.sleep(3)
    report = load.report()
    release.kubectl("set", "env", release.deployment("serving"), "STANDIN_LOAD_DELAY_S-")
    release.rollout_status("serving")
    start_to_ready = (ready_at - started).total_seconds()
    chart.record("load_delay", {"delay_s": delay, "start_to_ready_s": start_to_ready, **report.summary()})
    assert start_to_ready >= delay
    assert unready_seen >= delay // 2
    assert report.failed == 0, report.describe_failures()


def ready_addresses(core: Any, service: str) -> set[str]:
    slices = client.DiscoveryV1Api(core.api_client).list_namespaced_endpoint_slice(
        NAMESPACE, label_selector=f"kubernetes.io/service-name={service}"
    )
    return {
        address
        for endpoint_slice in slices.items
        for endpoint in endpoint_slice.endpoints or []
        if endpoint.conditions and endpoint.conditions.ready
        for address in endpoint.addresses
    }


def test_rolling_changes_under_load_lose_no_request(
    release: chart.Release, core: Any, golden_dir: Path
) -> None:
    chart.wait_settled(core, NAMESPACE)  # the previous test's old pods, still in their preStop pause
    gateway_restarts = chart.restarts(core, NAMESPACE, RELEASE, "gateway")
    # A new image tag for the last rollout: the same gateway image under another name, loaded into the
    # nodes before the load starts. Importing an image keeps both cores and the disk busy for seconds, and
    # what is measured is the rollout, not the import (one run lost 11 requests to MAX_IN_FLIGHT right after
    # an import done under the load).
    image = chart.overlay_images(client.AppsV1Api(core.api_client))["gateway"]
    retagged = f"{image.split('/', 1)[1].rsplit(':', 1)[0]}:{image.rsplit(':', 1)[1]}-e2e"
    chart.run(["docker", "tag", image.split("/", 1)[1], retagged])
    chart.run(
        [
            str(chart.REPO / "bin" / "kind"),
            "load",
            "docker-image",
            "--name",
            "species-classifier",
            "--nodes",
            workers(core),
            retagged,
        ]
    )
    phases: dict[str, dict[str, float | int]] = {}
    with SteadyLoad(ENDPOINT, golden_dir) as load:
        time.sleep(15)
        phases["steady state"] = load.report().summary()
        # Busy but healthy: liveness did not restart the gateway under the load.
        assert chart.restarts(core, NAMESPACE, RELEASE, "gateway") == gateway_restarts

        mark = load.elapsed()
        release.kubectl("rollout", "restart", release.deployment("gateway"))
        release.rollout_status("gateway")
        time.sleep(3)
        phases["rollout restart gateway"] = load.report_since(mark).summary()

        mark = load.elapsed()
        release.kubectl("rollout", "restart", release.deployment("serving"))
        release.rollout_status("serving")
        time.sleep(3)
        phases["rollout restart serving"] = load.report_since(mark).summary()

        mark = load.elapsed()
        release.upgrade("--set", f"gateway.image.tag={retagged.rsplit(':', 1)[1]}")
        time.sleep(3)
        phases["helm upgrade gateway image tag"] = load.report_since(mark).summary()
    report = load.report()
    chart.record("rollouts", phases)
    print(json.dumps(phases, indent=2))
    assert report.failed == 0, report.describe_failures()
    for phase, summary in phases.items():
        assert summary["sent"] > 0, phase
    # No probe failed a live container anywhere in the release during all of it.
    liveness_failures = [
        e.message
        for e in core.list_namespaced_event(NAMESPACE).items
        if e.reason == "Unhealthy" and (e.message or "").startswith("Liveness probe failed")
    ]
    assert liveness_failures == []


def workers(core: Any) -> str:
    nodes = core.list_node(label_selector="!node-role.kubernetes.io/control-plane").items
    return ",".join(n.metadata.name for n in nodes)


def test_a_rollout_allowed_to_take_the_only_gateway_down_loses_requests(
    release: chart.Release, core: Any, apps: Any, golden_dir: Path
) -> None:
    # The negative control of the test above: the same load, and a rollout that may stop the one gateway pod
    # before its replacement is Ready (maxUnavailable 1, no surge), of a pod without the preStop pause that
    # lets endpoints catch up and with a 1 s grace period. It must see failures; so the zero above is the
    # chart's strategy (maxUnavailable 0), readiness, preStop and drain at work, not a lenient test.
    # A pod ends as its own spec says: the patch's first rollout replaces the chart's pod (with its preStop
    # pause and 30 s grace, which bridge the gap by themselves) with an unsafe one, and only the second
    # rollout, under load, takes an unsafe pod down.
    name = release.deployment("gateway").split("/", 1)[1]
    template = apps.read_namespaced_deployment(name, NAMESPACE).spec.template.spec
    lifecycle = template.containers[0].lifecycle
    prestop = client.ApiClient().sanitize_for_serialization(lifecycle)
    assert prestop["preStop"], "the chart's gateway has a preStop pause"
    grace = template.termination_grace_period_seconds
    strategy_path = "/spec/strategy/rollingUpdate"
    lifecycle_path = "/spec/template/spec/containers/0/lifecycle"
    grace_path = "/spec/template/spec/terminationGracePeriodSeconds"
    # The short grace period too: the gateway's own drain on SIGTERM (and kube-proxy's use of a terminating
    # endpoint while no other is ready) could bridge the gap by itself.
    unsafe = [
        {"op": "replace", "path": strategy_path, "value": {"maxSurge": 0, "maxUnavailable": 1}},
        {"op": "remove", "path": lifecycle_path},
        {"op": "replace", "path": grace_path, "value": 1},
    ]
    restore = [
        {"op": "replace", "path": strategy_path, "value": {"maxSurge": 1, "maxUnavailable": 0}},
        {"op": "add", "path": lifecycle_path, "value": prestop},
        {"op": "replace", "path": grace_path, "value": grace},
    ]
    try:
        release.kubectl("patch", release.deployment("gateway"), "--type=json", "-p", json.dumps(unsafe))
        release.rollout_status("gateway")
        chart.wait_settled(core, NAMESPACE)  # the chart's pod, in its preStop pause, is gone
        with SteadyLoad(ENDPOINT, golden_dir) as load:
            time.sleep(2)
            release.kubectl("rollout", "restart", release.deployment("gateway"))
            release.rollout_status("gateway")
            time.sleep(3)
        report = load.report()
    finally:
        release.kubectl("patch", release.deployment("gateway"), "--type=json", "-p", json.dumps(restore))
        release.rollout_status("gateway")
    chart.record("negative_control_max_unavailable_1_no_prestop_1s_grace", report.summary())
    assert report.failed > 0, report.summary()


def test_without_its_only_serving_pod_the_gateway_answers_503_with_retry_after_then_recovers(
    release: chart.Release, core: Any, golden_dir: Path
) -> None:
    (gateway_pod,) = chart.restarts(core, NAMESPACE, RELEASE, "gateway")
    (serving_pod,) = [p.metadata.name for p in chart.pods_of(core, NAMESPACE, RELEASE, "serving")]
    with (
        port_forward(f"pod/{gateway_pod}", 9696, namespace=NAMESPACE) as pod_url,
        SteadyLoad(pod_url, golden_dir) as load,
    ):
        time.sleep(3)
        mark = load.elapsed()
        # Gone at once, as a crashed node or an OOM-killed container would be (no graceful stop).
        core.delete_namespaced_pod(serving_pod, NAMESPACE, grace_period_seconds=0)
        chart.wait_for(
            lambda: (
                serving_pod
                not in {p.metadata.name for p in chart.pods_of(core, NAMESPACE, RELEASE, "serving")}
            ),
            60,
            what="the old serving pod gone",
        )
        chart.wait_for(
            lambda: any(chart.pod_ready(p) for p in chart.pods_of(core, NAMESPACE, RELEASE, "serving")),
            300,
            what="a new serving pod Ready",
        )
        # Recovered by itself: requests succeed again once the new pod is Ready.
        chart.wait_for(
            lambda: (
                load.report_since(load.elapsed() - 2).failed == 0
                and load.report_since(load.elapsed() - 2).sent > 0
            ),
            120,
            what="200s again",
        )
        time.sleep(2)
    outage = load.report_since(mark)
    failures = outage.failures
    assert failures, "deleting the only serving pod should interrupt predictions"
    assert all(f.status == 503 and f.retry_after for f in failures), outage.describe_failures()
    assert max(o.seconds for o in outage.outcomes) < ANSWER_BOUND_S
    gap = failures[-1].started - failures[0].started
    chart.record("self_healing_only_serving_pod", {"gap_s": round(gap, 1), **outage.summary()})


def test_a_deleted_gateway_pod_is_replaced_and_serves_again(
    release: chart.Release, core: Any, golden_dir: Path
) -> None:
    (gateway_pod,) = chart.restarts(core, NAMESPACE, RELEASE, "gateway")
    start = time.monotonic()
    core.delete_namespaced_pod(gateway_pod, NAMESPACE)
    chart.wait_for(
        lambda: any(
            p.metadata.name != gateway_pod and chart.pod_ready(p)
            for p in chart.pods_of(core, NAMESPACE, RELEASE, "gateway")
        ),
        180,
        what="a new gateway pod Ready",
    )
    ready = time.monotonic() - start
    # Through the NodePort once kube-proxy on the node routes to the new endpoint (a moment after Ready).
    chart.wait_for(
        lambda: chart.http_status(f"{ENDPOINT}/readyz") == 200, 60, 0.1, what="the NodePort serving"
    )
    serving = time.monotonic() - start
    with SteadyLoad(ENDPOINT, golden_dir) as load:
        time.sleep(3)
    chart.record(
        "gateway_pod_replaced", {"seconds_to_ready": round(ready, 1), "seconds_to_serving": round(serving, 1)}
    )
    assert load.report().failed == 0, load.report().describe_failures()


def test_helm_uninstall_leaves_nothing_behind(release: chart.Release, kind_api: Any) -> None:
    release.helm("uninstall", RELEASE, "--wait", "--timeout", "300s")
    selector = f"app.kubernetes.io/instance={RELEASE}"
    core, apps = client.CoreV1Api(kind_api), client.AppsV1Api(kind_api)
    networking, policy = client.NetworkingV1Api(kind_api), client.PolicyV1Api(kind_api)
    autoscaling = client.AutoscalingV2Api(kind_api)
    left = {
        "deployments": apps.list_namespaced_deployment(NAMESPACE, label_selector=selector).items,
        "pods": [
            p for p in core.list_namespaced_pod(NAMESPACE).items if p.metadata.deletion_timestamp is None
        ],
        "services": core.list_namespaced_service(NAMESPACE).items,
        "configmaps": [
            c
            for c in core.list_namespaced_config_map(NAMESPACE).items
            if c.metadata.name != "kube-root-ca.crt"
        ],
        "secrets": core.list_namespaced_secret(NAMESPACE).items,
        "serviceaccounts": [
            s for s in core.list_namespaced_service_account(NAMESPACE).items if s.metadata.name != "default"
        ],
        "networkpolicies": networking.list_namespaced_network_policy(NAMESPACE).items,
        "pdbs": policy.list_namespaced_pod_disruption_budget(NAMESPACE).items,
        "hpas": autoscaling.list_namespaced_horizontal_pod_autoscaler(NAMESPACE).items,
    }
    assert {kind: [o.metadata.name for o in objects] for kind, objects in left.items() if objects} == {}
