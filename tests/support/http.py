"""A local HTTP server on 127.0.0.1 for tests and the benchmark: fixed bytes per path, or routes of your own.

    from tests.support.http import LocalServer

    with LocalServer({"/photo.jpg": jpeg_bytes, "/slow": slow_route}) as server:
        url = server.url("/photo.jpg")            # "http://127.0.0.1:<port>/photo.jpg"

A route is the bytes to answer 200 with (Content-Type from the path's extension), or a function taking the
`Handler` that writes the whole answer itself (`handler.send(...)`, or raw bytes on `handler.wfile` for
answers no HTTP library would write); `default` answers the paths no route names. Every request is
recorded in `server.requests`. The server runs in a daemon thread and stops on exit; handlers waiting on
`server.stopping` end with it. For the simplest cases, on the same server:

    with serve(lambda path: (200, "text/plain", b"hello")) as base_url:   # any GET, answered by a function
    with serve_directory(golden_dir, "image/jpeg") as base_url:          # GET /<file name>
"""

from __future__ import annotations

import contextlib
import mimetypes
import ssl
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.support.standin import HOST

Route = Callable[["Handler"], None]


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    headers: dict[str, str]


class Handler(BaseHTTPRequestHandler):
    server: LocalServer

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output clean

    @property
    def route(self) -> str:
        return urlsplit(self.path).path

    @property
    def query(self) -> dict[str, str]:
        return {key: values[0] for key, values in parse_qs(urlsplit(self.path).query).items()}

    def body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length", "0")))

    def send(self, status: int, body: bytes = b"", headers: Mapping[str, str] | None = None) -> None:
        """A whole answer with Content-Length."""
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _answer(self) -> None:
        self.server.requests.append(Seen(self.command, self.path, dict(self.headers.items())))
        route = self.server.routes.get(self.route, self.server.default)
        if route is None:
            self.send(404, b"not here")
        elif isinstance(route, bytes):
            content_type = mimetypes.guess_type(self.route)[0] or "application/octet-stream"
            self.send(200, route, {"Content-Type": content_type})
        else:
            try:
                route(self)
            except OSError:  # the client went away mid-answer: nothing to tell it
                return

    do_GET = do_POST = _answer


class LocalServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self,
        routes: Mapping[str, bytes | Route] | None = None,
        *,
        default: Route | None = None,
        ssl_context: ssl.SSLContext | None = None,
        port: int = 0,
    ) -> None:
        super().__init__((HOST, port), Handler)
        if ssl_context is not None:
            self.socket = ssl_context.wrap_socket(self.socket, server_side=True)
        self.routes: dict[str, bytes | Route] = dict(routes or {})
        self.default = default
        self.requests: list[Seen] = []
        self.stopping = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def url(self, path: str, host: str = HOST, scheme: str = "http") -> str:
        return f"{scheme}://{host}:{self.port}{path}"

    def start(self) -> LocalServer:
        self._thread = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        if self._thread is not None:
            self.shutdown()
            self._thread.join()
            self._thread = None
        self.server_close()

    def __enter__(self) -> LocalServer:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()


def files(directory: Path, pattern: str = "*") -> dict[str, bytes | Route]:
    """Routes serving every file of `directory` matching `pattern` at `/<name>`."""
    return {f"/{path.name}": path.read_bytes() for path in sorted(directory.glob(pattern)) if path.is_file()}


# path -> (status, Content-Type, body)
Answer = Callable[[str], tuple[int, str, bytes]]


@contextlib.contextmanager
def serve(answer: Answer, port: int = 0) -> Iterator[str]:
    """Serves `answer(path)` for every request until the block ends; yields the base URL. `port`: one
    chosen before (free_port), e.g. for a gateway's FETCH_ALLOWED_PORTS; 0 lets the OS pick."""

    def route(handler: Handler) -> None:
        status, content_type, body = answer(handler.path)
        handler.send(status, body, {"Content-Type": content_type})

    with LocalServer(default=route, port=port) as server:
        yield server.base_url


def serve_directory(
    directory: Path, content_type: str, port: int = 0
) -> contextlib.AbstractContextManager[str]:
    """The files directly in `directory` at /<name>, all as `content_type`; anything else is a 404."""

    def answer(path: str) -> tuple[int, str, bytes]:
        file = directory / path.lstrip("/")
        if "/" in path.lstrip("/") or not file.is_file():
            return 404, "text/plain", b"not found"
        return 200, content_type, file.read_bytes()

    return serve(answer, port)
