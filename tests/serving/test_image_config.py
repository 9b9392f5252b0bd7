"""The TF Serving image: its three config files parse as TF Serving's protos and agree with the model
contract, the Dockerfile and the gateway; the entrypoint renders the flags TF Serving knows."""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import (
    descriptor_pb2,
    descriptor_pool,
    message,
    message_factory,
    text_format,
    wrappers_pb2,
)
from tensorflow_serving.config import model_server_config_pb2

from model import spec
from serving.standin.server import Options
from tests.support.dockerfiles import instructions

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
SERVING = REPO / "serving"
DOCKERFILE = SERVING / "Dockerfile"
ENTRYPOINT = SERVING / "entrypoint.sh"
CONFIG_FILES = ("models.config", "batching.config", "monitoring.config")
METRICS_PATH = "/monitoring/prometheus/metrics"  # ARCHITECTURE.md: Prometheus metrics on 8501 at this path.

# Every flag of tensorflow_model_server 2.x that the entrypoint may pass (tensorflow_serving/model_servers/
# main.cc); a typo in a flag name makes TF Serving print its usage and exit.
TF_SERVING_FLAGS = {
    "port",
    "grpc_socket_path",
    "rest_api_port",
    "rest_api_num_threads",
    "rest_api_timeout_in_ms",
    "enable_batching",
    "batching_parameters_file",
    "model_config_file",
    "model_config_file_poll_wait_seconds",
    "file_system_poll_wait_seconds",
    "flush_filesystem_caches",
    "tensorflow_session_parallelism",
    "tensorflow_intra_op_parallelism",
    "tensorflow_inter_op_parallelism",
    "grpc_channel_arguments",
    "grpc_max_threads",
    "enable_model_warmup",
    "num_request_iterations_for_warmup",
    "monitoring_config_file",
    "enable_grpc_healthcheck_service",
    "enable_serialization_as_tensor_content",
}


def _gateway_default(field: str, fallback: float) -> float:
    """A default of the gateway's Settings (the value the serving side must fit), if the gateway is there."""
    try:
        from gateway.settings import Settings
    except ImportError:
        return fallback
    return float(Settings.model_fields[field].default)


# --- TF Serving's config protos that tensorflow-serving-api does not ship, mirrored field for field ---------


def _mirror_messages() -> dict[str, type[message.Message]]:
    """BatchingParameters (servables/tensorflow/session_bundle_config.proto) and MonitoringConfig
    (config/monitoring_config.proto), built from their published field lists so that text_format parses the
    files as strictly as TF Serving does: an unknown or misspelt field is an error."""
    pool = descriptor_pool.DescriptorPool()
    wrappers = descriptor_pb2.FileDescriptorProto()
    wrappers_pb2.DESCRIPTOR.CopyToProto(wrappers)
    pool.Add(wrappers)

    proto = descriptor_pb2.FieldDescriptorProto
    mirror = descriptor_pb2.FileDescriptorProto(
        name="tfserving_mirror.proto",
        package="tensorflow.serving",
        syntax="proto3",
        dependency=["google/protobuf/wrappers.proto"],
    )
    batching = mirror.message_type.add(name="BatchingParameters")
    for number, name, wrapper in [
        (1, "max_batch_size", "Int64Value"),
        (2, "batch_timeout_micros", "Int64Value"),
        (3, "max_enqueued_batches", "Int64Value"),
        (4, "num_batch_threads", "Int64Value"),
        (5, "thread_pool_name", "StringValue"),
    ]:
        batching.field.add(
            name=name,
            number=number,
            type=proto.TYPE_MESSAGE,
            label=proto.LABEL_OPTIONAL,
            type_name=f".google.protobuf.{wrapper}",
        )
    batching.field.add(
        name="allowed_batch_sizes", number=6, type=proto.TYPE_INT64, label=proto.LABEL_REPEATED
    )
    batching.field.add(
        name="pad_variable_length_inputs", number=7, type=proto.TYPE_BOOL, label=proto.LABEL_OPTIONAL
    )
    prometheus = mirror.message_type.add(name="PrometheusConfig")
    prometheus.field.add(name="enable", number=1, type=proto.TYPE_BOOL, label=proto.LABEL_OPTIONAL)
    prometheus.field.add(name="path", number=2, type=proto.TYPE_STRING, label=proto.LABEL_OPTIONAL)
    monitoring = mirror.message_type.add(name="MonitoringConfig")
    monitoring.field.add(
        name="prometheus_config",
        number=1,
        type=proto.TYPE_MESSAGE,
        label=proto.LABEL_OPTIONAL,
        type_name=".tensorflow.serving.PrometheusConfig",
    )
    pool.Add(mirror)
    return {
        name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"tensorflow.serving.{name}"))
        for name in ("BatchingParameters", "MonitoringConfig")
    }


MIRROR = _mirror_messages()


def parse_batching(text: str) -> Any:
    """A BatchingParameters message (dynamic class, hence Any)."""
    return text_format.Parse(text, MIRROR["BatchingParameters"]())


def parse_models_config(text: str) -> model_server_config_pb2.ModelServerConfig:
    return text_format.Parse(text, model_server_config_pb2.ModelServerConfig())


# --- Dockerfile ---------------------------------------------------------------------------------------------


def dockerfile_instructions(path: Path = DOCKERFILE) -> list[tuple[str, str]]:
    return instructions(path)


def copies() -> dict[str, str]:
    """COPY source -> destination (a destination ending in / receives the file under its own name)."""
    result = {}
    for keyword, arguments in dockerfile_instructions():
        if keyword != "COPY":
            continue
        *sources, destination = [word for word in arguments.split() if not word.startswith("--")]
        for source in sources:
            result[source] = destination + Path(source).name if destination.endswith("/") else destination
    return result


def test_the_base_image_is_pinned_to_a_release_not_latest() -> None:
    bases = [arguments for keyword, arguments in dockerfile_instructions() if keyword == "FROM"]

    assert len(bases) == 1
    assert re.fullmatch(r"tensorflow/serving:\d+\.\d+\.\d+(@sha256:[0-9a-f]{64})?", bases[0]), bases[0]


def test_the_base_image_runs_the_tensorflow_release_that_exports_the_model() -> None:
    (base,) = [arguments for keyword, arguments in dockerfile_instructions() if keyword == "FROM"]
    requirements = (REPO / "model" / "requirements.txt").read_text(encoding="utf-8")
    tensorflow = re.search(r"^tensorflow(?:-cpu)?==(\d+\.\d+)\.", requirements, re.MULTILINE)

    assert tensorflow is not None
    assert base.split(":")[1].startswith(tensorflow.group(1) + ".")


def test_the_image_runs_as_a_numeric_non_root_user() -> None:
    users = [arguments for keyword, arguments in dockerfile_instructions() if keyword == "USER"]

    assert users, "no USER instruction: the image would run as root"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit()
    assert int(uid) > 0
    assert not gid or gid.isdigit()


def test_the_model_is_copied_to_the_base_path_models_config_serves() -> None:
    config = parse_models_config((SERVING / "models.config").read_text(encoding="utf-8"))

    assert copies()[f"build/models/{spec.MODEL_NAME}"] == config.model_config_list.config[0].base_path


def test_the_config_files_are_copied_where_the_entrypoint_reads_them() -> None:
    script = ENTRYPOINT.read_text(encoding="utf-8")
    default_dir = re.search(r"config_dir=\$\{TF_SERVING_CONFIG_DIR:-([^}]+)\}", script)

    assert default_dir is not None
    for name in CONFIG_FILES:
        assert copies()[f"serving/{name}"] == f"{default_dir.group(1)}/{name}"


def test_the_entrypoint_runs_under_tini_from_where_it_is_copied() -> None:
    entrypoints = [arguments for keyword, arguments in dockerfile_instructions() if keyword == "ENTRYPOINT"]

    assert entrypoints
    command = [part.strip().strip('"') for part in entrypoints[-1].strip("[]").split(",")]
    assert command[0].endswith("/tini")
    assert command[-1] == copies()["serving/entrypoint.sh"]


def test_the_image_exposes_the_grpc_and_rest_ports() -> None:
    exposed = {
        port
        for keyword, arguments in dockerfile_instructions()
        if keyword == "EXPOSE"
        for port in arguments.split()
    }

    assert {"8500", "8501"} <= exposed


# --- The three config files ---------------------------------------------------------------------------------


def test_models_config_serves_the_contract_model_with_an_explicit_version_policy() -> None:
    config = parse_models_config((SERVING / "models.config").read_text(encoding="utf-8"))

    (model,) = config.model_config_list.config
    assert model.name == spec.MODEL_NAME
    assert model.model_platform == "tensorflow"
    assert model.HasField("model_version_policy")
    assert model.model_version_policy.WhichOneof("policy_choice") == "latest"
    assert model.model_version_policy.latest.num_versions == 1


def test_batching_config_fits_the_largest_batch_the_gateway_sends() -> None:
    batching = parse_batching((SERVING / "batching.config").read_text(encoding="utf-8"))
    gateway_max = _gateway_default("max_batch_size", 32)

    assert batching.max_batch_size.value >= gateway_max
    sizes = list(batching.allowed_batch_sizes)
    if (
        sizes
    ):  # TF Serving requires them increasing and ending at max_batch_size (session_bundle_config.proto)
        assert sizes == sorted(set(sizes))
        assert sizes[-1] == batching.max_batch_size.value
    assert batching.batch_timeout_micros.value <= 10_000
    assert batching.num_batch_threads.value >= 1
    assert batching.max_enqueued_batches.value >= 1


def test_the_stand_in_refuses_the_same_batches_as_the_batching_config() -> None:
    batching = parse_batching((SERVING / "batching.config").read_text(encoding="utf-8"))

    assert Options().max_batch_size == batching.max_batch_size.value


def test_a_misspelt_batching_field_is_rejected_by_the_mirrored_proto() -> None:
    with pytest.raises(text_format.ParseError):
        parse_batching("max_batch_sise { value: 32 }")


def test_monitoring_config_enables_prometheus_at_the_documented_path() -> None:
    config: Any = text_format.Parse(
        (SERVING / "monitoring.config").read_text(encoding="utf-8"), MIRROR["MonitoringConfig"]()
    )

    assert config.prometheus_config.enable
    assert config.prometheus_config.path == METRICS_PATH


# --- entrypoint.sh ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shell", ["sh", "dash"])
def test_the_entrypoint_is_valid_posix_shell(shell: str) -> None:
    if shutil.which(shell) is None:
        pytest.skip(f"{shell} is not installed here")

    result = subprocess.run([shell, "-n", str(ENTRYPOINT)], capture_output=True, text=True, check=False)

    assert result.returncode == 0, result.stderr


def run_entrypoint(
    tmp_path: Path, cpus: str | None, *args: str, tmpdir: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Runs entrypoint.sh with a fake tensorflow_model_server on PATH that prints its arguments."""
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir(exist_ok=True)
    fake = fake_bin / "tensorflow_model_server"
    fake.write_text("#!/bin/sh\nprintf '%s\\n' \"$@\"\n", encoding="utf-8")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    env = {
        "PATH": f"{fake_bin}{os.pathsep}/usr/bin{os.pathsep}/bin",
        "TF_SERVING_CONFIG_DIR": str(SERVING),
        "TMPDIR": str(tmpdir or tmp_path),
    }
    if cpus is not None:
        env["TF_SERVING_CPUS"] = cpus
    return subprocess.run(
        ["sh", str(ENTRYPOINT), *args], env=env, capture_output=True, text=True, check=False
    )


def flags_of(output: str) -> dict[str, str]:
    flags = {}
    for line in output.splitlines():
        name, _, value = line.removeprefix("--").partition("=")
        flags[name] = value
    return flags


def test_the_entrypoint_sizes_every_thread_pool_from_tf_serving_cpus(tmp_path: Path) -> None:
    result = run_entrypoint(tmp_path, "4")

    assert result.returncode == 0, result.stderr
    flags = flags_of(result.stdout)
    assert flags["tensorflow_intra_op_parallelism"] == "4"
    assert flags["tensorflow_inter_op_parallelism"] == "4"
    assert flags["rest_api_num_threads"] == "8"
    rendered = parse_batching(Path(flags["batching_parameters_file"]).read_text(encoding="utf-8"))
    assert rendered.num_batch_threads.value == 4


def test_the_rendered_batching_file_changes_only_the_thread_count(tmp_path: Path) -> None:
    result = run_entrypoint(tmp_path, "3")

    rendered = parse_batching((tmp_path / "batching.config").read_text(encoding="utf-8"))
    original = parse_batching((SERVING / "batching.config").read_text(encoding="utf-8"))
    original.num_batch_threads.value = 3
    assert result.returncode == 0, result.stderr
    assert rendered == original


def test_the_entrypoint_passes_the_documented_tf_serving_flags(tmp_path: Path) -> None:
    result = run_entrypoint(tmp_path, "2")

    flags = flags_of(result.stdout)
    assert set(flags) <= TF_SERVING_FLAGS, set(flags) - TF_SERVING_FLAGS
    assert flags["port"] == "8500"
    assert flags["rest_api_port"] == "8501"
    assert flags["model_config_file"] == f"{SERVING}/models.config"
    assert flags["monitoring_config_file"] == f"{SERVING}/monitoring.config"
    assert flags["batching_parameters_file"] == f"{tmp_path}/batching.config"
    assert flags["enable_batching"] == "true"
    assert flags["enable_model_warmup"] == "true"
    assert flags["enable_grpc_healthcheck_service"] == "true"
    assert flags["file_system_poll_wait_seconds"] == "0"


def test_grpc_connections_are_recycled_after_in_flight_calls_can_finish(tmp_path: Path) -> None:
    flags = flags_of(run_entrypoint(tmp_path, "1").stdout)
    channel_args = dict(item.split("=") for item in flags["grpc_channel_arguments"].split(","))

    age_ms = int(channel_args["grpc.max_connection_age_ms"])
    grace_ms = int(channel_args["grpc.max_connection_age_grace_ms"])
    # Bounded so clients re-resolve and reach new pods within about a minute...
    assert 10_000 <= age_ms <= 300_000
    # ...and a call started just before the close still ends inside the gateway's own deadline.
    assert grace_ms >= _gateway_default("serving_timeout_s", 5.0) * 1000


@pytest.mark.parametrize("cpus", [None, "", "0", "-2", "1.5", "two", "1000"])
def test_a_missing_or_invalid_cpu_count_falls_back_to_one(tmp_path: Path, cpus: str | None) -> None:
    result = run_entrypoint(tmp_path, cpus)

    assert result.returncode == 0, result.stderr
    flags = flags_of(result.stdout)
    assert flags["tensorflow_intra_op_parallelism"] == "1"
    assert flags["rest_api_num_threads"] == "2"
    if cpus:
        assert "not a positive integer" in result.stderr


def test_arguments_given_to_the_container_come_last(tmp_path: Path) -> None:
    result = run_entrypoint(tmp_path, "1", "--file_system_poll_wait_seconds=60", "--grpc_max_threads=8")

    assert result.stdout.splitlines()[-2:] == ["--file_system_poll_wait_seconds=60", "--grpc_max_threads=8"]


def test_an_unwritable_tmp_stops_the_entrypoint_with_a_hint(tmp_path: Path) -> None:
    result = run_entrypoint(tmp_path, "1", tmpdir=tmp_path / "missing")

    assert result.returncode != 0
    assert "emptyDir" in result.stderr
    assert result.stdout == ""


def test_the_stand_in_image_recycles_connections_like_tf_serving(tmp_path: Path) -> None:
    # The offline cluster runs serving/standin/Dockerfile in TF Serving's place: clients must meet the same
    # connection age there, or rollouts on kind would prove nothing about re-resolution.
    flags = flags_of(run_entrypoint(tmp_path, "1").stdout)
    channel_args = dict(item.split("=") for item in flags["grpc_channel_arguments"].split(","))
    entrypoint = (SERVING / "standin" / "Dockerfile").read_text(encoding="utf-8")
    args = re.findall(r'"([^"]+)"', entrypoint[entrypoint.index("ENTRYPOINT") :])
    assert args[args.index("--max-connection-age-ms") + 1] == channel_args["grpc.max_connection_age_ms"]
    assert args[args.index("--port") + 1] == "8500"
    assert args[args.index("--rest-port") + 1] == "8501"
