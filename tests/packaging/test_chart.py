"""Level 3: the Helm chart itself — lint, values schema, and the behaviour each value promises.

Every render here is a real `bin/helm template` (tests/packaging/render.py). The checks shared with the
kustomize overlays (strict Kubernetes schemas, selectors, Pod Security, drift) live in test_manifests.py; this
module covers what only the chart has: values, helpers, conditional objects, NOTES and the test hook.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.packaging import checks, render
from tests.support.manifests import (
    VERSION,
    Manifest,
    chart_metadata,
    container,
    env,
    find,
    get,
    is_hook,
    of_kind,
    pod_spec,
    ports_by_name,
)

pytestmark = pytest.mark.packaging

CHART = render.CHART
VALUES_FILES = [
    None,
    "values-kind.yaml",
    "values-eks.yaml",
    *sorted(f"ci/{p.name}" for p in (CHART / "ci").glob("*-values.yaml")),
]
GATEWAY = "species-classifier-gateway"
SERVING = "species-classifier-serving"
CHART_SET_GATEWAY_ENV = [
    "TF_SERVING_HOST",
    "MODEL_NAME",
    "DECODE_CONCURRENCY",
    "MEMORY_LIMIT_BYTES",
    "FETCH_ALLOWED_PORTS",
    "METRICS_ON_MAIN_PORT",
    "DOCS_ENABLED",
]


@pytest.fixture(autouse=True)
def _chart_renderable() -> None:
    reason = render.chart_available()
    if reason:
        pytest.skip(reason)


def helm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(render.HELM), *args], capture_output=True, text=True, cwd=render.REPO, check=False
    )


def chart(*set_values: str, values: tuple[str, ...] = (), release: str = render.RELEASE) -> list[Manifest]:
    return render.render_chart(values, set_values, release=release)


def workloads(objs: list[Manifest]) -> list[Manifest]:
    return [o for o in objs if not is_hook(o)]


# --- lint and render ---------------------------------------------------------------------------------


@pytest.mark.parametrize("values_file", VALUES_FILES, ids=lambda v: v or "defaults")
def test_helm_lint_strict_passes_with_each_values_file(values_file: str | None) -> None:
    args = ["lint", "--strict", str(CHART)] + (["--values", str(CHART / values_file)] if values_file else [])
    result = helm(*args)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("values_file", VALUES_FILES, ids=lambda v: v or "defaults")
def test_every_values_file_renders_both_workloads(values_file: str | None) -> None:
    objs = chart(values=(values_file,) if values_file else ())
    for name in (GATEWAY, SERVING):
        get(objs, "Deployment", name)
        get(objs, "Service", name)


def test_the_default_ci_scenario_is_empty() -> None:
    # prometheus-community convention: ci/default-values.yaml stands for "no values at all".
    assert yaml.safe_load((CHART / "ci" / "default-values.yaml").read_text()) is None


# --- values schema -------------------------------------------------------------------------------------


def test_values_schema_rejects_an_unknown_key() -> None:
    result = helm("template", "x", str(CHART), "--set", "gateway.replicas=2")
    assert result.returncode != 0
    assert "additional properties 'replicas' not allowed" in result.stderr


def test_values_schema_rejects_a_wrong_type() -> None:
    result = helm("template", "x", str(CHART), "--set", "serving.replicaCount=two")
    assert result.returncode != 0
    assert "/serving/replicaCount" in result.stderr


def test_values_schema_rejects_the_latest_tag() -> None:
    result = helm("template", "x", str(CHART), "--set", "gateway.image.tag=latest")
    assert result.returncode != 0
    assert "/gateway/image/tag" in result.stderr


def test_values_schema_rejects_min_available_and_max_unavailable_together() -> None:
    result = helm("template", "x", str(CHART), "--set", "serving.podDisruptionBudget.maxUnavailable=1")
    assert result.returncode != 0
    assert "/serving/podDisruptionBudget" in result.stderr


def test_values_schema_is_strict_in_every_object_it_defines() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    loose: list[str] = []

    def walk(node: Any, path: str) -> None:
        if isinstance(node, dict):
            # Object definitions; the bare `properties` inside allOf/anyOf/not constrain, not define.
            defines = node.get("type") == "object" and "properties" in node
            if defines and node.get("additionalProperties") is not False:
                loose.append(path or "/")
            for key, child in node.items():
                walk(child, f"{path}/{key}")
        elif isinstance(node, list):
            for index, child in enumerate(node):
                walk(child, f"{path}/{index}")

    walk(schema, "")
    assert not loose, f"objects with properties but without additionalProperties: false: {loose}"


def read_values_documentation() -> tuple[list[str], list[str]]:
    """(documented key paths, undocumented key lines) of values.yaml.

    A key documented with a `# --` comment documents its whole block (a documented `resources:` covers its
    contents); a key with an inline value outside any documented block is undocumented.
    """
    documented: list[str] = []
    undocumented: list[str] = []
    parents: list[tuple[int, str]] = []
    documented_block_indent: int | None = None
    previous_comment = in_comment_block = False
    for number, line in enumerate((CHART / "values.yaml").read_text().splitlines(), start=1):
        stripped = line.strip()
        indent = len(line) - len(line.lstrip())
        if not stripped:
            previous_comment = in_comment_block = False
            continue
        if stripped.startswith("#"):
            in_comment_block = in_comment_block or stripped.startswith("# --")
            previous_comment = in_comment_block
            continue
        match = re.match(r"^(\s*)([A-Za-z0-9_.\-/]+):(.*)$", line)
        if documented_block_indent is not None and indent > documented_block_indent:
            continue
        documented_block_indent = None
        if not match or stripped.startswith("-"):
            continue
        while parents and parents[-1][0] >= indent:
            parents.pop()
        parents.append((indent, match.group(2)))
        if previous_comment:
            documented_block_indent = indent
            documented.append(".".join(key for _, key in parents))
        elif match.group(3).strip():
            undocumented.append(f"line {number}: {stripped}")
        previous_comment = in_comment_block = False
    return documented, undocumented


def test_every_value_is_documented_with_a_helm_docs_comment() -> None:
    documented, undocumented = read_values_documentation()
    assert len(documented) > 50
    assert not undocumented, "values without a `# --` comment:\n" + "\n".join(undocumented)


def test_the_chart_readme_lists_every_documented_value() -> None:
    readme = (CHART / "README.md").read_text()
    documented, _ = read_values_documentation()
    missing = [key for key in documented if f"| `{key}` |" not in readme]
    assert not missing, f"charts/species-classifier/README.md lacks rows for: {missing}"


# --- names and labels ----------------------------------------------------------------------------------


def test_name_override_replaces_the_chart_name_in_resource_names() -> None:
    objs = chart("nameOverride=classifier", release="demo")
    names = {o["metadata"]["name"] for o in workloads(objs)}
    assert {"demo-classifier-gateway", "demo-classifier-serving"} <= names
    assert all(o["metadata"]["labels"]["app.kubernetes.io/name"] == "classifier" for o in objs)


def test_fullname_override_replaces_the_release_prefix_and_the_gateway_follows() -> None:
    objs = chart("fullnameOverride=sc")
    assert get(objs, "Deployment", "sc-serving")
    assert env(container(objs, "sc-gateway"))["TF_SERVING_HOST"] == "sc-serving:8500"


def test_a_release_not_named_after_the_chart_prefixes_every_object() -> None:
    objs = chart(release="demo")
    assert {o["metadata"]["name"] for o in of_kind(objs, "Deployment")} == {
        "demo-species-classifier-gateway",
        "demo-species-classifier-serving",
    }
    assert env(container(objs, "demo-species-classifier-gateway"))["TF_SERVING_HOST"] == (
        "demo-species-classifier-serving:8500"
    )


def test_selectors_never_carry_the_chart_version() -> None:
    objs = chart()
    for name in (GATEWAY, SERVING):
        selector = get(objs, "Deployment", name)["spec"]["selector"]["matchLabels"]
        assert set(selector) == {
            "app.kubernetes.io/name",
            "app.kubernetes.io/instance",
            "app.kubernetes.io/component",
        }
    chart_label = f"species-classifier-{chart_metadata()['version']}"
    assert all(o["metadata"]["labels"]["helm.sh/chart"] == chart_label for o in objs)


def test_without_chart_service_accounts_the_pods_use_the_namespace_default() -> None:
    objs = chart("serviceAccount.create=false")
    assert not of_kind(objs, "ServiceAccount")
    pod = pod_spec(objs, GATEWAY)
    assert pod["serviceAccountName"] == "default"
    assert pod["automountServiceAccountToken"] is False


# --- images --------------------------------------------------------------------------------------------


def test_an_empty_tag_defaults_to_the_chart_app_version() -> None:
    objs = chart()
    assert container(objs, GATEWAY)["image"] == f"docker.io/species-classifier/gateway:{VERSION}"
    assert container(objs, SERVING)["image"] == f"docker.io/species-classifier/serving:{VERSION}"
    assert {o["metadata"]["labels"]["app.kubernetes.io/version"] for o in objs} == {VERSION}


def test_an_image_digest_pins_the_image_by_digest() -> None:
    digest = "sha256:" + "ab" * 32
    objs = chart(
        "gateway.image.registry=123456789012.dkr.ecr.eu-west-1.amazonaws.com",
        "gateway.image.tag=3f2c1ab",
        f"gateway.image.digest={digest}",
    )
    assert container(objs, GATEWAY)["image"] == (
        f"123456789012.dkr.ecr.eu-west-1.amazonaws.com/species-classifier/gateway:3f2c1ab@{digest}"
    )


def test_the_test_hook_runs_the_same_pinned_gateway_image() -> None:
    objs = chart("gateway.image.tag=3f2c1ab")
    hook = get(objs, "Pod", "species-classifier-test-predict")
    assert hook["spec"]["containers"][0]["image"] == container(objs, GATEWAY)["image"]


# --- replicas, autoscaling, disruption budgets ---------------------------------------------------------


def test_a_pdb_is_not_rendered_for_a_single_replica_without_autoscaling() -> None:
    assert not of_kind(chart(), "PodDisruptionBudget")


def test_a_skipped_pdb_is_explained_in_the_notes() -> None:
    result = helm("install", render.RELEASE, str(CHART), "--dry-run=client", "--namespace", render.NAMESPACE)
    assert result.returncode == 0, result.stderr
    assert "no PodDisruptionBudget for gateway" in result.stdout
    assert "no PodDisruptionBudget for serving" in result.stdout


def test_a_pdb_is_rendered_when_the_hpa_minimum_is_above_one() -> None:
    objs = chart("serving.autoscaling.enabled=true", "serving.autoscaling.minReplicas=2")
    pdb = get(objs, "PodDisruptionBudget", SERVING)
    assert pdb["spec"]["minAvailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"] == "serving"
    assert find(objs, "PodDisruptionBudget", GATEWAY) is None


def test_a_pdb_with_max_unavailable_is_rendered_even_for_one_replica() -> None:
    objs = chart(
        "gateway.podDisruptionBudget.minAvailable=null", "gateway.podDisruptionBudget.maxUnavailable=1"
    )
    spec = get(objs, "PodDisruptionBudget", GATEWAY)["spec"]
    assert spec["maxUnavailable"] == 1
    assert "minAvailable" not in spec


def test_a_disabled_pdb_is_not_rendered_even_with_many_replicas() -> None:
    objs = chart("gateway.replicaCount=3", "gateway.podDisruptionBudget.enabled=false")
    assert find(objs, "PodDisruptionBudget", GATEWAY) is None


def test_the_hpa_replaces_the_fixed_replica_count() -> None:
    objs = chart("gateway.autoscaling.enabled=true", "gateway.replicaCount=5")
    assert "replicas" not in get(objs, "Deployment", GATEWAY)["spec"]
    hpa = get(objs, "HorizontalPodAutoscaler", GATEWAY)["spec"]
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": GATEWAY}
    assert hpa["metrics"][0]["resource"]["target"]["averageUtilization"] == 70


# --- services and networking ---------------------------------------------------------------------------


def test_the_serving_service_is_headless() -> None:
    service = get(chart(), "Service", SERVING)["spec"]
    assert service["clusterIP"] == "None"
    assert {(p["name"], p["port"]) for p in service["ports"]} == {("grpc", 8500), ("http", 8501)}


def test_the_gateway_service_maps_port_80_to_the_http_container_port() -> None:
    port = get(chart(), "Service", GATEWAY)["spec"]["ports"][0]
    assert (port["name"], port["port"], port["targetPort"]) == ("http", 80, "http")


def test_the_kind_values_publish_the_gateway_on_node_port_30080() -> None:
    spec = get(chart(values=("values-kind.yaml",)), "Service", GATEWAY)["spec"]
    assert spec["type"] == "NodePort"
    assert spec["ports"][0]["nodePort"] == 30080


def test_the_eks_values_put_an_internet_facing_nlb_in_front_of_the_gateway() -> None:
    service = get(chart(values=("values-eks.yaml",)), "Service", GATEWAY)
    annotations = service["metadata"]["annotations"]
    assert service["spec"]["type"] == "LoadBalancer"
    assert service["spec"]["loadBalancerClass"] == "service.k8s.aws/nlb"
    assert annotations["service.beta.kubernetes.io/aws-load-balancer-type"] == "external"
    assert annotations["service.beta.kubernetes.io/aws-load-balancer-nlb-target-type"] == "ip"
    assert annotations["service.beta.kubernetes.io/aws-load-balancer-scheme"] == "internet-facing"


def test_the_eks_values_run_two_replicas_of_each_with_autoscaling_and_budgets() -> None:
    objs = chart(values=("values-eks.yaml",))
    for name in (GATEWAY, SERVING):
        assert get(objs, "HorizontalPodAutoscaler", name)["spec"]["minReplicas"] >= 2
        assert get(objs, "PodDisruptionBudget", name)["spec"]["minAvailable"] == 1


def test_the_eks_graceful_shutdown_fits_in_the_grace_period() -> None:
    pod = pod_spec(chart(values=("values-eks.yaml",)), GATEWAY)
    sleep = pod["containers"][0]["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert sleep < pod["terminationGracePeriodSeconds"]


def test_the_serving_network_policy_opens_the_metrics_port_only_when_asked() -> None:
    closed = get(chart(), "NetworkPolicy", SERVING)["spec"]["ingress"]
    assert [p["port"] for rule in closed for p in rule["ports"]] == ["grpc"]
    peer = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
    opened = get(chart(values=("ci/monitoring-values.yaml",)), "NetworkPolicy", SERVING)["spec"]["ingress"]
    assert {"from": [peer], "ports": [{"port": "http", "protocol": "TCP"}]} in opened


def gateway_policy(objs: list[Manifest]) -> dict[str, Any]:
    spec: dict[str, Any] = get(objs, "NetworkPolicy", GATEWAY)["spec"]
    return spec


def public_rules(policy: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for r in policy.get("egress", []) if any("ipBlock" in peer for peer in r["to"])]


def test_the_gateway_egress_policy_reaches_tf_serving_dns_and_public_addresses_only() -> None:
    objs = chart()
    policy = gateway_policy(objs)
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    serving, dns, public = policy["egress"]
    serving_pods = get(objs, "Deployment", SERVING)["spec"]["selector"]
    assert serving == {"to": [{"podSelector": serving_pods}], "ports": [{"port": 8500, "protocol": "TCP"}]}
    assert dns["to"] == [
        {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
            "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
        }
    ]
    assert dns["ports"] == [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]
    assert [peer["ipBlock"]["cidr"] for peer in public["to"]] == ["0.0.0.0/0", "::/0"]
    assert public["ports"] == [{"port": 80, "protocol": "TCP"}, {"port": 443, "protocol": "TCP"}]
    assert not checks.check_gateway_egress(objs)


def test_one_value_sets_the_fetch_ports_of_the_gateway_and_of_its_egress_policy() -> None:
    objs = chart("gateway.fetch.allowedPorts={443,8443}")
    assert env(container(objs, GATEWAY))["FETCH_ALLOWED_PORTS"] == "443,8443"
    [public] = public_rules(gateway_policy(objs))
    assert [p["port"] for p in public["ports"]] == [443, 8443]
    assert not checks.check_fetch_ports_agree(objs)


def test_fetch_ports_set_through_gateway_env_are_refused() -> None:
    for assignment in ("gateway.env.FETCH_ALLOWED_PORTS=22", "gateway.extraEnv[0].name=FETCH_ALLOWED_PORTS"):
        result = helm("template", "x", str(CHART), "--set", assignment)
        assert result.returncode != 0, assignment
        assert "gateway.env/extraEnv must not set FETCH_ALLOWED_PORTS" in result.stderr


def test_the_values_schema_refuses_fetch_ports_that_are_no_ports() -> None:
    for ports in ("{0}", "{70000}", "{80,80}", "{http}"):
        result = helm("template", "x", str(CHART), "--set", f"gateway.fetch.allowedPorts={ports}")
        assert result.returncode != 0, ports
        assert "/gateway/fetch/allowedPorts" in result.stderr, result.stderr


def values_file(tmp_path: Path, values: dict[str, Any]) -> str:
    """A values file holding `values` (`--set` cannot write an empty list)."""
    path = tmp_path / "values.yaml"
    path.write_text(yaml.safe_dump(values))
    return str(path)


def test_an_empty_peer_list_drops_its_egress_rule_instead_of_allowing_every_destination(
    tmp_path: Path,
) -> None:
    empty = {"gateway": {"networkPolicy": {"egress": {"dnsTo": [], "fetchTo": []}}}}
    policy = gateway_policy(chart(values=(values_file(tmp_path, empty),)))
    assert "Egress" in policy["policyTypes"]
    assert [rule["ports"] for rule in policy["egress"]] == [[{"port": 8500, "protocol": "TCP"}]]
    assert all(rule.get("to") for rule in policy["egress"])


def test_extra_egress_rules_widen_the_fence_and_disabling_egress_opens_it() -> None:
    extra = {"to": [{"ipBlock": {"cidr": "10.20.0.0/16"}}], "ports": [{"port": 4317, "protocol": "TCP"}]}
    widened = gateway_policy(
        chart(
            "gateway.networkPolicy.egress.extraRules[0].to[0].ipBlock.cidr=10.20.0.0/16",
            "gateway.networkPolicy.egress.extraRules[0].ports[0].port=4317",
            "gateway.networkPolicy.egress.extraRules[0].ports[0].protocol=TCP",
        )
    )
    assert widened["egress"][-1] == extra
    assert len(widened["egress"]) == 4
    opened = gateway_policy(chart("gateway.networkPolicy.egress.enabled=false"))
    assert opened["policyTypes"] == ["Ingress"]
    assert "egress" not in opened


def test_tf_serving_may_send_nothing_unless_rules_are_added() -> None:
    closed = get(chart(), "NetworkPolicy", SERVING)["spec"]
    assert closed["policyTypes"] == ["Ingress", "Egress"]
    assert "egress" not in closed
    opened = get(
        chart(
            "serving.networkPolicy.egress.extraRules[0].to[0].ipBlock.cidr=0.0.0.0/0",
            "serving.networkPolicy.egress.extraRules[0].ports[0].port=443",
        ),
        "NetworkPolicy",
        SERVING,
    )["spec"]
    assert opened["egress"] == [{"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}], "ports": [{"port": 443}]}]
    assert get(chart("serving.networkPolicy.egress.enabled=false"), "NetworkPolicy", SERVING)["spec"][
        "policyTypes"
    ] == ["Ingress"]


def test_the_metrics_port_admits_any_pod_in_the_cluster_by_default_and_can_be_closed(tmp_path: Path) -> None:
    ingress = gateway_policy(chart())["ingress"]
    assert ingress == [
        {"ports": [{"port": "http", "protocol": "TCP"}]},
        {"from": [{"namespaceSelector": {}}], "ports": [{"port": "metrics", "protocol": "TCP"}]},
    ]
    nobody = {"gateway": {"networkPolicy": {"metricsFrom": []}}}
    closed = gateway_policy(chart(values=(values_file(tmp_path, nobody),)))["ingress"]
    assert closed == [{"ports": [{"port": "http", "protocol": "TCP"}]}]


@pytest.mark.parametrize("values_file", VALUES_FILES, ids=lambda v: v or "defaults")
def test_the_metrics_port_has_its_own_cluster_ip_service_and_the_public_one_only_http(
    values_file: str | None,
) -> None:
    objs = chart(values=(values_file,) if values_file else ())
    assert [p["name"] for p in get(objs, "Service", GATEWAY)["spec"]["ports"]] == ["http"]
    metrics = get(objs, "Service", f"{GATEWAY}-metrics")["spec"]
    assert metrics["type"] == "ClusterIP"
    assert metrics["ports"] == [{"name": "metrics", "port": 9697, "targetPort": "metrics", "protocol": "TCP"}]
    assert ports_by_name(container(objs, GATEWAY)) == {"http": 9696, "metrics": 9697}
    assert not checks.check_metrics_off_public_services(objs)


def test_the_eks_values_serve_metrics_only_off_the_public_port() -> None:
    objs = chart(values=("values-eks.yaml",))
    assert get(objs, "Service", GATEWAY)["spec"]["type"] == "LoadBalancer"
    assert env(container(objs, GATEWAY))["METRICS_ON_MAIN_PORT"] == "false"
    assert env(container(chart(), GATEWAY))["METRICS_ON_MAIN_PORT"] == "true"


def test_the_openapi_docs_are_off_unless_enabled() -> None:
    assert env(container(chart(), GATEWAY))["DOCS_ENABLED"] == "false"
    assert env(container(chart("gateway.docs.enabled=true"), GATEWAY))["DOCS_ENABLED"] == "true"


def test_a_long_release_name_keeps_the_metrics_service_name_within_63_characters() -> None:
    objs = chart("fullnameOverride=" + "x" * 54)
    names = [o["metadata"]["name"] for o in of_kind(objs, "Service")]
    assert len(names) == 3
    assert all(len(name) <= 63 for name in names), names
    assert len(set(names)) == 3, names


def test_network_policies_can_be_disabled() -> None:
    objs = chart("gateway.networkPolicy.enabled=false", "serving.networkPolicy.enabled=false")
    assert not of_kind(objs, "NetworkPolicy")


def test_service_monitors_are_rendered_only_when_enabled() -> None:
    assert not of_kind(chart(), "ServiceMonitor")
    objs = chart(values=("ci/monitoring-values.yaml",))
    endpoints = {m["metadata"]["name"]: m["spec"]["endpoints"][0] for m in of_kind(objs, "ServiceMonitor")}
    assert (endpoints[GATEWAY]["port"], endpoints[GATEWAY]["path"]) == ("metrics", "/metrics")
    assert (endpoints[SERVING]["port"], endpoints[SERVING]["path"]) == (
        "http",
        "/monitoring/prometheus/metrics",
    )
    # The gateway's ServiceMonitor selects both gateway Services; only the ClusterIP one has a `metrics` port.
    scraped = [
        s["metadata"]["name"]
        for s in of_kind(objs, "Service")
        if checks.selector_matches(
            get(objs, "ServiceMonitor", GATEWAY)["spec"]["selector"], s["metadata"]["labels"]
        )
        and any(p["name"] == "metrics" for p in s["spec"]["ports"])
    ]
    assert scraped == [f"{GATEWAY}-metrics"]


DASHBOARD_FILE = CHART / "files" / "grafana-dashboard.json"
RULES_FILE = CHART / "files" / "prometheus-rules.yaml"


def test_the_dashboard_and_the_alerts_are_rendered_only_when_enabled() -> None:
    assert not of_kind(chart(), "PrometheusRule")
    assert not [c for c in of_kind(chart(), "ConfigMap") if "grafana_dashboard" in c["metadata"]["labels"]]
    objs = chart("monitoring.grafanaDashboard.enabled=true", "monitoring.prometheusRule.enabled=true")
    assert len(of_kind(objs, "PrometheusRule")) == 1
    assert get(objs, "ConfigMap", "species-classifier-dashboard")


def test_the_dashboard_config_map_holds_the_dashboard_file_under_the_sidecar_label() -> None:
    objs = chart("monitoring.grafanaDashboard.enabled=true")
    config_map = get(objs, "ConfigMap", "species-classifier-dashboard")
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert config_map["metadata"]["namespace"] == render.NAMESPACE
    assert json.loads(config_map["data"]["species-classifier.json"]) == json.loads(DASHBOARD_FILE.read_text())


def test_the_dashboard_label_namespace_and_annotations_follow_the_values() -> None:
    config_map = get(
        chart(
            "monitoring.grafanaDashboard.enabled=true",
            "monitoring.grafanaDashboard.label=dashboards",
            "monitoring.grafanaDashboard.labelValue=species",
            "monitoring.grafanaDashboard.namespace=monitoring",
            "monitoring.grafanaDashboard.annotations.grafana_folder=Wildlife",
        ),
        "ConfigMap",
        "species-classifier-dashboard",
    )
    assert config_map["metadata"]["labels"]["dashboards"] == "species"
    assert "grafana_dashboard" not in config_map["metadata"]["labels"]
    assert config_map["metadata"]["namespace"] == "monitoring"
    assert config_map["metadata"]["annotations"] == {"grafana_folder": "Wildlife"}


def test_the_prometheus_rule_is_the_plain_rules_file_unchanged() -> None:
    rule = of_kind(chart(values=("ci/monitoring-values.yaml",)), "PrometheusRule")[0]
    assert rule["spec"] == yaml.safe_load(RULES_FILE.read_text())
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    # Prometheus' own template syntax reaches the PrometheusRule untouched by Helm.
    assert "{{ $labels.job }}" in json.dumps(rule["spec"])


# --- containers ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("values_file", VALUES_FILES, ids=lambda v: v or "defaults")
def test_tf_serving_cpus_follows_a_cpu_limit_equal_to_the_request(values_file: str | None) -> None:
    serving = container(chart(values=(values_file,) if values_file else ()), SERVING)
    field = env(serving)["TF_SERVING_CPUS"]["resourceFieldRef"]
    assert field == {"containerName": "serving", "resource": "limits.cpu", "divisor": "1"}
    assert str(serving["resources"]["limits"]["cpu"]) == str(serving["resources"]["requests"]["cpu"])


def test_plain_and_extra_env_reach_the_gateway_after_the_chart_set_variables() -> None:
    objs = chart(values=("ci/overrides-values.yaml",))
    names = [e["name"] for e in container(objs, GATEWAY)["env"]]
    assert names == [*CHART_SET_GATEWAY_ENV, "LOG_LEVEL", "POD_NAME"]


def test_topology_spread_constraints_select_their_own_component() -> None:
    pod = pod_spec(chart(), SERVING)
    keys = {c["topologyKey"] for c in pod["topologySpreadConstraints"]}
    assert keys == {"kubernetes.io/hostname", "topology.kubernetes.io/zone"}
    for constraint in pod["topologySpreadConstraints"]:
        assert constraint["labelSelector"]["matchLabels"]["app.kubernetes.io/component"] == "serving"
        assert constraint["whenUnsatisfiable"] == "ScheduleAnyway"


# --- helm test hook ------------------------------------------------------------------------------------


def test_without_golden_images_the_test_pod_checks_readiness_and_the_model() -> None:
    objs = chart()
    hook = get(objs, "Pod", "species-classifier-test-predict")
    assert hook["metadata"]["annotations"]["helm.sh/hook"] == "test"
    command = hook["spec"]["containers"][0]["command"]
    assert "/readyz" in command[2]
    assert "/model" in command[2]
    assert command[3:] == ["http://species-classifier-gateway:80", "species_model"]
    assert find(objs, "ConfigMap", "species-classifier-test-golden") is None


def test_the_test_pod_sends_every_golden_image_with_its_label() -> None:
    objs = chart(values=("ci/overrides-values.yaml",))
    config_map = get(objs, "ConfigMap", "species-classifier-test-golden")
    assert config_map["metadata"]["annotations"]["helm.sh/hook"] == "test"
    assert set(config_map["binaryData"]) == {"leopard.jpg"}
    hook = get(objs, "Pod", "species-classifier-test-predict")["spec"]
    script = hook["containers"][0]["command"][2]
    assert '"gateway.client"' in script
    assert '"--expect-label", image.stem' in script
    assert {"name": "golden", "configMap": {"name": "species-classifier-test-golden"}} in hook["volumes"]


def test_a_base64_file_with_line_breaks_becomes_one_unbroken_string(tmp_path: Path) -> None:
    wrapped = tmp_path / "bird.b64"
    wrapped.write_text("QUJD\nREVG\n")
    result = helm(
        "template",
        "x",
        str(CHART),
        "--set-file",
        f"tests.predict.goldenImages.bird={wrapped}",
        "--show-only",
        "templates/tests/test-predict-configmap.yaml",
    )
    assert result.returncode == 0, result.stderr
    assert yaml.safe_load(result.stdout)["binaryData"] == {"bird.jpg": "QUJDREVG"}
