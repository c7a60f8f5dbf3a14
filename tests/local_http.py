"""A real HTTP server on loopback for tests: one handler class, in a thread.

And :func:`fake_network`: fake DNS answers and a guard that fails the test if anything
tries to connect beyond loopback, so tests of refused targets never reach the network.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import ssl
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest


@contextlib.contextmanager
def serve(
    handler: type[BaseHTTPRequestHandler], tls: ssl.SSLContext | None = None
) -> Iterator[str]:
    """Serve ``handler`` on 127.0.0.1 and a free port; yield the base URL.

    With ``tls`` (a server-side context) it speaks HTTPS.
    """
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        scheme = "https" if tls is not None else "http"
        yield f"{scheme}://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


@dataclass
class FakeNetwork:
    """What the code under test asked for: names looked up, and every connect attempt."""

    lookups: list[str] = field(default_factory=list)
    connects: list[tuple[str, int]] = field(default_factory=list)


def fake_network(
    monkeypatch: pytest.MonkeyPatch,
    names: Mapping[str, Sequence[str]] | None = None,
    routes: Mapping[str, int] | None = None,
) -> FakeNetwork:
    """Fake DNS and a connection guard for the rest of the test.

    ``names`` maps a host name to the addresses ``getaddrinfo`` answers (every other name
    fails to resolve: no real DNS query is made). ``routes`` maps an address (say a public
    one that a fake name resolves to) to a loopback port: a connection to it goes to
    127.0.0.1 on that port instead, like a proxy on loopback. Any other connection to a
    non-loopback address fails the test before a packet leaves.
    """
    names, routes = dict(names or {}), dict(routes or {})
    seen = FakeNetwork()
    real_getaddrinfo, real_create = socket.getaddrinfo, socket.create_connection
    real_connect = socket.socket.connect

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else str(host)
        if name in names:
            seen.lookups.append(name)
            return [
                (
                    socket.AF_INET6 if ":" in a else socket.AF_INET,
                    socket.SOCK_STREAM,
                    6,
                    "",
                    (a, int(port or 0), 0, 0) if ":" in a else (a, int(port or 0)),
                )
                for a in names[name]
            ]
        try:
            ipaddress.ip_address(name.split("%", 1)[0])
        except ValueError:
            seen.lookups.append(name)
            raise socket.gaierror(socket.EAI_NONAME, f"{name}: no such name (fake DNS)") from None
        return real_getaddrinfo(host, port, *args, **kwargs)

    def create_connection(address: tuple[str, int], *args: Any, **kwargs: Any) -> socket.socket:
        host, port = address[0], int(address[1])
        seen.connects.append((host, port))
        if host in routes:
            return real_create(("127.0.0.1", routes[host]), *args, **kwargs)
        if not _loopback(host):
            pytest.fail(f"a connection to {host}:{port} was attempted")
        return real_create(address, *args, **kwargs)

    def connect(self: socket.socket, address: Any) -> None:
        if self.family in (socket.AF_INET, socket.AF_INET6) and not _loopback(str(address[0])):
            pytest.fail(f"a connection to {address!r} was attempted")
        real_connect(self, address)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(socket, "create_connection", create_connection)
    monkeypatch.setattr(socket.socket, "connect", connect)
    return seen
