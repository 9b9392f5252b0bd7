"""The one module that talks to TF Serving: a grpc.aio channel, Predict, and the contract check.

Tensors are built from numpy bytes (`tensor_content`) and parsed with numpy; the TensorFlow runtime is
never imported. The protobuf classes come from `tensorflow-serving-api` and TensorFlow's generated `*_pb2`
modules (copied out of the TensorFlow wheel without the runtime by hack/vendor_tf_protos.py).

Predict is retried by gRPC itself, from the channel's service config (`retryPolicy`): UNAVAILABLE,
RESOURCE_EXHAUSTED (TF Serving's full batch queue) and CANCELLED (a pod shutting down), SERVING_RETRIES extra
attempts with exponential backoff and full jitter, all within the call's deadline. Then gRPC status codes
become gateway errors here, so routes never see grpc types: those three -> 503 + Retry-After,
DEADLINE_EXCEEDED -> 504, INVALID_ARGUMENT / NOT_FOUND / FAILED_PRECONDITION -> 502 contract mismatch,
anything else -> 502.

One gap gRPC's retries cannot cover: the channel learns TF Serving's pods from DNS, and re-resolves only
when a connection ends (or ages out, TF Serving's `max_connection_age`). A pod that became Ready since the
last resolution is unknown to it, so when the pod it knew goes away (a drain right after a replacement),
there is for a moment no address to send to, and retries a few milliseconds apart all fail. So after
UNAVAILABLE from a TF Serving that answered within the last `RECENT_S`, Predict waits up to
`RECONNECT_WAIT_S` (within its deadline) for the channel to be READY again, which its re-resolution makes
it, and is sent once more. A TF Serving that never answered, or not for longer, or that answered
UNAVAILABLE itself over a READY channel, still gets its 503 at once.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass, field

import grpc
import numpy as np
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from gateway import contract, metrics
from gateway.errors import ContractMismatch, GatewayError, UpstreamError, UpstreamTimeout, UpstreamUnavailable
from gateway.settings import Settings

log = logging.getLogger(__name__)

MiB = 1024 * 1024

_NUMPY_TO_DTYPE = {
    np.dtype(np.uint8): types_pb2.DT_UINT8,
    np.dtype(np.float32): types_pb2.DT_FLOAT,
}
_DTYPE_NAMES = {types_pb2.DT_UINT8: "uint8", types_pb2.DT_FLOAT: "float32"}

_CONTRACT_CODES = {
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.FAILED_PRECONDITION,
}


def fill_tensor_proto(proto: tensor_pb2.TensorProto, array: np.ndarray) -> tensor_pb2.TensorProto:
    """Writes `array` into `proto` as dtype, shape and raw little-endian bytes (TensorProto.tensor_content).

    What `tf.make_tensor_proto` produces for these dtypes, without TensorFlow: one bytes copy, no per-value
    repeated field.
    """
    dtype = _NUMPY_TO_DTYPE.get(array.dtype.newbyteorder("="))
    if dtype is None:
        raise TypeError(f"no TensorProto dtype for {array.dtype}")
    proto.dtype = dtype
    proto.tensor_shape.dim.extend(tensor_shape_pb2.TensorShapeProto.Dim(size=n) for n in array.shape)
    proto.tensor_content = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()
    return proto


def array_from_tensor_proto(proto: tensor_pb2.TensorProto) -> np.ndarray:
    """float32 TensorProto -> numpy array, from tensor_content or float_val (TF Serving may send either)."""
    if proto.dtype != types_pb2.DT_FLOAT:
        raise ContractMismatch(
            f"TF Serving answered {types_pb2.DataType.Name(proto.dtype)}; the gateway expects DT_FLOAT"
        )
    shape = tuple(dim.size for dim in proto.tensor_shape.dim)
    size = int(np.prod(shape)) if shape else 1
    if proto.tensor_content:
        values = np.frombuffer(proto.tensor_content, dtype="<f4")
    elif len(proto.float_val) == 1 and size > 1:
        # A single value stands for a tensor filled with it (TensorProto's documented shorthand).
        values = np.full(size, proto.float_val[0], dtype=np.float32)
    else:
        values = np.asarray(proto.float_val, dtype=np.float32)
    if values.size != size:
        raise ContractMismatch(f"TF Serving answered {values.size} values for shape {list(shape)}")
    return values.reshape(shape)


def set_model_spec(spec: object, settings: Settings) -> None:
    spec.name = settings.model_name  # type: ignore[attr-defined]
    if settings.model_version is not None:
        spec.version.value = settings.model_version  # type: ignore[attr-defined]


def build_predict_request(batch: np.ndarray, settings: Settings) -> predict_pb2.PredictRequest:
    """The PredictRequest for a uint8 batch; the tensor is written in place (no intermediate proto copy)."""
    request = predict_pb2.PredictRequest()
    set_model_spec(request.model_spec, settings)
    request.model_spec.signature_name = contract.SIGNATURE_NAME
    request.output_filter.append(contract.OUTPUT_NAME)
    fill_tensor_proto(request.inputs[contract.INPUT_NAME], batch)
    return request


@dataclass(frozen=True)
class Prediction:
    probabilities: np.ndarray  # (N, len(LABELS)) float32
    model_version: str


@dataclass(frozen=True)
class ContractStatus:
    ready: bool
    reason: str
    model_version: str | None = None
    checked_at: float = field(default_factory=time.monotonic)


# CANCELLED is what a TF Serving pod answers for a call it had accepted as it shuts down (a rollout, a
# scale-in): Predict is a pure function, so sending it again to another pod is safe. Calls the gateway
# cancels itself (its own deadline, a client gone) are never retried: gRPC retries only what the server ended.
RETRYABLE_CODES = ("UNAVAILABLE", "RESOURCE_EXHAUSTED", "CANCELLED")
# See the module's docstring: how long an UNAVAILABLE Predict waits for the channel to be READY again, and
# how recently TF Serving must have answered for it to wait at all.
RECONNECT_WAIT_S = 1.0
RECENT_S = 30.0


def retry_policy(settings: Settings) -> dict[str, object]:
    """Predict's gRPC retry policy (https://github.com/grpc/proposal/blob/master/A6-client-retries.md).

    Attempt n waits a random time in [0, SERVING_BACKOFF_S * 2**(n-1)] (full jitter) before it starts;
    gRPC never retries past the call's deadline (SERVING_TIMEOUT_S), so an outage costs one deadline at most.
    """
    last = settings.serving_backoff_s * 2 ** max(settings.serving_retries - 1, 0)
    return {
        "maxAttempts": settings.serving_retries + 1,
        "initialBackoff": f"{settings.serving_backoff_s:.6f}s",
        "maxBackoff": f"{last:.6f}s",
        "backoffMultiplier": 2,
        "retryableStatusCodes": list(RETRYABLE_CODES),
    }


def service_config(settings: Settings) -> dict[str, object]:
    config: dict[str, object] = {
        # round_robin opens a subchannel to every address DNS returns (each pod behind a headless Service)
        # and spreads calls over them; the default pick_first would pin every call to one pod.
        "loadBalancingConfig": [{"round_robin": {}}],
    }
    if settings.serving_retries:  # gRPC wants maxAttempts >= 2 in a retry policy
        predict = {"service": "tensorflow.serving.PredictionService", "method": "Predict"}
        config["methodConfig"] = [{"name": [predict], "retryPolicy": retry_policy(settings)}]
    return config


def channel_options(settings: Settings) -> list[tuple[str, object]]:
    """gRPC channel arguments (https://grpc.github.io/grpc/core/group__grpc__arg__keys.html)."""
    # The largest message is a full batch of uint8 images; 1 MiB of headroom covers the protobuf framing.
    limit = max(4 * MiB, settings.max_batch_size * contract.IMAGE_BYTES + MiB)
    return [
        ("grpc.service_config", json.dumps(service_config(settings))),
        # The service config above, not one TF Serving's resolver might announce.
        ("grpc.service_config_disable_resolution", 1),
        ("grpc.max_send_message_length", limit),
        ("grpc.max_receive_message_length", limit),
        # gRPC retries only what it has buffered: room for the largest request (its default is 256 KiB,
        # less than a batch of four images).
        ("grpc.per_rpc_retry_buffer_size", limit),
        # TF Serving is dialled directly: HTTP(S)_PROXY / grpc_proxy from the environment never apply.
        ("grpc.enable_http_proxy", 0),
        # Keepalive only while calls are in flight, no more often than once a minute: TF Serving keeps gRPC's
        # server default of 5 min between pings without data, and would answer faster pings with GOAWAY.
        ("grpc.keepalive_time_ms", 60_000),
        ("grpc.keepalive_timeout_ms", 20_000),
        ("grpc.keepalive_permit_without_calls", 0),
        # Reconnect within seconds once TF Serving is back (the default backoff grows to 120 s).
        ("grpc.initial_reconnect_backoff_ms", 250),
        ("grpc.min_reconnect_backoff_ms", 250),
        ("grpc.max_reconnect_backoff_ms", 2_000),
        # Re-resolve DNS at most every 5 s (default 30 s) so new TF Serving pods are found sooner.
        ("grpc.dns_min_time_between_resolutions_ms", 5_000),
    ]


def map_rpc_error(exc: grpc.aio.AioRpcError, settings: Settings) -> GatewayError:
    code = exc.code()
    metrics.UPSTREAM_ERRORS.labels(code=code.name).inc()
    if code.name in RETRYABLE_CODES:
        return UpstreamUnavailable(
            "TF Serving is unavailable; retry later", headers={"Retry-After": str(settings.retry_after_s)}
        )
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return UpstreamTimeout(f"TF Serving did not answer within {settings.serving_timeout_s:g} s")
    if code in _CONTRACT_CODES:
        return ContractMismatch(f"TF Serving rejected the request ({code.name}): {exc.details()}")
    return UpstreamError(f"TF Serving failed ({code.name})")


class TFServingClient:
    """Owns the process's one channel to TF Serving. Create in the app lifespan; `close()` on shutdown."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._channel = grpc.aio.insecure_channel(settings.grpc_target, options=channel_options(settings))
        self._predict = prediction_service_pb2_grpc.PredictionServiceStub(self._channel)
        self._model = model_service_pb2_grpc.ModelServiceStub(self._channel)
        self._answered_at: float | None = None  # monotonic time of TF Serving's last answer

    def connect(self) -> None:
        """Starts connecting in the background so the first request does not pay for it."""
        self._channel.get_state(try_to_connect=True)

    async def close(self) -> None:
        await self._channel.close(grace=None)

    async def predict(self, batch: np.ndarray) -> Prediction:
        """One Predict for a (N, 150, 150, 3) uint8 batch (gRPC retries it, see `retry_policy`)."""
        request = build_predict_request(batch, self.settings)
        deadline = time.monotonic() + self.settings.serving_timeout_s
        try:
            try:
                response = await self._predict.Predict(request, timeout=self.settings.serving_timeout_s)
            except grpc.aio.AioRpcError as exc:
                if not await self._reconnected(exc, deadline):
                    raise
                response = await self._predict.Predict(request, timeout=deadline - time.monotonic())
        except grpc.aio.AioRpcError as exc:
            raise map_rpc_error(exc, self.settings) from exc
        self._answered_at = time.monotonic()
        if contract.OUTPUT_NAME not in response.outputs:
            raise ContractMismatch(f"TF Serving's answer has no output {contract.OUTPUT_NAME!r}")
        probabilities = array_from_tensor_proto(response.outputs[contract.OUTPUT_NAME])
        expected = (batch.shape[0], len(contract.LABELS))
        if probabilities.shape != expected:
            raise ContractMismatch(
                f"TF Serving answered shape {list(probabilities.shape)}; expected {list(expected)}"
            )
        version = response.model_spec.version.value if response.model_spec.HasField("version") else None
        return Prediction(probabilities, str(version) if version else "unknown")

    async def _reconnected(self, exc: grpc.aio.AioRpcError, deadline: float) -> bool:
        """True when the channel is READY again within RECONNECT_WAIT_S after an UNAVAILABLE from a TF
        Serving that answered in the last RECENT_S (see the module's docstring)."""
        now = time.monotonic()
        if exc.code() != grpc.StatusCode.UNAVAILABLE or self._answered_at is None:
            return False
        if self._channel.get_state() == grpc.ChannelConnectivity.READY:
            return False  # a TF Serving answered UNAVAILABLE itself: nothing to reconnect
        wait = min(RECONNECT_WAIT_S, deadline - now - 0.05)  # room left for the call itself
        if now - self._answered_at > RECENT_S or wait <= 0:
            return False
        try:
            await asyncio.wait_for(self._channel.channel_ready(), wait)
        except TimeoutError:
            return False
        return True

    async def check_contract(self) -> ContractStatus:
        """GetModelStatus (a version AVAILABLE) and GetModelMetadata (signature as in gateway.contract)."""
        timeout = self.settings.readiness_timeout_s
        try:
            status_request = get_model_status_pb2.GetModelStatusRequest()
            set_model_spec(status_request.model_spec, self.settings)
            status = await self._model.GetModelStatus(status_request, timeout=timeout)
            available = [
                s.version
                for s in status.model_version_status
                if s.state == get_model_status_pb2.ModelVersionStatus.AVAILABLE
            ]
            if not available:
                states = sorted(
                    get_model_status_pb2.ModelVersionStatus.State.Name(s.state)
                    for s in status.model_version_status
                )
                return ContractStatus(
                    False, f"no AVAILABLE version of the model (states: {states or 'none'})"
                )

            metadata_request = get_model_metadata_pb2.GetModelMetadataRequest()
            set_model_spec(metadata_request.model_spec, self.settings)
            metadata_request.metadata_field.append("signature_def")
            metadata = await self._predict.GetModelMetadata(metadata_request, timeout=timeout)
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                return ContractStatus(False, f"TF Serving does not serve {self.settings.model_name!r}")
            return ContractStatus(False, f"TF Serving unreachable ({exc.code().name})")

        signatures = get_model_metadata_pb2.SignatureDefMap()
        if not metadata.metadata["signature_def"].Unpack(signatures):
            return ContractStatus(False, "GetModelMetadata returned no SignatureDefMap")
        self._answered_at = time.monotonic()
        problems = signature_problems(signatures)
        version = str(metadata.model_spec.version.value) if metadata.model_spec.HasField("version") else None
        if problems:
            return ContractStatus(False, "contract mismatch: " + "; ".join(problems), version)
        return ContractStatus(True, "ready", version or str(max(available)))


def _shape(info: object) -> list[int] | None:
    shape = info.tensor_shape  # type: ignore[attr-defined]
    return None if shape.unknown_rank else [dim.size for dim in shape.dim]


def signature_problems(signatures: get_model_metadata_pb2.SignatureDefMap) -> list[str]:
    """Differences between the served signature and gateway.contract; empty when they agree."""
    if contract.SIGNATURE_NAME not in signatures.signature_def:
        return [f"no signature {contract.SIGNATURE_NAME!r}"]
    signature = signatures.signature_def[contract.SIGNATURE_NAME]
    problems = []
    checks = (
        ("input", signature.inputs, contract.INPUT_NAME, contract.INPUT_DTYPE, list(contract.INPUT_SHAPE)),
        (
            "output",
            signature.outputs,
            contract.OUTPUT_NAME,
            contract.OUTPUT_DTYPE,
            list(contract.OUTPUT_SHAPE),
        ),
    )
    for kind, tensors, name, dtype, shape in checks:
        if name not in tensors:
            problems.append(f"{kind} {name!r} missing (has {sorted(tensors)})")
            continue
        info = tensors[name]
        served_dtype = _DTYPE_NAMES.get(info.dtype, types_pb2.DataType.Name(info.dtype))
        if served_dtype != dtype:
            problems.append(f"{kind} {name!r} is {served_dtype}, expected {dtype}")
        served_shape = _shape(info)
        if served_shape != shape:
            problems.append(f"{kind} {name!r} has shape {served_shape}, expected {shape}")
    if len(signature.inputs) != 1:
        problems.append(f"signature takes {len(signature.inputs)} inputs, expected 1")
    return problems


class Readiness:
    """The contract check behind /readyz, cached for `ttl_s` and never run twice at once.

    A change of state is logged once (one clear line on a mismatch), not on every probe.
    """

    def __init__(self, client: TFServingClient, ttl_s: float) -> None:
        self._client = client
        self._ttl_s = ttl_s
        self._lock = asyncio.Lock()
        self.last: ContractStatus | None = None

    async def status(self) -> ContractStatus:
        last = self.last
        if last is not None and time.monotonic() - last.checked_at < self._ttl_s:
            return last
        async with self._lock:
            last = self.last
            if last is not None and time.monotonic() - last.checked_at < self._ttl_s:
                return last
            current = await self._client.check_contract()
            self._record(last, current)
            self.last = current
            return current

    @staticmethod
    def _record(previous: ContractStatus | None, current: ContractStatus) -> None:
        metrics.READY.set(1 if current.ready else 0)
        if previous is not None and previous.ready == current.ready and previous.reason == current.reason:
            return
        if current.ready:
            log.info("TF Serving ready: model version %s matches the gateway contract", current.model_version)
        elif current.reason.startswith("contract mismatch"):
            log.error("not ready: TF Serving's model does not match the gateway: %s", current.reason)
        else:
            log.warning("not ready: %s", current.reason)
