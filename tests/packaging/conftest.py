"""Render fixtures for the packaging tests.

`rendered` runs every test that asks for it once per render: both kustomize overlays and the chart with its
default values, values-kind.yaml, values-eks.yaml and every ci/*-values.yaml. A chart render is skipped with
the reason while the chart (or bin/helm) is absent; a chart that exists but fails to render fails the test.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest

from tests.packaging import render


@dataclass(frozen=True)
class Render:
    name: str
    objects: list[render.Manifest]


def _chart_renderer(*values_files: str) -> Callable[[], list[render.Manifest]]:
    return lambda: render.render_chart(values_files)


def render_cases() -> dict[str, Callable[[], list[render.Manifest]]]:
    cases: dict[str, Callable[[], list[render.Manifest]]] = {
        "kustomize-kind": lambda: render.render_kustomize("kind"),
        "kustomize-eks": lambda: render.render_kustomize("eks"),
        "kustomize-kind-with-bulk": lambda: render.render_kustomize_with("kind", "bulk"),
        "chart-default": _chart_renderer(),
        "chart-values-kind": _chart_renderer("values-kind.yaml"),
        "chart-values-eks": _chart_renderer("values-eks.yaml"),
    }
    for scenario in sorted((render.CHART / "ci").glob("*-values.yaml")):
        cases[f"chart-ci-{scenario.name.removesuffix('-values.yaml')}"] = _chart_renderer(
            f"ci/{scenario.name}"
        )
    return cases


RENDER_CASES = render_cases()


def produce(name: str) -> Render:
    """The named render; skips (with the reason) when the chart or a pinned tool is not there yet."""
    try:
        return Render(name, RENDER_CASES[name]())
    except render.NotRenderable as missing:
        pytest.skip(str(missing))


@pytest.fixture(params=sorted(RENDER_CASES))
def rendered(request: pytest.FixtureRequest) -> Render:
    return produce(request.param)


@pytest.fixture
def kind_overlay() -> list[render.Manifest]:
    return produce("kustomize-kind").objects


@pytest.fixture
def eks_overlay() -> list[render.Manifest]:
    return produce("kustomize-eks").objects


@pytest.fixture
def chart_kind() -> list[render.Manifest]:
    return produce("chart-values-kind").objects
