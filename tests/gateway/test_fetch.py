"""The URL fetcher and its SSRF guard (gateway.fetch).

Pure tests classify addresses without any DNS or traffic. The rest run a real HTTP server on 127.0.0.1 in a
thread. Public addresses in these tests are only ever classified, or mapped by a spy network backend onto that
loopback server: no test sends a packet to anything but 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import gzip
import shutil
import ssl
import subprocess
import time
from collections.abc import Callable, Coroutine, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import anyio
import httpcore
import pytest

from gateway import fetch
from gateway.errors import FetchFailed, ForbiddenURL, PayloadTooLarge
from gateway.settings import Settings
from tests.support.http import Handler, LocalServer, Route

T = TypeVar("T")
IMAGE = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 40 + b"\xff\xd9"  # JPEG-framed bytes; fetch never decodes
ANY_PORT = frozenset(range(1, 65536))
PUBLIC_TEST_IP = "8.8.8.8"  # what the fake DNS answers for public test hosts; the spy maps it to 127.0.0.1


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "fetch_timeout_s": 5.0,
        "fetch_connect_timeout_s": 2.0,
        "fetch_max_bytes": 64 * 1024,
        "fetch_max_redirects": 3,
        "fetch_allowed_hosts": frozenset(),
        "fetch_allow_loopback": True,
        # The test servers listen on ports the OS picks.
        "fetch_allowed_ports": ANY_PORT,
    }
    values.update(overrides)
    return Settings(**values)


# --- pure: the address classifier ---

FORBIDDEN = [
    ("127.0.0.1", "loopback"),
    ("127.255.255.254", "loopback"),
    ("10.0.0.1", "private"),
    ("10.255.255.255", "private"),
    ("172.16.0.1", "private"),
    ("172.31.255.254", "private"),
    ("192.168.1.1", "private"),
    ("100.64.0.1", "shared"),
    ("100.127.255.254", "shared"),
    ("169.254.169.254", "link-local"),
    ("169.254.0.1", "link-local"),
    ("0.0.0.0", "unspecified"),
    ("224.0.0.1", "multicast"),
    ("239.255.255.250", "multicast"),
    ("255.255.255.255", "reserved"),
    ("240.0.0.1", "reserved"),
    ("192.0.2.10", "private"),  # TEST-NET-1
    ("198.18.0.1", "private"),  # benchmarking
    ("::1", "loopback"),
    ("::", "unspecified"),
    ("fe80::1", "link-local"),
    ("fe80::1%eth0", "link-local"),
    ("fc00::1", "private"),
    ("fd12:3456:789a::1", "private"),
    ("ff02::1", "multicast"),
    ("fec0::1", "site-local"),
    ("::ffff:127.0.0.1", "loopback"),
    ("::ffff:7f00:1", "loopback"),
    ("::ffff:10.0.0.1", "private"),
    ("::ffff:169.254.169.254", "link-local"),
    ("::7f00:1", "reserved"),  # deprecated IPv4-compatible form
    ("2002:7f00:1::", "tunnel-to-non-public"),  # 6to4 of 127.0.0.1
    ("2002:a9fe:a9fe::1", "tunnel-to-non-public"),  # 6to4 of 169.254.169.254
    ("64:ff9b::7f00:1", "tunnel-to-non-public"),  # NAT64 of 127.0.0.1
    ("64:ff9b::a00:1", "tunnel-to-non-public"),  # NAT64 of 10.0.0.1
    ("64:ff9b:1::8.8.8.8", "nat64-local"),
    ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "tunnel-to-non-public"),  # Teredo (RFC 4380 example)
    ("2001:db8::1", "private"),  # documentation
]

PUBLIC = ["8.8.8.8", "1.1.1.1", "93.184.216.34", "2606:4700::1111", "2a00:1450::1", "::ffff:8.8.8.8"]
PUBLIC += ["2002:808:808::1", "64:ff9b::808:808"]  # 6to4 and NAT64 of a public address


@pytest.mark.unit
@pytest.mark.parametrize(("address", "kind"), FORBIDDEN)
def test_a_non_public_address_is_classified_by_its_kind(address: str, kind: str) -> None:
    assert fetch.classify_address(address) == kind
    assert not fetch.address_allowed(address)


@pytest.mark.unit
@pytest.mark.parametrize("address", PUBLIC)
def test_a_public_address_is_allowed(address: str) -> None:
    assert fetch.classify_address(address) == "public"
    assert fetch.address_allowed(address)


@pytest.mark.unit
@pytest.mark.parametrize("address", ["127.0.0.1", "::1", "::ffff:127.0.0.1"])
def test_loopback_is_allowed_only_when_the_setting_says_so(address: str) -> None:
    assert not fetch.address_allowed(address, allow_loopback=False)
    assert fetch.address_allowed(address, allow_loopback=True)


@pytest.mark.unit
@pytest.mark.parametrize(
    "address", ["10.0.0.1", "169.254.169.254", "fe80::1", "fc00::1", "2002:7f00:1::", "64:ff9b::7f00:1"]
)
def test_allowing_loopback_still_forbids_private_link_local_and_tunnels(address: str) -> None:
    assert not fetch.address_allowed(address, allow_loopback=True)


@pytest.mark.unit
@pytest.mark.parametrize("host", ["2130706433", "0x7f000001", "0177.0.0.1", "0x7f.1", "127.1"])
def test_numeric_spellings_of_loopback_are_resolved_to_127_0_0_1_and_refused(host: str) -> None:
    # getaddrinfo parses these numerically (inet_aton rules), so no DNS query is sent.
    with pytest.raises(ForbiddenURL, match="non-public"):
        run(fetch.resolve_checked(host, 80, allow_loopback=False))
    assert run(fetch.resolve_checked(host, 80, allow_loopback=True)) == [
        fetch.ipaddress.ip_address("127.0.0.1")
    ]


@pytest.mark.unit
@pytest.mark.parametrize(
    ("host", "patterns", "allowed"),
    [
        ("images.example.org", ["images.example.org"], True),
        ("IMAGES.example.org.", ["images.example.org"], True),
        ("cdn.images.example.org", ["*.example.org"], True),
        ("example.org", ["*.example.org"], False),
        ("evilexample.org", ["*.example.org"], False),
        ("example.org.evil.com", ["example.org"], False),
        ("other.org", ["images.example.org", "*.example.org"], False),
    ],
)
def test_the_host_allow_list_matches_exact_names_and_wildcard_subdomains(
    host: str, patterns: list[str], allowed: bool
) -> None:
    assert fetch.host_allowed(host, patterns) is allowed


@pytest.mark.unit
@pytest.mark.parametrize("listed", ["bücher.example.org", "xn--bcher-kva.example.org", "*.example.org"])
def test_an_international_host_matches_the_allow_list_in_either_spelling(listed: str) -> None:
    config = settings(fetch_allowed_hosts=frozenset({listed}))
    fetch.check_url(fetch.httpx.URL("https://Bücher.example.org/a.jpg"), config)
    with pytest.raises(ForbiddenURL, match="allowed hosts"):
        fetch.check_url(fetch.httpx.URL("https://bücher.example.net/a.jpg"), config)


@pytest.mark.unit
@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("file:///etc/passwd", "scheme"),
        ("ftp://example.org/a.jpg", "scheme"),
        ("gopher://example.org:70/_x", "scheme"),
        ("http://user:secret@example.org/a.jpg", "user name"),
        ("http://169.254.169.254/latest/meta-data/", "non-public"),
        ("http://[::ffff:169.254.169.254]/", "non-public"),
        ("http://10.0.0.1/", "non-public"),
        ("http://[fe80::1%25eth0]/", "non-public"),
    ],
)
def test_a_forbidden_url_is_refused_before_any_connection(url: str, message: str) -> None:
    spy = SpyBackend()

    async def go() -> None:
        async with fetch.make_http_client(settings(), network_backend=spy) as client:
            await fetch.fetch_image(url, settings=settings(), client=client)

    with pytest.raises(ForbiddenURL, match=message) as caught:
        run(go())
    assert caught.value.status == 400
    assert spy.connects == []


@pytest.mark.unit
def test_the_refusal_message_does_not_echo_the_resolved_address() -> None:
    with pytest.raises(ForbiddenURL) as caught:
        run(fetch.resolve_checked("2130706433", 80, allow_loopback=False))
    assert "127.0.0.1" not in caught.value.message


# --- a real HTTP server on 127.0.0.1 ---


def hops(handler: Handler) -> None:
    left = int(handler.route.rsplit("/", 1)[1])
    handler.send(302, headers={"Location": f"/hops/{left - 1}" if left > 1 else "/image.jpg"})


def redirect(handler: Handler) -> None:
    handler.send(int(handler.query.get("status", "302")), headers={"Location": handler.query["to"]})


def echo_headers(handler: Handler) -> None:
    echoed = "\n".join(f"{k.lower()}: {v}" for k, v in handler.headers.items()).encode()
    handler.send(200, echoed, {"Set-Cookie": "session=leaked; Path=/"})


def big(handler: Handler) -> None:
    handler.send(200, b"x" * int(handler.query["size"]))


def big_no_length(handler: Handler) -> None:
    # HTTP/1.0 without Content-Length: the body ends when the connection closes.
    handler.send_response(200)
    handler.end_headers()
    handler.wfile.write(b"x" * int(handler.query["size"]))


def endless(handler: Handler) -> None:
    handler.send_response(200)
    handler.end_headers()
    while True:
        handler.wfile.write(b"x" * 65536)
        ENDLESS_BYTES_SENT.append(65536)


def slow(handler: Handler) -> None:
    handler.send_response(200)
    handler.send_header("Content-Length", str(len(IMAGE)))
    handler.end_headers()
    handler.wfile.flush()
    time.sleep(float(handler.query.get("delay", "3")))
    handler.wfile.write(IMAGE)


def drip(handler: Handler) -> None:
    # One byte every 100 ms: no single read ever waits long, only the whole download is slow.
    handler.send_response(200)
    handler.end_headers()
    for _ in range(100):
        handler.wfile.write(b"x")
        handler.wfile.flush()
        time.sleep(0.1)


def interim_flood(handler: Handler) -> None:
    # `100 Continue` for ever, never the final answer: each interim response is a complete, tiny head.
    while not handler.server.stopping.is_set():
        handler.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n" * 64)


def status(handler: Handler) -> None:
    handler.send(int(handler.query["code"]), b"an error page")


ENDLESS_BYTES_SENT: list[int] = []
ROUTES: dict[str, bytes | Route] = {
    "/image.jpg": IMAGE,
    **{f"/hops/{n}": hops for n in range(1, 6)},
    "/redirect": redirect,
    "/echo-headers": echo_headers,
    "/big": big,
    "/big-no-length": big_no_length,
    "/endless": endless,
    "/slow": slow,
    "/drip": drip,
    "/gzip": lambda handler: handler.send(200, gzip.compress(IMAGE), {"Content-Encoding": "gzip"}),
    "/interim-flood": interim_flood,
    "/status": status,
}


@pytest.fixture
def http_server() -> Iterator[LocalServer]:
    ENDLESS_BYTES_SENT.clear()
    with LocalServer(ROUTES) as server:
        yield server


class SpyBackend(httpcore.AnyIOBackend):
    """Records every connect the guard lets through. Connects only ever go to 127.0.0.1: the public test
    address is mapped there, and anything else is recorded and refused, never dialled."""

    def __init__(self) -> None:
        self.connects: list[str] = []

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        self.connects.append(host)
        if host not in ("127.0.0.1", PUBLIC_TEST_IP):
            raise httpcore.ConnectError(f"test spy refuses to dial {host}")
        return await super().connect_tcp("127.0.0.1", port, timeout, local_address, socket_options)


@pytest.fixture
def fake_dns(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    """Answers chosen names from a table: each lookup takes the next answer while more than one is left (an
    answer is comma-separated addresses). Every other name goes to the real resolver."""
    table: dict[str, list[str]] = {}
    real = anyio.getaddrinfo

    async def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(host, str) and host in table:
            answers = table[host]
            current = answers.pop(0) if len(answers) > 1 else answers[0]
            return [(0, 0, 0, "", (ip, port)) for ip in current.split(",")]
        return await real(host, port, *args, **kwargs)

    monkeypatch.setattr(anyio, "getaddrinfo", getaddrinfo)
    return table


def fetch_with(
    url: str, config: Settings, spy: SpyBackend | None = None, **client_kwargs: Any
) -> Callable[[], bytes]:
    async def go() -> bytes:
        async with fetch.make_http_client(config, network_backend=spy, **client_kwargs) as client:
            return await fetch.fetch_image(url, settings=config, client=client)

    return lambda: run(go())


@pytest.mark.process
def test_an_image_is_downloaded_byte_for_byte(http_server: LocalServer) -> None:
    assert fetch_with(http_server.url("/image.jpg"), settings())() == IMAGE


@pytest.mark.process
def test_the_request_carries_the_gateway_user_agent_and_asks_for_an_uncompressed_image(
    http_server: LocalServer,
) -> None:
    echoed = fetch_with(http_server.url("/echo-headers"), settings())().decode()
    assert f"user-agent: {fetch.USER_AGENT}" in echoed
    assert "accept-encoding: identity" in echoed


@pytest.mark.process
@pytest.mark.parametrize("hops", [1, 2, 3])
def test_redirects_are_followed_up_to_the_limit(http_server: LocalServer, hops: int) -> None:
    assert fetch_with(http_server.url(f"/hops/{hops}"), settings())() == IMAGE
    assert len(http_server.requests) == hops + 1


@pytest.mark.process
def test_one_redirect_more_than_the_limit_fails_without_following_it(http_server: LocalServer) -> None:
    with pytest.raises(FetchFailed, match=fetch.COULD_NOT_FETCH) as caught:
        fetch_with(http_server.url("/hops/4"), settings())()
    assert caught.value.status == 422
    assert [seen.path for seen in http_server.requests] == ["/hops/4", "/hops/3", "/hops/2", "/hops/1"]


@pytest.mark.process
@pytest.mark.parametrize(
    "target",
    [
        "http://169.254.169.254/latest/meta-data/iam/",
        "http://10.0.0.1/",
        "http://[fd00::1]/",
        "http://[::ffff:169.254.169.254]/",
        "http://[64:ff9b::a9fe:a9fe]/",
        "file:///etc/passwd",
    ],
)
def test_a_redirect_to_a_forbidden_address_is_refused_before_connecting(
    http_server: LocalServer, target: str
) -> None:
    spy = SpyBackend()
    start = http_server.url(f"/redirect?to={target}")
    with pytest.raises(ForbiddenURL, match="redirect target"):
        fetch_with(start, settings(), spy)()
    assert spy.connects == ["127.0.0.1"]  # the first hop only
    assert len(http_server.requests) == 1


@pytest.mark.process
@pytest.mark.parametrize(
    "target",
    [
        "http://[::1]:{port}/image.jpg",
        "http://localhost:{port}/image.jpg",
        "http://2130706433:{port}/image.jpg",
    ],
)
def test_without_the_loopback_setting_a_redirect_to_loopback_is_refused(
    http_server: LocalServer, fake_dns: dict[str, list[str]], target: str
) -> None:
    # A public host (fake DNS answer; the spy carries its traffic to the loopback test server) redirects to
    # loopback, with production settings.
    fake_dns["images.example.org"] = [PUBLIC_TEST_IP]
    spy = SpyBackend()
    start = http_server.url(f"/redirect?to={target.format(port=http_server.port)}", host="images.example.org")
    with pytest.raises(ForbiddenURL, match="non-public"):
        fetch_with(start, settings(fetch_allow_loopback=False), spy)()
    assert spy.connects == [PUBLIC_TEST_IP]
    assert len(http_server.requests) == 1


@pytest.mark.process
def test_a_host_with_any_non_public_dns_answer_is_refused_without_connecting(
    fake_dns: dict[str, list[str]],
) -> None:
    fake_dns["mixed.example.org"] = [f"{PUBLIC_TEST_IP},10.0.0.7"]
    spy = SpyBackend()
    with pytest.raises(ForbiddenURL, match="non-public") as caught:
        fetch_with("http://mixed.example.org/a.jpg", settings(fetch_allow_loopback=False), spy)()
    assert spy.connects == []
    assert "10.0.0.7" not in caught.value.message


@pytest.mark.process
def test_the_connection_goes_to_the_checked_address_with_the_original_host_header(
    http_server: LocalServer, fake_dns: dict[str, list[str]]
) -> None:
    # DNS rebinding: the first answer is public, any later one would be private. The guard resolves once and
    # dials the address it checked, so the second answer is never asked for.
    fake_dns["rebind.example.org"] = [PUBLIC_TEST_IP, "169.254.169.254"]
    spy = SpyBackend()
    url = http_server.url("/echo-headers", host="rebind.example.org")
    echoed = fetch_with(url, settings(fetch_allow_loopback=False), spy)().decode()
    assert spy.connects == [PUBLIC_TEST_IP]
    assert f"host: rebind.example.org:{http_server.port}" in echoed
    assert fake_dns["rebind.example.org"] == ["169.254.169.254"]  # the rebinding answer was never consumed


@pytest.mark.process
def test_a_host_outside_the_allow_list_is_refused(http_server: LocalServer) -> None:
    config = settings(fetch_allowed_hosts=frozenset({"images.example.org"}))
    spy = SpyBackend()
    with pytest.raises(ForbiddenURL, match="allowed hosts"):
        fetch_with(http_server.url("/image.jpg"), config, spy)()
    assert spy.connects == []


@pytest.mark.process
def test_a_host_in_the_allow_list_is_fetched_and_a_redirect_off_the_list_is_refused(
    http_server: LocalServer,
) -> None:
    config = settings(fetch_allowed_hosts=frozenset({"localhost"}))
    assert fetch_with(http_server.url("/image.jpg", host="localhost"), config)() == IMAGE
    elsewhere = http_server.url("/image.jpg")
    with pytest.raises(ForbiddenURL, match="redirect target host is not in the allowed hosts"):
        fetch_with(http_server.url(f"/redirect?to={elsewhere}", host="localhost"), config)()


@pytest.mark.process
def test_a_body_over_the_cap_with_content_length_is_refused_before_reading(http_server: LocalServer) -> None:
    with pytest.raises(PayloadTooLarge) as caught:
        fetch_with(http_server.url("/big?size=70000"), settings(fetch_max_bytes=65536))()
    assert caught.value.status == 413


@pytest.mark.process
def test_a_body_over_the_cap_without_content_length_is_cut_off(http_server: LocalServer) -> None:
    with pytest.raises(PayloadTooLarge):
        fetch_with(http_server.url("/big-no-length?size=70000"), settings(fetch_max_bytes=65536))()
    assert fetch_with(http_server.url("/big-no-length?size=65536"), settings(fetch_max_bytes=65536))() == (
        b"x" * 65536
    )


@pytest.mark.process
def test_an_endless_body_is_cut_off_at_the_cap_not_buffered(http_server: LocalServer) -> None:
    started = time.monotonic()
    with pytest.raises(PayloadTooLarge):
        fetch_with(http_server.url("/endless"), settings(fetch_max_bytes=1024 * 1024))()
    assert time.monotonic() - started < 3
    time.sleep(0.2)
    assert sum(ENDLESS_BYTES_SENT) < 64 * 1024 * 1024


@pytest.mark.process
def test_a_compressed_body_is_refused_rather_than_inflated(http_server: LocalServer) -> None:
    with pytest.raises(FetchFailed, match=fetch.COULD_NOT_FETCH):
        fetch_with(http_server.url("/gzip"), settings())()


@pytest.mark.process
def test_a_slow_server_hits_the_fetch_deadline(http_server: LocalServer) -> None:
    started = time.monotonic()
    with pytest.raises(FetchFailed, match=fetch.COULD_NOT_FETCH) as caught:
        fetch_with(http_server.url("/slow?delay=3"), settings(fetch_timeout_s=0.5))()
    assert time.monotonic() - started < 2
    assert caught.value.status == 422


@pytest.mark.process
def test_a_server_dripping_bytes_still_hits_the_whole_fetch_deadline(http_server: LocalServer) -> None:
    started = time.monotonic()
    with pytest.raises(FetchFailed):
        fetch_with(http_server.url("/drip"), settings(fetch_timeout_s=1.0))()
    assert time.monotonic() - started < 2.5


@pytest.mark.process
@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_every_redirect_status_is_followed(http_server: LocalServer, status: int) -> None:
    assert fetch_with(http_server.url(f"/redirect?status={status}&to=/image.jpg"), settings())() == IMAGE


@pytest.mark.process
def test_every_failure_of_the_remote_side_reads_the_same_so_the_gateway_is_no_port_scanner(
    http_server: LocalServer,
) -> None:
    with LocalServer() as probe:
        closed = probe.url("/image.jpg")  # bound, then closed: nothing listens there afterwards
    failing = {
        "closed port": closed,
        "404": http_server.url("/missing"),
        "500": http_server.url("/status?code=500"),
        "403": http_server.url("/status?code=403"),
        "timeout": http_server.url("/slow?delay=3"),
        "redirect loop": http_server.url("/hops/5"),
    }
    answers = {}
    for what, url in failing.items():
        with pytest.raises(FetchFailed) as caught:
            fetch_with(url, settings(fetch_timeout_s=0.5))()
        answers[what] = (caught.value.status, caught.value.code, caught.value.message)
    assert set(answers.values()) == {(422, "fetch_failed", fetch.COULD_NOT_FETCH)}, answers


@pytest.mark.unit
@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("http://images.example.org/a.jpg", True),
        ("https://images.example.org/a.jpg", True),
        ("http://images.example.org:80/a.jpg", True),
        ("https://images.example.org:8443/a.jpg", False),
        ("http://images.example.org:22/", False),
        ("http://images.example.org:6443/", False),
        ("http://images.example.org:10250/", False),
        ("http://8.8.8.8:25/", False),
    ],
)
def test_only_the_allowed_ports_may_be_fetched(url: str, allowed: bool) -> None:
    config = settings(fetch_allowed_ports=frozenset({80, 443}))
    if allowed:
        fetch.check_url(fetch.httpx.URL(url), config)
    else:
        with pytest.raises(ForbiddenURL, match="port must be one of 80, 443"):
            fetch.check_url(fetch.httpx.URL(url), config)


@pytest.mark.process
def test_a_redirect_to_a_port_not_allowed_is_refused_before_connecting(http_server: LocalServer) -> None:
    config = settings(fetch_allowed_ports=frozenset({http_server.port}))
    spy = SpyBackend()
    with pytest.raises(ForbiddenURL, match="redirect target port"):
        fetch_with(http_server.url("/redirect?to=http://127.0.0.1:22/"), config, spy)()
    assert spy.connects == ["127.0.0.1"]  # the first hop only


@pytest.mark.process
def test_endless_interim_responses_end_at_the_header_budget_not_the_deadline(
    http_server: LocalServer,
) -> None:
    started = time.monotonic()
    with pytest.raises(FetchFailed, match=fetch.COULD_NOT_FETCH):
        fetch_with(http_server.url("/interim-flood"), settings(fetch_timeout_s=10))()
    assert time.monotonic() - started < 2, "the flood was read until the fetch deadline"


@pytest.mark.process
def test_a_response_head_within_the_budget_is_fetched_after_interim_responses(
    http_server: LocalServer,
) -> None:
    def continue_then_image(handler: Handler) -> None:
        handler.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n" * 3)
        handler.send(200, IMAGE, {"Content-Type": "image/jpeg"})

    http_server.routes["/continue"] = continue_then_image
    assert fetch_with(http_server.url("/continue"), settings(fetch_max_header_bytes=4096))() == IMAGE


@pytest.mark.process
def test_cookies_from_one_fetch_never_reach_the_next(http_server: LocalServer) -> None:
    async def go() -> str:
        config = settings()
        async with fetch.make_http_client(config) as client:
            await fetch.fetch_image(http_server.url("/echo-headers"), settings=config, client=client)
            second = await fetch.fetch_image(http_server.url("/echo-headers"), settings=config, client=client)
        return second.decode()

    assert "cookie:" not in run(go())


# --- HTTPS: the checked address is dialled, the host name is verified ---


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl CLI not found: needed to make a throwaway certificate for the HTTPS tests")
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=images.example.org",
         "-addext", "subjectAltName=DNS:images.example.org"],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


@pytest.fixture
def https_server(tls_files: tuple[Path, Path]) -> Iterator[LocalServer]:
    cert, key = tls_files
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    with LocalServer(ROUTES, ssl_context=context) as server:
        yield server


@pytest.mark.process
def test_https_verifies_the_url_host_name_while_dialling_the_checked_address(
    https_server: LocalServer, tls_files: tuple[Path, Path], fake_dns: dict[str, list[str]]
) -> None:
    fake_dns["images.example.org"] = [PUBLIC_TEST_IP]
    fake_dns["other.example.org"] = [PUBLIC_TEST_IP]
    client_context = ssl.create_default_context(cafile=str(tls_files[0]))
    config = settings(fetch_allow_loopback=False)
    spy = SpyBackend()
    url = https_server.url("/image.jpg", host="images.example.org", scheme="https")
    assert fetch_with(url, config, spy, ssl_context=client_context)() == IMAGE
    assert spy.connects == [PUBLIC_TEST_IP]
    # Same address, a name the certificate does not cover: verification is against the name, so it fails.
    wrong = https_server.url("/image.jpg", host="other.example.org", scheme="https")
    with pytest.raises(FetchFailed):
        fetch_with(wrong, config, SpyBackend(), ssl_context=client_context)()
