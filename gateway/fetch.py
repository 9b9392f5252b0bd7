"""Fetching an image from a client-supplied URL, guarded against server-side request forgery (SSRF).

The gateway runs inside a cluster, next to TF Serving, the Kubernetes API and the cloud's metadata service
(169.254.169.254), so a URL from a client must never make it talk to any of those. The guard has two layers:

1. The URL itself (`check_url`), before any request: http/https only, no userinfo, a port in
   FETCH_ALLOWED_PORTS (80 and 443 by default), the host in the allow-list when one is configured, and an
   IP-literal host must be a public address.
2. The connection (`GuardedBackend`): httpcore asks its network backend to open every TCP connection, and this
   backend resolves the host once, rejects the connection if ANY resolved address is not public, and then
   connects to one of the addresses it checked. Nothing resolves the name a second time, so a DNS answer that
   changes between check and connect (DNS rebinding) cannot slip through. TLS is started by httpcore on top
   of that stream with the URL's host name as SNI and for certificate verification, and the Host header is the
   URL's, so virtual hosting and HTTPS work as usual.

Redirects are followed here, not by httpx, so each hop passes both layers again, at most
`fetch_max_redirects` times. The body is streamed and cut off at `fetch_max_bytes`; the response head,
interim (1xx) responses included, at `fetch_max_header_bytes` (`_HeadBudgetStream`); the whole fetch (DNS,
connect, every hop, body) has one deadline of `fetch_timeout_s`.

Error messages go to the client, so they never contain the resolved address of a forbidden host (a scanner
learns only "resolves to a non-public address"), and every failure of the remote side reads the same,
"could not fetch the image URL": refused, timed out, reset, an HTTP error status, too many redirects. So
the gateway cannot be used to tell open, closed and filtered ports or a host's status codes apart. The log
line (operators only) says what it was.
"""

from __future__ import annotations

import contextvars
import ipaddress
import logging
import socket
import ssl
from collections.abc import Callable, Collection, Iterable
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import Any, Protocol

import anyio
import certifi
import httpcore
import httpx

from gateway.errors import FetchFailed, ForbiddenURL, PayloadTooLarge

logger = logging.getLogger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

USER_AGENT = "species-classifier-gateway (image fetch)"
ALLOWED_SCHEMES = frozenset({"http", "https"})
PUBLIC = "public"
NON_PUBLIC_MESSAGE = "resolves to a non-public address"
COULD_NOT_FETCH = "could not fetch the image URL"
DEFAULT_PORTS = {"http": 80, "https": 443}

# RFC 6598 shared address space (carrier-grade NAT); ipaddress calls it neither private nor global.
_SHARED_V4 = ipaddress.IPv4Network("100.64.0.0/10")
# RFC 6052 well-known NAT64 prefix: the last 32 bits are an IPv4 address the NAT64 gateway will contact.
_NAT64_WKP = ipaddress.IPv6Network("64:ff9b::/96")
# RFC 8215 local-use NAT64 prefix: translates to whatever the local network decides, so never public.
_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")


class FetchSettings(Protocol):
    """The settings fetch needs; `gateway.settings.Settings` provides them (read-only here)."""

    @property
    def fetch_timeout_s(self) -> float: ...
    @property
    def fetch_connect_timeout_s(self) -> float: ...
    @property
    def fetch_max_bytes(self) -> int: ...
    @property
    def fetch_max_redirects(self) -> int: ...
    @property
    def fetch_allowed_hosts(self) -> Collection[str]: ...
    @property
    def fetch_allow_loopback(self) -> bool: ...
    @property
    def fetch_allowed_ports(self) -> Collection[int]: ...
    @property
    def fetch_max_header_bytes(self) -> int: ...
    @property
    def fetch_pool_size(self) -> int: ...


# --- the address classifier (pure: no DNS, no I/O) ---


def classify_address(address: str | IPAddress) -> str:
    """Say what kind of address this is: `"public"`, or why a fetch must not connect to it.

    IPv6 forms that carry an IPv4 address (IPv4-mapped `::ffff:a.b.c.d`, 6to4 `2002::/16`, Teredo
    `2001::/32`, NAT64 `64:ff9b::/96`) are judged by the IPv4 address inside, since that is where the packets
    end up. Only the mapped form keeps the inner kind as is (the kernel really does connect to that IPv4
    address); a tunnel to a non-public address is its own kind, so allowing loopback never allows a tunnel.
    """
    ip = ipaddress.ip_address(address) if isinstance(address, str) else address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return classify_address(ip.ipv4_mapped)
        if ip in _NAT64_LOCAL:
            return "nat64-local"
        embedded: list[ipaddress.IPv4Address] = []
        if ip in _NAT64_WKP:
            embedded.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
        if ip.sixtofour is not None:
            embedded.append(ip.sixtofour)
        if ip.teredo is not None:
            embedded.extend(ip.teredo)
        if any(classify_address(inner) != PUBLIC for inner in embedded):
            return "tunnel-to-non-public"
        if ip in _NAT64_WKP:
            # ipaddress files 64:ff9b::/96 under reserved ::/8, but in an IPv6-only cluster with DNS64 this
            # is how every IPv4-only public host is reached; its embedded address was just found public.
            return PUBLIC
    # Order matters only for the name reported: the most specific kind first.
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local"
    if ip.is_multicast:
        return "multicast"
    if ip.is_reserved:
        return "reserved"
    if isinstance(ip, ipaddress.IPv4Address) and ip in _SHARED_V4:
        return "shared"
    if ip.is_private:
        return "private"
    if isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local:
        return "site-local"
    if not ip.is_global:
        return "not-global"
    return PUBLIC


def address_allowed(address: str | IPAddress, *, allow_loopback: bool = False) -> bool:
    """True when a fetch may connect to this address. Loopback only when explicitly allowed (tests)."""
    kind = classify_address(address)
    return kind == PUBLIC or (allow_loopback and kind == "loopback")


# --- layer 1: the URL ---


def host_allowed(host: str, patterns: Iterable[str]) -> bool:
    """Match a host against the allow-list: `example.org` exactly, `*.example.org` any subdomain of it."""
    host = host.lower().rstrip(".")
    for pattern in patterns:
        pattern = pattern.strip().lower().rstrip(".")
        if pattern.startswith("*."):
            if host.endswith(pattern[1:]):
                return True
        elif host == pattern:
            return True
    return False


def _ip_literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def check_url(url: httpx.URL, settings: FetchSettings, *, what: str = "URL") -> None:
    """Reject a URL that the gateway must not fetch, before any connection. Raises ForbiddenURL."""
    if url.scheme not in ALLOWED_SCHEMES:
        raise ForbiddenURL(f"{what} scheme must be http or https")
    if url.userinfo:
        raise ForbiddenURL(f"{what} must not contain a user name or password")
    host = url.host
    if not host:
        raise ForbiddenURL(f"{what} has no host")
    port = url.port or DEFAULT_PORTS[url.scheme]
    if port not in settings.fetch_allowed_ports:
        ports = ", ".join(str(p) for p in sorted(settings.fetch_allowed_ports))
        raise ForbiddenURL(f"{what} port must be one of {ports}")
    # An internationalised name may be listed in Unicode or in its ASCII (punycode) form.
    ascii_host = url.raw_host.decode("ascii", errors="replace")
    allowed = settings.fetch_allowed_hosts
    if allowed and not (host_allowed(host, allowed) or host_allowed(ascii_host, allowed)):
        raise ForbiddenURL(f"{what} host is not in the allowed hosts list")
    literal = _ip_literal(host)
    if literal is not None and not address_allowed(literal, allow_loopback=settings.fetch_allow_loopback):
        logger.warning("fetch refused: %s is an IP literal of kind %s", what, classify_address(literal))
        raise ForbiddenURL(f"{what} host {NON_PUBLIC_MESSAGE}")


# --- layer 2: the connection ---


async def resolve_checked(
    host: str, port: int, *, allow_loopback: bool, timeout: float | None = None
) -> list[IPAddress]:
    """Resolve a host to all its addresses and return them, or raise ForbiddenURL if any is not public.

    getaddrinfo also normalises the numeric oddities a URL may carry (`2130706433`, `0x7f.1`, `127.1`) into
    the address the kernel would really connect to, so those are checked in their true form.
    """
    literal = _ip_literal(host)
    if literal is not None:
        addresses: list[IPAddress] = [literal]
    else:
        try:
            with anyio.fail_after(timeout):
                infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout("name resolution timed out") from exc
        except (OSError, UnicodeError) as exc:
            raise httpcore.ConnectError("name resolution failed") from exc
        addresses = []
        for info in infos:
            ip = ipaddress.ip_address(info[4][0])
            if ip not in addresses:
                addresses.append(ip)
        if not addresses:
            raise httpcore.ConnectError("name resolution returned no address")
    refused = {
        classify_address(ip) for ip in addresses if not address_allowed(ip, allow_loopback=allow_loopback)
    }
    if refused:
        logger.warning("fetch refused: host %r resolves to %s address(es)", host, ", ".join(sorted(refused)))
        raise ForbiddenURL(f"URL host {NON_PUBLIC_MESSAGE}")
    return addresses


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """A network backend that only connects to addresses `resolve_checked` has just approved.

    `inner` does the real connecting (httpcore's own backend by default); tests pass a spy to prove that a
    forbidden address is never connected to.
    """

    def __init__(
        self,
        *,
        allow_loopback: bool,
        allowed_ports: Collection[int] = frozenset(DEFAULT_PORTS.values()),
        inner: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        self._allow_loopback = allow_loopback
        self._allowed_ports = allowed_ports
        self._inner = inner if inner is not None else httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        if port not in self._allowed_ports:  # check_url refused it already; this layer never trusts that
            raise ForbiddenURL("URL port is not allowed")
        addresses = await resolve_checked(host, port, allow_loopback=self._allow_loopback, timeout=timeout)
        last_error: Exception | None = None
        for ip in addresses:
            try:
                stream = await self._inner.connect_tcp(
                    str(ip), port, timeout=timeout, local_address=local_address, socket_options=socket_options
                )
                return _HeadBudgetStream(stream)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last_error = exc
        assert last_error is not None  # addresses is never empty
        raise last_error

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("image fetches never use unix sockets")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


# The response head being read on this task, with what is left of its budget: set by `_trace` between
# httpcore's "receive_response_headers" events, counted down by `_HeadBudgetStream.read`.
_HEAD_BUDGET: contextvars.ContextVar[list[int] | None] = contextvars.ContextVar("head_budget", default=None)


class HeadTooLarge(httpcore.ReadError):
    """The response head (interim responses included) passed fetch_max_header_bytes."""


class _HeadBudgetStream(httpcore.AsyncNetworkStream):
    """A connection that counts the bytes it reads while a response head is expected.

    httpcore reads interim responses (`100 Continue`, ...) in a loop until the final one, each within the
    read timeout, so an endless stream of them would keep a fetch busy parsing on the event loop until its
    deadline. Counting every byte until the final head has arrived bounds that work by
    `fetch_max_header_bytes` (plus one read).
    """

    def __init__(self, stream: httpcore.AsyncNetworkStream) -> None:
        self._stream = stream

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        budget = _HEAD_BUDGET.get()
        # Checked before reading: the read that completes a head may carry the start of the body too, so
        # a head costs at most the budget plus one read.
        if budget is not None and budget[0] < 0:
            raise HeadTooLarge("the response head is too large")
        data = await self._stream.read(max_bytes, timeout)
        if budget is not None:
            budget[0] -= len(data)
        return data

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        await self._stream.write(buffer, timeout)

    async def aclose(self) -> None:
        await self._stream.aclose()

    async def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.AsyncNetworkStream:
        return _HeadBudgetStream(await self._stream.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


def _head_tracer(max_header_bytes: int) -> Callable[[str, dict[str, Any]], Any]:
    """An httpcore `trace` extension that opens the head budget while the response head is read."""

    async def trace(event: str, info: dict[str, Any]) -> None:
        if event == "http11.receive_response_headers.started":
            _HEAD_BUDGET.set([max_header_bytes])
        elif event.startswith("http11.receive_response_headers."):
            _HEAD_BUDGET.set(None)

    return trace


class _GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport with its connection pool built on `GuardedBackend`.

    httpx 0.28 has no parameter for httpcore's `network_backend`, so the pool httpx made is replaced by an
    equivalent one that has it; the request/response mapping and exception translation stay httpx's own.
    """

    def __init__(self, *, backend: GuardedBackend, limits: httpx.Limits, ssl_context: ssl.SSLContext) -> None:
        super().__init__(verify=ssl_context, limits=limits, trust_env=False)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            http1=True,
            http2=False,
            network_backend=backend,
        )


def make_http_client(
    settings: FetchSettings,
    *,
    network_backend: httpcore.AsyncNetworkBackend | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> httpx.AsyncClient:
    """The process's one HTTP client for image fetches; create it in the app's lifespan, close it there.

    `network_backend` and `ssl_context` exist for tests (a connection spy, a test CA).
    """
    # As many connections as all admitted requests may use at once (MAX_IN_FLIGHT x FETCH_CONCURRENCY), so
    # a request never waits for a connection that another request's hanging downloads hold.
    limits = httpx.Limits(
        max_connections=settings.fetch_pool_size, max_keepalive_connections=16, keepalive_expiry=10.0
    )
    backend = GuardedBackend(
        allow_loopback=settings.fetch_allow_loopback,
        allowed_ports=settings.fetch_allowed_ports,
        inner=network_backend,
    )
    if ssl_context is None:
        ssl_context = ssl.create_default_context(cafile=certifi.where())
    return httpx.AsyncClient(
        transport=_GuardedTransport(backend=backend, limits=limits, ssl_context=ssl_context),
        timeout=httpx.Timeout(settings.fetch_timeout_s, connect=settings.fetch_connect_timeout_s),
        follow_redirects=False,  # followed in fetch_image, so every hop is checked
        # Proxies from the environment would connect somewhere the guard never sees.
        trust_env=False,
        # One client serves every request: a cookie set by one image host must never reach the next caller.
        cookies=CookieJar(policy=DefaultCookiePolicy(allowed_domains=[])),
        headers={"User-Agent": USER_AGENT, "Accept": "image/*", "Accept-Encoding": "identity"},
    )


# --- the fetch ---


def _failed(reason: str) -> FetchFailed:
    """The one answer for every failure of the remote side; `reason` goes to the log only."""
    logger.info("fetch failed: %s", reason)
    return FetchFailed(COULD_NOT_FETCH)


async def fetch_image(
    url: str,
    *,
    settings: FetchSettings,
    client: httpx.AsyncClient,
    account: Callable[[int], None] | None = None,
) -> bytes:
    """Download the image at `url`, following at most `fetch_max_redirects` redirects, each one re-checked.

    `account(n)` is called before `n` more body bytes are kept (the caller's memory budget; it raises to
    stop the download). Raises ForbiddenURL (400), PayloadTooLarge (413) or FetchFailed (422: anything the
    remote side did wrong, said the same way).
    """
    try:
        with anyio.fail_after(settings.fetch_timeout_s):
            return await _follow(url, settings, client, account)
    except (TimeoutError, httpx.TimeoutException) as exc:
        raise _failed(f"no answer within {settings.fetch_timeout_s:g} s ({type(exc).__name__})") from exc
    except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
        raise ForbiddenURL("not a valid http or https URL") from exc
    except httpx.HTTPError as exc:
        raise _failed(f"{type(exc).__name__}: {exc}") from exc


async def _follow(
    url: str, settings: FetchSettings, client: httpx.AsyncClient, account: Callable[[int], None] | None
) -> bytes:
    current = httpx.URL(url)
    trace = _head_tracer(settings.fetch_max_header_bytes)
    for hop in range(settings.fetch_max_redirects + 1):
        check_url(current, settings, what="URL" if hop == 0 else "redirect target")
        request = client.build_request("GET", current, extensions={"trace": trace})
        response = await client.send(request, stream=True)
        try:
            if response.is_redirect:
                try:
                    current = current.join(response.headers["Location"])
                except httpx.InvalidURL as exc:
                    raise _failed("redirect to an invalid URL") from exc
                continue
            if not response.is_success:
                raise _failed(f"HTTP {response.status_code}")
            body = await _read_capped(response, settings.fetch_max_bytes, account)
            logger.debug("fetched %d bytes after %d redirect(s)", len(body), hop)
            return body
        finally:
            await response.aclose()
    raise _failed(f"more than {settings.fetch_max_redirects} redirects")


async def _read_capped(
    response: httpx.Response, max_bytes: int, account: Callable[[int], None] | None
) -> bytes:
    too_large = f"the image at the URL is larger than {max_bytes} bytes"
    declared = response.headers.get("Content-Length")
    if declared is not None and declared.strip().isdigit() and int(declared) > max_bytes:
        raise PayloadTooLarge(too_large)
    # Identity was asked for; a compressed body could expand past the cap inside one decoded chunk.
    encoding = response.headers.get("Content-Encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        raise _failed(f"compressed body (Content-Encoding: {encoding[:40]})")
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_raw():
        size += len(chunk)
        if size > max_bytes:
            raise PayloadTooLarge(too_large)
        if account is not None:
            account(len(chunk))
        chunks.append(chunk)
    return b"".join(chunks)
