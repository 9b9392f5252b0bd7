"""Render the Kubernetes packaging with the real pinned tools and hand back plain dicts.

`render_chart` runs `bin/helm template`, `render_kustomize` runs `bin/kustomize build` (both installed by
`make tools`). Results are cached per test session: a render is pure, and each one costs a process start.
Callers get deep copies, so a test that mutates a render (the "broken copy" tests) cannot leak into another.
"""

from __future__ import annotations

import copy
import functools
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
BIN = REPO / "bin"
HELM = BIN / "helm"
KUSTOMIZE = BIN / "kustomize"
CHART = REPO / "charts" / "species-classifier"
OVERLAYS = REPO / "k8s" / "overlays"
KIND_CONFIG = REPO / "kind-config.yaml"

RELEASE = "species-classifier"
NAMESPACE = "species-classifier"

Manifest = dict[str, Any]


class NotRenderable(RuntimeError):
    """A pinned tool or a file the render needs is not there (yet); the message says which."""


def _run(argv: Sequence[str]) -> str:
    result = subprocess.run(list(argv), capture_output=True, text=True, cwd=REPO, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({result.returncode}):\n{result.stderr}")
    return result.stdout


def parse_documents(text: str) -> list[Manifest]:
    """Every non-empty YAML document of a multi-document stream, as dicts."""
    return [doc for doc in yaml.safe_load_all(text) if doc]


def kustomize_command() -> list[str]:
    """`bin/kustomize build` (pinned v5.8.0); `kubectl kustomize` only when the pinned binary is absent."""
    if KUSTOMIZE.exists():
        return [str(KUSTOMIZE), "build"]
    kubectl = shutil.which("kubectl")
    if kubectl:
        return [kubectl, "kustomize"]
    raise NotRenderable(f"{KUSTOMIZE} is missing: run `make tools`")


@functools.cache
def _kustomize(overlay: str) -> tuple[Manifest, ...]:
    path = OVERLAYS / overlay
    if not (path / "kustomization.yaml").exists():
        raise FileNotFoundError(f"no kustomize overlay at {path}")
    return tuple(parse_documents(_run([*kustomize_command(), str(path)])))


def render_kustomize(overlay: str) -> list[Manifest]:
    """The objects `kubectl apply -k k8s/overlays/<overlay>` would send."""
    return copy.deepcopy(list(_kustomize(overlay)))


COMPONENTS = REPO / "k8s" / "components"


def overlay_with_components(overlay: str | Path, components: Sequence[str], folder: Path) -> Path:
    """A kustomization in `folder` that adds k8s/components/<name> to k8s/overlays/<overlay> (or to the
    overlay folder given as a Path), as the README tells a user to: with the overlay's namespace (its own
    namespace transformer has run before the components add their objects) and image pins."""
    path = overlay if isinstance(overlay, Path) else OVERLAYS / overlay
    own = yaml.safe_load((path / "kustomization.yaml").read_text())
    kustomization: dict[str, Any] = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": [os.path.relpath(path, folder)],
        "components": [os.path.relpath(COMPONENTS / name, folder) for name in components],
    }
    for key in ("namespace", "images"):
        if key in own:
            kustomization[key] = own[key]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "kustomization.yaml").write_text(yaml.safe_dump(kustomization, sort_keys=False))
    return folder


def render_kustomization(folder: Path) -> list[Manifest]:
    """`kustomize build` of any kustomization folder (a test's own overlay), uncached."""
    return parse_documents(_run([*kustomize_command(), str(folder)]))


@functools.cache
def _kustomize_components(overlay: str, components: tuple[str, ...]) -> tuple[Manifest, ...]:
    with tempfile.TemporaryDirectory(prefix="kustomize-") as temp:
        folder = overlay_with_components(overlay, components, Path(temp))
        return tuple(render_kustomization(folder))


def render_kustomize_with(overlay: str, *components: str) -> list[Manifest]:
    """The overlay plus the named components (e.g. "bulk"), rendered by the pinned kustomize."""
    return copy.deepcopy(list(_kustomize_components(overlay, components)))


def chart_available() -> str | None:
    """None when the chart can be rendered here, else the reason it cannot."""
    if not (CHART / "Chart.yaml").exists():
        return f"chart not written yet: {CHART.relative_to(REPO)}/Chart.yaml is absent"
    if not HELM.exists():
        return f"{HELM} is missing: run `make tools`"
    return None


@functools.cache
def _chart(
    values_files: tuple[str, ...], set_values: tuple[str, ...], release: str, namespace: str
) -> tuple[Manifest, ...]:
    reason = chart_available()
    if reason:
        raise NotRenderable(reason)
    argv = [str(HELM), "template", release, str(CHART), "--namespace", namespace]
    for values in values_files:
        path = CHART / values
        if not path.exists():
            raise NotRenderable(f"chart values file not written yet: {path.relative_to(REPO)}")
        argv += ["--values", str(path)]
    for assignment in set_values:
        argv += ["--set", assignment]
    return tuple(parse_documents(_run(argv)))


def render_chart(
    values_files: Sequence[str] = (),
    set_values: Sequence[str] = (),
    release: str = RELEASE,
    namespace: str = NAMESPACE,
) -> list[Manifest]:
    """`helm template` of charts/species-classifier; values files are relative to the chart directory.

    Hooks (the `helm test` pod) are included, as `helm template` prints them.
    """
    return copy.deepcopy(list(_chart(tuple(values_files), tuple(set_values), release, namespace)))


def load_kind_config() -> Manifest:
    return yaml.safe_load(KIND_CONFIG.read_text())
