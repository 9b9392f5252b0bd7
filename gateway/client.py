"""Send test requests to a running gateway and print the top labels (for smoke tests and port-forwards).

    python -m gateway.client build/golden/leopard.jpg https://example.org/trap.jpg \\
        [--endpoint http://localhost:9696] [--top 3] [--expect-label leopard] [--batch] [--timeout 30]

A local file goes to `POST /predict` as the multipart field `file`: the bytes travel as they are, where base64
in JSON would add a third to the size and make the gateway parse a multi-megabyte JSON string. A URL goes as
JSON `{"url": ...}` and the gateway downloads it. With `--batch` all images go in one `POST /predict/batch`:
multipart `files` fields when all are files, else JSON `{"images": [...]}` with files base64-encoded.

Exit status: 0 when every image was classified (and matched `--expect-label`, if given); 1 when any request
failed (the gateway's JSON error is printed); 2 when all requests worked but a label did not match.
"""

from __future__ import annotations

import argparse
import base64
import json
import mimetypes
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import httpx

EXIT_OK, EXIT_ERROR, EXIT_MISMATCH = 0, 1, 2
BAR_WIDTH = 20


@dataclass
class Outcome:
    """What happened to one image: a classification (`result`) or an error body (`error`)."""

    source: str
    latency_ms: float
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    status: int | None = None
    model: dict[str, Any] = field(default_factory=dict)


def is_url(source: str) -> bool:
    return source.lower().startswith(("http://", "https://"))


def local_error(code: str, message: str) -> dict[str, Any]:
    """Errors found by the client itself, in the gateway's error format so that every error prints alike."""
    return {"error": {"code": code, "message": message}}


def _error_body(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        return body
    return local_error("bad_response", f"HTTP {response.status_code}: {response.text[:200]}")


def _json_or_error(response: httpx.Response) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    if response.status_code != 200:
        return None, _error_body(response)
    try:
        body = response.json()
    except ValueError:
        return None, local_error("bad_response", "the gateway answered 200 with a body that is not JSON")
    if not isinstance(body, dict):
        return None, local_error("bad_response", "the gateway answered 200 with an unexpected JSON body")
    return body, None


def predict_one(client: httpx.Client, source: str) -> Outcome:
    """POST one image to /predict: a URL as JSON, a file as multipart `file`."""
    started = time.perf_counter()
    try:
        if is_url(source):
            response = client.post("/predict", json={"url": source})
        else:
            path = Path(source)
            content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
            with path.open("rb") as handle:
                response = client.post("/predict", files={"file": (path.name, handle, content_type)})
    except OSError as exc:
        return Outcome(source, 0.0, error=local_error("file_unreadable", f"{source}: {exc.strerror or exc}"))
    except httpx.HTTPError as exc:
        return Outcome(
            source, _ms(started), error=local_error("request_failed", f"{type(exc).__name__}: {exc}")
        )
    latency = _ms(started)
    body, error = _json_or_error(response)
    if error is not None:
        return Outcome(source, latency, error=error, status=response.status_code)
    assert body is not None
    return Outcome(source, latency, result=body, status=200, model=body.get("model") or {})


def predict_batch(client: httpx.Client, sources: list[str]) -> list[Outcome]:
    """Send every image in one /predict/batch call; the latency reported per image is the batch's.

    Files only: multipart, one `files` field per image (raw bytes). With any URL among them: JSON, files
    base64-encoded, since a multipart body cannot carry a URL for the gateway to fetch.
    """
    blobs: dict[str, bytes] = {}
    for source in sources:
        if is_url(source):
            continue
        try:
            blobs[source] = Path(source).read_bytes()
        except OSError as exc:
            return [
                Outcome(source, 0.0, error=local_error("file_unreadable", f"{source}: {exc.strerror or exc}"))
            ]
    request: dict[str, Any]
    if len(blobs) == len(sources):
        files = [
            ("files", (Path(s).name, blobs[s], mimetypes.guess_type(s)[0] or "application/octet-stream"))
            for s in sources
        ]
        request = {"files": files}
    else:
        images = [
            {"url": s} if is_url(s) else {"image": base64.b64encode(blobs[s]).decode("ascii")}
            for s in sources
        ]
        request = {"json": {"images": images}}
    started = time.perf_counter()
    try:
        response = client.post("/predict/batch", **request)
    except httpx.HTTPError as exc:
        failed = local_error("request_failed", f"{type(exc).__name__}: {exc}")
        return [Outcome(f"batch of {len(sources)}", _ms(started), error=failed)]
    latency = _ms(started)
    body, error = _json_or_error(response)
    if error is not None:
        return [Outcome(f"batch of {len(sources)}", latency, error=error, status=response.status_code)]
    assert body is not None
    results = body.get("results")
    if not isinstance(results, list) or len(results) != len(sources):
        failed = local_error("bad_response", "the batch answer does not have one result per image")
        return [Outcome(f"batch of {len(sources)}", latency, error=failed, status=response.status_code)]
    model = body.get("model") or {}
    return [
        Outcome(source, latency, result=result, status=200, model=model)
        for source, result in zip(sources, results, strict=True)
    ]


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000


def render(outcome: Outcome, top: int, out: TextIO, err: TextIO) -> None:
    """A small table per image: the top labels with scores, then model version and latency."""
    if outcome.error is not None:
        status = f"HTTP {outcome.status}" if outcome.status is not None else "no answer"
        print(f"{outcome.source}: error ({status})", file=err)
        print(json.dumps(outcome.error), file=err)
        return
    assert outcome.result is not None
    predictions: dict[str, float] = outcome.result.get("predictions") or {}
    ranked = sorted(predictions.items(), key=lambda item: item[1], reverse=True)[:top]
    width = max([len("label"), *(len(label) for label, _ in ranked)])
    print(outcome.source, file=out)
    print(f"  {'label':<{width}}  {'score':>6}", file=out)
    for label, score in ranked:
        bar = "#" * round(score * BAR_WIDTH)
        print(f"  {label:<{width}}  {score:6.4f}  {bar}".rstrip(), file=out)
    name = outcome.model.get("name", "?")
    version = outcome.model.get("version", "?")
    print(f"  model {name} v{version}, {outcome.latency_ms:.1f} ms", file=out)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m gateway.client",
        description="Classify images through a running species-classifier gateway and print the top labels.",
    )
    parser.add_argument("images", nargs="+", metavar="IMAGE_OR_URL", help="image files or http(s) URLs")
    parser.add_argument("--endpoint", default="http://localhost:9696", help="gateway base URL (%(default)s)")
    parser.add_argument("--top", type=int, default=3, help="labels to show per image (%(default)s)")
    parser.add_argument("--expect-label", help="exit 2 unless every image gets this top label")
    parser.add_argument("--batch", action="store_true", help="send all images in one POST /predict/batch")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per request (%(default)s)")
    args = parser.parse_args(argv)
    if args.top < 1:
        parser.error("--top must be at least 1")
    if args.timeout <= 0:
        parser.error("--timeout must be positive")
    return args


def main(argv: list[str] | None = None, *, out: TextIO | None = None, err: TextIO | None = None) -> int:
    args = parse_args(argv)
    out = out or sys.stdout
    err = err or sys.stderr
    with httpx.Client(base_url=args.endpoint.rstrip("/"), timeout=args.timeout) as client:
        if args.batch:
            outcomes = predict_batch(client, args.images)
        else:
            outcomes = [predict_one(client, source) for source in args.images]
    mismatches = 0
    for outcome in outcomes:
        render(outcome, args.top, out, err)
        if outcome.result is not None and args.expect_label is not None:
            got = outcome.result.get("label")
            if got != args.expect_label:
                mismatches += 1
                print(f"{outcome.source}: expected {args.expect_label}, got {got}", file=err)
    if any(outcome.error is not None for outcome in outcomes):
        return EXIT_ERROR
    return EXIT_MISMATCH if mismatches else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
