"""The gateway's configuration: one `Settings` read from the environment once, at startup.

Every knob of every gateway module lives here (the URL fetcher's too), so the README's settings table and
this class are the whole story. Invalid values stop the process at startup with pydantic's message naming
the variable, instead of failing on the first request.
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from gateway import contract

KiB = 1024
MiB = 1024 * KiB

# What the process needs before any request: the interpreter, numpy, Pillow, gRPC, uvicorn, the metrics and
# buffers (measured: about 95 MiB after warm-up, 130 MiB after `make bench`). The memory budgets share what
# the limit leaves above it.
BASELINE_BYTES = 128 * MiB
# Used when neither MEMORY_LIMIT_BYTES nor a cgroup limit says otherwise: the chart's gateway limit.
DEFAULT_MEMORY_LIMIT = 512 * MiB
# Share of (limit - baseline) for decoding (MAX_DECODE_BYTES's default); the rest holds request bodies.
DECODE_SHARE = 0.4

# Formats Pillow names in `Image.format`. GIF and TIFF are left out by default: camera traps write JPEG, and
# every extra decoder is extra attack surface for hostile uploads.
DEFAULT_ALLOWED_FORMATS = ("JPEG", "PNG", "WEBP", "BMP")


def available_cpus() -> int:
    """CPUs this process may use: the cgroup v2 CPU quota when set (a container's limit), else affinity.

    os.cpu_count() reports the node's cores, which would size pools for 64 CPUs in a 1-CPU pod.
    """
    cpus = len(os.sched_getaffinity(0))
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()
    except (OSError, ValueError):
        return cpus
    if quota == "max":
        return cpus
    return max(1, min(cpus, math.ceil(int(quota) / int(period))))


def cgroup_memory_limit() -> int | None:
    """The container's memory limit from cgroup v2 (`memory.max`), or None when there is none."""
    try:
        text = Path("/sys/fs/cgroup/memory.max").read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _split_csv(value: object) -> object:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


class Settings(BaseSettings):
    """Environment variables are the upper-case field names (`TF_SERVING_HOST`, `MAX_BATCH_SIZE`, ...)."""

    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore", frozen=True)

    # --- HTTP server (python -m gateway) ---
    # Not GATEWAY_PORT: Kubernetes injects <SERVICE>_PORT=tcp://... variables for a Service named "gateway".
    bind_host: str = Field(default="0.0.0.0", description="Address uvicorn listens on.")  # noqa: S104 (a container)
    bind_port: int = Field(default=9696, ge=1, le=65535, description="Port uvicorn listens on.")
    forwarded_allow_ips: str = Field(
        default="127.0.0.1",
        description="Proxies whose X-Forwarded-For/-Proto uvicorn trusts (uvicorn --forwarded-allow-ips).",
    )
    shutdown_timeout_s: int = Field(
        default=20,
        ge=1,
        le=3600,
        description=(
            "Seconds after SIGTERM for clients to close idle keep-alive connections (at most 6 s of it, a"
            " third at most) and for in-flight requests to finish."
        ),
    )
    keep_alive_timeout_s: int = Field(
        default=20,
        ge=1,
        le=300,
        description=(
            "An idle keep-alive connection is closed after this many seconds; longer than clients' pool"
            " expiry (httpx 5 s, Node 4 s), so the client closes first and never sends into a closing socket."
        ),
    )
    metrics_port: int = Field(
        default=9697,
        ge=0,
        le=65535,
        description="A second listener serving only GET /metrics (for scrapers inside the cluster); 0: none.",
    )
    metrics_on_main_port: bool = Field(
        default=True, description="Serve GET /metrics on BIND_PORT too (false where that port is public)."
    )
    docs_enabled: bool = Field(default=False, description="Serve /docs, /redoc and /openapi.json.")

    # --- Time and size bounds on reading requests ---
    header_timeout_s: float = Field(
        default=10.0,
        gt=0,
        le=300,
        description="Request line and headers must arrive within this many seconds (408, then closed).",
    )
    max_header_bytes: int = Field(
        default=32 * KiB, ge=1 * KiB, le=1 * MiB, description="Request line plus headers; more get 431."
    )
    body_timeout_s: float = Field(
        default=60.0, gt=0, le=3600, description="The whole body must arrive within this many seconds (408)."
    )
    body_min_rate: int = Field(
        default=32 * KiB,
        ge=0,
        description=(
            "Bytes per second a body must average once it has been arriving for 5 s (408); 0 turns the"
            " rate check off."
        ),
    )

    # --- TF Serving ---
    tf_serving_host: str = Field(default="localhost:8500", description="TF Serving gRPC address, host:port.")
    model_name: str = Field(
        default=contract.MODEL_NAME, min_length=1, description="Model name in TF Serving."
    )
    model_version: int | None = Field(
        default=None, ge=1, description="Pin one model version; unset means TF Serving's latest."
    )
    serving_timeout_s: float = Field(
        default=5.0, gt=0, le=300, description="Deadline of one Predict, retries included."
    )
    # gRPC caps a retry policy at 5 attempts (https://github.com/grpc/proposal/blob/master/A6-client-retries.md).
    serving_retries: int = Field(
        default=2, ge=0, le=4, description="Retries after UNAVAILABLE, RESOURCE_EXHAUSTED, CANCELLED."
    )
    serving_backoff_s: float = Field(
        default=0.05, gt=0, le=10, description="First retry backoff; doubles per attempt, full jitter."
    )
    retry_after_s: int = Field(default=1, ge=0, le=3600, description="Retry-After (seconds) sent with 503.")
    readiness_ttl_s: float = Field(
        default=2.0, ge=0, le=300, description="How long /readyz reuses a contract check result."
    )
    readiness_timeout_s: float = Field(
        default=1.0,
        gt=0,
        le=60,
        description="Deadline of each readiness RPC (GetModelStatus, GetModelMetadata).",
    )

    # --- Input limits ---
    max_body_bytes: int = Field(default=16 * MiB, ge=1024, description="Body cap of POST /predict.")
    max_batch_body_bytes: int = Field(
        default=64 * MiB, ge=1024, description="Body cap of POST /predict/batch."
    )
    max_pixels: int = Field(
        default=40_000_000, ge=150 * 150, description="Pixel-count cap read from the image header."
    )
    max_batch_size: int = Field(default=32, ge=1, le=256, description="Images per POST /predict/batch.")
    allowed_formats: Annotated[frozenset[str], NoDecode] = Field(
        default=frozenset(DEFAULT_ALLOWED_FORMATS), description="Comma-separated Pillow format names."
    )
    decode_concurrency: int = Field(
        default=0,
        ge=0,
        le=256,
        description="Images decoded at once (threads); 0 means one per available CPU.",
    )
    max_in_flight: int = Field(
        default=16,
        ge=1,
        le=1024,
        description=(
            "Prediction requests (/predict and /predict/batch) handled at once; more get 503 overloaded with"
            " Retry-After at once, before their body is read. Health, readiness, metrics and model endpoints"
            " are never limited."
        ),
    )
    max_jpeg_scans: int = Field(
        default=32,
        ge=1,
        le=1000,
        description="Scans (SOS markers) a JPEG may have; cameras write 1, libjpeg's progressive mode 6-10.",
    )

    # --- Memory budgets (see the README's settings table for the formula) ---
    memory_limit_bytes: int = Field(
        default=0,
        ge=0,
        description=(
            "The pod's memory limit (the manifests pass limits.memory through the downward API); 0: the"
            " cgroup's memory.max, else 512 MiB."
        ),
    )
    max_decode_bytes: int = Field(
        default=0,
        ge=0,
        description=(
            "Memory all image decodes may use at once, estimated from each image's header; an image that"
            " alone needs more gets 413. 0: 40% of (memory limit - 128 MiB)."
        ),
    )
    tmp_budget_bytes: int = Field(
        default=48 * MiB,
        ge=0,
        description=(
            "Multipart upload bytes spooled to /tmp at once, all requests together (the pods' /tmp is a"
            " 64 Mi emptyDir); a multipart body that does not fit is held in memory instead."
        ),
    )

    # --- URL fetching (gateway.fetch) ---
    fetch_timeout_s: float = Field(default=10.0, gt=0, le=120, description="Whole download deadline per URL.")
    fetch_connect_timeout_s: float = Field(default=3.0, gt=0, le=60, description="TCP/TLS connect timeout.")
    fetch_max_bytes: int = Field(default=16 * MiB, ge=1024, description="Download size cap per URL.")
    fetch_max_redirects: int = Field(default=3, ge=0, le=10, description="Redirect hops, each re-checked.")
    fetch_allowed_hosts: Annotated[frozenset[str], NoDecode] = Field(
        default=frozenset(), description="Comma-separated host allowlist; empty means any public host."
    )
    fetch_allow_loopback: bool = Field(
        default=False, description="Allow loopback addresses (tests only; never in a cluster)."
    )
    fetch_allowed_ports: Annotated[frozenset[int], NoDecode] = Field(
        default=frozenset({80, 443}), description="Comma-separated ports image URLs may use."
    )
    fetch_max_header_bytes: int = Field(
        default=32 * KiB,
        ge=1 * KiB,
        le=1 * MiB,
        description="Response head bytes per fetch, interim (1xx) responses included.",
    )
    fetch_concurrency: int = Field(
        default=4,
        ge=1,
        le=64,
        description=(
            "URLs one request fetches at once; the fetch pool has MAX_IN_FLIGHT x this many connections,"
            " so no request waits for another's downloads."
        ),
    )

    # --- Logging ---
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", description="Root log level."
    )
    log_format: Literal["json", "text"] = Field(
        default="json", description="json for clusters, text for a terminal."
    )

    @field_validator("allowed_formats", "fetch_allowed_hosts", "fetch_allowed_ports", mode="before")
    @classmethod
    def _csv(cls, value: object) -> object:
        return _split_csv(value)

    @field_validator("allowed_formats")
    @classmethod
    def _known_formats(cls, value: frozenset[str]) -> frozenset[str]:
        from PIL import Image

        Image.init()
        formats = frozenset(item.upper() for item in value)
        unknown = sorted(formats - set(Image.OPEN))
        if unknown:
            raise ValueError(f"unknown image formats {unknown}; Pillow knows {sorted(Image.OPEN)}")
        if not formats:
            raise ValueError("at least one image format must be allowed")
        return formats

    @field_validator("fetch_allowed_ports")
    @classmethod
    def _ports(cls, value: frozenset[int]) -> frozenset[int]:
        if not value:
            raise ValueError("at least one port must be allowed")
        if not all(0 < port < 65536 for port in value):
            raise ValueError(f"ports are 1-65535, got {sorted(value)}")
        return value

    @model_validator(mode="after")
    def _budgets_fit(self) -> Settings:
        if self.memory_budget_bytes < 16 * MiB:
            raise ValueError(
                f"MEMORY_LIMIT_BYTES {self.memory_limit // MiB} MiB leaves"
                f" {max(self.memory_budget_bytes, 0) // MiB} MiB for request bodies after the baseline"
                f" ({BASELINE_BYTES // MiB} MiB) and MAX_DECODE_BYTES"
                f" ({self.decode_budget_bytes // MiB} MiB); at least 16 MiB are needed"
            )
        if self.metrics_port and self.metrics_port == self.bind_port:
            raise ValueError("METRICS_PORT must differ from BIND_PORT (or be 0)")
        return self

    @field_validator("fetch_allowed_hosts")
    @classmethod
    def _lower_hosts(cls, value: frozenset[str]) -> frozenset[str]:
        return frozenset(item.lower().rstrip(".") for item in value)

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("tf_serving_host")
    @classmethod
    def _host_port(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"expected host:port (e.g. localhost:8500), got {value!r}")
        if "/" in value:
            raise ValueError(f"expected host:port without a scheme, got {value!r}")
        return value

    @property
    def decode_workers(self) -> int:
        return self.decode_concurrency or available_cpus()

    @property
    def memory_limit(self) -> int:
        """MEMORY_LIMIT_BYTES, else the cgroup limit, else DEFAULT_MEMORY_LIMIT."""
        return self.memory_limit_bytes or cgroup_memory_limit() or DEFAULT_MEMORY_LIMIT

    @property
    def decode_budget_bytes(self) -> int:
        """MAX_DECODE_BYTES, or its default share of what the limit leaves above the baseline."""
        return self.max_decode_bytes or int(DECODE_SHARE * max(self.memory_limit - BASELINE_BYTES, 0))

    @property
    def memory_budget_bytes(self) -> int:
        """What admitted requests may hold at once: bodies, their parsed forms and fetched images."""
        return self.memory_limit - BASELINE_BYTES - self.decode_budget_bytes

    @property
    def fetch_pool_size(self) -> int:
        return self.max_in_flight * self.fetch_concurrency

    @property
    def grpc_target(self) -> str:
        """`dns:///host:port`: the DNS resolver returns every A record (each pod of a headless Service)."""
        return f"dns:///{self.tf_serving_host}"

    @property
    def log_level_number(self) -> int:
        return logging.getLevelNamesMapping()[self.log_level]
