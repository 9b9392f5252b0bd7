"""Prometheus metrics of the gateway, served at GET /metrics (on METRICS_PORT, and on BIND_PORT unless
METRICS_ON_MAIN_PORT is false).

Route labels are route templates (`/predict`), never raw paths, so scanners cannot blow up cardinality.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

# Seconds; from a fast 150x150 decode (~1 ms) to a slow URL fetch (10 s).
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

REQUESTS = Counter(
    "gateway_requests_total",
    "HTTP requests answered, by route, method and status.",
    ["route", "method", "status"],
)
REQUEST_SECONDS = Histogram(
    "gateway_request_duration_seconds",
    "Total time per HTTP request, by route.",
    ["route"],
    buckets=_LATENCY_BUCKETS,
)
STAGE_SECONDS = Histogram(
    "gateway_stage_duration_seconds",
    "Time per request spent in each stage: fetch (URL download), decode (all images), serve (TF Serving).",
    ["stage"],
    buckets=_LATENCY_BUCKETS,
)
PREDICTIONS = Counter("gateway_predictions_total", "Images classified, by top label.", ["label"])
UPSTREAM_ERRORS = Counter(
    "gateway_upstream_errors_total", "Failed TF Serving calls, by gRPC status code.", ["code"]
)
BATCH_SIZE = Histogram(
    "gateway_batch_size", "Images per PredictRequest.", buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256)
)
READY = Gauge("gateway_ready", "1 when the last contract check against TF Serving passed, else 0.")
IN_FLIGHT = Gauge(
    "gateway_requests_in_flight", "Prediction requests being handled now (bounded by MAX_IN_FLIGHT)."
)
REJECTED = Counter(
    "gateway_requests_rejected_total",
    "Prediction requests refused with 503 overloaded at admission (MAX_IN_FLIGHT reached or the memory"
    " budget full; gateway_requests_refused_total tells which), by route.",
    ["route"],
)
REFUSED = Counter(
    "gateway_requests_refused_total",
    "Requests refused before or while being read or decoded, by reason: in_flight_limit, memory_budget"
    " (503); header_timeout, body_timeout, body_too_slow (408); header_too_large (431); body_too_large,"
    " batch_too_large, decode_memory, jpeg_scans (413).",
    ["reason"],
)
BUDGET_BYTES = Gauge(
    "gateway_budget_bytes",
    "Capacity of each budget: memory (request bodies and fetched images), decode (image decodes), tmp"
    " (spooled multipart uploads).",
    ["budget"],
)
BUDGET_USED_BYTES = Gauge("gateway_budget_used_bytes", "Bytes reserved from each budget now.", ["budget"])
DECODES_ABANDONED = Counter(
    "gateway_decodes_abandoned_total",
    "Image decodes not started or stopped early because their client disconnected.",
)
