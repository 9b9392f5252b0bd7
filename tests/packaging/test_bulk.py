"""Level 3: the bulk Job in the chart (bulk.enabled) and as the kustomize component k8s/components/bulk.

The generic checks (strict schemas of several Kubernetes versions, Pod Security "restricted", hardening,
pinned images, labels) run on the `chart-ci-bulk*` and `kustomize-kind-with-bulk` renders in
test_manifests.py; this module checks what only the Job promises.
"""

from __future__ import annotations

import copy
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.packaging import checks, render
from tests.packaging.conftest import produce
from tests.support.manifests import VERSION, Manifest, find, get, name_of, of_kind

pytestmark = pytest.mark.packaging

BULK = "species-classifier-bulk"
GATEWAY = "species-classifier-gateway"
KIND_BULK = (
    "bulk.enabled=true",
    "bulk.source=/input",
    "bulk.output=/output",
    "bulk.input.configMap=species-classifier-bulk-input",
    "bulk.persistence.enabled=true",
)


@pytest.fixture(autouse=True)
def _chart_renderable() -> None:
    reason = render.chart_available()
    if reason:
        pytest.skip(reason)


def chart(*set_values: str, values: tuple[str, ...] = ()) -> list[Manifest]:
    return render.render_chart(values, set_values)


def job(objs: list[Manifest]) -> Manifest:
    return get(objs, "Job", BULK)


def pod(objs: list[Manifest]) -> dict[str, Any]:
    spec: dict[str, Any] = job(objs)["spec"]["template"]["spec"]
    return spec


def args_of(objs: list[Manifest]) -> list[str]:
    arguments: list[str] = pod(objs)["containers"][0]["args"]
    return arguments


def option(arguments: list[str], name: str) -> str:
    return arguments[arguments.index(name) + 1]


def helm_template(*set_values: str) -> subprocess.CompletedProcess[str]:
    argv = [str(render.HELM), "template", "x", str(render.CHART)]
    for value in set_values:
        argv += ["--set", value]
    return subprocess.run(argv, capture_output=True, text=True, check=False)


def test_the_bulk_job_is_off_by_default_and_in_the_kind_and_eks_presets() -> None:
    for values in ((), ("values-kind.yaml",), ("values-eks.yaml",)):
        objs = chart(values=values)
        assert not of_kind(objs, "Job"), values
        assert find(objs, "NetworkPolicy", BULK) is None
        assert find(objs, "ServiceAccount", BULK) is None


def test_enabled_it_is_an_indexed_job_with_one_pod_per_shard_and_bounded_retries_and_time() -> None:
    objs = chart(*KIND_BULK, "bulk.shards=5", "bulk.backoffLimit=2", "bulk.activeDeadlineSeconds=7200")
    spec = job(objs)["spec"]
    assert spec["completionMode"] == "Indexed"
    assert spec["completions"] == spec["parallelism"] == 5
    assert spec["backoffLimit"] == 2
    assert spec["activeDeadlineSeconds"] == 7200
    # Restarted in place: the emptyDir with the ledger's working copy survives a container restart.
    assert spec["template"]["spec"]["restartPolicy"] == "OnFailure"
    arguments = args_of(objs)
    assert option(arguments, "--shard-count") == "5"
    assert "--merge-when-complete" in arguments
    # No --shard-index: each pod reads JOB_COMPLETION_INDEX, which the Job controller sets.
    assert "--shard-index" not in arguments


def test_the_job_calls_the_gateway_service_of_the_same_release_on_its_port() -> None:
    objs = chart(*KIND_BULK, "gateway.service.port=8080")
    service = get(objs, "Service", GATEWAY)
    assert option(args_of(objs), "--endpoint") == f"http://{GATEWAY}:{service['spec']['ports'][0]['port']}"
    assert service["spec"]["ports"][0]["port"] == 8080


def test_the_bulk_pods_run_with_the_gateways_security_contexts_and_their_own_service_account() -> None:
    objs = chart(*KIND_BULK)
    gateway_pod = get(objs, "Deployment", GATEWAY)["spec"]["template"]["spec"]
    bulk_pod = pod(objs)
    assert bulk_pod["securityContext"] == gateway_pod["securityContext"]
    assert bulk_pod["containers"][0]["securityContext"] == gateway_pod["containers"][0]["securityContext"]
    assert bulk_pod["serviceAccountName"] == BULK
    assert bulk_pod["automountServiceAccountToken"] is False
    assert get(objs, "ServiceAccount", BULK)["automountServiceAccountToken"] is False
    assert checks.check_pod_security_restricted(objs) == []


def test_a_privileged_bulk_pod_is_reported_by_the_restricted_check() -> None:
    objs = chart(*KIND_BULK)
    broken = copy.deepcopy(objs)
    job(broken)["spec"]["template"]["spec"]["containers"][0]["securityContext"]["privileged"] = True
    assert any(BULK in problem for problem in checks.check_pod_security_restricted(broken))


def test_the_job_runs_the_gateway_image_unless_told_otherwise() -> None:
    # A build tag, not a release number: the version scan of test_version.py counts release numbers.
    objs = chart(*KIND_BULK, "gateway.image.tag=3f2c1ab")
    gateway_image = get(objs, "Deployment", GATEWAY)["spec"]["template"]["spec"]["containers"][0]["image"]
    assert (
        pod(objs)["containers"][0]["image"] == gateway_image == "docker.io/species-classifier/gateway:3f2c1ab"
    )
    own = chart(*KIND_BULK, "bulk.image.repository=lab/bulk", "bulk.image.tag=v9")
    assert pod(own)["containers"][0]["image"] == "docker.io/lab/bulk:v9"


def test_resources_and_volumes_come_from_the_values() -> None:
    objs = chart(*KIND_BULK, "bulk.resources.limits.memory=1Gi", "bulk.tmpSizeLimit=128Mi")
    container = pod(objs)["containers"][0]
    assert container["resources"]["limits"]["memory"] == "1Gi"
    volumes = {volume["name"]: volume for volume in pod(objs)["volumes"]}
    assert volumes["tmp"]["emptyDir"]["sizeLimit"] == "128Mi"
    assert volumes["input"]["configMap"]["name"] == "species-classifier-bulk-input"
    assert volumes["output"]["persistentVolumeClaim"]["claimName"] == f"{BULK}-output"
    claim = get(objs, "PersistentVolumeClaim", f"{BULK}-output")
    assert claim["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    mounts = {mount["name"]: mount for mount in container["volumeMounts"]}
    assert mounts["input"]["readOnly"] is True


def test_s3_runs_need_no_volume_and_pass_the_endpoint_and_region() -> None:
    objs = chart(values=("ci/bulk-s3-values.yaml",))
    arguments = args_of(objs)
    assert arguments[0].startswith("s3://")
    assert option(arguments, "--out").startswith("s3://")
    assert option(arguments, "--s3-endpoint-url") == "https://s3.example.org"
    assert option(arguments, "--s3-region") == "eu-west-1"
    assert {volume["name"] for volume in pod(objs)["volumes"]} == {"tmp"}
    assert find(objs, "PersistentVolumeClaim", f"{BULK}-output") is None


def _egress_peers(policy: Manifest) -> list[tuple[str, list[Any]]]:
    peers = []
    for rule in policy["spec"]["egress"]:
        ports = sorted((p["port"], p["protocol"]) for p in rule.get("ports", []))
        for peer in rule.get("to", []):
            peers.append((yaml.safe_dump(peer, sort_keys=True), ports))
    return peers


def test_the_bulk_pods_may_reach_only_the_gateway_pods_and_dns() -> None:
    objs = chart(*KIND_BULK)
    policy = get(objs, "NetworkPolicy", BULK)
    bulk_labels = job(objs)["spec"]["template"]["metadata"]["labels"]
    assert checks.selector_matches(policy["spec"]["podSelector"], bulk_labels)
    assert sorted(policy["spec"]["policyTypes"]) == ["Egress", "Ingress"]
    assert "ingress" not in policy["spec"]  # nothing may connect to them
    gateway_labels = get(objs, "Deployment", GATEWAY)["spec"]["template"]["metadata"]["labels"]
    gateway_rule, dns_rule = policy["spec"]["egress"]
    assert checks.selector_matches(gateway_rule["to"][0]["podSelector"], gateway_labels)
    assert gateway_rule["ports"] == [{"port": 9696, "protocol": "TCP"}]
    container_ports = get(objs, "Deployment", GATEWAY)["spec"]["template"]["spec"]["containers"][0]["ports"]
    assert {"name": "http", "containerPort": 9696, "protocol": "TCP"} in container_ports
    assert dns_rule["to"][0]["podSelector"]["matchLabels"] == {"k8s-app": "kube-dns"}
    assert sorted(p["protocol"] for p in dns_rule["ports"]) == ["TCP", "UDP"]
    assert len(policy["spec"]["egress"]) == 2


def dns_peers(policy: Manifest) -> list[Any]:
    """The peers of a NetworkPolicy's egress rules that open port 53 (and nothing else)."""
    return [
        peer
        for rule in policy["spec"].get("egress") or []
        if {p.get("port") for p in rule.get("ports") or []} == {53}
        for peer in rule.get("to") or []
    ]


def test_the_bulk_pods_resolve_names_through_the_gateways_dns_peers() -> None:
    nodelocal = [{"ipBlock": {"cidr": "169.254.20.10/32"}}]
    objs = chart(*KIND_BULK, "gateway.networkPolicy.egress.dnsTo[0].ipBlock.cidr=169.254.20.10/32")
    assert dns_peers(get(objs, "NetworkPolicy", BULK)) == dns_peers(get(objs, "NetworkPolicy", GATEWAY))
    assert dns_peers(get(objs, "NetworkPolicy", BULK)) == nodelocal


def test_with_no_dns_peers_the_bulk_policy_drops_its_dns_rule_instead_of_opening_port_53_everywhere(
    tmp_path: Path,
) -> None:
    values = tmp_path / "values.yaml"  # `--set` cannot write an empty list
    values.write_text(yaml.safe_dump({"gateway": {"networkPolicy": {"egress": {"dnsTo": []}}}}))
    policy = get(chart(*KIND_BULK, values=(str(values),)), "NetworkPolicy", BULK)
    assert [rule["ports"] for rule in policy["spec"]["egress"]] == [[{"port": 9696, "protocol": "TCP"}]]
    assert all(rule.get("to") for rule in policy["spec"]["egress"])


BULK_RENDERS = ("chart-ci-bulk", "chart-ci-bulk-s3", "kustomize-kind-with-bulk")


@pytest.mark.parametrize("name", BULK_RENDERS)
def test_the_gateway_admits_the_bulk_pods_on_its_http_port(name: str) -> None:
    objs = produce(name).objects
    bulk_labels = job(objs)["spec"]["template"]["metadata"]["labels"]
    policy = get(objs, "NetworkPolicy", GATEWAY)
    admitting = [
        rule
        for rule in policy["spec"]["ingress"]
        if any(p.get("port") in ("http", 9696) for p in rule.get("ports", []))
        and (
            not rule.get("from")
            or any(checks.selector_matches(peer.get("podSelector"), bulk_labels) for peer in rule["from"])
        )
    ]
    assert admitting, "no ingress rule of the gateway's NetworkPolicy admits the bulk pods"


@pytest.mark.parametrize("name", BULK_RENDERS)
def test_every_bulk_render_sends_dns_where_the_gateway_does(name: str) -> None:
    objs = produce(name).objects
    assert dns_peers(get(objs, "NetworkPolicy", BULK)) == dns_peers(get(objs, "NetworkPolicy", GATEWAY)) != []


def test_on_eks_the_bulk_pods_also_reach_s3_on_443_and_the_pod_identity_agent() -> None:
    objs = chart(*KIND_BULK, values=("values-eks.yaml",))
    peers = _egress_peers(get(objs, "NetworkPolicy", BULK))
    cidrs = {yaml.safe_load(peer).get("ipBlock", {}).get("cidr"): ports for peer, ports in peers}
    assert cidrs["0.0.0.0/0"] == [(443, "TCP")]
    assert cidrs["169.254.170.23/32"] == [(80, "TCP")]
    public = next(yaml.safe_load(peer) for peer, _ in peers if "0.0.0.0/0" in peer)
    assert {"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16"} <= set(
        public["ipBlock"]["except"]
    )


@pytest.mark.parametrize(
    ("values", "error"),
    [
        (("bulk.enabled=true",), "/bulk/source"),
        (("bulk.enabled=true", "bulk.source=/in", "bulk.output=relative/out"), "/bulk/output"),
        (("bulk.shards=0",), "/bulk/shards"),
        (("bulk.colour=blue",), "colour"),
        (("bulk.image.tag=latest",), "/bulk/image/tag"),
    ],
)
def test_the_values_schema_refuses_a_bulk_job_that_cannot_run(values: tuple[str, ...], error: str) -> None:
    result = helm_template(*values)
    assert result.returncode != 0
    assert error in result.stderr


# --- the kustomize component --------------------------------------------------------------------------


def _without_tool_fields(objs: list[Manifest], kind: str) -> dict[str, Any]:
    obj = copy.deepcopy(get(objs, kind, BULK))
    view: dict[str, Any] = obj["spec"]
    view.get("template", {}).pop("metadata", None)
    return view


def test_the_kustomize_component_describes_the_same_job_as_the_chart() -> None:
    component = render.render_kustomize_with("kind", "bulk")
    chart_objs = chart(*KIND_BULK)
    component_job, chart_job = _without_tool_fields(component, "Job"), _without_tool_fields(chart_objs, "Job")
    problems = checks._diff(checks._prune(component_job), checks._prune(chart_job), "Job.spec")
    assert not problems, "\n".join(problems)
    for kind in ("NetworkPolicy", "PersistentVolumeClaim"):
        problems = checks._diff(
            checks._prune(
                get(component, kind, f"{BULK}-output" if kind == "PersistentVolumeClaim" else BULK)["spec"]
            ),
            checks._prune(
                get(chart_objs, kind, f"{BULK}-output" if kind == "PersistentVolumeClaim" else BULK)["spec"]
            ),
            kind,
        )
        assert not problems, "\n".join(problems)


def test_the_component_runs_the_gateway_image_and_dns_peers_of_the_overlay_it_is_added_to(
    tmp_path: Path,
) -> None:
    # A user's overlay that pins the gateway image (a registry with a port, a build tag) and sends DNS to
    # NodeLocal DNSCache: the Job must run that image and resolve names there too.
    nodelocal = [{"ipBlock": {"cidr": "169.254.20.10/32"}}]
    pinned = tmp_path / "pinned"
    pinned.mkdir()
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "namespace": render.NAMESPACE,
        "resources": [os.path.relpath(render.OVERLAYS / "kind", pinned)],
        "images": [
            {
                "name": "docker.io/species-classifier/gateway",
                "newName": "registry.example.com:5000/lab/gateway",
                "newTag": "3f2c1ab",
            }
        ],
        "patches": [
            {
                "target": {"kind": "NetworkPolicy", "name": GATEWAY},
                "patch": yaml.safe_dump([{"op": "replace", "path": "/spec/egress/1/to", "value": nodelocal}]),
            }
        ],
    }
    (pinned / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
    with_bulk = render.overlay_with_components(pinned, ["bulk"], tmp_path / "with-bulk")
    objs = render.render_kustomization(with_bulk)
    gateway_image = get(objs, "Deployment", GATEWAY)["spec"]["template"]["spec"]["containers"][0]["image"]
    assert gateway_image == "registry.example.com:5000/lab/gateway:3f2c1ab"
    assert pod(objs)["containers"][0]["image"] == gateway_image
    assert dns_peers(get(objs, "NetworkPolicy", BULK)) == nodelocal
    # The pin changes the image, not the release: every object, the Job's pods too, carries the app version.
    versions = {o["metadata"]["labels"]["app.kubernetes.io/version"] for o in objs}
    assert versions == {job(objs)["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/version"]}
    assert versions == {VERSION}


def test_the_component_adds_only_the_bulk_objects_to_the_overlay_in_its_namespace() -> None:
    plain = {name_of(o) for o in render.render_kustomize("kind")}
    with_bulk = render.render_kustomize_with("kind", "bulk")
    added = sorted({name_of(o) for o in with_bulk} - plain)
    assert added == [
        f"Job/{BULK}",
        f"NetworkPolicy/{BULK}",
        f"PersistentVolumeClaim/{BULK}-output",
        f"ServiceAccount/{BULK}",
    ]
    assert {o["metadata"].get("namespace") for o in with_bulk if o["kind"] != "Namespace"} == {
        "species-classifier"
    }


# --- EKS: the Job's AWS identity ----------------------------------------------------------------------


def bulk_association() -> dict[str, Any]:
    config = yaml.safe_load((render.REPO / "eksctl-cluster.yaml").read_text())
    (association,) = [a for a in config["iam"]["podIdentityAssociations"] if a["serviceAccountName"] == BULK]
    return association


def test_eks_gives_the_bulk_service_account_of_the_chart_its_own_pod_identity() -> None:
    association = bulk_association()
    objs = chart(*KIND_BULK, values=("values-eks.yaml",))
    account = get(objs, "ServiceAccount", BULK)
    assert association["namespace"] == account["metadata"]["namespace"] == render.NAMESPACE
    assert pod(objs)["serviceAccountName"] == association["serviceAccountName"]
    # The chart creates the ServiceAccount; eksctl must not create a second one.
    assert association["createServiceAccount"] is False
    gateway_sa = get(objs, "Deployment", GATEWAY)["spec"]["template"]["spec"]["serviceAccountName"]
    assert gateway_sa != BULK  # the internet-facing gateway gets no S3 access


def test_the_bulk_role_may_read_the_input_prefix_and_write_the_output_prefix_only() -> None:
    statements = bulk_association()["permissionPolicy"]["Statement"]
    grants: dict[str, set[str]] = {}
    for statement in statements:
        assert statement["Effect"] == "Allow"
        for action in statement["Action"]:
            assert "*" not in action, action
            for resource in statement["Resource"]:
                assert resource != "*"
                grants.setdefault(action, set()).add(resource)
    assert set(grants) == {"s3:ListBucket", "s3:GetObject", "s3:PutObject"}
    (bucket,) = grants["s3:ListBucket"]
    assert grants["s3:GetObject"] == {f"{bucket}/input/*", f"{bucket}/output/*"}
    assert grants["s3:PutObject"] == {f"{bucket}/output/*"}
    listing = next(s for s in statements if s["Action"] == ["s3:ListBucket"])
    assert listing["Condition"]["StringLike"]["s3:prefix"] == ["input/*", "output/*"]
