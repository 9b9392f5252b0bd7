"""Level 3: every render of the Kubernetes packaging is valid, consistent and hardened.

Renders: `kustomize build` of k8s/overlays/kind and k8s/overlays/eks, and `helm template` of the chart with
its default values, values-kind.yaml, values-eks.yaml and each ci/*-values.yaml (see conftest.py). The
"broken copy" tests at the end mutate a real render and assert each checker reports it, so none of the
checks can pass vacuously.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from tests.packaging import checks, render
from tests.packaging.conftest import Render, produce
from tests.support.manifests import VERSION, Manifest, component_name, container, env, find, get, pod_spec

pytestmark = pytest.mark.packaging


def assert_no_problems(problems: list[str], render_name: str) -> None:
    assert not problems, f"{render_name}:\n  " + "\n  ".join(problems)


# --- every render ------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", checks.SCHEMA_VERSIONS)
def test_every_object_is_valid_against_the_strict_kubernetes_schema(rendered: Render, version: str) -> None:
    assert_no_problems(checks.check_schema(rendered.objects, version), rendered.name)


def test_custom_resources_without_a_kubernetes_schema_are_reported(
    rendered: Render, record_property: Callable[[str, Any], None]
) -> None:
    # ServiceMonitor, PrometheusRule and other CRDs are checked structurally only (a PrometheusRule's rules by
    # promtool too, in tests/monitoring); record which, so the report shows it.
    unvalidated = checks.unvalidated_kinds(rendered.objects, checks.SCHEMA_VERSIONS[-1])
    record_property("structurally_checked_only", unvalidated)
    assert set(unvalidated) <= {
        "monitoring.coreos.com/v1 ServiceMonitor",
        "monitoring.coreos.com/v1 PrometheusRule",
    }, unvalidated


def test_each_service_selects_the_pods_of_exactly_one_deployment(rendered: Render) -> None:
    assert_no_problems(checks.check_services_select_one_deployment(rendered.objects), rendered.name)


def test_selectors_use_only_name_instance_and_component(rendered: Render) -> None:
    assert_no_problems(checks.check_selectors_use_only_stable_labels(rendered.objects), rendered.name)


def test_every_object_carries_the_common_labels(rendered: Render) -> None:
    assert_no_problems(checks.check_common_labels(rendered.objects), rendered.name)


def test_every_service_target_port_is_declared_by_the_selected_containers(rendered: Render) -> None:
    assert_no_problems(checks.check_target_ports(rendered.objects), rendered.name)


def test_the_gateway_tf_serving_host_names_a_service_and_port_of_the_same_render(rendered: Render) -> None:
    assert_no_problems(checks.check_tf_serving_host(rendered.objects), rendered.name)


def test_every_probe_targets_a_declared_container_port(rendered: Render) -> None:
    assert_no_problems(checks.check_probe_ports(rendered.objects), rendered.name)


def test_every_pod_passes_pod_security_restricted(rendered: Render) -> None:
    assert_no_problems(checks.check_pod_security_restricted(rendered.objects), rendered.name)


def test_every_pod_has_a_read_only_root_and_no_service_account_token(rendered: Render) -> None:
    assert_no_problems(checks.check_hardening(rendered.objects), rendered.name)


def test_only_gateway_pods_may_reach_tf_serving(rendered: Render) -> None:
    assert_no_problems(checks.check_serving_network_policy(rendered.objects), rendered.name)


def test_autoscalers_and_disruption_budgets_target_existing_deployments(rendered: Render) -> None:
    assert_no_problems(checks.check_autoscaling_and_budgets(rendered.objects), rendered.name)


def test_every_image_is_pinned_by_tag_and_never_latest(rendered: Render) -> None:
    assert_no_problems(checks.check_images_pinned(rendered.objects), rendered.name)


def test_tf_serving_pods_may_send_nothing(rendered: Render) -> None:
    assert_no_problems(checks.check_serving_egress(rendered.objects), rendered.name)


def test_the_gateway_may_reach_only_tf_serving_dns_and_public_addresses(rendered: Render) -> None:
    assert_no_problems(checks.check_gateway_egress(rendered.objects), rendered.name)


def test_the_fetcher_and_the_egress_policy_allow_the_same_ports(rendered: Render) -> None:
    assert_no_problems(checks.check_fetch_ports_agree(rendered.objects), rendered.name)


def test_no_public_service_exposes_the_gateway_metrics(rendered: Render) -> None:
    assert_no_problems(checks.check_metrics_off_public_services(rendered.objects), rendered.name)


def test_the_serving_service_is_headless_and_publishes_only_ready_pods(rendered: Render) -> None:
    # The gateway's round_robin gRPC balancer needs one DNS record per ready pod.
    serving = get(rendered.objects, "Service", "species-classifier-serving")
    assert serving["spec"].get("clusterIP") == "None"
    assert serving["spec"].get("publishNotReadyAddresses", False) is False
    assert {(p["name"], p["port"]) for p in serving["spec"]["ports"]} == {("grpc", 8500), ("http", 8501)}


def test_the_serving_threads_follow_the_container_cpu_limit(rendered: Render) -> None:
    serving = container(rendered.objects, component_name("serving"), "serving")
    ref = env(serving)["TF_SERVING_CPUS"]["resourceFieldRef"]
    assert (ref["containerName"], ref["resource"], str(ref.get("divisor"))) == ("serving", "limits.cpu", "1")
    resources = serving["resources"]
    assert str(resources["limits"]["cpu"]) == str(resources["requests"]["cpu"]), "CPU limit != request"


def test_the_gateway_learns_its_memory_limit_from_the_downward_api(rendered: Render) -> None:
    gateway = container(rendered.objects, component_name("gateway"), "gateway")
    ref = env(gateway)["MEMORY_LIMIT_BYTES"]["resourceFieldRef"]
    field = (ref["containerName"], ref["resource"], str(ref.get("divisor")))
    assert field == ("gateway", "limits.memory", "1")
    assert gateway["resources"]["limits"]["memory"], "without a memory limit the node's memory would be read"


# --- the kustomize overlays --------------------------------------------------------------------------


def test_the_kind_overlay_runs_one_small_replica_of_each_behind_node_port_30080(
    kind_overlay: list[Manifest],
) -> None:
    gateway_svc = get(kind_overlay, "Service", "species-classifier-gateway")
    assert gateway_svc["spec"]["type"] == "NodePort"
    assert [p.get("nodePort") for p in gateway_svc["spec"]["ports"]] == [30080]
    for component in ("gateway", "serving"):
        deployment = get(kind_overlay, "Deployment", component_name(component))
        assert deployment["metadata"]["namespace"] == render.NAMESPACE
        assert deployment["spec"]["replicas"] == 1
        image = container(kind_overlay, component_name(component))
        assert image["image"] == f"docker.io/species-classifier/{component}:{VERSION}"
        assert image["imagePullPolicy"] == "IfNotPresent", "kind-loaded images must not be pulled"
    assert not checks.of_kind(kind_overlay, "HorizontalPodAutoscaler")
    assert not checks.of_kind(kind_overlay, "PodDisruptionBudget"), "a PDB cannot be met with one replica"


def test_the_kind_namespace_enforces_pod_security_restricted(kind_overlay: list[Manifest]) -> None:
    namespace = get(kind_overlay, "Namespace", render.NAMESPACE)
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_the_eks_overlay_puts_an_internet_facing_nlb_in_front_of_two_replicas(
    eks_overlay: list[Manifest],
) -> None:
    gateway_svc = get(eks_overlay, "Service", "species-classifier-gateway")
    assert gateway_svc["spec"]["type"] == "LoadBalancer"
    annotations = gateway_svc["metadata"]["annotations"]
    assert annotations["service.beta.kubernetes.io/aws-load-balancer-type"] == "external"
    assert annotations["service.beta.kubernetes.io/aws-load-balancer-nlb-target-type"] == "ip"
    assert annotations["service.beta.kubernetes.io/aws-load-balancer-scheme"] == "internet-facing"
    for component in ("gateway", "serving"):
        name = f"species-classifier-{component}"
        deployment = get(eks_overlay, "Deployment", name)
        assert deployment["spec"]["replicas"] == 2
        assert ".dkr.ecr." in container(eks_overlay, name)["image"]
        assert find(eks_overlay, "HorizontalPodAutoscaler", name) is not None
        assert find(eks_overlay, "PodDisruptionBudget", name) is not None


def test_the_base_holds_nothing_environment_specific() -> None:
    base = render.parse_documents(
        render._run([*render.kustomize_command(), str(render.REPO / "k8s" / "base")])
    )
    for obj in base:
        assert "namespace" not in obj["metadata"], checks.name_of(obj)
        assert obj["kind"] not in ("Namespace", "HorizontalPodAutoscaler", "PodDisruptionBudget")
    gateway_svc = get(base, "Service", "species-classifier-gateway")
    assert gateway_svc["spec"]["type"] == "ClusterIP"


# --- kustomize vs chart ------------------------------------------------------------------------------


def test_the_kind_overlay_and_the_chart_with_values_kind_describe_the_same_workloads(
    kind_overlay: list[Manifest], chart_kind: list[Manifest]
) -> None:
    differences = checks.drift(kind_overlay, chart_kind)
    assert not differences, (
        "k8s/overlays/kind and charts/species-classifier -f values-kind.yaml drift "
        "(change both sides together):\n  " + "\n  ".join(differences)
    )


def _unbound(objs: list[Manifest]) -> list[Manifest]:
    """A copy without what an EKS install binds at deploy time: the image registry (ECR account and region)
    and the replica count of Deployments an HPA owns (the chart leaves it unset, the overlay starts at 2)."""
    objs = copy.deepcopy(objs)
    scaled = {h["spec"]["scaleTargetRef"]["name"] for h in checks.of_kind(objs, "HorizontalPodAutoscaler")}
    for deployment in checks.of_kind(objs, "Deployment"):
        if deployment["metadata"]["name"] in scaled:
            deployment["spec"].pop("replicas", None)
        for spec in checks.all_containers(deployment["spec"]["template"]["spec"]):
            first, _, rest = spec["image"].partition("/")
            if rest and ("." in first or ":" in first):
                spec["image"] = rest
    return objs


def test_the_eks_overlay_and_the_chart_with_values_eks_differ_only_in_registry_and_replicas(
    eks_overlay: list[Manifest],
) -> None:
    chart_eks = produce("chart-values-eks").objects
    differences = checks.drift(_unbound(eks_overlay), _unbound(chart_eks))
    assert not differences, "k8s/overlays/eks and values-eks.yaml drift:\n  " + "\n  ".join(differences)


# --- kind-config.yaml --------------------------------------------------------------------------------


def test_kind_config_is_a_pinned_multi_node_cluster_publishing_the_gateway_on_localhost_8080(
    kind_overlay: list[Manifest],
) -> None:
    assert_no_problems(checks.check_kind_config(render.load_kind_config(), kind_overlay), "kind-config.yaml")


# --- broken copies: each checker reports what it exists to catch ------------------------------------

Mutation = Callable[[list[Manifest]], None]


def _pod(objs: list[Manifest], component: str) -> dict[str, Any]:
    return pod_spec(objs, component_name(component))


def _container(objs: list[Manifest], component: str) -> dict[str, Any]:
    return container(objs, component_name(component))


def _obj(objs: list[Manifest], kind: str, component: str) -> dict[str, Any]:
    return get(objs, kind, component_name(component))


def _service(objs: list[Manifest], component: str) -> dict[str, Any]:
    return _obj(objs, "Service", component)


def _set_env(objs: list[Manifest], value: str, name: str = "TF_SERVING_HOST") -> None:
    for var in _container(objs, "gateway")["env"]:
        if var["name"] == name:
            var["value"] = value


def _egress(objs: list[Manifest], component: str) -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = _obj(objs, "NetworkPolicy", component)["spec"]["egress"]
    return rules


def _public_rule(objs: list[Manifest]) -> dict[str, Any]:
    return next(r for r in _egress(objs, "gateway") if "ipBlock" in r["to"][0])


def _set_selector(objs: list[Manifest], component: str, value: str) -> None:
    _service(objs, component)["spec"]["selector"]["app.kubernetes.io/component"] = value


BROKEN: dict[str, tuple[str, Mutation, str]] = {
    # id: (check, mutation, text the report must contain)
    "service-selects-nothing": (
        "services_select_one_deployment",
        lambda o: _set_selector(o, "gateway", "frontend"),
        "selects 0 Deployments",
    ),
    "service-selects-both": (
        "services_select_one_deployment",
        lambda o: _service(o, "serving")["spec"]["selector"].pop("app.kubernetes.io/component"),
        "selects 2 Deployments",
    ),
    "selector-uses-version": (
        "selectors_use_only_stable_labels",
        lambda o: _service(o, "gateway")["spec"]["selector"].update({"app.kubernetes.io/version": VERSION}),
        "selector keys",
    ),
    "label-missing": (
        "common_labels",
        lambda o: _service(o, "gateway")["metadata"]["labels"].pop("app.kubernetes.io/part-of"),
        "lacks common labels",
    ),
    "target-port-renamed": (
        "target_ports",
        lambda o: _service(o, "gateway")["spec"]["ports"][0].update({"targetPort": "web"}),
        "targets 'web'",
    ),
    "target-port-number": (
        "target_ports",
        lambda o: _service(o, "serving")["spec"]["ports"][0].update({"targetPort": 9000}),
        "targets 9000",
    ),
    "tf-serving-host-unknown-service": (
        "tf_serving_host",
        lambda o: _set_env(o, "tf-serving:8500"),
        "no Service 'tf-serving'",
    ),
    "tf-serving-host-wrong-port": (
        "tf_serving_host",
        lambda o: _set_env(o, "species-classifier-serving:9000"),
        "has ports",
    ),
    "tf-serving-host-other-namespace": (
        "tf_serving_host",
        lambda o: _set_env(o, "species-classifier-serving.default.svc.cluster.local:8500"),
        "names namespace 'default'",
    ),
    "probe-on-undeclared-port": (
        "probe_ports",
        lambda o: _container(o, "serving")["readinessProbe"]["grpc"].update({"port": 9000}),
        "readinessProbe grpc port 9000",
    ),
    "run-as-non-root-dropped": (
        "pod_security_restricted",
        lambda o: _pod(o, "gateway")["securityContext"].pop("runAsNonRoot"),
        "runAsNonRoot must be true",
    ),
    "privilege-escalation": (
        "pod_security_restricted",
        lambda o: _container(o, "serving")["securityContext"].update({"allowPrivilegeEscalation": True}),
        "allowPrivilegeEscalation must be false",
    ),
    "capability-added": (
        "pod_security_restricted",
        lambda o: _container(o, "gateway")["securityContext"]["capabilities"].update({"add": ["NET_ADMIN"]}),
        "adds capabilities ['NET_ADMIN']",
    ),
    "seccomp-unconfined": (
        "pod_security_restricted",
        lambda o: _pod(o, "serving")["securityContext"].update({"seccompProfile": {"type": "Unconfined"}}),
        "seccompProfile Unconfined",
    ),
    "host-path-volume": (
        "pod_security_restricted",
        lambda o: _pod(o, "serving")["volumes"].append({"name": "models", "hostPath": {"path": "/models"}}),
        "['hostPath']",
    ),
    "host-network": (
        "pod_security_restricted",
        lambda o: _pod(o, "gateway").update({"hostNetwork": True}),
        "hostNetwork is set",
    ),
    "host-port": (
        "pod_security_restricted",
        lambda o: _container(o, "gateway")["ports"][0].update({"hostPort": 9696}),
        "hostPort 9696",
    ),
    "privileged": (
        "pod_security_restricted",
        lambda o: _container(o, "serving")["securityContext"].update({"privileged": True}),
        "privileged",
    ),
    "writable-root": (
        "hardening",
        lambda o: _container(o, "gateway")["securityContext"].pop("readOnlyRootFilesystem"),
        "readOnlyRootFilesystem must be true",
    ),
    "token-mounted": (
        "hardening",
        lambda o: _pod(o, "serving").pop("automountServiceAccountToken"),
        "automountServiceAccountToken must be false",
    ),
    "network-policy-open-to-all": (
        "serving_network_policy",
        lambda o: _obj(o, "NetworkPolicy", "serving")["spec"]["ingress"][0].pop("from"),
        "to every source",
    ),
    "network-policy-from-namespace": (
        "serving_network_policy",
        lambda o: _obj(o, "NetworkPolicy", "serving")["spec"]["ingress"][0]["from"].append(
            {"namespaceSelector": {}}
        ),
        "admits {'namespaceSelector': {}}",
    ),
    "network-policy-selects-other-pods": (
        "serving_network_policy",
        lambda o: _obj(o, "NetworkPolicy", "serving")["spec"]["podSelector"]["matchLabels"].update(
            {"app.kubernetes.io/component": "model"}
        ),
        "no NetworkPolicy selects the serving pods",
    ),
    "image-latest": (
        "images_pinned",
        lambda o: _container(o, "gateway").update({"image": "species-classifier/gateway:latest"}),
        "(latest)",
    ),
    "image-untagged": (
        "images_pinned",
        lambda o: _container(o, "serving").update({"image": "localhost:5000/species-classifier/serving"}),
        "has no tag",
    ),
    "serving-egress-open": (
        "serving_egress",
        lambda o: _obj(o, "NetworkPolicy", "serving")["spec"]["policyTypes"].remove("Egress"),
        "no NetworkPolicy restricts the serving pods' egress",
    ),
    "serving-egress-rule": (
        "serving_egress",
        lambda o: _obj(o, "NetworkPolicy", "serving")["spec"].update({"egress": [{"ports": [{"port": 53}]}]}),
        "lets the serving pods send to anywhere",
    ),
    "gateway-egress-open": (
        "gateway_egress",
        lambda o: _obj(o, "NetworkPolicy", "gateway")["spec"]["policyTypes"].remove("Egress"),
        "no NetworkPolicy restricts the gateway pods' egress",
    ),
    "gateway-egress-rule-without-peers": (
        "gateway_egress",
        lambda o: _public_rule(o).pop("to"),
        "it allows every destination",
    ),
    "gateway-egress-rule-without-ports": (
        "gateway_egress",
        lambda o: _egress(o, "gateway")[1].pop("ports"),
        "it allows every port",
    ),
    "gateway-egress-reaches-private-addresses": (
        "gateway_egress",
        lambda o: _public_rule(o)["to"][0]["ipBlock"]["except"].remove("10.0.0.0/8"),
        "reaches non-public ['10.0.0.0/8']",
    ),
    "gateway-egress-reaches-cloud-metadata": (
        "gateway_egress",
        lambda o: _public_rule(o)["to"][0]["ipBlock"]["except"].remove("169.254.0.0/16"),
        "reaches non-public ['169.254.0.0/16']",
    ),
    "gateway-egress-reaches-ipv4-mapped-ipv6": (
        "gateway_egress",
        lambda o: _public_rule(o)["to"][1]["ipBlock"]["except"].remove("::/8"),
        "'::ffff:0:0/96'",
    ),
    "gateway-egress-reaches-the-api-server": (
        "gateway_egress",
        lambda o: _egress(o, "gateway").append(
            {"to": [{"ipBlock": {"cidr": "10.96.0.1/32"}}], "ports": [{"port": 443, "protocol": "TCP"}]}
        ),
        "ipBlock 10.96.0.1/32 reaches non-public ['10.0.0.0/8']",
    ),
    "gateway-egress-opens-serving-rest": (
        "gateway_egress",
        lambda o: _egress(o, "gateway")[0]["ports"].append({"port": 8501, "protocol": "TCP"}),
        "on the serving pods, not gRPC 8500",
    ),
    "gateway-egress-dns-in-every-namespace": (
        "gateway_egress",
        lambda o: _egress(o, "gateway")[1]["to"][0].update({"namespaceSelector": {}}),
        "lets the gateway reach",
    ),
    "gateway-egress-without-dns": (
        "gateway_egress",
        lambda o: _egress(o, "gateway").pop(1),
        "no egress rule lets the gateway pods reach dns",
    ),
    "fetch-port-only-in-the-fetcher": (
        "fetch_ports_agree",
        lambda o: _set_env(o, "80,443,22", name="FETCH_ALLOWED_PORTS"),
        "FETCH_ALLOWED_PORTS [22, 80, 443] but its egress to public addresses opens [80, 443]",
    ),
    "fetch-port-only-in-the-policy": (
        "fetch_ports_agree",
        lambda o: _public_rule(o)["ports"].append({"port": 8080, "protocol": "TCP"}),
        "FETCH_ALLOWED_PORTS [80, 443] but its egress to public addresses opens [80, 443, 8080]",
    ),
    "fetch-ports-unset": (
        "fetch_ports_agree",
        lambda o: _container(o, "gateway")["env"].remove(
            next(e for e in _container(o, "gateway")["env"] if e["name"] == "FETCH_ALLOWED_PORTS")
        ),
        "sets no literal FETCH_ALLOWED_PORTS",
    ),
    "metrics-on-the-node-port": (
        "metrics_off_public_services",
        lambda o: _service(o, "gateway")["spec"]["ports"].append(
            {"name": "metrics", "port": 9697, "targetPort": "metrics"}
        ),
        "(NodePort) publishes the metrics port",
    ),
    "metrics-service-missing": (
        "metrics_off_public_services",
        lambda o: o.remove(_obj(o, "Service", "gateway-metrics")),
        "no ClusterIP Service exposes the gateway's metrics port",
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_a_broken_copy_of_the_kind_render_is_reported(kind_overlay: list[Manifest], case: str) -> None:
    check_name, mutate, expected = BROKEN[case]
    check = checks.CROSS_CHECKS[check_name]
    assert not check(kind_overlay), "the unbroken render must pass first"
    broken = copy.deepcopy(kind_overlay)
    mutate(broken)
    problems = check(broken)
    assert any(expected in p for p in problems), f"{check_name} missed {case}: {problems}"


BROKEN_EKS: dict[str, tuple[str, Mutation, str]] = {
    "hpa-targets-missing-deployment": (
        "autoscaling_and_budgets",
        lambda o: _obj(o, "HorizontalPodAutoscaler", "gateway")["spec"]["scaleTargetRef"].update(
            {"name": "gateway"}
        ),
        "not a Deployment here",
    ),
    "pdb-selects-nothing": (
        "autoscaling_and_budgets",
        lambda o: _obj(o, "PodDisruptionBudget", "serving")["spec"]["selector"]["matchLabels"].update(
            {"app.kubernetes.io/component": "tf"}
        ),
        "selects 0 Deployments",
    ),
    "pdb-unsatisfiable": (
        "autoscaling_and_budgets",
        lambda o: _obj(o, "PodDisruptionBudget", "gateway")["spec"].update({"minAvailable": 2}),
        "minAvailable 2 with 2 replicas",
    ),
    "metrics-on-the-load-balancer": (
        "metrics_off_public_services",
        lambda o: _service(o, "gateway")["spec"]["ports"].append(
            {"name": "metrics", "port": 9697, "targetPort": 9697}
        ),
        "(LoadBalancer) publishes the metrics port",
    ),
    "metrics-on-the-main-port-behind-the-load-balancer": (
        "metrics_off_public_services",
        lambda o: _set_env(o, "true", name="METRICS_ON_MAIN_PORT"),
        "serves /metrics on its HTTP port",
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN_EKS))
def test_a_broken_copy_of_the_eks_render_is_reported(eks_overlay: list[Manifest], case: str) -> None:
    check_name, mutate, expected = BROKEN_EKS[case]
    check = checks.CROSS_CHECKS[check_name]
    assert not check(eks_overlay), "the unbroken render must pass first"
    broken = copy.deepcopy(eks_overlay)
    mutate(broken)
    problems = check(broken)
    assert any(expected in p for p in problems), f"{check_name} missed {case}: {problems}"


@pytest.mark.parametrize("version", checks.SCHEMA_VERSIONS)
def test_an_unknown_field_a_wrong_type_or_a_removed_api_fails_schema_validation(
    kind_overlay: list[Manifest], version: str
) -> None:
    broken = copy.deepcopy(kind_overlay)
    _container(broken, "gateway")["livenessProbe"]["httpGet"]["paht"] = "/healthz"
    _container(broken, "serving")["lifecycle"]["preStop"]["sleep"]["seconds"] = "5"
    _obj(broken, "NetworkPolicy", "gateway")["apiVersion"] = "extensions/v1beta1"
    problems = checks.check_schema(broken, version)
    assert any("'paht' was unexpected" in p for p in problems), problems
    assert any("'5' is not of type 'integer'" in p for p in problems), problems
    assert any(f"Kubernetes {version} has no extensions/v1beta1 NetworkPolicy" in p for p in problems), (
        problems
    )


def test_drift_is_reported_field_by_field_and_tool_labels_are_ignored(kind_overlay: list[Manifest]) -> None:
    # A Helm-flavoured copy of the same workloads: tool labels and the docker.io/ prefix do not count.
    helmish = copy.deepcopy(kind_overlay)
    for obj in helmish:
        obj["metadata"]["labels"]["app.kubernetes.io/managed-by"] = "Helm"
        obj["metadata"]["labels"]["helm.sh/chart"] = f"species-classifier-{VERSION}"
        obj["metadata"].pop("namespace", None)
    _container(helmish, "gateway")["image"] = f"species-classifier/gateway:{VERSION}"
    assert checks.drift(kind_overlay, helmish) == []

    _container(helmish, "gateway")["env"].append({"name": "LOG_LEVEL", "value": "debug"})
    _container(helmish, "serving")["startupProbe"]["failureThreshold"] = 30
    helmish.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "extra"}})
    differences = checks.drift(kind_overlay, helmish)
    assert any("Deployment/species-classifier-gateway" in d and "LOG_LEVEL" in d for d in differences)
    assert any("startupProbe.failureThreshold: kustomize 60 != chart 30" in d for d in differences)
    assert any(d.startswith("ConfigMap/extra: only in the chart") for d in differences), differences


@pytest.mark.parametrize(
    ("case", "mutate", "expected"),
    [
        (
            "no-digest",
            lambda c: c["nodes"][0].update({"image": "kindest/node:v1.37.0"}),
            "is not kindest/node",
        ),
        ("one-worker", lambda c: c["nodes"].pop(), "at least two workers"),
        (
            "wrong-host-port",
            lambda c: c["nodes"][0]["extraPortMappings"][0].update({"hostPort": 80}),
            "no control-plane extraPortMapping",
        ),
        (
            "all-interfaces",
            lambda c: c["nodes"][0]["extraPortMappings"][0].update({"listenAddress": "0.0.0.0"}),
            "no control-plane extraPortMapping",
        ),
    ],
)
def test_a_broken_kind_config_is_reported(
    kind_overlay: list[Manifest], case: str, mutate: Callable[[dict[str, Any]], None], expected: str
) -> None:
    config = render.load_kind_config()
    mutate(config)
    problems = checks.check_kind_config(config, kind_overlay)
    assert any(expected in p for p in problems), f"{case}: {problems}"
