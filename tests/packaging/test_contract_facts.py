"""Facts stated in more than one place agree: the manifests and the chart against the code and images.

Each fact has one source (model/spec.py for the model, gateway/settings.py for the gateway's port,
serving/entrypoint.sh and serving/monitoring.config for TF Serving's ports and metrics path, the
Dockerfiles for the user the images run as); every render of the packaging must say the same.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from gateway.main import create_app
from gateway.settings import Settings
from model import spec
from tests.packaging.conftest import produce
from tests.support.manifests import Manifest, env, named_container, ports_by_name, the_pod

pytestmark = pytest.mark.packaging

REPO = Path(__file__).resolve().parents[2]
# Renders that keep the defaults for the facts below (ci/overrides-values.yaml changes some on purpose).
PLAIN_RENDERS = {"kustomize-kind", "kustomize-eks", "chart-default", "chart-values-kind", "chart-values-eks"}


def gateway_default(setting: str) -> object:
    """A gateway setting's default, read from gateway/settings.py."""
    field = Settings.model_fields.get(setting)
    assert field is not None, f"gateway/settings.py has no {setting} setting"
    return field.default


def dockerfile_user(path: Path) -> int:
    users = re.findall(r"^USER\s+(\d+)", path.read_text(), flags=re.M)
    assert users, f"{path} sets no numeric USER"
    return int(users[-1])


def entrypoint_flag(flag: str) -> int:
    match = re.search(rf"--{flag}=(\d+)", (REPO / "serving" / "entrypoint.sh").read_text())
    assert match, f"serving/entrypoint.sh passes no --{flag}"
    return int(match.group(1))


def monitoring_path() -> str:
    match = re.search(r'path:\s*"([^"]+)"', (REPO / "serving" / "monitoring.config").read_text())
    assert match, "serving/monitoring.config sets no prometheus path"
    return match.group(1)


@pytest.fixture(params=sorted(PLAIN_RENDERS))
def plain(request: pytest.FixtureRequest) -> list[Manifest]:
    return produce(request.param).objects


def test_the_gateway_asks_tf_serving_for_the_model_the_export_names(plain: list[Manifest]) -> None:
    gateway = named_container(the_pod(plain, "gateway").spec, "gateway")
    assert env(gateway)["MODEL_NAME"] == spec.MODEL_NAME


def test_the_gateway_container_port_is_the_port_the_gateway_listens_on(plain: list[Manifest]) -> None:
    container = named_container(the_pod(plain, "gateway").spec, "gateway")
    assert ports_by_name(container)["http"] == gateway_default("bind_port")


def test_the_gateway_metrics_port_is_the_port_its_metrics_listener_uses(plain: list[Manifest]) -> None:
    container = named_container(the_pod(plain, "gateway").spec, "gateway")
    assert ports_by_name(container)["metrics"] == gateway_default("metrics_port")


def test_every_gateway_setting_the_packaging_sets_exists(plain: list[Manifest]) -> None:
    container = named_container(the_pod(plain, "gateway").spec, "gateway")
    names = {e["name"].lower() for e in container["env"]}
    assert names <= set(Settings.model_fields), sorted(names - set(Settings.model_fields))


def test_the_serving_container_ports_are_the_ports_tf_serving_is_started_with(plain: list[Manifest]) -> None:
    ports = ports_by_name(named_container(the_pod(plain, "serving").spec, "serving"))
    assert ports == {"grpc": entrypoint_flag("port"), "http": entrypoint_flag("rest_api_port")}


def test_pods_run_as_the_user_their_image_declares(plain: list[Manifest]) -> None:
    for component, dockerfile in (("gateway", "gateway/Dockerfile"), ("serving", "serving/Dockerfile")):
        pod = the_pod(plain, component)
        assert pod.spec["securityContext"]["runAsUser"] == dockerfile_user(REPO / dockerfile), component


def test_scrape_annotations_point_at_the_real_metrics_endpoints(plain: list[Manifest]) -> None:
    gateway_routes = {getattr(route, "path", None) for route in create_app(Settings()).routes}
    gateway = the_pod(plain, "gateway").annotations
    assert gateway["prometheus.io/path"] in gateway_routes
    assert int(gateway["prometheus.io/port"]) == gateway_default("metrics_port")
    serving = the_pod(plain, "serving").annotations
    assert serving["prometheus.io/path"] == monitoring_path()
    assert int(serving["prometheus.io/port"]) == entrypoint_flag("rest_api_port")


def test_a_changed_fact_is_caught(kind_overlay: list[Manifest]) -> None:
    container = named_container(the_pod(kind_overlay, "gateway").spec, "gateway")
    container["ports"][0]["containerPort"] = 8080
    with pytest.raises(AssertionError):
        test_the_gateway_container_port_is_the_port_the_gateway_listens_on(kind_overlay)
