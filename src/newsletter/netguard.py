"""The one gate for every HTTP request to an address taken from content or config.

Collecting a feed or page (``collect``, ``import``) and ``check --links`` request URLs that
someone else wrote, and a redirect can point anywhere. Every request goes through
:func:`open_url`, which:

- accepts http(s) only (never ``file:``, ``gopher:`` ...);
- resolves the host once with ``getaddrinfo`` (numeric spellings such as ``2130706433`` or
  ``0177.0.0.1`` are read as the address they are), refuses the request when *any* of the
  addresses is loopback, private, link-local, unique-local, multicast, reserved, shared or
  unspecified (IPv4-mapped IPv6 ``::ffff:127.0.0.1`` counts as its IPv4 address), unless
  ``allow_private`` (``[collect] allow_private``) is set;
- connects to the address it checked, not to the name (resolving twice would let DNS
  rebinding through), sending the name in ``Host`` and as the TLS server name, so the
  certificate is still verified against the name;
- follows redirects itself, checking each target the same way;
- gives each URL one total deadline, redirects included, however slowly the server
  trickles its headers or body.

Any future fetcher must use this module too. Errors are one line naming the URL.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from .errors import NewsletterError

__all__ = [
    "ALLOW_HINT",
    "NetError",
    "Refused",
    "Reply",
    "TimedOut",
    "address_problem",
    "client",
    "open_url",
    "resolve",
]

ALLOW_HINT = "set [collect] allow_private = true to allow it"

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_SHARED = ipaddress.IPv4Network("100.64.0.0/10")
_UNIQUE_LOCAL = ipaddress.IPv6Network("fc00::/7")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_REDIRECTS = (301, 302, 303, 307, 308)
_PORTS = {"http": 80, "https": 443}


class NetError(NewsletterError):
    """A request that was refused or could not finish; ``str()`` is one line naming the URL."""

    def __init__(self, url: str, reason: str) -> None:
        self.url, self.reason = url, reason
        super().__init__(f"{url}: {reason}")


class Refused(NetError):
    """The URL's scheme or address is not allowed; no connection was made."""


class TimedOut(NetError):
    """The request did not finish within its deadline."""


def address_problem(address: IPAddress) -> str:
    """Why no request may go to ``address`` without ``allow_private`` ("" for a public one)."""
    if isinstance(address, ipaddress.IPv6Address):
        teredo = address.teredo  # (server, client): the client is where it goes
        embedded = (
            address.ipv4_mapped
            or address.sixtofour
            or (teredo[1] if teredo else None)
            or (ipaddress.IPv4Address(int(address) & 0xFFFFFFFF) if address in _NAT64 else None)
        )
        if embedded is not None:
            return address_problem(embedded)
    if address.is_unspecified:
        return "an unspecified address"
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_multicast:
        return "a multicast address"
    if address in _UNIQUE_LOCAL:
        return "a unique-local address"
    if address.is_reserved:
        return "a reserved address"
    if address in _SHARED:
        return "a shared (carrier-grade NAT) address"
    if address.is_private:
        return "a private address"
    if not address.is_global:
        return "not a public address"
    return ""


def _literal(host: str) -> IPAddress | None:
    """The address ``host`` spells, in any form a resolver accepts (decimal, octal, hex)."""
    host = host.removesuffix(".")
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if host and all(c in "0123456789abcdefx." for c in host.lower()) and host[0].isdigit():
        with contextlib.suppress(OSError):
            return ipaddress.IPv4Address(socket.inet_aton(host))
    return None


def resolve(host: str, port: int, *, allow_private: bool = False) -> str:
    """The address to connect to for ``host``, after checking every address it resolves to.

    Raises :class:`Refused` (a reason only; the caller names the URL) or :class:`OSError`
    when the name does not resolve.
    """
    literal = _literal(host)
    if literal is not None:
        addresses: list[IPAddress] = [literal]
    else:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        addresses = [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]
        if not addresses:
            raise socket.gaierror(f"{host}: no address")
    if not allow_private:
        for address in addresses:
            problem = address_problem(address)
            if problem:
                raise Refused("", f"refused: {address} is {problem}; {ALLOW_HINT}")
    return str(addresses[0])


class _Deadline:
    """One total deadline: a watchdog shuts the sockets down when it passes, which wakes a
    read blocked on a server that trickles one byte at a time."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.end = time.monotonic() + seconds
        self.expired = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def __enter__(self) -> _Deadline:
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()

    def remaining(self) -> float:
        left = self.end - time.monotonic()
        if left <= 0:
            self.expired = True
        return left

    def trace(self, event: str, info: Mapping[str, Any]) -> None:
        """httpcore's trace hook: remember each connection's socket (plain, then TLS)."""
        if event not in ("connection.connect_tcp.complete", "connection.start_tls.complete"):
            return
        stream = info.get("return_value")
        sock = stream.get_extra_info("socket") if stream is not None else None
        if isinstance(sock, socket.socket):
            with self._lock:
                self._sockets.append(sock)
                if self.expired:
                    self._shut(sock)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            for sock in self._sockets:
                self._shut(sock)

    @staticmethod
    def _shut(sock: socket.socket) -> None:
        # The plain socket's method, also for an SSLSocket: its own would unset the TLS
        # object under the reading thread's feet.
        with contextlib.suppress(OSError, ValueError):
            socket.socket.shutdown(sock, socket.SHUT_RDWR)


@dataclass
class Reply:
    """The final response of :func:`open_url`, and the URL it came from (by name, not IP)."""

    url: str
    response: httpx.Response
    _deadline: _Deadline

    @property
    def status_code(self) -> int:
        return self.response.status_code

    @property
    def headers(self) -> httpx.Headers:
        return self.response.headers

    def location(self) -> str | None:
        """For a redirect: its target, made absolute against :attr:`url`."""
        target = self.response.headers.get("location")
        if not self.response.is_redirect or target is None:
            return None
        return str(httpx.URL(self.url).join(target))

    def iter_bytes(self) -> Iterator[bytes]:
        """The body, decoded (gzip...); raises :class:`TimedOut` once the deadline passes."""
        for chunk in self.response.iter_bytes():
            if self._deadline.expired or self._deadline.remaining() <= 0:
                raise TimedOut(self.url, f"timed out after {self._deadline.seconds:g} s")
            yield chunk
        if self._deadline.expired:
            # The watchdog closed the socket: a body that ends at the close (no length
            # given) would otherwise look complete.
            raise TimedOut(self.url, f"timed out after {self._deadline.seconds:g} s")


def client(
    *,
    timeout: float = 20.0,
    headers: Mapping[str, str] | None = None,
    transport: httpx.BaseTransport | None = None,
    max_connections: int = 10,
) -> httpx.Client:
    """A client for :func:`open_url`.

    No keep-alive: connections are made to checked IP addresses, and a pooled connection
    set up (and certificate-checked) for one name must never carry a request for another
    name on the same address. No proxies from the environment, so the request goes to
    the address that was checked.
    """
    return httpx.Client(
        timeout=timeout,
        headers=headers,
        transport=transport,
        follow_redirects=False,
        trust_env=False,
        limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=0),
    )


def _target(url: str, allow_private: bool) -> tuple[httpx.URL, str, str]:
    """Check ``url``: the request URL (its host replaced by the checked address), the
    ``Host`` header's value, and the name to verify the TLS certificate against."""
    try:
        parts = urlsplit(url)
        scheme, host = parts.scheme.lower(), parts.hostname or ""
        port = parts.port or _PORTS.get(scheme, 0)
    except ValueError as exc:
        raise NetError(url, f"invalid URL: {exc}") from None
    if scheme not in _PORTS:
        shown = f"{scheme}: URLs" if scheme else "relative URLs"
        raise Refused(url, f"refused: only http(s) URLs can be fetched, not {shown}")
    if not host:
        raise NetError(url, "invalid URL: no host name")
    literal = _literal(host)
    if literal is not None and not allow_private and address_problem(literal):
        # Refused before parsing further: "http://0177.0.0.1/" is a refusal, not a typo.
        resolve(host, port, allow_private=False)
    try:
        parsed = httpx.URL(url)
        name = parsed.raw_host.decode("ascii")
    except (httpx.InvalidURL, ValueError) as exc:  # IDNA errors are ValueErrors
        raise NetError(url, f"invalid URL: {exc}") from None
    address = resolve(name, port, allow_private=allow_private)
    return parsed.copy_with(host=address), parsed.netloc.decode("ascii"), name


@contextlib.contextmanager
def _one_request(
    session: httpx.Client,
    method: str,
    url: str,
    headers: Mapping[str, str],
    allow_private: bool,
    deadline: _Deadline,
) -> Iterator[httpx.Response]:
    try:
        target, host, name = _target(url, allow_private)
    except Refused as exc:
        raise Refused(url, exc.reason) from None
    left = deadline.remaining()
    if left <= 0:
        raise TimedOut(url, f"timed out after {deadline.seconds:g} s")
    extensions: dict[str, Any] = {"trace": deadline.trace}
    if target.scheme == "https":
        # The name, not the IP: SNI, and the certificate is verified against it.
        extensions["sni_hostname"] = name
    request = session.build_request(
        method,
        target,
        headers={**headers, "Host": host},
        timeout=httpx.Timeout(min(left, deadline.seconds)),
        extensions=extensions,
    )
    response = session.send(request, stream=True)
    try:
        yield response
    finally:
        response.close()


@contextlib.contextmanager
def open_url(
    url: str,
    *,
    method: str = "GET",
    headers: Mapping[str, str] | None = None,
    allow_private: bool = False,
    timeout: float = 20.0,
    follow_redirects: bool = True,
    max_redirects: int = 5,
    session: httpx.Client | None = None,
) -> Iterator[Reply]:
    """Request ``url`` through the guard and yield the final :class:`Reply` (headers read,
    body streamed on demand).

    Raises :class:`Refused` before any connection to a refused target (the first URL or
    a redirect's), :class:`TimedOut` when ``timeout`` seconds pass (for the whole chain of
    redirects, and while the body streams), :class:`NetError` for too many redirects or
    an invalid URL; other failures are httpx's own exceptions (or OSError for a name
    that does not resolve).
    """
    extra = dict(headers or {})
    with contextlib.ExitStack() as stack:
        deadline = stack.enter_context(_Deadline(timeout))
        if session is None:
            session = stack.enter_context(client(timeout=timeout))
        current = url
        try:
            for hop in range(max_redirects + 2):
                if hop > max_redirects:
                    raise NetError(url, f"more than {max_redirects} redirects")
                response = stack.enter_context(
                    _one_request(session, method, current, extra, allow_private, deadline)
                )
                reply = Reply(current, response, deadline)
                target = reply.location() if follow_redirects else None
                if target is None:
                    break
                response.close()
                if reply.status_code == 303 and method != "HEAD":
                    method = "GET"
                current = target
            yield reply
        except NetError as exc:
            if exc.url != url:
                raise type(exc)(url, f"redirected to {exc.url}: {exc.reason}") from None
            raise
        except (httpx.HTTPError, httpx.StreamError, OSError, ValueError) as exc:
            # After the watchdog shut the socket, any read error is the deadline's doing.
            if deadline.expired or isinstance(exc, httpx.TimeoutException):
                raise TimedOut(url, f"timed out after {timeout:g} s") from None
            raise
