"""A stand-in for TF Serving's gRPC API over exported SavedModels, for development and tests only.

These machines run no containers, so the gateway is tested against this server instead: it implements
`tensorflow.serving.PredictionService` (Predict, GetModelMetadata), `tensorflow.serving.ModelService`
(GetModelStatus) and `grpc.health.v1.Health`, runs the SavedModel with TensorFlow, and answers errors with
the status codes and messages TF Serving uses (tensorflow_serving/servables/tensorflow/predict_util.cc,
get_model_metadata_impl.cc, model_servers/get_model_status_impl.cc). Every Kubernetes deployment runs the
real TF Serving image (serving/Dockerfile); nothing here is meant for production.

Differences from TF Serving, on purpose:
- Every numeric version directory under the base path is loaded at start and none is reloaded later
  (TF Serving's version policy in serving/models.config keeps only the latest in the image). A request
  without a version gets the highest loaded version, as TF Serving's `Latest` does.
- A request whose shape does not fit the signature is rejected up front with INVALID_ARGUMENT; TF Serving
  reports such requests from inside the graph, also as INVALID_ARGUMENT but with TensorFlow's message.
- No request batching across calls; a request with a batch dimension > 1 runs in one call, and one larger
  than `max_batch_size` is refused as TF Serving's batcher refuses it.
- Only predict warmup records are replayed (the species model has no classify/regress signatures).
- The REST port (`rest_port`) serves only what Kubernetes and Prometheus read from TF Serving's: the model
  status (`GET /v1/models/<name>`) and `/monitoring/prometheus/metrics` (the stand-in's own process
  metrics, not TF Serving's metric families). No REST predictions: the gateway speaks gRPC.
- `load_delay_seconds` imitates a slow model load: the ports open at once, but until the delay has passed
  the health service says NOT_SERVING, GetModelStatus says LOADING and Predict answers UNAVAILABLE.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from concurrent import futures
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, NoReturn

import grpc
import numpy as np
import tensorflow as tf
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from tensorflow.core.framework import tensor_pb2, types_pb2
from tensorflow.core.protobuf import meta_graph_pb2, saved_model_pb2
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_log_pb2,
    prediction_service_pb2_grpc,
    status_pb2,
)

from model import spec

log = logging.getLogger(__name__)

SERVE_TAG = "serve"
DEFAULT_SIGNATURE = "serving_default"
SIGNATURE_DEF_FIELD = "signature_def"
# TF Serving refuses a warmup file with more records than this (saved_model_warmup_util.cc).
MAX_WARMUP_RECORDS = 1000
# TF Serving's gRPC server accepts messages up to INT32_MAX bytes (ServerBuilder::SetMaxMessageSize).
TF_SERVING_MAX_MESSAGE_BYTES = 2**31 - 1

# TensorFlow's own names in its error messages (DataTypeString) differ from tf.DType.name for these.
_TF_TYPE_NAMES = {types_pb2.DT_FLOAT: "float", types_pb2.DT_DOUBLE: "double", types_pb2.DT_HALF: "half"}
# TensorFlow's error codes are gRPC's codes, number for number (tensorflow/core/protobuf/error_codes.proto).
_GRPC_CODES = {code.value[0]: code for code in grpc.StatusCode}


class ServingError(Exception):
    """A request TF Serving would refuse: carries the gRPC status code and TF Serving's message."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class WarmupError(RuntimeError):
    """A warmup record failed; TF Serving then fails the load of that version."""


@dataclass(frozen=True)
class Servable:
    """One loaded version of the model."""

    name: str
    version: int
    path: Path
    # SignatureDefs exactly as saved_model.pb stores them: what TF Serving's GetModelMetadata returns.
    signature_defs: Mapping[str, meta_graph_pb2.SignatureDef]
    functions: Mapping[str, Callable[..., Mapping[str, tf.Tensor]]]
    # The object tf.saved_model.load returned; kept so its variables live as long as the functions.
    owner: Any = field(repr=False)


def find_versions(base_path: Path) -> list[int]:
    """Numeric version directories under a TF Serving model base path, in ascending order."""
    if not base_path.is_dir():
        raise FileNotFoundError(f"model base path {base_path} is not a directory")
    return sorted(int(p.name) for p in base_path.iterdir() if p.is_dir() and p.name.isdigit())


def load_servable(name: str, version_dir: Path) -> Servable:
    """Loads one SavedModel version directory with the `serve` tag."""
    saved_model = saved_model_pb2.SavedModel.FromString((version_dir / "saved_model.pb").read_bytes())
    meta_graph = next(
        (mg for mg in saved_model.meta_graphs if SERVE_TAG in mg.meta_info_def.tags),
        None,
    )
    if meta_graph is None:
        raise ValueError(f"{version_dir} has no MetaGraph tagged {SERVE_TAG!r}")
    loaded = tf.saved_model.load(str(version_dir), tags=[SERVE_TAG])
    return Servable(
        name=name,
        version=int(version_dir.name),
        path=version_dir,
        signature_defs=dict(meta_graph.signature_def),
        functions=dict(loaded.signatures),
        owner=loaded,
    )


@dataclass
class Model:
    """The served model: its loaded versions and optional version labels."""

    name: str
    servables: dict[int, Servable]
    version_labels: dict[str, int] = field(default_factory=dict)

    @property
    def versions(self) -> list[int]:
        return sorted(self.servables)

    def resolve(self, model_spec: model_pb2.ModelSpec) -> Servable:
        """Finds the servable a ModelSpec asks for, or raises what TF Serving's ServerCore raises."""
        choice = model_spec.WhichOneof("version_choice")
        if choice == "version_label":
            label = model_spec.version_label
            if model_spec.name != self.name or label not in self.version_labels:
                raise ServingError(
                    grpc.StatusCode.INVALID_ARGUMENT, f"Unrecognized servable version label: {label}"
                )
            version: int | None = self.version_labels[label]
        elif choice == "version":
            version = model_spec.version.value
        else:
            version = None
        name = model_spec.name
        request = f"Latest({name})" if version is None else f"Specific({name}, {version})"
        if model_spec.name != self.name or not self.servables:
            raise ServingError(grpc.StatusCode.NOT_FOUND, f"Servable not found for request: {request}")
        if version is None:
            return self.servables[max(self.servables)]
        if version not in self.servables:
            raise ServingError(grpc.StatusCode.NOT_FOUND, f"Servable not found for request: {request}")
        return self.servables[version]


def load_model(
    name: str, base_path: Path, version_labels: Mapping[str, int] | None = None, warmup: bool = True
) -> Model:
    """Loads every numeric version under `base_path` and replays each version's warmup records."""
    versions = find_versions(base_path)
    if not versions:
        raise FileNotFoundError(f"no numeric version directories under {base_path}")
    servables = {}
    for version in versions:
        servable = load_servable(name, base_path / str(version))
        if warmup:
            count = replay_warmup(servable)
            log.info("version %d: replayed %d warmup request(s)", version, count)
        servables[version] = servable
    labels = dict(version_labels or {})
    for label, version in labels.items():
        if version not in servables:
            raise ValueError(f"version label {label!r} points at version {version}, which is not loaded")
    return Model(name=name, servables=servables, version_labels=labels)


def replay_warmup(servable: Servable) -> int:
    """Runs the version's `assets.extra/tf_serving_warmup_requests` (TFRecord of PredictionLog), as
    `--enable_model_warmup` does; returns how many ran. Raises WarmupError when one fails."""
    path = servable.path / "assets.extra" / spec.WARMUP_FILENAME
    if not path.exists():
        return 0
    count = 0
    for record in tf.data.TFRecordDataset(str(path)):
        count += 1
        if count > MAX_WARMUP_RECORDS:
            raise WarmupError(f"{path}: more than {MAX_WARMUP_RECORDS} warmup records")
        entry = prediction_log_pb2.PredictionLog.FromString(record.numpy())
        kind = entry.WhichOneof("log_type")
        if kind != "predict_log":
            raise WarmupError(f"{path}: record {count} is a {kind}; the stand-in replays predict_log only")
        try:
            # As in TF Serving, warmup runs against the version being loaded, whatever the logged spec says.
            run_predict(servable, entry.predict_log.request)
        except ServingError as error:
            raise WarmupError(f"{path}: record {count} failed: {error.code.name}: {error.message}") from error
    return count


def _type_name(dtype: int) -> str:
    if dtype in _TF_TYPE_NAMES:
        return _TF_TYPE_NAMES[dtype]
    try:
        return str(tf.dtypes.as_dtype(dtype).name)
    except TypeError:
        return f"DataType({dtype})"


def _signature_shape(info: meta_graph_pb2.TensorInfo) -> list[int] | None:
    if info.tensor_shape.unknown_rank:
        return None
    return [dim.size for dim in info.tensor_shape.dim]


def _shape_fits(want: list[int], shape: tuple[int, ...]) -> bool:
    return len(want) == len(shape) and all(w in (-1, got) for w, got in zip(want, shape, strict=True))


def _shape_text(shape: Iterable[int]) -> str:
    return "[" + ",".join(str(d) for d in shape) + "]"


def tensor_to_proto(array: np.ndarray, as_tensor_content: bool = False) -> tensor_pb2.TensorProto:
    """Serialises an output like TF Serving: typed repeated fields (Tensor::AsProtoField) by default,
    packed `tensor_content` when `--enable_serialization_as_tensor_content` is on."""
    if as_tensor_content:
        return tf.make_tensor_proto(array)
    proto = tensor_pb2.TensorProto(
        dtype=tf.dtypes.as_dtype(array.dtype).as_datatype_enum,
        tensor_shape=tf.TensorShape(array.shape).as_proto(),
    )
    flat = array.ravel()
    kind = array.dtype
    if kind == np.float32:
        proto.float_val.extend(flat.tolist())
    elif kind == np.float64:
        proto.double_val.extend(flat.tolist())
    elif kind in (np.int32, np.int16, np.int8, np.uint8, np.uint16):
        proto.int_val.extend(flat.tolist())
    elif kind == np.int64:
        proto.int64_val.extend(flat.tolist())
    elif kind == np.bool_:
        proto.bool_val.extend(flat.tolist())
    else:
        return tf.make_tensor_proto(array)
    return proto


def _parse_inputs(
    signature: meta_graph_pb2.SignatureDef, request: predict_pb2.PredictRequest
) -> dict[str, np.ndarray]:
    expected = sorted(signature.inputs)
    sent = sorted(request.inputs)
    if len(sent) != len(expected):
        extra = sorted(set(sent) - set(expected))
        missing = sorted(set(expected) - set(sent))
        raise ServingError(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"input size does not match signature: {len(sent)}!={len(expected)} "
            f"len({{{','.join(sent)}}}) != len({{{','.join(expected)}}}). "
            f"Sent extra: {{{','.join(extra)}}}. Missing but required: {{{','.join(missing)}}}.",
        )
    arrays: dict[str, np.ndarray] = {}
    for position, alias in enumerate(sent):
        if alias not in signature.inputs:
            raise ServingError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"input tensor alias not found in signature: {alias}. "
                f"Inputs expected to be in the set {{{','.join(expected)}}}.",
            )
        info = signature.inputs[alias]
        proto = request.inputs[alias]
        if proto.dtype != info.dtype:
            # TensorFlow's Session::Run message for a feed of the wrong type.
            raise ServingError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"Expects arg[{position}] to be {_type_name(info.dtype)} but "
                f"{_type_name(proto.dtype)} is provided",
            )
        try:
            array = tf.make_ndarray(proto)
        except (TypeError, ValueError) as error:
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, f"tensor parsing error: {alias}") from error
        want = _signature_shape(info)
        if want is not None and not _shape_fits(want, array.shape):
            raise ServingError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"input tensor {alias} has shape {_shape_text(array.shape)}, but the signature expects "
                f"{_shape_text(want)} (-1: any size)",
            )
        arrays[alias] = array
    return arrays


def _output_aliases(signature: meta_graph_pb2.SignatureDef, request: predict_pb2.PredictRequest) -> list[str]:
    if not request.output_filter:
        return sorted(signature.outputs)
    seen: list[str] = []
    for alias in request.output_filter:
        if alias not in signature.outputs:
            raise ServingError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"output tensor alias not found in signature: {alias} "
                f"Outputs expected to be in the set {{{','.join(sorted(signature.outputs))}}}.",
            )
        if alias in seen:
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, f"duplicate output tensor alias: {alias}")
        seen.append(alias)
    return seen


def run_predict(
    servable: Servable,
    request: predict_pb2.PredictRequest,
    *,
    max_batch_size: int | None = None,
    as_tensor_content: bool = False,
) -> predict_pb2.PredictResponse:
    """Validates a PredictRequest against one servable's signature and runs it in one call."""
    signature_name = request.model_spec.signature_name or DEFAULT_SIGNATURE
    signature = servable.signature_defs.get(signature_name)
    function = servable.functions.get(signature_name)
    if signature is None or function is None:
        raise ServingError(
            grpc.StatusCode.FAILED_PRECONDITION, f'Serving signature key "{signature_name}" not found.'
        )
    arrays = _parse_inputs(signature, request)
    # The checks TF Serving's batching layer makes before it queues a request (batching_session.cc).
    if any(array.ndim == 0 for array in arrays.values()):
        raise ServingError(
            grpc.StatusCode.INVALID_ARGUMENT, "Batching Run() input tensors must have at least one dimension"
        )
    batch_sizes = {int(array.shape[0]) for array in arrays.values()}
    if len(batch_sizes) > 1:
        raise ServingError(
            grpc.StatusCode.INVALID_ARGUMENT,
            "Batching Run() input tensors must have equal 0th-dimension size",
        )
    batch_size = max(batch_sizes, default=0)
    if max_batch_size is not None and batch_size > max_batch_size:
        raise ServingError(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"Task size {batch_size} is larger than maximum input batch size {max_batch_size}",
        )
    aliases = _output_aliases(signature, request)
    try:
        outputs = function(**{alias: tf.constant(array) for alias, array in arrays.items()})
    except tf.errors.OpError as error:
        code = _GRPC_CODES.get(error.error_code, grpc.StatusCode.UNKNOWN)
        raise ServingError(code, error.message) from error

    response = predict_pb2.PredictResponse()
    response.model_spec.name = servable.name
    response.model_spec.version.value = servable.version
    response.model_spec.signature_name = signature_name
    for alias in aliases:
        response.outputs[alias].CopyFrom(tensor_to_proto(outputs[alias].numpy(), as_tensor_content))
    return response


def model_metadata(
    model: Model, request: get_model_metadata_pb2.GetModelMetadataRequest
) -> get_model_metadata_pb2.GetModelMetadataResponse:
    """GetModelMetadata: the version's SignatureDefMap packed in an Any under "signature_def"."""
    if not request.HasField("model_spec"):
        raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, "Missing ModelSpec")
    if not request.metadata_field:
        raise ServingError(
            grpc.StatusCode.INVALID_ARGUMENT,
            "GetModelMetadataRequest must specify at least one metadata_field",
        )
    for metadata_field in request.metadata_field:
        if metadata_field != SIGNATURE_DEF_FIELD:
            raise ServingError(
                grpc.StatusCode.INVALID_ARGUMENT, f"Metadata field {metadata_field} is not supported"
            )
    servable = model.resolve(request.model_spec)
    signature_map = get_model_metadata_pb2.SignatureDefMap()
    for key, signature in servable.signature_defs.items():
        signature_map.signature_def[key].CopyFrom(signature)
    response = get_model_metadata_pb2.GetModelMetadataResponse()
    response.model_spec.name = servable.name
    response.model_spec.version.value = servable.version
    response.metadata[SIGNATURE_DEF_FIELD].Pack(signature_map)
    return response


def model_status(
    model: Model, request: get_model_status_pb2.GetModelStatusRequest, available: bool = True
) -> get_model_status_pb2.GetModelStatusResponse:
    """GetModelStatus: every loaded version is AVAILABLE (LOADING while a load delay runs), status OK."""
    if not request.HasField("model_spec"):
        raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, "Missing ModelSpec")
    name = request.model_spec.name
    if request.model_spec.HasField("version"):
        version = request.model_spec.version.value
        if name != model.name or version not in model.servables:
            raise ServingError(grpc.StatusCode.NOT_FOUND, f"Could not find version {version} of model {name}")
        versions = [version]
    else:
        if name != model.name or not model.servables:
            raise ServingError(grpc.StatusCode.NOT_FOUND, f"Could not find any versions of model {name}")
        versions = model.versions
    response = get_model_status_pb2.GetModelStatusResponse()
    state = (
        get_model_status_pb2.ModelVersionStatus.AVAILABLE
        if available
        else get_model_status_pb2.ModelVersionStatus.LOADING
    )
    for version in versions:
        response.model_version_status.add(version=version, state=state, status=status_pb2.StatusProto())
    return response


@dataclass(frozen=True)
class Options:
    """Behaviour switches; the defaults mirror serving/ (entrypoint.sh flags, batching.config)."""

    # batching.config's max_batch_size; None accepts any batch size.
    max_batch_size: int | None = 32
    # Mirrors --enable_serialization_as_tensor_content (off in serving/entrypoint.sh).
    as_tensor_content: bool = False
    # Extra latency before each Predict, for clients' deadline tests.
    delay_seconds: float = 0.0
    # How long the model pretends to load after the ports open (probes and readiness tests).
    load_delay_seconds: float = 0.0


LOADING = ServingError(grpc.StatusCode.UNAVAILABLE, "the model is still loading")


def _abort(context: grpc.ServicerContext, error: ServingError) -> NoReturn:
    context.abort(error.code, error.message)
    raise AssertionError("grpc.ServicerContext.abort returned")  # it always raises


class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    """Predict and GetModelMetadata; Classify, Regress and MultiInference answer UNIMPLEMENTED."""

    def __init__(
        self, model: Model, options: Options, stopping: threading.Event, available: threading.Event
    ) -> None:
        self._model = model
        self._options = options
        self._stopping = stopping
        self._available = available

    def Predict(
        self, request: predict_pb2.PredictRequest, context: grpc.ServicerContext
    ) -> predict_pb2.PredictResponse:
        if not self._available.is_set():
            _abort(context, LOADING)
        if self._options.delay_seconds:
            # Cut short by shutdown, so SIGTERM never waits for an artificial delay.
            self._stopping.wait(self._options.delay_seconds)
        try:
            servable = self._model.resolve(request.model_spec)
            return run_predict(
                servable,
                request,
                max_batch_size=self._options.max_batch_size,
                as_tensor_content=self._options.as_tensor_content,
            )
        except ServingError as error:
            _abort(context, error)

    def GetModelMetadata(
        self, request: get_model_metadata_pb2.GetModelMetadataRequest, context: grpc.ServicerContext
    ) -> get_model_metadata_pb2.GetModelMetadataResponse:
        if not self._available.is_set():
            _abort(context, LOADING)
        try:
            return model_metadata(self._model, request)
        except ServingError as error:
            _abort(context, error)


class ModelService(model_service_pb2_grpc.ModelServiceServicer):
    """GetModelStatus; HandleReloadConfigRequest answers UNIMPLEMENTED (the stand-in never reloads)."""

    def __init__(self, model: Model, available: threading.Event) -> None:
        self._model = model
        self._available = available

    def GetModelStatus(
        self, request: get_model_status_pb2.GetModelStatusRequest, context: grpc.ServicerContext
    ) -> get_model_status_pb2.GetModelStatusResponse:
        try:
            return model_status(self._model, request, available=self._available.is_set())
        except ServingError as error:
            _abort(context, error)


class StandIn:
    """The gRPC server (PredictionService, ModelService, gRPC health on one port), and optionally the REST
    port with the model status and metrics."""

    def __init__(
        self,
        model: Model,
        host: str = "127.0.0.1",
        port: int = 8500,
        options: Options | None = None,
        max_message_bytes: int = TF_SERVING_MAX_MESSAGE_BYTES,
        workers: int = 16,
        rest_port: int | None = None,
    ) -> None:
        self.model = model
        self.host = host
        self._options = options or Options()
        self._stopping = threading.Event()
        self._available = threading.Event()
        server_options = [
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.max_send_message_length", max_message_bytes),
            # gRPC binds with SO_REUSEPORT by default, so a second server on a busy port would start and
            # silently share it; a stand-in must fail instead.
            ("grpc.so_reuseport", 0),
        ]
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=workers), options=server_options)
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
            PredictionService(model, self._options, self._stopping, self._available), self._server
        )
        model_service_pb2_grpc.add_ModelServiceServicer_to_server(
            ModelService(model, self._available), self._server
        )
        self._health = health.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self._health, self._server)
        self.port = self._server.add_insecure_port(f"{host}:{port}")
        if self.port == 0:
            raise OSError(f"cannot listen on {host}:{port}")
        self._rest: ThreadingHTTPServer | None = None
        if rest_port is not None:
            self._rest = _rest_server(model, self._available, host, rest_port)
            self.rest_port: int = self._rest.server_address[1]

    @property
    def address(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def start(self) -> None:
        # Like TF Serving, which reports SERVING once the initial load is done: the model is loaded here, so
        # the health status is SERVING from the first call, unless a load delay is imitated.
        if self._rest is not None:
            threading.Thread(target=self._rest.serve_forever, name="rest", daemon=True).start()
        delay = self._options.load_delay_seconds
        self._health.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
        self._server.start()
        if delay:
            log.info("imitating a model load of %.1f s: NOT_SERVING until then", delay)
            threading.Thread(target=self._finish_loading, args=(delay,), name="load", daemon=True).start()
        else:
            self._finish_loading(0.0)

    def _finish_loading(self, delay: float) -> None:
        if self._stopping.wait(delay):
            return
        self._available.set()
        self._health.set("", health_pb2.HealthCheckResponse.SERVING)

    def stop(self, grace_seconds: float = 5.0) -> None:
        """Reports NOT_SERVING, refuses new calls and lets running ones finish within the grace period."""
        self._stopping.set()
        self._health.enter_graceful_shutdown()
        self._server.stop(grace_seconds).wait()
        if self._rest is not None:
            self._rest.shutdown()
            self._rest.server_close()


_MODEL_STATUS_PATH = re.compile(r"^/v1/models/(?P<name>[^/]+)(?:/versions/(?P<version>[0-9]+))?$")
METRICS_PATH = "/monitoring/prometheus/metrics"


def _rest_server(model: Model, available: threading.Event, host: str, port: int) -> ThreadingHTTPServer:
    """TF Serving's REST status endpoint (the JSON of GetModelStatus) and the metrics path of
    serving/monitoring.config."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == METRICS_PATH:
                self._send(200, generate_latest(), CONTENT_TYPE_LATEST)
                return
            match = _MODEL_STATUS_PATH.match(self.path)
            if match is None:
                self._send_json(404, {"error": f"Malformed request: GET {self.path}"})
                return
            request = get_model_status_pb2.GetModelStatusRequest()
            request.model_spec.name = match["name"]
            if match["version"]:
                request.model_spec.version.value = int(match["version"])
            try:
                response = model_status(model, request, available=available.is_set())
            except ServingError as error:
                self._send_json(404, {"error": error.message})
                return
            states = get_model_status_pb2.ModelVersionStatus.State
            self._send_json(
                200,
                {
                    "model_version_status": [
                        {
                            "version": str(status.version),
                            "state": states.Name(status.state),
                            "status": {"error_code": "OK", "error_message": ""},
                        }
                        for status in response.model_version_status
                    ]
                },
            )

        def _send_json(self, status: int, body: object) -> None:
            self._send(status, json.dumps(body).encode(), "application/json")

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("rest: %s", format % args)

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    return server
