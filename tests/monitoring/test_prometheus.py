"""The real Prometheus scraping a real gateway and stand-in (test level 2): every dashboard panel has data,
the alert rules evaluate against the gateway's real series, and the packaging scrapes the right port and path.

The stand-in (demo model) and the gateway run as in `make local`, on free ports of 127.0.0.1. What Prometheus
scrapes is derived from the renders, not written here: each scrape annotation and ServiceMonitor of the chart
and of both kustomize overlays names a container port and a path; the port is mapped to the gateway setting
whose default it is (BIND_PORT for 9696) or to TF Serving's REST port, and Prometheus scrapes the local
process listening there at that path. A wrong port or path leaves its target down and fails the test.

TF Serving's scrape goes to the stand-in's REST port, which serves the metrics path of
serving/monitoring.config (with the stand-in's own process metrics). TF Serving's own panels read a page in
TF Serving's exposition format, a separate job (tf_serving_exposition.py says why and what it reproduces).

Traffic, in order: every golden image as /predict, one /predict/batch, one URL fetch, bad input (400, 415), a
flood over MAX_IN_FLIGHT=1 (503 overloaded), then the stand-in is stopped (503 upstream unavailable, /readyz
503). The queries run after that.
"""

from __future__ import annotations

import concurrent.futures
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from gateway.settings import Settings
from model import spec
from tests.gateway.images import jpeg
from tests.monitoring import dashboard
from tests.monitoring.tf_serving_exposition import serve_exposition
from tests.packaging import render
from tests.packaging.checks import container_ports, selector_matches, service_pods
from tests.packaging.test_contract_facts import entrypoint_flag, monitoring_path
from tests.support.gateway import GatewayProcess, start_gateway
from tests.support.http import serve_directory
from tests.support.manifests import Manifest, component_pods, of_kind
from tests.support.prometheus import (
    PROMETHEUS,
    PrometheusProcess,
    ScrapeJob,
    finite_values,
    run_prometheus,
)
from tests.support.standin import HOST, StandInProcess, free_port, start_standin

pytestmark = pytest.mark.process

RULES = render.CHART / "files" / "prometheus-rules.yaml"
NAMESPACE = "species-classifier"
# Renders whose scrape settings are proven: annotations (chart defaults, both overlays), ServiceMonitors.
RENDERS = {
    "chart-default": lambda: render.render_chart(),
    "chart-ci-monitoring": lambda: render.render_chart(("ci/monitoring-values.yaml",)),
    "kustomize-kind": lambda: render.render_kustomize("kind"),
    "kustomize-eks": lambda: render.render_kustomize("eks"),
}


# --- what the packaging asks Prometheus to scrape ---------------------------------------------------------


@dataclass(frozen=True)
class Scrape:
    component: str  # gateway | serving
    port: int  # container port number
    path: str


def _resolve_target_port(target: int | str, pods: list[Any]) -> int | None:
    if isinstance(target, int):
        return target
    for pod in pods:
        for port in container_ports(pod):
            if port.get("name") == target:
                return int(port["containerPort"])
    return None


def _annotated(component: str, annotations: dict[str, str]) -> Scrape | None:
    """The scrape the prometheus.io/* annotations ask for (the path defaults to /metrics), if any."""
    if annotations.get("prometheus.io/scrape") != "true":
        return None
    return Scrape(
        component, int(annotations["prometheus.io/port"]), annotations.get("prometheus.io/path", "/metrics")
    )


def scrapes_of(objs: list[Manifest]) -> list[tuple[Scrape, str]]:
    """Every (scrape, how it is asked for) in one render: pod and Service annotations, ServiceMonitors."""
    found: list[tuple[Scrape, str]] = []
    for component in ("gateway", "serving"):
        pods = component_pods(objs, component)
        owners = {pod.owner for pod in pods}
        services = [
            svc for svc in of_kind(objs, "Service") if owners & {p.owner for p in service_pods(svc, objs)}
        ]
        for pod in pods:
            annotations = pod.annotations
            if scrape := _annotated(component, annotations):
                found.append((scrape, "pod annotations"))
        for service in services:
            if scrape := _annotated(component, service["metadata"].get("annotations") or {}):
                found.append((scrape, "Service annotations"))
        for monitor in of_kind(objs, "ServiceMonitor"):
            selected = [
                s
                for s in services
                if selector_matches(monitor["spec"]["selector"], s["metadata"].get("labels") or {})
            ]
            if not selected:
                continue  # another component's ServiceMonitor
            for endpoint in monitor["spec"]["endpoints"]:
                # The Prometheus Operator scrapes a selected Service only through a port of that name; one
                # without it (the gateway's public Service, which carries only `http`) yields no target.
                scraped = [
                    (service, named[0])
                    for service in selected
                    if (named := [p for p in service["spec"]["ports"] if p.get("name") == endpoint["port"]])
                ]
                monitor_name = monitor["metadata"]["name"]
                assert scraped, (
                    f"{monitor_name} scrapes port {endpoint['port']!r}, which no Service it selects has"
                )
                for service, port_spec in scraped:
                    service_name = service["metadata"]["name"]
                    port = _resolve_target_port(port_spec.get("targetPort", port_spec["port"]), pods)
                    assert port is not None, f"{service_name} targets a port its pods do not declare"
                    found.append(
                        (Scrape(component, port, endpoint.get("path", "/metrics")), "ServiceMonitor")
                    )
    return found


def packaging_scrapes() -> dict[Scrape, list[str]]:
    scrapes: dict[Scrape, list[str]] = {}
    for name, produce in RENDERS.items():
        try:
            objs = produce()
        except render.NotRenderable as missing:
            pytest.skip(str(missing))
        for scrape, how in scrapes_of(objs):
            scrapes.setdefault(scrape, []).append(f"{name} {how}")
    return scrapes


def gateway_setting_for_port(port: int) -> str:
    """The gateway setting (env var) whose default is this container port, e.g. BIND_PORT for 9696."""
    settings = [
        name.upper()
        for name, field_info in Settings.model_fields.items()
        if name.endswith("_port") and field_info.default == port
    ]
    assert settings, f"the packaging scrapes port {port}, where no gateway setting listens by default"
    return settings[0]


# --- the stack ----------------------------------------------------------------------------------------------


@dataclass
class Stack:
    prometheus: PrometheusProcess
    gateway: GatewayProcess
    jobs: dict[str, tuple[Scrape, list[str]]]
    responses: list[httpx.Response] = field(default_factory=list)
    # Taken before the stand-in is stopped: each target's state and how many series it gave.
    targets: dict[str, dict[str, Any]] = field(default_factory=dict)
    series: dict[str, int] = field(default_factory=dict)

    def statuses(self) -> list[int]:
        return [r.status_code for r in self.responses]

    def error_codes(self) -> set[str]:
        return {r.json()["error"]["code"] for r in self.responses if r.status_code >= 400}


def _count(responses: list[httpx.Response], code: str) -> int:
    return sum(1 for r in responses if r.status_code >= 400 and r.json()["error"]["code"] == code)


def _wave(client: httpx.Client, golden: Path, image_url: str, big: bytes) -> list[httpx.Response]:
    """One round of everything the panels show: successes of each form, bad input and a flood."""
    responses = []
    for label in spec.LABELS:
        data = (golden / f"{label}.jpg").read_bytes()
        responses.append(client.post("/predict", files={"file": (f"{label}.jpg", data, "image/jpeg")}))
    files = [
        ("files", (f"{label}.jpg", (golden / f"{label}.jpg").read_bytes(), "image/jpeg"))
        for label in spec.LABELS
    ]
    responses.append(client.post("/predict/batch", files=files))
    responses.append(client.post("/predict", json={"url": image_url}))
    responses.append(client.post("/predict", content=b"not an image", headers={"Content-Type": "image/jpeg"}))
    responses.append(client.post("/predict", content=b"hello", headers={"Content-Type": "text/plain"}))

    # MAX_IN_FLIGHT=1: of 12 uploads of a 12 MP photo at once, all but the one being handled are refused.
    def upload(_: int) -> httpx.Response:
        return client.post("/predict", content=big, headers={"Content-Type": "image/jpeg"})

    for _ in range(5):
        with concurrent.futures.ThreadPoolExecutor(12) as pool:
            flood = list(pool.map(upload, range(12)))
        responses.extend(flood)
        if _count(flood, "overloaded"):
            break
    return responses


def _send_traffic(stack: Stack, golden: Path, image_url: str, standin: StandInProcess) -> None:
    """Two waves, each scraped before the next: a counter first seen at its final value has no rate, so
    every series the panels and alerts take a rate of must grow between two scrapes, as in real traffic."""
    prometheus = stack.prometheus
    big = jpeg(4000, 3000)
    with httpx.Client(base_url=stack.gateway.base_url, timeout=30) as client:
        for _ in range(2):
            stack.responses += _wave(client, golden, image_url, big)
            prometheus.wait_for(
                f"sum(gateway_requests_rejected_total) >= {_count(stack.responses, 'overloaded')}"
            )

        active = prometheus.api("targets", state="active")["activeTargets"]
        stack.targets = {target["labels"]["job"]: target for target in active}
        for job in stack.jobs:
            counted = prometheus.query(f'count({{job="{job}", __name__!~"up|scrape_.+"}})')
            stack.series[job] = int(float(counted[0]["value"][1])) if counted else 0

        standin.stop()
        bird = (golden / "bird.jpg").read_bytes()
        for _ in range(2):
            for _ in range(3):
                stack.responses.append(
                    client.post("/predict", files={"file": ("bird.jpg", bird, "image/jpeg")})
                )
            failed = _count(stack.responses, "upstream_unavailable")
            prometheus.wait_for(f'sum(gateway_upstream_errors_total{{code="UNAVAILABLE"}}) >= {failed}')
        time.sleep(Settings().readiness_ttl_s + 0.5)
        assert client.get("/readyz").status_code == 503


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory, demo_model_base: Path, golden_dir: Path, gateway_python: Path
) -> Iterator[Stack]:
    if not PROMETHEUS.exists():
        pytest.skip(f"{PROMETHEUS} missing: run `make tools` (make test does)")
    scrapes = packaging_scrapes()
    tmp = tmp_path_factory.mktemp("prometheus")

    standin_rest = free_port()
    standin = start_standin(demo_model_base, extra_args=["--rest-port", str(standin_rest)], log_dir=tmp)
    gateway: GatewayProcess | None = None
    try:
        standin.wait_until_serving()
        gateway_ports = {
            gateway_setting_for_port(s.port): free_port() for s in scrapes if s.component == "gateway"
        }
        bind_port = gateway_ports.pop("BIND_PORT", free_port())
        images_port = free_port()
        gateway = start_gateway(
            {
                "TF_SERVING_HOST": standin.address,
                "MAX_IN_FLIGHT": "1",
                "FETCH_ALLOW_LOOPBACK": "true",
                "FETCH_ALLOWED_PORTS": str(images_port),
                **{name: str(port) for name, port in gateway_ports.items()},
            },
            python=gateway_python,
            port=bind_port,
            log_dir=tmp,
        )
        gateway.wait_until_healthy()
        gateway_ports["BIND_PORT"] = bind_port

        serving_rest_port = entrypoint_flag("rest_api_port")
        with (
            serve_directory(golden_dir, "image/jpeg", images_port) as images,
            serve_exposition(monitoring_path(), spec.MODEL_NAME) as (exposition_address, _),
        ):
            jobs: dict[str, tuple[Scrape, list[str]]] = {}
            scrape_jobs = []
            for index, (scrape, sources) in enumerate(sorted(scrapes.items(), key=lambda item: str(item[0]))):
                if scrape.component == "gateway":
                    address = f"{HOST}:{gateway_ports[gateway_setting_for_port(scrape.port)]}"
                else:
                    assert scrape.port == serving_rest_port, (
                        f"{sources} scrape TF Serving on {scrape.port}, not its REST port {serving_rest_port}"
                    )
                    address = f"{HOST}:{standin_rest}"
                name = f"{scrape.component}-{index}"
                jobs[name] = (scrape, sources)
                scrape_jobs.append(ScrapeJob(name, address, scrape.path, {"namespace": NAMESPACE}))
            scrape_jobs.append(
                ScrapeJob(
                    "tf-serving-format", exposition_address, monitoring_path(), {"namespace": NAMESPACE}
                )
            )
            with run_prometheus(scrape_jobs, tmp_dir=tmp, rule_files=[RULES]) as prometheus:
                prometheus.wait_for_targets()
                result = Stack(prometheus, gateway, jobs)
                _send_traffic(result, golden_dir, f"{images}/leopard.jpg", standin)
                # Scraped after the last request: the gateway's not-ready state.
                prometheus.wait_for("max(gateway_ready) == 0")
                time.sleep(2)
                yield result
    finally:
        if gateway is not None:
            gateway.stop()
        standin.stop()


# --- the traffic did what the panels need -------------------------------------------------------------------


def test_the_traffic_covers_success_bad_input_overload_and_an_upstream_outage(stack: Stack) -> None:
    statuses = stack.statuses()
    assert statuses.count(200) >= 2 * (len(spec.LABELS) + 2)
    assert {
        "invalid_image",
        "unsupported_media_type",
        "overloaded",
        "upstream_unavailable",
    } <= stack.error_codes()


# --- scrapes ------------------------------------------------------------------------------------------------


def test_every_port_and_path_the_packaging_scrapes_serves_the_component_s_metrics(stack: Stack) -> None:
    for job, (scrape, sources) in stack.jobs.items():
        target = stack.targets[job]
        assert target["health"] == "up", f"{sources}: {scrape} is {target['health']}: {target['lastError']}"
        assert stack.series[job] > 0, f"{sources}: {scrape} answered with no series"
        if scrape.component == "gateway":
            assert stack.prometheus.query(f'count(gateway_requests_total{{job="{job}"}})'), sources


def test_both_components_are_scraped_through_annotations_and_service_monitors(stack: Stack) -> None:
    asked = {
        (scrape.component, how.split(" ", 1)[1]) for scrape, sources in stack.jobs.values() for how in sources
    }
    for component in ("gateway", "serving"):
        assert {(component, "ServiceMonitor")} <= asked, asked
        assert (component, "pod annotations") in asked or (component, "Service annotations") in asked, asked


# --- dashboard ----------------------------------------------------------------------------------------------


PANEL_TARGETS = [(panel, target) for panel in dashboard.panels() for target in panel.targets]


@pytest.mark.parametrize(
    ("panel", "target"), PANEL_TARGETS, ids=[f"{p.title} {t.ref_id}" for p, t in PANEL_TARGETS]
)
def test_every_dashboard_query_returns_data(
    stack: Stack, panel: dashboard.Panel, target: dashboard.Target
) -> None:
    expr = dashboard.instant_query(target.expr)
    result = stack.prometheus.query(expr)
    assert result, f"{panel.title!r} {target.ref_id}: no series for {expr}"
    assert finite_values(result), f"{panel.title!r} {target.ref_id}: only NaN for {expr}: {result}"
    if "rate(" in expr:
        # A rate over traffic that happened: some series must be above zero, not only present.
        assert max(finite_values(result)) > 0, (
            f"{panel.title!r} {target.ref_id}: all zero for {expr}: {result}"
        )


def _series(title: str, ref_id: str, stack: Stack) -> list[dict[str, Any]]:
    panel = next(p for p in dashboard.panels() if p.title == title)
    target = next(t for t in panel.targets if t.ref_id == ref_id)
    return stack.prometheus.query(dashboard.instant_query(target.expr))


def test_the_status_panel_shows_each_status_the_traffic_got(stack: Stack) -> None:
    shown = {s["metric"]["status"] for s in _series("Prediction requests by status", "A", stack)}
    assert {str(status) for status in stack.statuses()} <= shown


def test_the_stage_panel_shows_fetch_decode_and_serve(stack: Stack) -> None:
    for ref_id in ("A", "B"):
        assert {s["metric"]["stage"] for s in _series("Stage latency p50 / p99", ref_id, stack)} == {
            "fetch",
            "decode",
            "serve",
        }


def test_the_label_panel_shows_every_label_the_golden_images_have(stack: Stack) -> None:
    assert {s["metric"]["label"] for s in _series("Predictions by label", "A", stack)} == set(spec.LABELS)


def test_the_ready_panel_shows_no_ready_gateway_once_tf_serving_is_gone(stack: Stack) -> None:
    assert finite_values(_series("Ready gateway pods", "A", stack)) == [0.0]


def test_the_tf_serving_panels_read_tf_serving_s_labels(stack: Stack) -> None:
    latency = _series("TF Serving request latency p50 / p99", "B", stack)
    assert {(s["metric"]["model_name"], s["metric"]["API"], s["metric"]["entrypoint"]) for s in latency} == {
        (spec.MODEL_NAME, "Predict", "GRPC")
    }
    # 3 requests of 4, 6 and 9 ms per scrape: the p99 lies in the bucket holding 9 ms.
    assert 0.005 < finite_values(latency)[0] < 0.02
    statuses = {s["metric"]["status"] for s in _series("TF Serving requests by status", "A", stack)}
    assert statuses == {"OK", "INVALID_ARGUMENT"}


def test_the_namespace_variable_lists_the_scraped_namespace(stack: Stack) -> None:
    query = dashboard.variables()["namespace"]["definition"]
    assert query == "label_values(gateway_requests_total, namespace)"
    assert stack.prometheus.api("label/namespace/values", **{"match[]": "gateway_requests_total"}) == [
        NAMESPACE
    ]


# --- alerts -------------------------------------------------------------------------------------------------


def test_every_rule_evaluates_without_error_against_the_real_series(stack: Stack) -> None:
    groups = stack.prometheus.api("rules")["groups"]
    rules = [rule for group in groups for rule in group["rules"]]
    expected = [r["alert"] for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]
    assert sorted(rule["name"] for rule in rules) == sorted(expected)
    broken = {rule["name"]: rule.get("lastError") for rule in rules if rule["health"] != "ok"}
    assert not broken


@pytest.mark.parametrize(
    "alert",
    [
        "SpeciesGatewayHighErrorRatio",
        "SpeciesTFServingUnavailable",
        "SpeciesGatewayAdmissionRejections",
        "SpeciesGatewayNoPodReady",
    ],
)
def test_the_outage_and_the_flood_set_off_their_alerts(stack: Stack, alert: str) -> None:
    # Pending, not firing: the test is shorter than any alert's `for`; pending means the expression matched.
    deadline = time.monotonic() + 15
    while True:
        active = {a["labels"]["alertname"]: a for a in stack.prometheus.api("alerts")["alerts"]}
        if alert in active or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert alert in active, json.dumps(sorted(active))
    assert active[alert]["state"] in {"pending", "firing"}
    if alert != "SpeciesGatewayNoPodReady":
        assert active[alert]["labels"]["namespace"] == NAMESPACE
