"""The process: uvicorn serving the app (factory mode) on BIND_PORT and the metrics app on METRICS_PORT.

One worker per process on purpose: Kubernetes scales pods (HPA), and one process per container keeps the
memory budget, the metrics and the shared gRPC channel simple. Both listeners share the event loop; the
main server owns the signals and stops the metrics listener with itself.

uvicorn's httptools protocol bounds neither the time nor the size of a request head (a client may send
header lines forever, or nothing, and hold the connection and the buffered bytes). `GuardedHttpProtocol`
adds both, measured from the connection or from the first byte of each request: more than
MAX_HEADER_BYTES before the head ends gets 431, no complete head within HEADER_TIMEOUT_S gets 408 (a
connection that never sent a byte is just closed), both as the gateway's JSON error, then the connection
is closed. The body's bounds are the ASGI layer's (gateway.limits).

The app's answers given before their request has arrived in full (a 413 or 503 from the headers) end the
connection, and a plain close with unread bytes makes the kernel send a reset, which the client usually
gets while still sending, before it reads the answer. So such a connection is closed the way HTTP servers
close it (a "lingering close"): the answer and a FIN go out, and what the client still sends is read and
dropped until it closes its side, for LINGER_S and LINGER_BYTES at most. The protocol's own refusals
(431, 400, 408) and a 408 for a slow body close at once: those clients get no more time or bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import functools
import logging
import socket
from asyncio.events import TimerHandle
from collections.abc import Iterator
from typing import Any, cast

import uvicorn
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from gateway import metrics
from gateway.errors import GatewayError, HeadersTooLarge, RequestTimeout, error_body
from gateway.limits import CUT_OFF
from gateway.log import configure_logging
from gateway.main import create_app, create_metrics_app
from gateway.settings import Settings

log = logging.getLogger(__name__)

# Longest wait at SIGTERM for clients to close their idle keep-alive connections: more than the idle
# expiry of common client pools (httpx 5 s, Node's 4 s), so those never see a server-side close.
IDLE_DRAIN_S = 6.0
# Longest a connection answered before its request arrived in full is read (and the bytes dropped) after
# the answer, so the client that is still sending reads the answer instead of a reset.
LINGER_S = 5.0
LINGER_BYTES = 64 * 1024 * 1024  # the largest body cap by default (POST /predict/batch)


class _LingeringTransport:
    """The connection's transport as uvicorn sees it: `close()` lingers while a request is incomplete."""

    def __init__(self, transport: asyncio.Transport, protocol: GuardedHttpProtocol) -> None:
        self._transport = transport
        self._protocol = protocol
        self.lingering = False

    def close(self) -> None:
        if self.lingering or self._transport.is_closing():
            self._transport.close()
        elif self._protocol.lingers() and self._transport.can_write_eof():
            self.lingering = True
            self._protocol.linger(self._transport)
        else:
            self._transport.close()

    def is_closing(self) -> bool:
        return self.lingering or self._transport.is_closing()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class GuardedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a deadline and a size cap on every request head."""

    max_head_bytes: int = 32 * 1024
    head_timeout_s: float = 10.0

    _head_timer: TimerHandle | None = None
    _in_head = True  # a request head is expected or being read
    _head_bytes = 0  # bytes received while in the head, for a head that never ends
    _head_size = 0  # the head's parsed size
    _head_started = False  # a byte of that head has arrived
    _refused = False
    _draining = False
    _cut_off = False  # refused by the protocol itself: no lingering close
    _lingered = 0  # bytes dropped while lingering
    _raw_transport: asyncio.Transport | None = None
    _linger_timer: TimerHandle | None = None
    # A request has begun and not all of it has arrived: closing now would leave the rest unread.
    request_incomplete = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(cast(asyncio.Transport, _LingeringTransport(transport, self)))
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        if self._linger_timer is not None:
            self._linger_timer.cancel()
            self._linger_timer = None
        super().connection_lost(exc)

    def lingers(self) -> bool:
        """Whether closing now takes the lingering close: a request is incomplete, and its client was not
        cut off for being too slow (a 408: closed at once, as the timeouts promise)."""
        if not self.request_incomplete or self._cut_off:
            return False
        return not self.scope.get("state", {}).get(CUT_OFF, False)

    def linger(self, transport: asyncio.Transport) -> None:
        """The lingering close: the answer and a FIN out, then the client's bytes read and dropped until it
        closes (the transport closes itself at the EOF) or LINGER_S pass."""
        self._refused = True  # data_received drops everything from now on
        self._raw_transport = transport
        self._cancel_head_timer()
        self._unset_keepalive_if_required()
        transport.write_eof()
        transport.resume_reading()  # uvicorn may have paused it for a body nobody reads now
        self._linger_timer = self.loop.call_later(LINGER_S, transport.close)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            if self._raw_transport is not None:  # lingering
                self._lingered += len(data)
                if self._lingered > LINGER_BYTES:
                    self._raw_transport.close()
            return
        counting = self._in_head
        self._head_started = self._head_started or counting
        super().data_received(data)
        # Counted after parsing, so the body bytes that arrived with a complete head do not count; a head
        # that began inside this chunk (pipelining) is counted from the next one.
        if counting and self._in_head and not self._refused:
            self._head_bytes += len(data)
            if self._head_bytes > self.max_head_bytes:
                self._refuse(self._too_large(), "header_too_large")

    def _too_large(self) -> HeadersTooLarge:
        return HeadersTooLarge(
            f"the request line and headers are larger than {self.max_head_bytes} bytes (MAX_HEADER_BYTES)"
        )

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.request_incomplete = True
        self._in_head, self._head_bytes, self._head_started = True, 0, True
        self._head_size = 0
        self._arm_head_timer()

    # The exact size of the head, from the parser's callbacks (a head that arrives in one read is never
    # counted by data_received): the target, and each header line with its ": " and CRLF.
    def on_url(self, url: bytes) -> None:
        self._head_size += len(url)
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_size += len(name) + len(value) + 4
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._cancel_head_timer()
        if self._head_size > self.max_head_bytes:
            self._refuse(self._too_large(), "header_too_large")
            return  # the app never sees it
        super().on_headers_complete()
        if self._draining and self.cycle is not None:
            self.cycle.keep_alive = False

    def on_message_complete(self) -> None:
        self.request_incomplete = False
        super().on_message_complete()

    def drain(self) -> None:
        """At SIGTERM: the response in progress, and any request on this connection from now, ends with
        `Connection: close` and then the close. An idle connection is left open for its client to close.
        """
        self._draining = True
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.keep_alive = False

    def send_400_response(self, msg: str) -> None:
        self._write_error(400, "bad_request", "the request is not valid HTTP/1.1")

    def _arm_head_timer(self) -> None:
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(self.head_timeout_s, self._head_timed_out)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport.is_closing() or not self._in_head:
            return
        if not self._head_started:
            self.transport.close()  # an idle connection: nobody to answer, nothing unread
            return
        error = RequestTimeout(
            f"the request headers did not arrive within {self.head_timeout_s:g} s (HEADER_TIMEOUT_S)"
        )
        self._refuse(error, "header_timeout")

    def _refuse(self, error: GatewayError, reason: str) -> None:
        self._refused = True
        self._cancel_head_timer()
        metrics.REFUSED.labels(reason=reason).inc()
        client = f"{self.client[0]}:{self.client[1]}" if self.client else "-"
        log.info("refused a request head from %s: %s (%d)", client, reason, error.status)
        self._write_error(error.status, error.code, error.message)

    def _write_error(self, status: int, code: str, message: str) -> None:
        body = error_body(code, message)
        head = [
            STATUS_LINE[status],
            b"content-type: application/json\r\n",
            b"content-length: %d\r\n" % len(body),
            b"connection: close\r\n\r\n",
        ]
        self.transport.write(b"".join(head) + body)
        self._cut_off = True  # closed at once: a client refused here gets no more time
        self.transport.close()


# glibc's mallopt parameters (malloc.h).
_M_MMAP_THRESHOLD = -3
_MMAP_THRESHOLD = 1024 * 1024


def return_big_buffers_to_the_os() -> None:
    """Have glibc map every allocation of 1 MiB or more on its own, so that freeing it returns the memory.

    By default glibc raises that threshold to the size of the largest block freed so far (up to 32 MiB):
    after a few request bodies have come and gone, the next ones land in heap arenas, from which freed
    memory rarely goes back to the OS, and RSS stays far above what the memory budget holds. A fixed
    threshold keeps RSS near the budgets (tests/gateway/test_hardening.py measures it). No-op without glibc.
    """
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        if not libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD):
            log.warning("mallopt(M_MMAP_THRESHOLD) failed; RSS may stay above the memory budget")


def protocol_class(settings: Settings) -> type[GuardedHttpProtocol]:
    return type(
        "GatewayHttpProtocol",
        (GuardedHttpProtocol,),
        {"max_head_bytes": settings.max_header_bytes, "head_timeout_s": settings.header_timeout_s},
    )


class _Listener(uvicorn.Server):
    """A server sharing the main server's loop: the main server owns the signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class _MainServer(uvicorn.Server):
    """The gateway's server; starts `listeners` once its app is up and stops them with itself."""

    def __init__(self, config: uvicorn.Config, listeners: list[tuple[_Listener, socket.socket]]) -> None:
        super().__init__(config)
        self._listeners = listeners
        self._listener_tasks: list[asyncio.Task[None]] = []

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        for listener, sock in self._listeners:
            self._listener_tasks.append(asyncio.create_task(listener.serve(sockets=[sock])))

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for listener, _ in self._listeners:
            listener.should_exit = True
        await self._drain_keep_alive(sockets)
        await super().shutdown(sockets)
        await asyncio.gather(*self._listener_tasks, return_exceptions=True)

    async def _drain_keep_alive(self, sockets: list[socket.socket] | None) -> None:
        """Stops accepting, then lets clients close their idle keep-alive connections themselves.

        uvicorn's shutdown closes idle connections at once, and a client that sends its next request on
        one just then gets a reset instead of a response (kube-proxy keeps established flows to a
        terminating pod). Here every connection is first told to drain, and idle ones are left open for up
        to IDLE_DRAIN_S, less than a third of SHUTDOWN_TIMEOUT_S: clients whose pools expire idle
        connections sooner close them first, and a request that does arrive is answered with
        `Connection: close`. uvicorn's shutdown then closes what is left and gives in-flight requests the
        rest of SHUTDOWN_TIMEOUT_S.
        """
        loop = asyncio.get_running_loop()
        started = loop.time()
        for server in self.servers:
            server.close()
        for sock in sockets or []:
            sock.close()
        for connection in list(self.server_state.connections):
            if isinstance(connection, GuardedHttpProtocol):  # always, as _config sets it
                connection.drain()
        total = float(self.config.timeout_graceful_shutdown or 0)
        deadline = started + min(IDLE_DRAIN_S, total / 3)
        while self.server_state.connections and not self.force_exit and loop.time() < deadline:
            await asyncio.sleep(0.05)
        if self.server_state.connections:
            log.info("closing %d connections still open after the drain", len(self.server_state.connections))
        if total:
            self.config.timeout_graceful_shutdown = max(1, round(total - (loop.time() - started)))


def _config(settings: Settings, app: Any, port: int, **options: Any) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        factory=True,
        host=settings.bind_host,
        port=port,
        workers=1,
        http=protocol_class(settings),
        # Logging is configured by gateway.log (JSON lines); the gateway writes its own access line.
        log_config=None,
        access_log=False,
        server_header=False,
        **options,
    )


def _loop() -> str:
    try:
        import uvloop  # noqa: F401 (only probing: uvicorn picks it up by name)
    except ImportError:
        return "asyncio"
    return "uvloop"


def run(settings: Settings) -> None:
    configure_logging(settings.log_level_number, settings.log_format)
    config = _config(
        settings,
        functools.partial(create_app, settings),
        settings.bind_port,
        loop=_loop(),
        # X-Forwarded-For/-Proto are honoured only from FORWARDED_ALLOW_IPS (default: loopback, i.e. none in
        # a pod). An NLB forwards TCP and adds no such headers; an L7 proxy in front would be listed there.
        proxy_headers=True,
        forwarded_allow_ips=settings.forwarded_allow_ips,
        # SIGTERM: stop accepting, drain keep-alive connections, let in-flight requests finish, then exit,
        # within this long in all (_MainServer._drain_keep_alive).
        timeout_graceful_shutdown=settings.shutdown_timeout_s,
        timeout_keep_alive=settings.keep_alive_timeout_s,
    )
    listeners = []
    if settings.metrics_port:
        metrics_config = _config(settings, create_metrics_app, settings.metrics_port, lifespan="off")
        # Bound now, so a taken port stops the start with a clear error instead of failing later.
        try:
            sock = metrics_config.bind_socket()
        except SystemExit:  # uvicorn has logged the OSError
            raise SystemExit(f"gateway cannot listen on METRICS_PORT {settings.metrics_port}") from None
        listeners.append((_Listener(metrics_config), sock))
    return_big_buffers_to_the_os()
    _MainServer(config, listeners).run()
