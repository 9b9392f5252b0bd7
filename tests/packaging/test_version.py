"""The project has one version: the chart's appVersion (charts/species-classifier/Chart.yaml).

Helm derives the default image tags and the app.kubernetes.io/version labels from it; kustomize derives the
image tags from its one version label (k8s/components/labels); scripts read it with `make -s print-version`.
What cannot be derived (the chart's own version, pyproject.toml, the gateway package, that kustomize label) is
checked here, and so is every image reference or version label written anywhere in the repository.
"""

from __future__ import annotations

import re
import subprocess
import tomllib

import pytest
import yaml

import gateway
from tests.packaging.conftest import Render
from tests.support.manifests import REPO, VERSION, chart_metadata, name_of, pod_templates

pytestmark = pytest.mark.packaging

# Written versions of the project, wherever they appear: image references tagged with a release number (also
# the `{gateway,serving}` brace form of shell comments), version labels and shell assignments of a tag.
RELEASE = r"\d+\.\d+\.\d+[\w.+-]*"
WRITTEN_VERSION = re.compile(
    rf"species-classifier/(?:gateway|serving|\{{gateway,serving\}}):(?P<image>{RELEASE})"
    rf"|app\.kubernetes\.io/version: \"?(?P<label>{RELEASE})"
    rf"|^\s*TAG=\"?(?P<tag>{RELEASE})",
    re.MULTILINE,
)
# Pinned dependencies of the project, never its own version; and this file's examples of stale versions.
NOT_OURS = re.compile(r"(^|/)(requirements\.txt|go\.(mod|sum))$|^tests/packaging/test_version\.py$")


def test_the_chart_is_versioned_with_the_application() -> None:
    assert chart_metadata()["version"] == VERSION


def test_pyproject_declares_the_app_version() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert project["version"] == VERSION


def test_the_gateway_package_reports_the_app_version() -> None:
    assert gateway.__version__ == VERSION


def test_the_kustomize_version_label_is_the_app_version() -> None:
    component = yaml.safe_load((REPO / "k8s" / "components" / "labels" / "kustomization.yaml").read_text())
    [version] = [
        pairs["pairs"]["app.kubernetes.io/version"]
        for pairs in component["labels"]
        if "app.kubernetes.io/version" in pairs["pairs"]
    ]
    assert version == VERSION


def test_make_print_version_prints_the_app_version() -> None:
    result = subprocess.run(
        ["make", "-s", "--no-print-directory", "print-version"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == VERSION


def test_every_object_and_image_of_a_render_carries_the_app_version(rendered: Render) -> None:
    labels = {name_of(o): o["metadata"]["labels"].get("app.kubernetes.io/version") for o in rendered.objects}
    assert set(labels.values()) == {VERSION}, labels
    if rendered.name == "chart-ci-digest":
        return  # pins the gateway image to another tag on purpose
    tags = {
        c["image"].partition("@")[0].rsplit(":", 1)[-1]
        for pod in pod_templates(rendered.objects)
        for c in pod.spec["containers"]
    }
    assert tags == {VERSION}


def written_versions() -> list[tuple[str, str]]:
    """(file:line, version) for every version of the project written in a file git tracks or would track."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    if listed.returncode != 0:
        pytest.skip(f"not a git checkout, so the tracked files are unknown: {listed.stderr.strip()}")
    found = []
    for name in listed.stdout.splitlines():
        path = REPO / name
        if NOT_OURS.search(name) or not path.is_file():
            continue
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        for match in WRITTEN_VERSION.finditer(text):
            version = next(v for v in match.groups() if v)
            found.append((f"{name}:{text.count(chr(10), 0, match.start()) + 1}", version))
    return found


def test_every_version_written_in_the_repository_is_the_app_version() -> None:
    found = written_versions()
    assert any(where.startswith("k8s/components/labels/") for where, _ in found), "the scan found nothing"
    stale = [f"{where}: {version}" for where, version in found if version != VERSION]
    assert not stale, f"versions other than the chart's appVersion {VERSION}:\n  " + "\n  ".join(stale)


@pytest.mark.parametrize(
    "line",
    [
        "TAG=0.0.9",
        "docker build -t species-classifier/serving:0.0.9 .",
        "docker image rm species-classifier/{gateway,serving}:0.0.9",
        '      app.kubernetes.io/version: "0.0.9"',
    ],
)
def test_a_stale_version_in_a_script_or_a_manifest_would_be_found(line: str) -> None:
    assert [next(v for v in m.groups() if v) for m in WRITTEN_VERSION.finditer(line)] == ["0.0.9"]
