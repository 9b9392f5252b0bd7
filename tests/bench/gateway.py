"""The gateway benchmark (`make bench`): a measurement, not a test, so pytest never collects it.

    .venv/bin/python -m tests.bench.gateway --gateway-python .venv-gateway/bin/python \\
        --model-base-path build/models/species_model --out build/bench [--scale 0.5]

It starts the TF Serving stand-in (demo model) and the gateway as real processes on 127.0.0.1, the gateway
in its own TensorFlow-free environment, makes camera-trap-sized JPEGs, and measures side by side:

- load: throughput and p50/p99 latency of POST /predict at concurrency 1, 8 and 32, per image size;
- stages: where the gateway's time goes (fetch/decode/serve), from its /metrics histogram deltas;
- wire: bytes per image sent to TF Serving: uint8 vs float32 TensorProto (serialized PredictRequest) vs TF
  Serving's REST JSON body (`{"instances": ...}`);
- encode: building the PredictRequest from numpy (`tensor_content`, the gateway's way) vs through
  `tf.make_tensor_proto` (the seed's way; TensorFlow is imported here only, never in the gateway);
- decode: the gateway's JPEG preprocessing (draft mode) vs a plain full decode + resize;
- batch: POST /predict/batch with N images vs N single calls.

Everything runs on the same machine (client, gateway, stand-in share the cores), so absolute numbers are a
lower bound of what separate pods achieve; the ratios are the point. Results go to `<out>/gateway.json`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import io
import json
import os
import platform
import statistics
import sys
import time
import timeit
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from gateway import preprocess
from gateway.settings import DEFAULT_ALLOWED_FORMATS
from model import spec
from tests.support.gateway import GatewayProcess, running_gateway
from tests.support.http import LocalServer
from tests.support.standin import run_standin

SIZES = {"1080p": (1920, 1080), "12MP": (4000, 3000)}
CONCURRENCY = (1, 8, 32)
# Requests per (size, concurrency) run at --scale 1: enough for a stable p50 and a rough p99 in ~1-3 min.
REQUESTS = {"1080p": {1: 40, 8: 120, 32: 192}, "12MP": {1: 12, 8: 40, 32: 64}}
BATCH_SIZES = (8, 32)
# What one image may cost in the in-process measurements: any camera-trap photo.
LIMITS = preprocess.Limits(allowed_formats=DEFAULT_ALLOWED_FORMATS, max_pixels=50_000_000)
STAGES = ("fetch", "decode", "serve")


# --- images ---


def camera_trap_jpeg(width: int, height: int, seed: int) -> bytes:
    """A synthetic camera-trap photo: vegetation-like texture at several scales, a few animal-like blobs,
    sensor noise, JPEG quality 90. Detail matters: a flat image would compress to a fraction of a real
    photo's size and decode unrealistically fast."""
    rng = np.random.default_rng(seed)

    def layer(cell: int, channels: int) -> np.ndarray:
        small = (rng.random((height // cell + 1, width // cell + 1, channels)) * 255).astype(np.uint8)
        image = Image.fromarray(small.squeeze())
        return np.asarray(image.resize((width, height), Image.Resampling.BICUBIC), dtype=np.float32)

    coarse = layer(60, 3)
    fine = layer(5, 1)[..., np.newaxis]
    pixels = 0.55 * coarse + 0.3 * fine + rng.normal(0, 10, (height, width, 1)).astype(np.float32)
    pixels = pixels * np.array([0.75, 0.9, 0.65], dtype=np.float32) + 25  # greenish, like foliage
    photo = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(photo)
    for _ in range(4):
        w, h = int(width * rng.uniform(0.08, 0.25)), int(height * rng.uniform(0.06, 0.2))
        x, y = int(rng.uniform(0, width - w)), int(rng.uniform(height * 0.3, height - h))
        colour = tuple(int(c) for c in rng.integers(40, 160, 3))
        draw.ellipse((x, y, x + w, y + h), fill=colour)
    photo = photo.filter(ImageFilter.UnsharpMask(radius=2, percent=80))
    buffer = io.BytesIO()
    photo.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


# --- small helpers ---


def best_of(function: Callable[[], object], *, repeat: int = 5, min_time: float = 0.2) -> float:
    """Seconds per call: the best of `repeat` timing runs, each long enough to be measurable."""
    timer = timeit.Timer(function)
    number, _ = timer.autorange()
    number = max(1, int(number * min_time / 0.2))
    return min(timer.repeat(repeat=repeat, number=number)) / number


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def ratio(slow: float, fast: float) -> float:
    return round(slow / fast, 2) if fast > 0 else float("nan")


# --- in-process measurements (no servers) ---


def bench_decode(images: dict[str, bytes]) -> dict[str, Any]:
    """The gateway's preprocess (JPEG draft decode) vs a full decode + the same resize."""
    from gateway import preprocess

    def full_decode(data: bytes) -> np.ndarray:
        with Image.open(io.BytesIO(data)) as image:
            rgb = image.convert("RGB")
            return np.asarray(rgb.resize((spec.IMAGE_WIDTH, spec.IMAGE_HEIGHT), Image.Resampling.BILINEAR))

    results: dict[str, Any] = {}
    for name, data in images.items():

        def gateway_decode(data: bytes = data) -> np.ndarray:
            return preprocess.decode(data, LIMITS)

        draft_s = best_of(gateway_decode, repeat=3)
        full_s = best_of(functools.partial(full_decode, data), repeat=3)
        difference = np.abs(gateway_decode().astype(np.int16) - full_decode(data).astype(np.int16))
        results[name] = {
            "gateway_draft_ms": round(draft_s * 1000, 2),
            "full_decode_ms": round(full_s * 1000, 2),
            "speedup": ratio(full_s, draft_s),
            "mean_abs_pixel_difference": round(float(difference.mean()), 3),
        }
    return results


@functools.cache
def request_builder() -> Callable[[np.ndarray], Any]:
    """The gateway's own PredictRequest builder, with default settings."""
    from gateway.settings import Settings
    from gateway.tfserving import build_predict_request

    return functools.partial(build_predict_request, settings=Settings())


def predict_request(batch: np.ndarray) -> Any:
    return request_builder()(batch)


def sample_batch(size: int, images: dict[str, bytes]) -> np.ndarray:
    from gateway import preprocess

    one = preprocess.decode(images["1080p"], LIMITS)
    return np.stack([one] * size)


def bench_wire(images: dict[str, bytes]) -> dict[str, Any]:
    """Bytes per image on the wire to TF Serving, for one image (batch of 1)."""
    from gateway.tfserving import fill_tensor_proto

    batch = sample_batch(1, images)
    as_float = batch.astype(np.float32) / 255.0
    uint8_request = predict_request(batch)
    float_request = predict_request(batch)
    float_request.inputs[spec.INPUT_NAME].Clear()
    fill_tensor_proto(float_request.inputs[spec.INPUT_NAME], as_float)
    sizes = {
        "jpeg_upload_1080p": len(images["1080p"]),
        "jpeg_upload_12MP": len(images["12MP"]),
        "grpc_uint8": uint8_request.ByteSize(),
        "grpc_float32": float_request.ByteSize(),
        "rest_json_uint8": len(json.dumps({"instances": batch.tolist()}).encode()),
        "rest_json_float32": len(json.dumps({"instances": as_float.tolist()}).encode()),
    }
    return {
        "bytes": sizes,
        "float32_vs_uint8_grpc": ratio(sizes["grpc_float32"], sizes["grpc_uint8"]),
        "rest_json_float32_vs_uint8_grpc": ratio(sizes["rest_json_float32"], sizes["grpc_uint8"]),
        "rest_json_uint8_vs_uint8_grpc": ratio(sizes["rest_json_uint8"], sizes["grpc_uint8"]),
    }


def bench_encode(images: dict[str, bytes]) -> dict[str, Any]:
    """Building the PredictRequest: the gateway's builder vs the seed's `tf.make_tensor_proto` + CopyFrom."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    results: dict[str, Any] = {}
    for size in (1, 32):
        batch = sample_batch(size, images)

        build = request_builder()

        def gateway_way(batch: np.ndarray = batch, build: Callable[[np.ndarray], Any] = build) -> bytes:
            return bytes(build(batch).SerializeToString())

        def tensorflow_way(batch: np.ndarray = batch) -> bytes:
            request = predict_pb2.PredictRequest()
            request.model_spec.name = spec.MODEL_NAME
            request.model_spec.signature_name = spec.SIGNATURE_NAME
            request.output_filter.append(spec.OUTPUT_NAME)
            request.inputs[spec.INPUT_NAME].CopyFrom(tf.make_tensor_proto(batch, shape=batch.shape))
            return bytes(request.SerializeToString())

        assert len(gateway_way()) > batch.nbytes  # both carry the full tensor
        gateway_s = best_of(gateway_way)
        tensorflow_s = best_of(tensorflow_way)
        results[f"batch_{size}"] = {
            "gateway_us": round(gateway_s * 1e6, 1),
            "tf_make_tensor_proto_us": round(tensorflow_s * 1e6, 1),
            "speedup": ratio(tensorflow_s, gateway_s),
        }
    return results


# --- the processes ---


@contextlib.contextmanager
def run_gateway_process(
    gateway_python: Path, tf_serving_host: str, fetch_port: int | None = None
) -> Iterator[GatewayProcess]:
    """`python -m gateway` in the gateway's own environment, as its image runs it; waits for /readyz."""
    env = {
        "TF_SERVING_HOST": tf_serving_host,
        "LOG_LEVEL": "WARNING",
        "MAX_BATCH_SIZE": str(max(BATCH_SIZES)),
        # Above the highest concurrency measured: the bench measures capacity, not admission (MAX_IN_FLIGHT,
        # default 16, and the memory budget of a 512 MiB pod would answer part of c=32 with 503 at once).
        "MAX_IN_FLIGHT": "64",
        "MEMORY_LIMIT_BYTES": str(2 * 2**30),
        # The URL-fetch runs download from a server on 127.0.0.1; never set these in a cluster.
        "FETCH_ALLOW_LOOPBACK": "true",
        **({"FETCH_ALLOWED_PORTS": str(fetch_port)} if fetch_port else {}),
    }
    with running_gateway(env, python=gateway_python, ready=True) as process:
        yield process


def rss_mib(process: GatewayProcess) -> float:
    return round(process.rss_bytes() / 2**20, 1)


def scrape_stages(url: str) -> dict[str, tuple[float, float]]:
    """(sum seconds, count) per stage of gateway_stage_duration_seconds, plus the whole-request histogram."""
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(f"{url}/metrics", timeout=10).text
    totals: dict[str, list[float]] = {}
    for family in text_string_to_metric_families(text):
        if family.name not in ("gateway_stage_duration_seconds", "gateway_request_duration_seconds"):
            continue
        for sample in family.samples:
            key = sample.labels.get("stage") or f"request {sample.labels.get('route')}"
            entry = totals.setdefault(key, [0.0, 0.0])
            if sample.name.endswith("_sum"):
                entry[0] = sample.value
            elif sample.name.endswith("_count"):
                entry[1] = sample.value
    return {key: (value[0], value[1]) for key, value in totals.items()}


def stage_means(
    before: dict[str, tuple[float, float]], after: dict[str, tuple[float, float]]
) -> dict[str, float]:
    """Mean milliseconds per observation of each stage between two scrapes."""
    means = {}
    for key, (total, count) in after.items():
        if key.endswith("/metrics"):
            continue  # the bench's own scrapes
        total_before, count_before = before.get(key, (0.0, 0.0))
        if count > count_before:
            means[key] = round((total - total_before) / (count - count_before) * 1000, 2)
    return means


# --- load over HTTP ---


async def load(url: str, request: dict[str, Any], concurrency: int, total: int) -> dict[str, Any]:
    """`total` POST /predict (`request`: httpx keyword arguments) from `concurrency` workers."""
    latencies: list[float] = []
    failures: dict[int, int] = {}
    remaining = total
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:

        async def one() -> None:
            started = time.perf_counter()
            response = await client.post("/predict", **request)
            latencies.append(time.perf_counter() - started)
            if response.status_code != 200:
                failures[response.status_code] = failures.get(response.status_code, 0) + 1

        async def worker() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                await one()

        await asyncio.gather(*(one() for _ in range(concurrency)))  # warm-up: connections, thread pool
        latencies.clear()
        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - started
    return {
        "concurrency": concurrency,
        "requests": total,
        "failures": failures,
        "throughput_rps": round(total / wall, 2),
        "p50_ms": round(percentile(latencies, 50) * 1000, 1),
        "p99_ms": round(percentile(latencies, 99) * 1000, 1),
        "mean_ms": round(statistics.fmean(latencies) * 1000, 1),
    }


def raw_body(data: bytes) -> dict[str, Any]:
    return {"content": data, "headers": {"Content-Type": "image/jpeg"}}


def bench_load(url: str, images: dict[str, bytes], photo_url: str, scale: float) -> list[dict[str, Any]]:
    plans: list[tuple[str, str, dict[str, Any], int]] = []
    for name, data in images.items():
        plans += [(name, "body", raw_body(data), c) for c in CONCURRENCY]
    runs = []
    # The seed's request, {"url": ...}: the gateway downloads the photo from a local server.
    plans += [("1080p", "url", {"json": {"url": photo_url}}, c) for c in CONCURRENCY[:2]]
    for name, mode, request, concurrency in plans:
        total = max(concurrency, int(REQUESTS[name][concurrency] * scale))
        before = scrape_stages(url)
        result = asyncio.run(load(url, request, concurrency, total))
        result["image"] = name
        result["sent_as"] = mode
        result["gateway_stage_mean_ms"] = stage_means(before, scrape_stages(url))
        runs.append(result)
        failed = f"  FAILED {result['failures']}" if result["failures"] else ""
        print(
            f"  {name:>6} {mode:>4} c={concurrency:<3} {result['throughput_rps']:7.1f} req/s  "
            f"p50 {result['p50_ms']:7.1f} ms  p99 {result['p99_ms']:7.1f} ms{failed}",
            flush=True,
        )
    return runs


def bench_batch(url: str, data: bytes, repeat: int) -> list[dict[str, Any]]:
    """One POST /predict/batch with N images (multipart `files`) vs N single POST /predict."""
    results = []
    with httpx.Client(base_url=url, timeout=300) as client:

        def single_calls(n: int) -> float:
            started = time.perf_counter()
            for _ in range(n):
                response = client.post("/predict", **raw_body(data))
                response.raise_for_status()
            return time.perf_counter() - started

        def batch_call(n: int) -> float:
            files = [("files", (f"{i}.jpg", data, "image/jpeg")) for i in range(n)]
            started = time.perf_counter()
            response = client.post("/predict/batch", files=files)
            response.raise_for_status()
            assert len(response.json()["results"]) == n
            return time.perf_counter() - started

        async def concurrent_calls(n: int) -> float:
            limits = httpx.Limits(max_connections=n)
            async with httpx.AsyncClient(base_url=url, timeout=300, limits=limits) as aclient:
                started = time.perf_counter()
                responses = await asyncio.gather(
                    *(aclient.post("/predict", **raw_body(data)) for _ in range(n))
                )
                wall = time.perf_counter() - started
            for response in responses:
                response.raise_for_status()
            return wall

        batch_call(BATCH_SIZES[0])  # warm-up
        for n in BATCH_SIZES:
            before = scrape_stages(url)
            batch_s = min(batch_call(n) for _ in range(repeat))
            batch_stages = stage_means(before, scrape_stages(url))
            single_s = min(single_calls(n) for _ in range(repeat))
            concurrent_s = min(asyncio.run(concurrent_calls(n)) for _ in range(repeat))
            results.append(
                {
                    "images": n,
                    "batch_ms": round(batch_s * 1000, 1),
                    "sequential_singles_ms": round(single_s * 1000, 1),
                    "concurrent_singles_ms": round(concurrent_s * 1000, 1),
                    "batch_ms_per_image": round(batch_s * 1000 / n, 2),
                    "speedup_vs_sequential": ratio(single_s, batch_s),
                    "speedup_vs_concurrent": ratio(concurrent_s, batch_s),
                    "gateway_stage_mean_ms": batch_stages,
                }
            )
    return results


# --- report ---


def table(title: str, header: list[str], rows: list[list[Any]]) -> str:
    cells = [header, *[[str(cell) for cell in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = [title, "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in cells[1:]]
    return "\n".join(lines)


def report(results: dict[str, Any]) -> str:
    parts = []
    parts.append(
        table(
            'POST /predict (body: raw image/jpeg; url: JSON {"url"} fetched by the gateway from 127.0.0.1)',
            [
                "image",
                "sent as",
                "conc",
                "requests",
                "req/s",
                "p50 ms",
                "p99 ms",
                *(f"{s} ms" for s in STAGES),
            ],
            [
                [
                    run["image"],
                    run["sent_as"],
                    run["concurrency"],
                    run["requests"],
                    run["throughput_rps"],
                    run["p50_ms"],
                    run["p99_ms"],
                    *(run["gateway_stage_mean_ms"].get(stage, "-") for stage in STAGES),
                ]
                for run in results["load"]
            ],
        )
    )
    parts.append(
        "Stage columns: the gateway's own mean per request (from /metrics); decode includes waiting for a "
        "decode thread (one per CPU), so it grows with concurrency."
    )
    wire = results["wire"]["bytes"]
    parts.append(
        table(
            "Bytes on the wire per image",
            ["payload", "bytes"],
            [[name, f"{size:,}"] for name, size in wire.items()],
        )
    )
    parts.append(
        table(
            "Building the PredictRequest",
            ["batch", "gateway us", "tf.make_tensor_proto us", "speedup"],
            [
                [name, r["gateway_us"], r["tf_make_tensor_proto_us"], r["speedup"]]
                for name, r in results["encode"].items()
            ],
        )
    )
    parts.append(
        table(
            "JPEG decode + resize to 150x150",
            ["image", "gateway (draft) ms", "full decode ms", "speedup", "mean |diff|"],
            [
                [
                    name,
                    r["gateway_draft_ms"],
                    r["full_decode_ms"],
                    r["speedup"],
                    r["mean_abs_pixel_difference"],
                ]
                for name, r in results["decode"].items()
            ],
        )
    )
    parts.append(
        table(
            "POST /predict/batch vs single calls (1080p)",
            ["images", "batch ms", "sequential ms", "concurrent ms", "vs sequential", "vs concurrent"],
            [
                [
                    r["images"],
                    r["batch_ms"],
                    r["sequential_singles_ms"],
                    r["concurrent_singles_ms"],
                    r["speedup_vs_sequential"],
                    r["speedup_vs_concurrent"],
                ]
                for r in results["batch"]
            ],
        )
    )
    gateway = results["gateway"]
    parts.append(
        f"Gateway ready {gateway['ready_after_s']} s after start (process start to /readyz 200); RSS "
        f"{gateway['rss_mib_after_warmup']} MiB after one request, "
        f"{gateway['rss_mib_after_run']} MiB after the run."
    )
    return "\n\n".join(parts)


def headline(results: dict[str, Any]) -> str:
    wire = results["wire"]
    encode = results["encode"]
    decode = results["decode"]
    body_runs = [run for run in results["load"] if run["sent_as"] == "body"]
    load_runs = {(run["image"], run["concurrency"]): run for run in body_runs}
    best = max(body_runs, key=lambda run: run["throughput_rps"] if run["image"] == "1080p" else 0)
    batch = {r["images"]: r for r in results["batch"]}
    single = load_runs.get(("1080p", 1), best)
    lines = [
        "### Gateway benchmark (make bench)",
        "",
        f"Measured on {results['machine']['cpus']} shared CPU cores with client, gateway and TF Serving "
        "stand-in on one machine; ratios matter more than absolute numbers.",
        "",
        f"- **Throughput**: {best['throughput_rps']} req/s at concurrency {best['concurrency']} for "
        f"1920x1080 JPEGs (p50 {best['p50_ms']} ms, p99 {best['p99_ms']} ms); one at a time: "
        f"p50 {single['p50_ms']} ms.",
        f"- **Wire size**: a uint8 PredictRequest is {wire['bytes']['grpc_uint8']:,} bytes per image; "
        f"float32 is {wire['float32_vs_uint8_grpc']}x larger and TF Serving REST JSON of float32 "
        f"{wire['rest_json_float32_vs_uint8_grpc']}x larger.",
        f"- **Tensor encoding**: building the request from numpy bytes is {encode['batch_1']['speedup']}x "
        f"faster than `tf.make_tensor_proto` for one image ({encode['batch_32']['speedup']}x for 32), "
        "without importing TensorFlow.",
        f"- **JPEG decode**: draft-mode decoding is {decode['1080p']['speedup']}x faster for 1080p and "
        f"{decode['12MP']['speedup']}x for 12 MP photos than a full decode + resize "
        f"(mean pixel difference {decode['12MP']['mean_abs_pixel_difference']} of 255).",
    ]
    url_runs = {run["concurrency"]: run for run in results["load"] if run["sent_as"] == "url"}
    if 1 in url_runs:
        fetch_ms = url_runs[1]["gateway_stage_mean_ms"].get("fetch", "-")
        lines.append(
            f'- **URL requests** (`{{"url": ...}}`, the seed\'s request): the guarded download of a '
            f"{results['images']['1080p']['jpeg_bytes'] // 1024} KiB photo from a local server takes "
            f"{fetch_ms} ms; p50 {url_runs[1]['p50_ms']} ms one at a time."
        )
    if batch:
        biggest = batch[max(batch)]
        lines.append(
            f"- **Batching**: {biggest['images']} 1080p images in one POST /predict/batch take "
            f"{biggest['batch_ms']} ms, against {biggest['sequential_singles_ms']} ms as sequential single "
            f"calls (x{biggest['speedup_vs_sequential']}) and {biggest['concurrent_singles_ms']} ms as "
            f"concurrent single calls (x{biggest['speedup_vs_concurrent']})."
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.bench.gateway", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--gateway-python", type=Path, required=True, help="interpreter of .venv-gateway")
    parser.add_argument(
        "--model-base-path", type=Path, required=True, help="TF Serving base path of the model"
    )
    parser.add_argument("--out", type=Path, required=True, help="directory for gateway.json")
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies the request counts (default 1)")
    args = parser.parse_args(argv)
    if not (args.model_base_path / "1" / "saved_model.pb").exists() and not any(
        args.model_base_path.glob("*/saved_model.pb")
    ):
        parser.error(f"no SavedModel under {args.model_base_path}: run `make model`")
    if not args.gateway_python.exists():
        parser.error(f"{args.gateway_python} not found: run `make venv`")
    args.out.mkdir(parents=True, exist_ok=True)

    started = time.monotonic()
    print("making test images ...", flush=True)
    images = {name: camera_trap_jpeg(w, h, seed=i) for i, (name, (w, h)) in enumerate(SIZES.items())}
    results: dict[str, Any] = {
        "machine": {
            "cpus": len(os.sched_getaffinity(0)),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "images": {
            name: {"size": list(SIZES[name]), "jpeg_bytes": len(data)} for name, data in images.items()
        },
        "scale": args.scale,
    }
    print("in-process: decode, wire sizes, tensor encoding ...", flush=True)
    results["decode"] = bench_decode(images)
    results["wire"] = bench_wire(images)
    results["encode"] = bench_encode(images)

    print("starting the stand-in and the gateway ...", flush=True)
    with (
        LocalServer({"/photo.jpg": images["1080p"]}) as photos,
        run_standin(args.model_base_path) as address,
        run_gateway_process(args.gateway_python, address, photos.port) as gateway,
    ):
        ready_after_s = round(gateway.ready_after_s or 0.0, 2)
        print(f"gateway ready after {ready_after_s} s; load:", flush=True)
        warm = httpx.post(f"{gateway.base_url}/predict", **raw_body(images["1080p"]))
        warm.raise_for_status()
        rss_warm = rss_mib(gateway)
        results["load"] = bench_load(gateway.base_url, images, photos.url("/photo.jpg"), args.scale)
        print("batch endpoint ...", flush=True)
        results["batch"] = bench_batch(gateway.base_url, images["1080p"], repeat=3 if args.scale >= 1 else 1)
        results["gateway"] = {
            "ready_after_s": ready_after_s,
            "rss_mib_after_warmup": rss_warm,
            "rss_mib_after_run": rss_mib(gateway),
        }
    results["duration_s"] = round(time.monotonic() - started, 1)
    results["headline"] = headline(results)

    out_file = args.out / "gateway.json"
    out_file.write_text(json.dumps(results, indent=2) + "\n")
    print()
    print(report(results))
    print()
    print(results["headline"])
    print(f"\nwrote {out_file} ({results['duration_s']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
