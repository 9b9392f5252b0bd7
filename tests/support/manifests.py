"""Looking things up in a rendered set of Kubernetes objects: one set of helpers for every test level.

A render is a list of plain dicts (`helm template`, `kustomize build`, or what a test sends to an API server).
The packaging checks, the chart tests and the control-plane tests all find objects, pod templates, containers,
env vars and ports through these functions, so "the gateway's container" means the same thing everywhere.

    from tests.support import manifests

    gateway = manifests.container(objs, manifests.component_name("gateway"))
    manifests.env(gateway)["TF_SERVING_HOST"]          # "species-classifier-serving:8500"

The project's version (the chart's appVersion, its one source) is here too, as `VERSION`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
CHART_YAML = REPO / "charts" / "species-classifier" / "Chart.yaml"
PART_OF = "species-classifier"
HOOK_ANNOTATION = "helm.sh/hook"

Manifest = dict[str, Any]


def chart_metadata() -> dict[str, Any]:
    metadata: dict[str, Any] = yaml.safe_load(CHART_YAML.read_text())
    return metadata


# The release version: image tags and app.kubernetes.io/version labels of every render follow it.
VERSION: str = str(chart_metadata()["appVersion"])


def component_name(component: str) -> str:
    """Object name of a component (`gateway`, `serving`) in the kustomize overlays and in a release named like
    the chart: `species-classifier-gateway`."""
    return f"{PART_OF}-{component}"


def name_of(obj: Manifest) -> str:
    """`Kind/name`, as problem reports and drift diffs name an object."""
    return f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"


def of_kind(objs: Iterable[Manifest], kind: str) -> list[Manifest]:
    return [o for o in objs if o.get("kind") == kind]


def find(objs: Iterable[Manifest], kind: str, name: str) -> Manifest | None:
    return next((o for o in of_kind(objs, kind) if o["metadata"]["name"] == name), None)


def get(objs: list[Manifest], kind: str, name: str) -> Manifest:
    """The one `kind`/`name` object of a render; fails naming what was rendered instead."""
    obj = find(objs, kind, name)
    assert obj is not None, f"{kind}/{name} not rendered; got {[name_of(o) for o in objs]}"
    return obj


def is_hook(obj: Manifest) -> bool:
    return HOOK_ANNOTATION in (obj.get("metadata", {}).get("annotations") or {})


@dataclass
class PodTemplate:
    """A pod an object creates: a Deployment's template or a bare Pod (like the chart's `helm test` pod)."""

    owner: str  # "Deployment/x" or "Pod/y"
    labels: dict[str, str]
    annotations: dict[str, str]
    spec: dict[str, Any]
    hook: bool


def pod_templates(objs: Iterable[Manifest]) -> list[PodTemplate]:
    """Every pod a render creates: each Deployment's and Job's template and each bare Pod. The fields are the
    render's own dicts, so a test that changes a template changes the render."""
    found = []
    for obj in objs:
        if obj.get("kind") in ("Deployment", "Job"):
            template = obj["spec"]["template"]
        elif obj.get("kind") == "Pod":
            template = obj
        else:
            continue
        meta = template.get("metadata") or {}
        found.append(
            PodTemplate(
                owner=name_of(obj),
                labels=meta.get("labels") or {},
                annotations=meta.get("annotations") or {},
                spec=template.get("spec") or {},
                hook=is_hook(obj),
            )
        )
    return found


def component_pods(objs: Iterable[Manifest], component: str) -> list[PodTemplate]:
    """Pod templates of the Deployments labelled `app.kubernetes.io/component: <component>`."""
    return [
        p
        for p in pod_templates(objs)
        if p.owner.startswith("Deployment/") and p.labels.get("app.kubernetes.io/component") == component
    ]


def the_pod(objs: Iterable[Manifest], component: str) -> PodTemplate:
    """The pod template of the one Deployment of a component, found by its label rather than its name."""
    pods = component_pods(objs, component)
    assert len(pods) == 1, f"expected one {component} Deployment, found {[p.owner for p in pods]}"
    return pods[0]


def named_container(spec: dict[str, Any], name: str) -> dict[str, Any]:
    """The container called `name` of a pod spec."""
    containers: list[dict[str, Any]] = spec.get("containers") or []
    found = next((c for c in containers if c["name"] == name), None)
    assert found is not None, f"no container {name} in {[c['name'] for c in containers]}"
    return found


def pod_spec(objs: list[Manifest], deployment: str) -> dict[str, Any]:
    """The pod spec of the named Deployment's template."""
    spec: dict[str, Any] = get(objs, "Deployment", deployment)["spec"]["template"]["spec"]
    return spec


def container(objs: list[Manifest], deployment: str, name: str | None = None) -> dict[str, Any]:
    """A container of the named Deployment: the one called `name`, by default the first."""
    spec = pod_spec(objs, deployment)
    if name is None:
        first: dict[str, Any] = spec["containers"][0]
        return first
    return named_container(spec, name)


def env(container_spec: dict[str, Any]) -> dict[str, Any]:
    """A container's env by name: the literal `value`, or the `valueFrom` mapping."""
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container_spec.get("env") or []}


def ports_by_name(container_spec: dict[str, Any]) -> dict[str, int]:
    """A container's named ports: name -> containerPort."""
    return {p["name"]: p["containerPort"] for p in container_spec.get("ports") or [] if "name" in p}
