"""TF Serving's Prometheus page, for the dashboard's TF Serving panels where TF Serving itself cannot run.

The stand-in implements TF Serving's gRPC services, and its REST port serves the metrics path, but with the
stand-in's own process metrics, not TF Serving's metric families; the real `tensorflow/serving` image cannot
be pulled here. So the TF Serving panels are proven against a page written in TF Serving's own exposition
format, served over HTTP at the path of serving/monitoring.config with TF Serving's Content-Type, and scraped
by the real Prometheus. What the page reproduces, from TF Serving's source:

- names: the monitoring metric `/tensorflow/serving/request_count` is exported with every character outside
  `[a-zA-Z0-9_]` replaced by `:`, so `:tensorflow:serving:request_count` (util/prometheus_exporter.cc);
- `:tensorflow:serving:request_count{model_name, status}`: a counter per gRPC status name (`OK`,
  `INVALID_ARGUMENT`, ...), one count per Predict (servables/tensorflow/util.cc, RecordModelRequestCount);
- `:tensorflow:serving:request_latency{model_name, API, entrypoint}`: a histogram of successful requests in
  microseconds, buckets 10 * 1.8^i for 33 bounds then +Inf, `API="Predict"`, `entrypoint="GRPC"`
  (util.cc, prediction_service_impl.cc);
- the page is served as `text/plain` (model_servers/http_server.cc), which Prometheus 3 must accept.

The numbers are not TF Serving's: every scrape adds a few requests, so rates are not zero. That the names,
labels and units match the real server is what this proves, no more.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from tests.support.http import serve

LATENCY_BOUNDS = [10 * 1.8**i for i in range(33)]
# Per scrape: three successful Predicts of about 4 ms, 6 ms and 9 ms, and one rejected as INVALID_ARGUMENT.
LATENCIES_US = (4_000, 6_000, 9_000)


def _number(value: float) -> str:
    # absl::StrCat prints doubles with up to 6 significant digits and no trailing zeros.
    return f"{value:.6g}"


class Exposition:
    """Counters that grow on every scrape, rendered like TF Serving's PrometheusExporter::GeneratePage."""

    def __init__(self, model_name: str) -> None:
        self.model_name = model_name
        self.scrapes = 0
        self.lock = threading.Lock()

    def page(self) -> str:
        with self.lock:
            self.scrapes += 1
            n = self.scrapes
        model = f'model_name="{self.model_name}"'
        lines = ["# TYPE :tensorflow:serving:request_count counter"]
        lines.append(f':tensorflow:serving:request_count{{{model},status="OK"}} {n * len(LATENCIES_US)}')
        lines.append(f':tensorflow:serving:request_count{{{model},status="INVALID_ARGUMENT"}} {n}')
        lines.append("# TYPE :tensorflow:serving:request_latency histogram")
        labels = f'{model},API="Predict",entrypoint="GRPC"'
        for bound in [*LATENCY_BOUNDS, None]:
            count = n * sum(1 for latency in LATENCIES_US if bound is None or latency <= bound)
            le = "+Inf" if bound is None else _number(bound)
            lines.append(f':tensorflow:serving:request_latency_bucket{{{labels},le="{le}"}} {count}')
        lines.append(f":tensorflow:serving:request_latency_sum{{{labels}}} {n * sum(LATENCIES_US)}")
        lines.append(f":tensorflow:serving:request_latency_count{{{labels}}} {n * len(LATENCIES_US)}")
        return "\n".join(lines) + "\n"


@contextmanager
def serve_exposition(path: str, model_name: str) -> Iterator[tuple[str, Exposition]]:
    """Serves the page at `path` on a free port of 127.0.0.1; yields ("127.0.0.1:<port>", the exposition)."""
    exposition = Exposition(model_name)

    def answer(requested: str) -> tuple[int, str, bytes]:
        if requested != path:
            # TF Serving answers other paths of its monitoring handler with an error, not with metrics.
            return 400, "text/plain", f"Unexpected path: {requested}. Should be {path}".encode()
        return 200, "text/plain", exposition.page().encode()

    with serve(answer) as base_url:
        yield base_url.removeprefix("http://"), exposition
