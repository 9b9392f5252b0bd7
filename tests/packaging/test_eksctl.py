"""Level 3: eksctl-cluster.yaml against eksctl's own ClusterConfig schema, plus what the schema cannot say.

The schema is eksctl v0.230.0's (`eksctl utils schema`), read from ../shared/schemas/ beside the clone when it
is there (CI), else from an installed eksctl, else the structural test is skipped with the reason. eksctl's
`--dry-run` needs AWS credentials, so this is the offline check.
"""

from __future__ import annotations

import copy
import functools
import json
import re
import shutil
import subprocess
from typing import Any

import jsonschema
import pytest
import yaml

from tests.packaging import render

pytestmark = pytest.mark.packaging

CONFIG = render.REPO / "eksctl-cluster.yaml"
SHARED_SCHEMA = render.REPO.parent / "shared" / "schemas" / "eksctl-v0.230.0-clusterconfig.schema.json"


@functools.cache
def _schema() -> dict[str, Any] | None:
    if SHARED_SCHEMA.exists():
        return json.loads(SHARED_SCHEMA.read_text())
    eksctl = shutil.which("eksctl")
    if eksctl:
        result = subprocess.run([eksctl, "utils", "schema"], capture_output=True, text=True, check=False)
        if result.returncode == 0:
            return json.loads(result.stdout)
    return None


@pytest.fixture
def schema() -> dict[str, Any]:
    loaded = _schema()
    if loaded is None:
        pytest.skip(f"no eksctl schema: {SHARED_SCHEMA} is absent and eksctl is not installed")
    return loaded


@pytest.fixture
def config() -> dict[str, Any]:
    return yaml.safe_load(CONFIG.read_text())


def errors(schema: dict[str, Any], document: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft7Validator(schema)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(document)]


def test_the_cluster_config_is_valid_against_the_eksctl_schema(
    schema: dict[str, Any], config: dict[str, Any]
) -> None:
    assert errors(schema, config) == []


@pytest.mark.parametrize(
    ("where", "key", "value"),
    [
        ("metadata", "nmae", "typo"),
        ("autoModeConfig", "enabled", "no"),
    ],
)
def test_the_schema_check_catches_a_misspelt_key_or_a_wrong_type(
    schema: dict[str, Any], config: dict[str, Any], where: str, key: str, value: str
) -> None:
    broken = copy.deepcopy(config)
    broken[where][key] = value
    assert errors(schema, broken)


def test_the_kubernetes_version_is_pinned_as_a_minor_string(config: dict[str, Any]) -> None:
    version = config["metadata"]["version"]
    assert isinstance(version, str)
    assert re.fullmatch(r"1\.\d+", version), version
    # Releases EKS no longer offers for new clusters (standard or extended support) are refused.
    assert int(version.split(".")[1]) >= 33


def test_every_node_group_has_min_at_most_desired_at_most_max(config: dict[str, Any]) -> None:
    groups = config.get("managedNodeGroups", []) + config.get("nodeGroups", [])
    assert groups
    for group in groups:
        assert 1 <= group["minSize"] <= group["desiredCapacity"] <= group["maxSize"], group["name"]


def test_the_minimum_node_group_holds_two_replicas_of_each_workload(config: dict[str, Any]) -> None:
    # 4 vCPU per c7i.xlarge (AWS instance type page); the chart's EKS values run 2 x 1 CPU serving pods and
    # 2 x 250m gateways, which must fit on the minimum nodes with room for system pods.
    vcpus = {"c7i.xlarge": 4, "c7i.large": 2, "m7i.large": 2, "m7i.xlarge": 4}
    for group in config["managedNodeGroups"]:
        per_node = min(vcpus[t] for t in group["instanceTypes"])
        assert group["minSize"] * per_node >= 2 * 1 + 2 * 0.25 + 1, group["name"]


def test_the_load_balancer_controller_gets_aws_permissions_by_pod_identity_or_oidc(
    config: dict[str, Any],
) -> None:
    iam = config.get("iam", {})
    controller = [
        a
        for a in iam.get("podIdentityAssociations", []) + iam.get("serviceAccounts", [])
        if a.get("serviceAccountName", a.get("metadata", {}).get("name")) == "aws-load-balancer-controller"
        and a.get("namespace", a.get("metadata", {}).get("namespace")) == "kube-system"
    ]
    assert controller, "no IAM identity for kube-system/aws-load-balancer-controller"
    assert controller[0]["wellKnownPolicies"]["awsLoadBalancerController"] is True
    addons = {a["name"] for a in config.get("addons", [])}
    if iam.get("podIdentityAssociations"):
        assert "eks-pod-identity-agent" in addons
    else:
        assert iam.get("withOIDC") is True


def test_the_add_ons_the_chart_relies_on_are_installed(config: dict[str, Any]) -> None:
    # vpc-cni gives pods VPC IPs (NLB "ip" targets); metrics-server feeds the HPAs in values-eks.yaml.
    addons = {a["name"] for a in config["addons"]}
    assert {"vpc-cni", "coredns", "kube-proxy", "metrics-server"} <= addons


def test_the_vpc_cni_enforces_the_charts_network_policies(config: dict[str, Any]) -> None:
    # Without the VPC CNI's network policy agent, NetworkPolicy objects are stored but never enforced.
    vpc_cni = next(a for a in config["addons"] if a["name"] == "vpc-cni")
    assert json.loads(vpc_cni["configurationValues"])["enableNetworkPolicy"] == "true"


def test_auto_mode_is_explicitly_chosen(config: dict[str, Any]) -> None:
    assert isinstance(config["autoModeConfig"]["enabled"], bool)
    assert config["autoModeConfig"]["enabled"] is False, (
        "Auto Mode would own load balancing instead of the LBC"
    )


def test_the_node_group_carries_the_cluster_autoscaler_discovery_tags(config: dict[str, Any]) -> None:
    # The Cluster Autoscaler chart's default autoDiscovery.tags; `owned` scopes it to this cluster's groups.
    name = config["metadata"]["name"]
    iam = config["iam"]["podIdentityAssociations"]
    assert any(
        a["serviceAccountName"] == "cluster-autoscaler" and a["wellKnownPolicies"].get("autoScaler")
        for a in iam
    )
    for group in config["managedNodeGroups"]:
        assert group["propagateASGTags"] is True
        assert group["tags"]["k8s.io/cluster-autoscaler/enabled"] == "true"
        assert group["tags"][f"k8s.io/cluster-autoscaler/{name}"] == "owned"


SED_EXPRESSIONS = (
    "s/^  name: .*/  name: $CLUSTER_NAME/",
    "s/^  region: .*/  region: $AWS_REGION/",
    "s#k8s.io/cluster-autoscaler/species-classifier:#k8s.io/cluster-autoscaler/$CLUSTER_NAME:#",
)


def test_eks_up_renames_the_cluster_everywhere_and_nowhere_else() -> None:
    # hack/eks-up.sh copies eksctl-cluster.yaml with these sed expressions (eksctl refuses --name with -f).
    script = (render.REPO / "hack" / "eks-up.sh").read_text()
    for expression in SED_EXPRESSIONS:
        assert f'-e "{expression}"' in script, expression
    argv = ["sed"]
    for expression in SED_EXPRESSIONS:
        argv += ["-e", expression.replace("$CLUSTER_NAME", "demo").replace("$AWS_REGION", "eu-west-1")]
    renamed = yaml.safe_load(
        subprocess.run([*argv, str(CONFIG)], capture_output=True, text=True, check=True).stdout
    )
    original = yaml.safe_load(CONFIG.read_text())
    assert renamed["metadata"]["name"] == "demo"
    assert renamed["metadata"]["region"] == "eu-west-1"
    assert renamed["managedNodeGroups"][0]["tags"]["k8s.io/cluster-autoscaler/demo"] == "owned"
    original["metadata"].update(name="demo", region="eu-west-1")
    tags = original["managedNodeGroups"][0]["tags"]
    tags["k8s.io/cluster-autoscaler/demo"] = tags.pop("k8s.io/cluster-autoscaler/species-classifier")
    assert renamed == original
