"""A small HTTP server on a free port of 127.0.0.1 for tests, answering GETs from a function.

from tests.support.http import serve, serve_directory

with serve(lambda path: (200, "text/plain", b"hello")) as base_url:   # "http://127.0.0.1:<port>"
    ...
with serve_directory(golden_dir, "image/jpeg") as base_url:          # GET /<file name>
    ...
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from tests.support.standin import HOST

# path -> (status, Content-Type, body)
Answer = Callable[[str], tuple[int, str, bytes]]


@contextlib.contextmanager
def serve(answer: Answer) -> Iterator[str]:
    """Serves `answer(path)` for every GET until the block ends; yields the base URL."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status, content_type, body = answer(self.path)
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: object) -> None:
            pass

    server = ThreadingHTTPServer((HOST, 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{HOST}:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def serve_directory(directory: Path, content_type: str) -> contextlib.AbstractContextManager[str]:
    """The files directly in `directory` at /<name>, all as `content_type`; anything else is a 404."""

    def answer(path: str) -> tuple[int, str, bytes]:
        file = directory / path.lstrip("/")
        if "/" in path.lstrip("/") or not file.is_file():
            return 404, "text/plain", b"not found"
        return 200, content_type, file.read_bytes()

    return serve(answer)
