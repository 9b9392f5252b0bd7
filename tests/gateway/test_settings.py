"""Settings: read from the environment, defaults as documented, nonsense refused at startup."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from gateway import settings as settings_module
from gateway.settings import MiB, Settings, available_cpus

pytestmark = pytest.mark.unit


def test_the_defaults_are_the_documented_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "TF_SERVING_HOST",
        "MODEL_NAME",
        "MAX_BATCH_SIZE",
        "ALLOWED_FORMATS",
        "LOG_FORMAT",
        "MAX_IN_FLIGHT",
        "METRICS_PORT",
        "METRICS_ON_MAIN_PORT",
        "DOCS_ENABLED",
        "FETCH_ALLOWED_PORTS",
        "MEMORY_LIMIT_BYTES",
        "MAX_DECODE_BYTES",
    ):
        monkeypatch.delenv(name, raising=False)
    settings = Settings()
    assert settings.tf_serving_host == "localhost:8500"
    assert settings.model_name == "species_model"
    assert settings.model_version is None
    assert settings.bind_port == 9696
    assert settings.max_batch_size == 32
    assert settings.max_in_flight == 16
    assert settings.allowed_formats == {"JPEG", "PNG", "WEBP", "BMP"}
    assert settings.fetch_max_redirects == 3
    assert settings.fetch_allow_loopback is False
    assert settings.fetch_allowed_ports == {80, 443}
    assert settings.log_format == "json"
    assert settings.metrics_port == 9697
    assert settings.metrics_on_main_port is True
    assert settings.docs_enabled is False
    assert settings.max_header_bytes == 32 * 1024
    assert settings.max_jpeg_scans == 32


def test_values_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TF_SERVING_HOST", "species-classifier-serving:8500")
    monkeypatch.setenv("MODEL_VERSION", "2")
    monkeypatch.setenv("ALLOWED_FORMATS", "jpeg, png")
    monkeypatch.setenv("FETCH_ALLOWED_HOSTS", "Images.Example.org.,*.cdn.example.net")
    monkeypatch.setenv("FETCH_ALLOW_LOOPBACK", "true")
    monkeypatch.setenv("LOG_LEVEL", "debug")
    monkeypatch.setenv("MAX_IN_FLIGHT", "4")
    settings = Settings()
    assert settings.grpc_target == "dns:///species-classifier-serving:8500"
    assert settings.model_version == 2
    assert settings.allowed_formats == {"JPEG", "PNG"}
    assert settings.fetch_allowed_hosts == {"images.example.org", "*.cdn.example.net"}
    assert settings.fetch_allow_loopback is True
    assert settings.log_level == "DEBUG"
    assert settings.max_in_flight == 4


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("TF_SERVING_HOST", "http://serving:8500"),
        ("TF_SERVING_HOST", "serving"),
        ("TF_SERVING_HOST", "serving:99999"),
        ("MAX_BATCH_SIZE", "0"),
        ("MAX_BATCH_SIZE", "lots"),
        ("SERVING_TIMEOUT_S", "-1"),
        ("ALLOWED_FORMATS", "JPEG,NOTAFORMAT"),
        ("ALLOWED_FORMATS", ""),
        ("LOG_FORMAT", "xml"),
        ("LOG_LEVEL", "chatty"),
        ("MODEL_VERSION", "0"),
        ("BIND_PORT", "70000"),
        ("MAX_IN_FLIGHT", "0"),
        ("MAX_IN_FLIGHT", "1025"),
        ("MAX_IN_FLIGHT", "many"),
        ("SERVING_RETRIES", "5"),  # gRPC allows 5 attempts at most
        ("METRICS_PORT", "70000"),
        ("FETCH_ALLOWED_PORTS", "80,0"),
        ("FETCH_ALLOWED_PORTS", ""),
        ("FETCH_ALLOWED_PORTS", "http"),
        ("MAX_HEADER_BYTES", "100"),
        ("BODY_TIMEOUT_S", "0"),
        ("MEMORY_LIMIT_BYTES", "-1"),
        ("MAX_JPEG_SCANS", "0"),
    ],
)
def test_a_nonsense_value_is_refused_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError) as raised:
        Settings()
    assert name.lower() in str(raised.value)


def test_decode_threads_default_to_the_cpus_the_process_may_use(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DECODE_CONCURRENCY", raising=False)
    assert Settings().decode_workers == available_cpus() >= 1
    assert Settings(decode_concurrency=3).decode_workers == 3


def test_an_invalid_environment_stops_python_m_gateway_with_a_message(tmp_path: object) -> None:
    import os
    import subprocess
    import sys

    env = {**os.environ, "MAX_BATCH_SIZE": "-5"}
    result = subprocess.run(
        [sys.executable, "-m", "gateway"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode != 0
    assert "invalid gateway settings" in result.stderr
    assert "max_batch_size" in result.stderr


def test_the_memory_budgets_follow_the_limit_as_documented() -> None:
    settings = Settings(memory_limit_bytes=384 * MiB)
    # 40% of what the limit leaves above the 128 MiB baseline decodes images; the rest holds bodies.
    assert settings.decode_budget_bytes == int(0.4 * 256 * MiB)
    assert settings.memory_budget_bytes == 384 * MiB - 128 * MiB - settings.decode_budget_bytes
    pinned = Settings(memory_limit_bytes=384 * MiB, max_decode_bytes=50 * MiB)
    assert pinned.decode_budget_bytes == 50 * MiB
    assert pinned.memory_budget_bytes == 206 * MiB


def test_without_a_limit_the_cgroup_limit_counts_then_512_mib(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(settings_module, "cgroup_memory_limit", lambda: 300 * MiB)
    assert Settings().memory_limit == 300 * MiB
    monkeypatch.setattr(settings_module, "cgroup_memory_limit", lambda: None)
    assert Settings().memory_limit == 512 * MiB
    assert Settings(memory_limit_bytes=1024 * MiB).memory_limit == 1024 * MiB


def test_a_memory_limit_that_leaves_nothing_for_bodies_stops_the_start() -> None:
    with pytest.raises(ValidationError, match="at least 16 MiB"):
        Settings(memory_limit_bytes=140 * MiB)
    with pytest.raises(ValidationError, match="at least 16 MiB"):
        Settings(memory_limit_bytes=384 * MiB, max_decode_bytes=250 * MiB)


def test_the_metrics_port_must_differ_from_the_main_port() -> None:
    with pytest.raises(ValidationError, match="METRICS_PORT"):
        Settings(bind_port=9000, metrics_port=9000)
    assert Settings(bind_port=9000, metrics_port=0).metrics_port == 0


def test_fetch_ports_come_comma_separated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FETCH_ALLOWED_PORTS", "443, 8443")
    assert Settings().fetch_allowed_ports == {443, 8443}
    assert Settings(max_in_flight=16, fetch_concurrency=4).fetch_pool_size == 64


README = Path(__file__).resolve().parents[2] / "README.md"


def readme_settings_table() -> dict[str, str]:
    """Env var -> documented default, from the table under the README's "### Settings" heading."""
    section = README.read_text().split("\n### Settings\n", 1)[1].split("\n#", 1)[0]
    table = {}
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) != 3 or not cells[0].startswith("`"):
            continue
        names = re.findall(r"`([A-Z0-9_]+)`", cells[0])
        defaults = [re.sub(r"^`([^`]*)`.*$", r"\1", part.strip()) for part in cells[1].split(" / ")]
        assert len(names) == len(defaults), line
        table.update(zip(names, defaults, strict=True))
    return table


def documented_as(default: object, documented: str) -> bool:
    if default is None:
        return documented == "unset"
    if isinstance(default, bool):
        return documented == str(default).lower()
    if isinstance(default, frozenset):
        items = {item.strip() for item in documented.split(",")} if documented != "empty" else set()
        return items == {str(item) for item in default}
    if isinstance(default, int | float):
        return float(documented) == default
    return documented == default


def test_the_readme_settings_table_lists_every_setting_and_only_those_with_their_defaults() -> None:
    table = readme_settings_table()
    fields = {name.upper(): field.default for name, field in Settings.model_fields.items()}
    assert sorted(set(fields) - set(table)) == [], "settings the README's table lacks"
    assert sorted(set(table) - set(fields)) == [], "README rows for settings gateway/settings.py lacks"
    wrong = {
        name: (table[name], default)
        for name, default in fields.items()
        if not documented_as(default, table[name])
    }
    assert wrong == {}, "README default vs gateway/settings.py default"
