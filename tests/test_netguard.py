"""The network guard: internal addresses refused before any connection, the checked address
used, certificates verified against the name, one deadline per URL.

No test reaches beyond loopback: names are answered by a fake DNS (tests.local_http.
fake_network), which also fails the test if anything connects to a non-loopback address.
"""

from __future__ import annotations

import ipaddress
import ssl
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import ClassVar

import httpx
import pytest
import trustme

from newsletter import netguard
from newsletter.netguard import NetError, Refused, TimedOut, address_problem, open_url
from tests.local_http import fake_network, serve

#: A public address the fake DNS hands out; connections to it are routed to loopback.
PUBLIC = "93.184.216.34"
HINT = "set [collect] allow_private = true to allow it"


class Site(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen: ClassVar[list[tuple[str, str]]] = []

    def do_GET(self) -> None:
        self.seen.append((self.headers.get("Host", ""), self.path))
        status, headers, body = 200, {}, b"hello"
        if self.path.startswith("/to?"):
            status, headers["Location"], body = 302, self.path.partition("?")[2], b""
        elif self.path == "/moved":
            status, headers["Location"], body = 301, "/page", b""
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def site() -> Iterator[str]:
    with serve(Site) as url:
        yield url


def port_of(url: str) -> int:
    return httpx.URL(url).port or 80


@pytest.mark.parametrize(
    ("address", "problem"),
    [
        ("127.0.0.1", "a loopback address"),
        ("127.8.9.10", "a loopback address"),
        ("::1", "a loopback address"),
        ("::ffff:127.0.0.1", "a loopback address"),
        ("::ffff:10.1.2.3", "a private address"),
        ("64:ff9b::a9fe:a9fe", "a link-local address"),
        ("2002:7f00:1::", "a loopback address"),  # 6to4 around 127.0.0.1
        ("2002:a9fe:a9fe::", "a link-local address"),  # 6to4 around 169.254.169.254
        ("2001:0:4136:e378:8000:63bf:80ff:fffe", "a loopback address"),  # Teredo
        ("169.254.169.254", "a link-local address"),
        ("fe80::1", "a link-local address"),
        ("10.0.0.1", "a private address"),
        ("172.16.0.1", "a private address"),
        ("172.31.255.255", "a private address"),
        ("192.168.1.1", "a private address"),
        ("100.64.0.1", "a shared (carrier-grade NAT) address"),
        ("fc00::1", "a unique-local address"),
        ("fd12:3456::1", "a unique-local address"),
        ("224.0.0.1", "a multicast address"),
        ("ff02::1", "a multicast address"),
        ("0.0.0.0", "an unspecified address"),
        ("::", "an unspecified address"),
        ("240.0.0.1", "a reserved address"),
        ("255.255.255.255", "a reserved address"),
        (PUBLIC, ""),
        ("172.32.0.1", ""),
        ("2606:4700:4700::1111", ""),
    ],
)
def test_address_problem(address: str, problem: str) -> None:
    assert address_problem(ipaddress.ip_address(address)) == problem


@pytest.mark.parametrize(
    ("url", "address", "kind"),
    [
        ("http://127.0.0.1:{port}/", "127.0.0.1", "a loopback address"),
        ("http://localhost:{port}/", "127.0.0.1", "a loopback address"),
        ("http://2130706433:{port}/", "127.0.0.1", "a loopback address"),
        ("http://0177.0.0.1:{port}/", "127.0.0.1", "a loopback address"),
        ("http://0x7f.1:{port}/", "127.0.0.1", "a loopback address"),
        ("http://127.1:{port}/", "127.0.0.1", "a loopback address"),
        ("http://[::ffff:127.0.0.1]:{port}/", "::ffff:7f00:1", "a loopback address"),
        ("http://[::1]:{port}/", "::1", "a loopback address"),
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254", "a link-local address"),
        ("http://10.0.0.1/", "10.0.0.1", "a private address"),
        ("https://192.168.1.1/", "192.168.1.1", "a private address"),
        ("http://[fc00::1]/", "fc00::1", "a unique-local address"),
        ("http://0.0.0.0:{port}/", "0.0.0.0", "an unspecified address"),
        ("http://intranet.example.test/", "10.0.0.7", "a private address"),
        ("http://metadata.example.test/", "169.254.169.254", "a link-local address"),
        ("http://v6.example.test/", "fd00::5", "a unique-local address"),
        # One bad address among good ones is enough: the client might pick it.
        ("http://mixed.example.test/", "127.0.0.1", "a loopback address"),
    ],
)
def test_internal_targets_are_refused_before_any_connection(
    monkeypatch: pytest.MonkeyPatch, site: str, url: str, address: str, kind: str
) -> None:
    net = fake_network(
        monkeypatch,
        names={
            "localhost": ["127.0.0.1"],
            "intranet.example.test": ["10.0.0.7"],
            "metadata.example.test": ["169.254.169.254"],
            "v6.example.test": ["fd00::5"],
            "mixed.example.test": [PUBLIC, "127.0.0.1"],
        },
    )
    url = url.format(port=port_of(site))
    before = len(Site.seen)
    with pytest.raises(Refused) as refused, open_url(url, timeout=2):
        pass
    assert str(refused.value) == f"{url}: refused: {address} is {kind}; {HINT}"
    assert net.connects == [] and len(Site.seen) == before


@pytest.mark.parametrize(
    "url", ["file:///etc/passwd", "gopher://127.0.0.1:70/_x", "ftp://example.org/", "//x/y"]
)
def test_only_http_and_https(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    net = fake_network(monkeypatch)
    with pytest.raises(Refused, match="refused: only http"), open_url(url, allow_private=True):
        pass
    assert net.connects == [] and net.lookups == []


@pytest.mark.parametrize(
    ("target", "shown"),
    [
        ("http://127.0.0.1:{port}/secret", "refused: 127.0.0.1 is a loopback address"),
        ("http://169.254.169.254/latest/meta-data/", "refused: 169.254.169.254 is a link-local"),
        ("http://internal.example.test/admin", "refused: 10.1.1.1 is a private address"),
        ("file:///etc/passwd", "refused: only http(s) URLs can be fetched, not file: URLs"),
    ],
)
def test_every_redirect_is_checked_too(
    monkeypatch: pytest.MonkeyPatch, site: str, target: str, shown: str
) -> None:
    net = fake_network(
        monkeypatch,
        names={"news.example.test": [PUBLIC], "internal.example.test": ["10.1.1.1"]},
        routes={PUBLIC: port_of(site)},
    )
    target = target.format(port=port_of(site))
    url = f"http://news.example.test/to?{target}"
    with pytest.raises(Refused) as refused, open_url(url, timeout=2):
        pass
    message = str(refused.value)
    assert message.startswith(f"{url}: redirected to ") and "\n" not in message
    assert f": {shown}" in message
    # The first request went out (to the checked address); the redirect's never did.
    assert net.connects == [(PUBLIC, 80)]
    assert Site.seen[-1] == ("news.example.test", f"/to?{target}")


def test_the_checked_address_is_the_one_connected_to(
    monkeypatch: pytest.MonkeyPatch, site: str
) -> None:
    """DNS rebinding: the name answers a public address once, then loopback. The guard
    asks once per request and connects to what it checked; redirects keep the name."""
    answers = iter([[PUBLIC], [PUBLIC], ["127.0.0.1"]])
    net = fake_network(monkeypatch, routes={PUBLIC: port_of(site)})
    real = netguard.socket.getaddrinfo

    def rebinding(host: str, port: int, *args: object, **kwargs: object) -> object:
        if host == "rebind.example.test":
            net.lookups.append(host)
            return [(2, 1, 6, "", (a, port)) for a in next(answers)]
        return real(host, port, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(netguard.socket, "getaddrinfo", rebinding)
    with open_url("http://rebind.example.test/moved", timeout=2) as reply:
        body = b"".join(reply.iter_bytes())
    assert (reply.status_code, body, reply.url) == (
        200,
        b"hello",
        "http://rebind.example.test/page",
    )
    assert Site.seen[-2:] == [("rebind.example.test", "/moved"), ("rebind.example.test", "/page")]
    assert net.lookups == ["rebind.example.test"] * 2 and net.connects == [(PUBLIC, 80)] * 2
    # The third answer (loopback) is refused, not connected to.
    with (
        pytest.raises(Refused, match=r"127\.0\.0\.1 is a loopback"),
        open_url("http://rebind.example.test/page", timeout=2),
    ):
        pass
    assert net.connects == [(PUBLIC, 80)] * 2


def test_allow_private_lets_loopback_through(monkeypatch: pytest.MonkeyPatch, site: str) -> None:
    fake_network(monkeypatch)
    with open_url(f"{site}/moved", allow_private=True, timeout=2) as reply:
        assert (reply.status_code, reply.url) == (200, f"{site}/page")
    with open_url(f"{site}/moved", allow_private=True, follow_redirects=False) as reply:
        assert (reply.status_code, reply.location()) == (301, f"{site}/page")
    with (
        pytest.raises(NetError, match="more than 0 redirects"),
        open_url(f"{site}/moved", allow_private=True, max_redirects=0),
    ):
        pass


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def test_tls_is_verified_against_the_name_not_the_address(
    monkeypatch: pytest.MonkeyPatch, ca: trustme.CA
) -> None:
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("feeds.example.test").configure_cert(server_ctx)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    with serve(Site, tls=server_ctx) as base:
        port = port_of(base)
        fake_network(
            monkeypatch,
            names={"feeds.example.test": ["127.0.0.1"], "other.example.test": ["127.0.0.1"]},
        )
        transport = httpx.HTTPTransport(verify=client_ctx)
        with (
            netguard.client(transport=transport) as session,
            open_url(
                f"https://feeds.example.test:{port}/page", allow_private=True, session=session
            ) as reply,
        ):
            assert b"".join(reply.iter_bytes()) == b"hello"
        assert Site.seen[-1] == (f"feeds.example.test:{port}", "/page")
        # Same address, another name: the certificate does not match it.
        transport = httpx.HTTPTransport(verify=client_ctx)
        with (
            netguard.client(transport=transport) as session,
            pytest.raises(httpx.ConnectError, match="certificate verify failed"),
            open_url(
                f"https://other.example.test:{port}/page", allow_private=True, session=session
            ),
        ):
            pass


class Trickle(BaseHTTPRequestHandler):
    """Headers or body one byte every 0.25 s, for far longer than any test's deadline
    (up to 50 s), so only a deadline that holds can end the request in time."""

    protocol_version = "HTTP/1.1"
    #: path -> True once the whole reply went out; False when the client hung up first.
    finished: ClassVar[dict[str, bool]] = {}
    done: ClassVar[dict[str, threading.Event]] = {}

    def do_GET(self) -> None:
        body = b"x" * 200
        length = b"" if self.path == "/slow-close" else b"Content-Length: 200\r\n"
        head = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n" + length + b"\r\n"
        slow, fast = (head, body) if self.path == "/slow-head" else (body, head)
        try:
            if self.path != "/slow-head":
                self.wfile.write(fast)
                self.wfile.flush()
            for byte in slow:
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
                time.sleep(0.25)
            if self.path == "/slow-head":
                self.wfile.write(fast)
            self.finished[self.path] = True
        except OSError:
            self.finished[self.path] = False
        finally:
            self.done[self.path].set()
        self.close_connection = True

    def log_message(self, format: str, *args: object) -> None:
        pass


# /slow-close: no Content-Length, the body ends when the connection closes; a body cut off
# by the deadline must not pass for a whole one.
@pytest.mark.parametrize("path", ["/slow-body", "/slow-head", "/slow-close"])
def test_a_trickling_server_meets_one_total_deadline(
    monkeypatch: pytest.MonkeyPatch, path: str
) -> None:
    fake_network(monkeypatch)
    Trickle.done[path] = threading.Event()
    with serve(Trickle) as base:
        with (
            pytest.raises(TimedOut) as timed_out,
            open_url(base + path, allow_private=True, timeout=1) as reply,
        ):
            b"".join(reply.iter_bytes())
        assert str(timed_out.value) == f"{base}{path}: timed out after 1 s"
    # The client hung up long before the server could finish its reply: its next write
    # fails.
    assert Trickle.done[path].wait(30)
    assert Trickle.finished[path] is False
