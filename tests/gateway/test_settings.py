"""Settings: read from the environment, defaults as documented, nonsense refused at startup."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from gateway.settings import Settings, available_cpus

pytestmark = pytest.mark.unit


def test_the_defaults_are_the_documented_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "TF_SERVING_HOST",
        "MODEL_NAME",
        "MAX_BATCH_SIZE",
        "ALLOWED_FORMATS",
        "LOG_FORMAT",
        "MAX_IN_FLIGHT",
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
    assert settings.log_format == "json"


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
