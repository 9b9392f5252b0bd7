"""Checks over one rendered set of Kubernetes objects (a kustomize build or a `helm template`).

Every `check_*` function takes the list of objects and returns a list of problems, each a sentence naming
the object and what is wrong; an empty list means the render passes. Tests assert the list is empty on the
real renders and non-empty on deliberately broken copies, so every check is shown able to fail.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import math
import re
from collections.abc import Callable, Iterator
from typing import Any

import importlib_resources
import jsonschema
import kubernetes_validate
import referencing

from tests.support.manifests import (
    VERSION,
    Manifest,
    PodTemplate,
    component_pods,
    find,
    is_hook,
    name_of,
    of_kind,
    pod_templates,
)

Problems = list[str]

# Kubernetes minors every object is validated against: the three newest that kubernetes-validate 1.37.0
# ships schemas for, plus 1.34 (the oldest upstream-supported minor when 1.37 was released, and the first
# with the native preStop `sleep` action GA). kind-config.yaml's node image must be one of them.
SCHEMA_VERSIONS = ("1.34", "1.35", "1.36", "1.37")

PREFIX = "app.kubernetes.io/"
SELECTOR_KEYS = frozenset({f"{PREFIX}name", f"{PREFIX}instance", f"{PREFIX}component"})
COMMON_LABELS = {
    f"{PREFIX}name": "species-classifier",
    f"{PREFIX}instance": "species-classifier",
    f"{PREFIX}part-of": "species-classifier",
    f"{PREFIX}version": VERSION,
}


# --- schema ------------------------------------------------------------------------------------------


@functools.cache
def _validator(kind: str, api_version: str, version: str) -> jsonschema.protocols.Validator | None:
    """A strict (additionalProperties: false) validator from the schemas kubernetes-validate ships.

    Built once per (kind, apiVersion, version): `kubernetes_validate.validate` re-reads the 1 MB
    definitions file on every call. The file layout and naming are the package's own (see its utils.py).
    """
    shipped = [v for v in kubernetes_validate.utils.all_versions() if v.startswith(version + ".")]
    if not shipped:
        raise kubernetes_validate.utils.VersionNotSupportedError(version)
    schema_dir = f"v{shipped[-1]}-local-strict"
    group_version = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    root = importlib_resources.files("kubernetes_validate") / "kubernetes-json-schema" / schema_dir
    path = root / f"{kind.lower()}-{group_version}.json"
    if not path.is_file():
        return None
    schema = json.loads(path.read_text())
    definitions = json.loads((root / "_definitions.json").read_text())
    # Both documents carry an absolute $id; the schema's $refs point into the definitions by that id.
    registry: referencing.Registry[Any] = referencing.Registry().with_resources(
        (doc["$id"], referencing.Resource.from_contents(doc)) for doc in (schema, definitions)
    )
    return jsonschema.Draft202012Validator(schema, registry=registry)


def is_builtin_api(api_version: str) -> bool:
    """Core, unqualified (apps, batch, ...) and *.k8s.io groups are Kubernetes' own; others are CRDs."""
    group = api_version.rpartition("/")[0]
    return "." not in group or group.endswith(".k8s.io")


def check_schema(objs: list[Manifest], version: str) -> Problems:
    """Every object valid against the strict Kubernetes schema of `version` (unknown fields fail).

    A built-in API group without a schema for the kind (say apps/v1beta1) is an error. Custom resources
    (such as monitoring.coreos.com ServiceMonitor) have no schema there; they get a structural check
    instead (metadata.name, a mapping spec) and `unvalidated_kinds` names them so the test can report it.
    """
    problems: Problems = []
    for obj in objs:
        validator = _validator(obj.get("kind", ""), obj.get("apiVersion", ""), version)
        if validator is None and is_builtin_api(obj.get("apiVersion", "")):
            problems.append(
                f"{name_of(obj)}: Kubernetes {version} has no {obj.get('apiVersion')} {obj.get('kind')}"
            )
            continue
        if validator is None:
            if not obj.get("metadata", {}).get("name") or not isinstance(obj.get("spec", {}), dict):
                problems.append(f"{name_of(obj)}: a custom resource needs metadata.name and a mapping spec")
            continue
        for error in sorted(validator.iter_errors(obj), key=lambda e: list(e.path)):
            where = ".".join(str(p) for p in error.path) or "(root)"
            problems.append(f"{name_of(obj)} @ {where} (Kubernetes {version}): {error.message}")
    return problems


def unvalidated_kinds(objs: list[Manifest], version: str) -> list[str]:
    return sorted(
        {
            f"{o['apiVersion']} {o['kind']}"
            for o in objs
            if _validator(o.get("kind", ""), o.get("apiVersion", ""), version) is None
        }
    )


# --- pods and selectors ------------------------------------------------------------------------------


def all_containers(spec: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for key in ("initContainers", "containers", "ephemeralContainers"):
        yield from spec.get(key) or []


def selector_matches(selector: dict[str, Any] | None, labels: dict[str, str]) -> bool:
    """Kubernetes LabelSelector semantics (matchLabels, matchExpressions); an empty selector matches all."""
    selector = selector or {}
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def service_pods(service: Manifest, objs: list[Manifest]) -> list[PodTemplate]:
    selector = service.get("spec", {}).get("selector") or {}
    if not selector:
        return []
    return [p for p in pod_templates(objs) if selector_matches({"matchLabels": selector}, p.labels)]


def check_services_select_one_deployment(objs: list[Manifest]) -> Problems:
    """Each Service selects the pods of exactly one Deployment, and no bare (hook) Pod."""
    problems: Problems = []
    for svc in of_kind(objs, "Service"):
        pods = service_pods(svc, objs)
        deployments = [p.owner for p in pods if p.owner.startswith("Deployment/")]
        bare = [p.owner for p in pods if not p.owner.startswith("Deployment/")]
        if len(deployments) != 1:
            problems.append(f"{name_of(svc)} selects {len(deployments)} Deployments {deployments}, not one")
        if bare:
            problems.append(f"{name_of(svc)} also selects bare pods {bare}: traffic would reach them")
    return problems


def check_selectors_use_only_stable_labels(objs: list[Manifest]) -> Problems:
    """Selectors are name + instance + component exactly (never version or chart: selectors are immutable)."""
    problems: Problems = []
    for obj in objs:
        kind = obj.get("kind")
        if kind in ("Deployment", "PodDisruptionBudget"):
            selector = obj["spec"].get("selector") or {}
            keys = set(selector.get("matchLabels") or {}) | {
                e["key"] for e in selector.get("matchExpressions") or []
            }
        elif kind == "Service":
            keys = set(obj["spec"].get("selector") or {})
        else:
            continue
        if keys != SELECTOR_KEYS:
            problems.append(f"{name_of(obj)} selector keys {sorted(keys)} are not {sorted(SELECTOR_KEYS)}")
    return problems


def check_common_labels(objs: list[Manifest]) -> Problems:
    """Every object, and every pod template, carries the contract's common labels."""
    problems: Problems = []
    for obj in objs:
        labels = obj.get("metadata", {}).get("labels") or {}
        missing = {k: v for k, v in COMMON_LABELS.items() if labels.get(k) != v}
        if missing or f"{PREFIX}managed-by" not in labels:
            problems.append(f"{name_of(obj)} lacks common labels {sorted(missing) or ['managed-by']}")
    for pod in pod_templates(objs):
        if not set(pod.labels) >= SELECTOR_KEYS:
            problems.append(f"{pod.owner} pod labels lack {sorted(SELECTOR_KEYS - set(pod.labels))}")
    return problems


# --- ports and names ---------------------------------------------------------------------------------


def container_ports(pod: PodTemplate) -> list[dict[str, Any]]:
    return [port for c in pod.spec.get("containers") or [] for port in c.get("ports") or []]


def port_declared(target: int | str, pod: PodTemplate) -> bool:
    ports = container_ports(pod)
    if isinstance(target, int):
        return any(p.get("containerPort") == target for p in ports)
    return any(p.get("name") == target for p in ports)


def check_target_ports(objs: list[Manifest]) -> Problems:
    """Every Service port's targetPort (number or name) is a declared port of the pods it selects."""
    problems: Problems = []
    for svc in of_kind(objs, "Service"):
        pods = [p for p in service_pods(svc, objs) if not p.hook]
        for port in svc["spec"].get("ports") or []:
            target = port.get("targetPort", port.get("port"))
            for pod in pods:
                if not port_declared(target, pod):
                    problems.append(
                        f"{name_of(svc)} port {port.get('name', port.get('port'))} targets {target!r}, "
                        f"which no container of {pod.owner} declares"
                    )
    return problems


def env_value(objs: list[Manifest], env: dict[str, Any]) -> str | None:
    """An env var's literal value, following configMapKeyRef into the same render."""
    if "value" in env:
        return str(env["value"])
    ref = (env.get("valueFrom") or {}).get("configMapKeyRef")
    if ref:
        cm = find(objs, "ConfigMap", ref["name"])
        if cm:
            value = (cm.get("data") or {}).get(ref["key"])
            return None if value is None else str(value)
    return None


def check_tf_serving_host(objs: list[Manifest]) -> Problems:
    """The gateway's TF_SERVING_HOST is host:port of a Service in this render (same namespace)."""
    problems: Problems = []
    gateways = [
        (d, c)
        for d in of_kind(objs, "Deployment")
        for c in d["spec"]["template"]["spec"].get("containers") or []
        if c["name"] == "gateway"
    ]
    if not gateways:
        return ["no Deployment has a container named gateway"]
    for deployment, container in gateways:
        env = {e["name"]: e for e in container.get("env") or []}
        if "TF_SERVING_HOST" not in env:
            problems.append(f"{name_of(deployment)} sets no TF_SERVING_HOST")
            continue
        value = env_value(objs, env["TF_SERVING_HOST"])
        if value is None:
            problems.append(f"{name_of(deployment)} TF_SERVING_HOST cannot be resolved within the render")
            continue
        address = re.sub(r"^dns:(//[^/]*)?/", "", value)
        host, _, port = address.rpartition(":")
        labels = host.split(".")
        svc = find(objs, "Service", labels[0])
        namespace = deployment["metadata"].get("namespace")
        if svc is None:
            problems.append(f"{name_of(deployment)} TF_SERVING_HOST={value}: no Service {labels[0]!r} here")
            continue
        if len(labels) > 1 and namespace and labels[1] != namespace:
            problems.append(f"{name_of(deployment)} TF_SERVING_HOST={value} names namespace {labels[1]!r}")
        if len(labels) > 2 and labels[2] != "svc":
            problems.append(f"{name_of(deployment)} TF_SERVING_HOST={value} is not a Service DNS name")
        ports = {str(p["port"]) for p in svc["spec"].get("ports") or []}
        if port not in ports:
            problems.append(
                f"{name_of(deployment)} TF_SERVING_HOST={value}: {name_of(svc)} has ports {ports}"
            )
    return problems


PROBES = ("livenessProbe", "readinessProbe", "startupProbe")


def check_probe_ports(objs: list[Manifest]) -> Problems:
    """Every httpGet/tcpSocket/grpc probe targets a port its own container declares."""
    problems: Problems = []
    for pod in pod_templates(objs):
        for container in pod.spec.get("containers") or []:
            declared = container.get("ports") or []
            for probe_name in PROBES:
                probe = container.get(probe_name) or {}
                for action in ("httpGet", "tcpSocket", "grpc"):
                    if action not in probe:
                        continue
                    port = probe[action].get("port")
                    ok = any(
                        p.get("containerPort") == port if isinstance(port, int) else p.get("name") == port
                        for p in declared
                    )
                    if not ok:
                        problems.append(
                            f"{pod.owner} container {container['name']} {probe_name} {action} port {port!r} "
                            "is not a declared container port"
                        )
    return problems


# --- Pod Security "restricted" -----------------------------------------------------------------------
# The controls of https://kubernetes.io/docs/concepts/security/pod-security-standards/
# (baseline + restricted), as implemented by k8s.io/pod-security-admission v0.37 (policy/check_*.go).

BASELINE_CAPABILITIES = frozenset(
    [
        "AUDIT_WRITE",
        "CHOWN",
        "DAC_OVERRIDE",
        "FOWNER",
        "FSETID",
        "KILL",
        "MKNOD",
        "NET_BIND_SERVICE",
        "SETFCAP",
        "SETGID",
        "SETPCAP",
        "SETUID",
        "SYS_CHROOT",
    ]
)
RESTRICTED_VOLUME_TYPES = frozenset(
    [
        "configMap",
        "downwardAPI",
        "emptyDir",
        "projected",
        "secret",
        "csi",
        "persistentVolumeClaim",
        "ephemeral",
        "image",
    ]
)
SAFE_SYSCTLS = frozenset(
    [
        "kernel.shm_rmid_forced",
        "net.ipv4.ip_local_port_range",
        "net.ipv4.tcp_syncookies",
        "net.ipv4.ping_group_range",
        "net.ipv4.ip_unprivileged_port_start",
        "net.ipv4.ip_local_reserved_ports",
        "net.ipv4.tcp_keepalive_time",
        "net.ipv4.tcp_fin_timeout",
        "net.ipv4.tcp_keepalive_intvl",
        "net.ipv4.tcp_keepalive_probes",
        "net.ipv4.tcp_rmem",
        "net.ipv4.tcp_wmem",
        "net.ipv4.tcp_slow_start_after_idle",
        "net.ipv4.tcp_notsent_lowat",
    ]
)
SELINUX_TYPES = frozenset({"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"})
PROFILE_TYPES = frozenset({"RuntimeDefault", "Localhost"})


def pod_security_problems(pod: PodTemplate) -> Problems:
    """Everything in `pod` that Pod Security admission at level "restricted" would reject."""
    spec, who = pod.spec, pod.owner
    psc = spec.get("securityContext") or {}
    out: Problems = []

    # Baseline: host namespaces, host processes, hostPath, host ports, privileged, capabilities, AppArmor,
    # SELinux, /proc mount, seccomp not Unconfined, sysctls.
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(field):
            out.append(f"{who}: {field} is set")
    if (psc.get("windowsOptions") or {}).get("hostProcess"):
        out.append(f"{who}: windowsOptions.hostProcess")
    for sysctl in psc.get("sysctls") or []:
        if sysctl.get("name") not in SAFE_SYSCTLS:
            out.append(f"{who}: unsafe sysctl {sysctl.get('name')}")
    for level in [psc] + [c.get("securityContext") or {} for c in all_containers(spec)]:
        selinux = level.get("seLinuxOptions") or {}
        if selinux.get("type", "") not in SELINUX_TYPES or selinux.get("user") or selinux.get("role"):
            out.append(f"{who}: custom seLinuxOptions {selinux}")
        apparmor = (level.get("appArmorProfile") or {}).get("type")
        if apparmor is not None and apparmor not in PROFILE_TYPES:
            out.append(f"{who}: appArmorProfile {apparmor}")
    for key, value in pod.annotations.items():
        if key.startswith("container.apparmor.security.beta.kubernetes.io/") and not (
            value == "runtime/default" or value.startswith("localhost/")
        ):
            out.append(f"{who}: AppArmor annotation {key}={value}")
    for volume in spec.get("volumes") or []:
        kinds = set(volume) - {"name"}
        if not kinds <= RESTRICTED_VOLUME_TYPES:
            out.append(
                f"{who}: volume {volume.get('name')} of type {sorted(kinds - RESTRICTED_VOLUME_TYPES)}"
            )

    # Restricted, pod level: runAsNonRoot, runAsUser != 0, seccomp RuntimeDefault/Localhost.
    pod_seccomp = (psc.get("seccompProfile") or {}).get("type")
    if pod_seccomp is not None and pod_seccomp not in PROFILE_TYPES:
        out.append(f"{who}: pod seccompProfile {pod_seccomp}")
    if psc.get("runAsUser") == 0:
        out.append(f"{who}: pod runAsUser 0")
    if psc.get("runAsNonRoot") is False:
        out.append(f"{who}: pod runAsNonRoot false")

    for c in all_containers(spec):
        sc = c.get("securityContext") or {}
        where = f"{who} container {c.get('name')}"
        if sc.get("privileged"):
            out.append(f"{where}: privileged")
        if (sc.get("windowsOptions") or {}).get("hostProcess"):
            out.append(f"{where}: windowsOptions.hostProcess")
        if sc.get("procMount", "Default") != "Default":
            out.append(f"{where}: procMount {sc['procMount']}")
        if sc.get("allowPrivilegeEscalation") is not False:
            out.append(f"{where}: allowPrivilegeEscalation must be false")
        caps = sc.get("capabilities") or {}
        if "ALL" not in (caps.get("drop") or []):
            out.append(f"{where}: capabilities.drop must include ALL")
        added = set(caps.get("add") or [])
        if not added <= {"NET_BIND_SERVICE"}:
            out.append(f"{where}: adds capabilities {sorted(added - {'NET_BIND_SERVICE'})}")
        if not added <= BASELINE_CAPABILITIES:
            out.append(f"{where}: adds non-default capabilities")
        non_root = sc.get("runAsNonRoot")
        if non_root is False or (non_root is None and psc.get("runAsNonRoot") is not True):
            out.append(f"{where}: runAsNonRoot must be true (pod or container)")
        if sc.get("runAsUser") == 0:
            out.append(f"{where}: runAsUser 0")
        seccomp = (sc.get("seccompProfile") or {}).get("type")
        if seccomp is not None and seccomp not in PROFILE_TYPES:
            out.append(f"{where}: seccompProfile {seccomp}")
        if seccomp is None and pod_seccomp not in PROFILE_TYPES:
            out.append(f"{where}: seccompProfile RuntimeDefault or Localhost required (pod or container)")
        for port in c.get("ports") or []:
            if port.get("hostPort"):
                out.append(f"{where}: hostPort {port['hostPort']}")
        handlers = [c.get(p) or {} for p in PROBES] + list((c.get("lifecycle") or {}).values())
        for handler in handlers:
            for action in ("httpGet", "tcpSocket"):
                if (handler.get(action) or {}).get("host"):
                    out.append(f"{where}: {action}.host is set in a probe or hook")
    return out


def check_pod_security_restricted(objs: list[Manifest]) -> Problems:
    return [p for pod in pod_templates(objs) for p in pod_security_problems(pod)]


def check_hardening(objs: list[Manifest]) -> Problems:
    """Beyond "restricted": read-only root filesystems and no service-account token, pod and SA."""
    problems: Problems = []
    for pod in pod_templates(objs):
        if pod.spec.get("automountServiceAccountToken") is not False:
            problems.append(f"{pod.owner}: automountServiceAccountToken must be false")
        for c in all_containers(pod.spec):
            if (c.get("securityContext") or {}).get("readOnlyRootFilesystem") is not True:
                problems.append(f"{pod.owner} container {c.get('name')}: readOnlyRootFilesystem must be true")
    for sa in of_kind(objs, "ServiceAccount"):
        if sa.get("automountServiceAccountToken") is not False:
            problems.append(f"{name_of(sa)}: automountServiceAccountToken must be false")
    return problems


# --- NetworkPolicy, HPA, PDB -------------------------------------------------------------------------


def _rule_opens(rule: dict[str, Any], port_numbers: set[int | str]) -> bool:
    ports = rule.get("ports") or []
    return not ports or any(p.get("port") is None or p.get("port") in port_numbers for p in ports)


def check_serving_network_policy(objs: list[Manifest]) -> Problems:
    """A NetworkPolicy selects the serving pods, and its gRPC port admits gateway pods and nothing else."""
    serving = component_pods(objs, "serving")
    gateway = component_pods(objs, "gateway")
    if not serving or not gateway:
        return ["render lacks a serving or a gateway Deployment"]
    grpc: set[int | str] = {8500}
    grpc |= {p["name"] for p in container_ports(serving[0]) if p.get("containerPort") == 8500 and "name" in p}
    policies = [
        np
        for np in of_kind(objs, "NetworkPolicy")
        if selector_matches(np["spec"].get("podSelector"), serving[0].labels)
    ]
    if not policies:
        return ["no NetworkPolicy selects the serving pods"]
    problems: Problems = []
    gateway_allowed = False
    for np in policies:
        spec = np["spec"]
        if "Ingress" not in (spec.get("policyTypes") or ["Ingress"]):
            problems.append(f"{name_of(np)} does not restrict ingress")
        for rule in spec.get("ingress") or []:
            if not _rule_opens(rule, grpc):
                continue
            peers = rule.get("from") or []
            if not peers:
                problems.append(f"{name_of(np)} opens the serving gRPC port to every source")
            for peer in peers:
                selector = peer.get("podSelector")
                if "ipBlock" in peer or "namespaceSelector" in peer or not selector:
                    problems.append(f"{name_of(np)} admits {peer} to the serving gRPC port")
                elif not all(selector_matches(selector, g.labels) for g in gateway):
                    problems.append(f"{name_of(np)} peer {selector} does not select the gateway pods")
                elif any(selector_matches(selector, s.labels) for s in serving):
                    problems.append(f"{name_of(np)} peer {selector} also selects serving pods")
                else:
                    gateway_allowed = True
    if not gateway_allowed:
        problems.append("no NetworkPolicy rule lets the gateway pods reach the serving gRPC port")
    return problems


def _policies_for(objs: list[Manifest], pod: PodTemplate, policy_type: str) -> list[Manifest]:
    """NetworkPolicies that select `pod` and restrict `policy_type` (Ingress or Egress) for it."""
    return [
        np
        for np in of_kind(objs, "NetworkPolicy")
        if selector_matches(np["spec"].get("podSelector"), pod.labels)
        and policy_type in (np["spec"].get("policyTypes") or ["Ingress"])
    ]


def _rule_ports(rule: dict[str, Any]) -> set[tuple[int | str, str]]:
    return {(p.get("port"), p.get("protocol", "TCP")) for p in rule.get("ports") or []}


# What "public addresses" must leave out: one network per class the gateway's URL guard refuses (private,
# loopback, link-local with cloud metadata, CGNAT, multicast, reserved, IPv6 forms carrying an IPv4 address).
NON_PUBLIC = tuple(
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "224.0.0.0/4",
        "240.0.0.0/4",
        "::1/128",
        "::ffff:0:0/96",
        "64:ff9b::/96",
        "2001::/32",
        "2002::/16",
        "fc00::/7",
        "fe80::/10",
        "ff00::/8",
    )
)
DNS_PORTS = {(53, "UDP"), (53, "TCP")}
SERVING_GRPC = {(8500, "TCP")}


def _kube_system_pods(peer: dict[str, Any]) -> bool:
    """The peer is a non-empty pod selection inside kube-system only (where CoreDNS runs)."""
    namespaces = (peer.get("namespaceSelector") or {}).get("matchLabels") or {}
    return namespaces == {"kubernetes.io/metadata.name": "kube-system"} and bool(peer.get("podSelector"))


def non_public_reached(block: dict[str, Any]) -> list[str]:
    network = ipaddress.ip_network(block["cidr"])
    excepted = [ipaddress.ip_network(e) for e in block.get("except") or []]
    return [
        str(bad)
        for bad in NON_PUBLIC
        if bad.version == network.version
        and bad.overlaps(network)
        and not any(e.version == bad.version and bad.subnet_of(e) for e in excepted)
    ]


def check_gateway_egress(objs: list[Manifest]) -> Problems:
    """The gateway pods' egress is fenced as documented: TF Serving's pods on gRPC 8500, DNS pods in
    kube-system on 53, public addresses (ipBlocks leaving out every non-public range) on TCP; every rule names
    its peers and ports, so none allows every destination or every port."""
    gateway, serving = component_pods(objs, "gateway"), component_pods(objs, "serving")
    if not gateway or not serving:
        return ["render lacks a serving or a gateway Deployment"]
    policies = _policies_for(objs, gateway[0], "Egress")
    if not policies:
        return ["no NetworkPolicy restricts the gateway pods' egress"]
    problems: Problems = []
    reaches = set()
    for np in policies:
        for index, rule in enumerate(np["spec"].get("egress") or []):
            where = f"{name_of(np)} egress rule {index}"
            peers, ports = rule.get("to") or [], _rule_ports(rule)
            if not peers:
                problems.append(f"{where} has no `to`: it allows every destination")
                continue
            if not ports:
                problems.append(f"{where} has no `ports`: it allows every port")
            for peer in peers:
                if "ipBlock" in peer:
                    reached = non_public_reached(peer["ipBlock"])
                    if reached:
                        problems.append(
                            f"{where} ipBlock {peer['ipBlock']['cidr']} reaches non-public {reached}"
                        )
                    if any(protocol != "TCP" for _, protocol in ports):
                        problems.append(f"{where} opens public addresses to {sorted(ports)}, not TCP only")
                    reaches.add("public")
                elif "namespaceSelector" not in peer and all(
                    selector_matches(peer.get("podSelector"), s.labels) for s in serving
                ):
                    if any(selector_matches(peer.get("podSelector"), g.labels) for g in gateway):
                        problems.append(f"{where} peer {peer} also selects the gateway pods")
                    if ports != SERVING_GRPC:
                        problems.append(f"{where} opens {sorted(ports)} on the serving pods, not gRPC 8500")
                    reaches.add("serving")
                elif _kube_system_pods(peer):
                    if not ports <= DNS_PORTS:
                        problems.append(f"{where} opens {sorted(ports)} in kube-system, not DNS (53)")
                    reaches.add("dns")
                else:
                    problems.append(f"{where} lets the gateway reach {peer}")
    for needed in ("serving", "dns", "public"):
        if needed not in reaches:
            problems.append(f"no egress rule lets the gateway pods reach {needed}")
    return problems


def fetch_allowed_ports(objs: list[Manifest], container: dict[str, Any]) -> set[int] | None:
    """The ports a gateway container's FETCH_ALLOWED_PORTS names; None when unset or not literal."""
    var = next((e for e in container.get("env") or [] if e["name"] == "FETCH_ALLOWED_PORTS"), None)
    value = None if var is None else env_value(objs, var)
    if value is None:
        return None
    return {int(port) for port in value.split(",") if port.strip()}


def check_fetch_ports_agree(objs: list[Manifest]) -> Problems:
    """The gateway's FETCH_ALLOWED_PORTS are exactly the ports its egress NetworkPolicy opens to public
    addresses: the fetcher refuses what the fence would allow, and the fence blocks nothing it would try."""
    problems: Problems = []
    pods = component_pods(objs, "gateway")
    if not pods:
        return ["render lacks a gateway Deployment"]
    for pod in pods:
        container = next((c for c in pod.spec.get("containers") or [] if c["name"] == "gateway"), {})
        allowed = fetch_allowed_ports(objs, container)
        if allowed is None:
            problems.append(f"{pod.owner} sets no literal FETCH_ALLOWED_PORTS")
            continue
        opened = {
            int(port)
            for np in _policies_for(objs, pod, "Egress")
            for rule in np["spec"].get("egress") or []
            if any("ipBlock" in peer for peer in rule.get("to") or [])
            for port, _ in _rule_ports(rule)
            if isinstance(port, int)
        }
        if allowed != opened:
            problems.append(
                f"{pod.owner} FETCH_ALLOWED_PORTS {sorted(allowed)} but its egress to public addresses opens "
                f"{sorted(opened)}"
            )
    return problems


def _target_container_port(target: int | str, pod: PodTemplate) -> dict[str, Any] | None:
    key = "containerPort" if isinstance(target, int) else "name"
    return next((p for p in container_ports(pod) if p.get(key) == target), None)


def check_metrics_off_public_services(objs: list[Manifest]) -> Problems:
    """The gateway's metrics port sits behind a ClusterIP Service only: no NodePort or LoadBalancer Service
    publishes it, and a gateway behind a load balancer serves no /metrics on its HTTP port either."""
    problems: Problems = []
    internal = False
    for svc in of_kind(objs, "Service"):
        kind = svc["spec"].get("type", "ClusterIP")
        pods = [p for p in service_pods(svc, objs) if not p.hook]
        for port in svc["spec"].get("ports") or []:
            target = port.get("targetPort", port.get("port"))
            for pod in pods:
                declared = _target_container_port(target, pod) or {}
                if declared.get("name") != "metrics":
                    continue
                if kind == "ClusterIP":
                    internal = True
                else:
                    problems.append(f"{name_of(svc)} ({kind}) publishes the metrics port of {pod.owner}")
        if kind != "LoadBalancer":
            continue
        for pod in pods:
            for c in pod.spec.get("containers") or []:
                on_main = next((e for e in c.get("env") or [] if e["name"] == "METRICS_ON_MAIN_PORT"), None)
                if c["name"] == "gateway" and (on_main is None or env_value(objs, on_main) != "false"):
                    problems.append(
                        f"{name_of(svc)} is a load balancer in front of {pod.owner}, which serves /metrics "
                        "on its HTTP port (METRICS_ON_MAIN_PORT is not false)"
                    )
    if not internal:
        problems.append("no ClusterIP Service exposes the gateway's metrics port")
    return problems


def check_serving_egress(objs: list[Manifest]) -> Problems:
    """A NetworkPolicy denies the TF Serving pods every egress (policyTypes Egress, no egress rules)."""
    serving = component_pods(objs, "serving")
    if not serving:
        return ["render lacks a serving Deployment"]
    policies = _policies_for(objs, serving[0], "Egress")
    if not policies:
        return ["no NetworkPolicy restricts the serving pods' egress"]
    return [
        f"{name_of(np)} lets the serving pods send to {rule.get('to', 'anywhere')}"
        for np in policies
        for rule in np["spec"].get("egress") or []
    ]


def check_autoscaling_and_budgets(objs: list[Manifest]) -> Problems:
    """HPAs target Deployments of this render; PDBs select exactly one Deployment and can be satisfied."""
    problems: Problems = []
    deployments = {d["metadata"]["name"]: d for d in of_kind(objs, "Deployment")}
    hpa_min: dict[str, int] = {}
    for hpa in of_kind(objs, "HorizontalPodAutoscaler"):
        ref = hpa["spec"]["scaleTargetRef"]
        if ref.get("kind") != "Deployment" or ref.get("name") not in deployments:
            problems.append(
                f"{name_of(hpa)} targets {ref.get('kind')}/{ref.get('name')}, not a Deployment here"
            )
            continue
        if ref.get("apiVersion") != "apps/v1":
            problems.append(f"{name_of(hpa)} scaleTargetRef apiVersion {ref.get('apiVersion')}")
        low, high = hpa["spec"].get("minReplicas", 1), hpa["spec"]["maxReplicas"]
        if low > high:
            problems.append(f"{name_of(hpa)} minReplicas {low} > maxReplicas {high}")
        hpa_min[ref["name"]] = low
        container_cpu = [
            (c.get("resources") or {}).get("requests", {}).get("cpu")
            for c in deployments[ref["name"]]["spec"]["template"]["spec"]["containers"]
        ]
        if not all(container_cpu):
            problems.append(f"{name_of(hpa)}: CPU utilisation needs CPU requests on every container")
    for pdb in of_kind(objs, "PodDisruptionBudget"):
        selector = pdb["spec"].get("selector")
        matched = [
            d
            for d in deployments.values()
            if selector_matches(selector, d["spec"]["template"]["metadata"].get("labels") or {})
        ]
        if len(matched) != 1:
            problems.append(f"{name_of(pdb)} selects {len(matched)} Deployments, not one")
            continue
        name = matched[0]["metadata"]["name"]
        replicas = max(matched[0]["spec"].get("replicas", 1), hpa_min.get(name, 0))
        spec = pdb["spec"]
        if "minAvailable" in spec:
            need = _scaled(spec["minAvailable"], replicas, math.ceil)
            if need >= replicas:
                problems.append(
                    f"{name_of(pdb)} minAvailable {spec['minAvailable']} with {replicas} replicas"
                )
        elif "maxUnavailable" in spec and _scaled(spec["maxUnavailable"], replicas, math.floor) < 1:
            problems.append(f"{name_of(pdb)} maxUnavailable {spec['maxUnavailable']} allows no eviction")
    return problems


def _scaled(value: int | str, replicas: int, rounding: Callable[[float], int]) -> int:
    if isinstance(value, str) and value.endswith("%"):
        return rounding(replicas * int(value[:-1]) / 100)
    return int(value)


# --- images ------------------------------------------------------------------------------------------


def image_tag(image: str) -> tuple[str | None, str | None]:
    """(tag, digest) of an image reference; a registry port (host:5000/x) is not a tag."""
    reference, _, digest = image.partition("@")
    last = reference.rsplit("/", 1)[-1]
    tag = last.split(":", 1)[1] if ":" in last else None
    return tag, digest or None


def check_images_pinned(objs: list[Manifest]) -> Problems:
    """Every container image has a tag (or a digest), and no tag is `latest`."""
    problems: Problems = []
    for pod in pod_templates(objs):
        for c in all_containers(pod.spec):
            tag, digest = image_tag(c.get("image", ""))
            if tag == "latest":
                problems.append(f"{pod.owner} container {c.get('name')} uses {c['image']} (latest)")
            elif not tag and not digest:
                problems.append(f"{pod.owner} container {c.get('name')} image {c.get('image')!r} has no tag")
    return problems


CROSS_CHECKS: dict[str, Callable[[list[Manifest]], Problems]] = {
    "services_select_one_deployment": check_services_select_one_deployment,
    "selectors_use_only_stable_labels": check_selectors_use_only_stable_labels,
    "common_labels": check_common_labels,
    "target_ports": check_target_ports,
    "tf_serving_host": check_tf_serving_host,
    "probe_ports": check_probe_ports,
    "pod_security_restricted": check_pod_security_restricted,
    "hardening": check_hardening,
    "serving_network_policy": check_serving_network_policy,
    "serving_egress": check_serving_egress,
    "gateway_egress": check_gateway_egress,
    "fetch_ports_agree": check_fetch_ports_agree,
    "metrics_off_public_services": check_metrics_off_public_services,
    "autoscaling_and_budgets": check_autoscaling_and_budgets,
    "images_pinned": check_images_pinned,
}


# --- kind overlay vs chart (drift) -------------------------------------------------------------------

# Labels and annotations that say who rendered an object, not what it is.
TOOL_LABELS = frozenset({f"{PREFIX}managed-by", "helm.sh/chart"})
TOOL_ANNOTATION_PREFIXES = ("checksum/", "meta.helm.sh/", "kubectl.kubernetes.io/")
DOCKER_HUB = "docker.io/"


def _prune(value: Any) -> Any:
    """Drop empty mappings/lists and nulls (the API server treats them as absent); sort named lists."""
    if isinstance(value, dict):
        pruned = {k: _prune(v) for k, v in value.items()}
        return {k: v for k, v in pruned.items() if v not in (None, {}, [])}
    if isinstance(value, list):
        items = [_prune(v) for v in value]
        if items and all(isinstance(i, dict) and "name" in i for i in items):
            items.sort(key=lambda i: str(i["name"]))
        return items
    return value


def _quantities_as_strings(value: Any, under_quantity: bool = False) -> Any:
    if isinstance(value, dict):
        return {
            k: _quantities_as_strings(
                v, under_quantity or k in ("requests", "limits", "divisor", "sizeLimit")
            )
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_quantities_as_strings(v, under_quantity) for v in value]
    if under_quantity and isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return value


def _normal_metadata(meta: dict[str, Any]) -> dict[str, Any]:
    labels = {k: v for k, v in (meta.get("labels") or {}).items() if k not in TOOL_LABELS}
    annotations = {
        k: v for k, v in (meta.get("annotations") or {}).items() if not k.startswith(TOOL_ANNOTATION_PREFIXES)
    }
    return {"name": meta.get("name"), "labels": labels, "annotations": annotations}


def workload_view(objs: list[Manifest]) -> dict[str, Any]:
    """What an object *is*, keyed by kind/name: tool labels, namespaces, hooks and Namespace objects removed,
    images without the implied docker.io/ registry, quantities as strings, empty fields dropped."""
    view: dict[str, Any] = {}
    for obj in objs:
        if obj.get("kind") == "Namespace" or is_hook(obj):
            continue
        normal = {k: v for k, v in obj.items() if k not in ("metadata", "status")}
        normal["metadata"] = _normal_metadata(obj.get("metadata") or {})
        if obj.get("kind") == "Deployment":
            template = normal["spec"]["template"]
            template["metadata"] = _normal_metadata(template.get("metadata") or {})
            template["metadata"].pop("name")
            for c in all_containers(template["spec"]):
                if c.get("image", "").startswith(DOCKER_HUB):
                    c["image"] = c["image"][len(DOCKER_HUB) :]
        view[name_of(obj)] = _prune(_quantities_as_strings(normal))
    return view


def _diff(a: Any, b: Any, path: str) -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for key in sorted(set(a) | set(b)):
            where = f"{path}.{key}" if path else key
            if key not in a:
                out.append(f"{where}: only in the chart: {json.dumps(b[key])}")
            elif key not in b:
                out.append(f"{where}: only in the kustomize overlay: {json.dumps(a[key])}")
            else:
                out.extend(_diff(a[key], b[key], where))
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b, strict=True)) for d in _diff(x, y, f"{path}[{i}]")]
    if a != b:
        return [f"{path}: kustomize {json.dumps(a)} != chart {json.dumps(b)}"]
    return []


def drift(kustomize_objs: list[Manifest], chart_objs: list[Manifest]) -> Problems:
    """Every difference between two renders' workloads, as `Kind/name path: ...` lines."""
    return _diff(workload_view(kustomize_objs), workload_view(chart_objs), "")


# --- kind-config.yaml --------------------------------------------------------------------------------

NODE_IMAGE = re.compile(r"^kindest/node:v(?P<minor>1\.\d+)\.\d+@sha256:[0-9a-f]{64}$")
KIND_HOST_PORT = 8080


def check_kind_config(config: Manifest, kind_overlay: list[Manifest]) -> Problems:
    """kind-config.yaml is a named v1alpha4 Cluster of a control plane and 2+ workers on one pinned node
    image (tag and digest) whose Kubernetes minor the manifests are validated against, and it publishes the
    kind overlay's gateway NodePort on 127.0.0.1:8080."""
    problems: Problems = []
    if config.get("kind") != "Cluster" or config.get("apiVersion") != "kind.x-k8s.io/v1alpha4":
        problems.append(f"not a kind v1alpha4 Cluster: {config.get('apiVersion')} {config.get('kind')}")
    if config.get("name") != "species-classifier":
        problems.append(f"cluster name {config.get('name')!r} is not species-classifier")
    nodes = config.get("nodes") or []
    roles = [n.get("role") for n in nodes]
    if roles.count("control-plane") != 1 or roles.count("worker") < 2:
        problems.append(f"nodes {roles}: want one control-plane and at least two workers")
    images = {n.get("image") for n in nodes}
    if len(images) != 1:
        problems.append(f"nodes run different images {images}")
    for image in images:
        match = NODE_IMAGE.match(image or "")
        if not match:
            problems.append(f"node image {image!r} is not kindest/node:vX.Y.Z@sha256:<digest>")
        elif match["minor"] not in SCHEMA_VERSIONS:
            problems.append(f"node image {image} runs {match['minor']}, not one of {SCHEMA_VERSIONS}")
    gateway = find(kind_overlay, "Service", "species-classifier-gateway")
    node_ports = {p.get("nodePort") for p in (gateway or {}).get("spec", {}).get("ports") or []} - {None}
    if not node_ports:
        problems.append("the kind overlay's gateway Service has no nodePort")
    mappings = [(n.get("role"), m) for n in nodes for m in n.get("extraPortMappings") or []]
    published = [
        m
        for role, m in mappings
        if m.get("containerPort") in node_ports
        and m.get("hostPort") == KIND_HOST_PORT
        and m.get("listenAddress") == "127.0.0.1"
        and role == "control-plane"
    ]
    if not published:
        problems.append(
            f"no control-plane extraPortMapping from nodePort {sorted(node_ports)} "
            f"to 127.0.0.1:{KIND_HOST_PORT}"
        )
    return problems
