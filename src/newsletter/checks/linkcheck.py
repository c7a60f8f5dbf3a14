"""Ask every linked web page whether it answers: broken, redirected or slow links, before sending.

Each URL gets a HEAD request. A HEAD that fails with any 4xx or 5xx is retried once as a GET
(headers only: the body is never read), because many servers and CDNs answer HEAD with 403, 404,
405 or 501 for pages that open fine in a browser; only the GET's answer is reported, so a page is
called broken only when a real visit would fail too. Redirects are not followed: a 3xx is reported
with its target, so the email can link to the final address.

Every request goes through :mod:`newsletter.netguard`: loopback, private and other internal
addresses are refused (unless ``[collect] allow_private``), and each request has one total
deadline.
"""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal

import httpx

from .. import netguard

# No project URL to point at yet; "+URL" is the convention once there is one.
DEFAULT_USER_AGENT = "newsletter-linkcheck/0.1"

Kind = Literal["ok", "broken", "redirected", "slow", "error"]


@dataclass(frozen=True)
class LinkResult:
    url: str
    #: The HTTP status, or None when no reply came (see ``error``).
    status: int | None
    #: For a 3xx: where it points, made absolute.
    location: str | None
    #: Until the response headers of the request that gave ``status`` arrived.
    seconds: float
    #: "" or a one-line reason why there is no reply.
    error: str = ""
    #: Copied from check_links so that ``kind`` can tell slow from ok.
    slow_after: float = 3.0

    @property
    def kind(self) -> Kind:
        if self.status is None:
            return "error"
        if self.status >= 400:
            return "broken"
        if self.seconds > self.slow_after:
            return "slow"
        return "redirected" if 300 <= self.status < 400 else "ok"


def _reason(exc: BaseException, timeout: float) -> str:
    """A one-line reason for a failed request, from the most telling exception in the chain."""
    if isinstance(exc, netguard.NetError):
        return exc.reason
    if isinstance(exc, httpx.TimeoutException):
        return f"timed out after {timeout:g} s"
    chain: list[BaseException] = []
    cause: BaseException | None = exc
    while cause is not None and cause not in chain:
        chain.append(cause)
        cause = cause.__cause__ or cause.__context__
    for cause in chain:
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
        if isinstance(cause, ConnectionResetError):
            return "connection reset by the server"
        if isinstance(cause, socket.gaierror):
            return "name not resolved"
        if isinstance(cause, ssl.SSLCertVerificationError):
            return f"TLS certificate not valid: {cause.verify_message}"
        if isinstance(cause, ssl.SSLError):
            return f"TLS error: {cause.reason or cause}"
    message = " ".join(str(exc).split()) or type(exc).__name__
    if isinstance(exc, httpx.RemoteProtocolError):
        return f"invalid HTTP reply: {message}"
    return message


def _invalid(url: str) -> str:
    """Why ``url`` cannot be requested, or "" if it can."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, ValueError) as exc:  # IDNA errors are ValueErrors
        return f"invalid URL: {exc}"
    if parsed.scheme not in ("http", "https"):
        return f"unsupported scheme {parsed.scheme!r}" if parsed.scheme else "not an absolute URL"
    if not parsed.host or "%" in parsed.host or any(c.isspace() for c in url.strip()):
        return "invalid URL: no valid host name"
    return ""


@dataclass(frozen=True)
class _Asker:
    session: httpx.Client
    timeout: float
    slow_after: float
    allow_private: bool

    def request(self, method: str, url: str) -> tuple[int, str | None, float]:
        start = time.perf_counter()
        # Streaming returns once the headers are in; leaving the block closes without the body.
        with netguard.open_url(
            url,
            method=method,
            allow_private=self.allow_private,
            timeout=self.timeout,
            follow_redirects=False,
            session=self.session,
        ) as reply:
            return reply.status_code, reply.location(), time.perf_counter() - start


def _check(asker: _Asker, url: str) -> LinkResult:
    timeout, slow_after = asker.timeout, asker.slow_after
    reason = _invalid(url)
    if reason:
        return LinkResult(url, None, None, 0.0, reason, slow_after)
    start = time.perf_counter()
    try:
        head: tuple[int, str | None, float] | None
        try:
            head = asker.request("HEAD", url)
        except httpx.RemoteProtocolError:
            head = None  # some servers hang up on HEAD
        status, location, seconds = head if head and head[0] < 400 else asker.request("GET", url)
    except (
        netguard.NetError, httpx.HTTPError, httpx.InvalidURL, httpx.StreamError, ValueError, OSError
    ) as exc:  # fmt: skip
        return LinkResult(
            url, None, None, time.perf_counter() - start, _reason(exc, timeout), slow_after
        )
    return LinkResult(url, status, location, seconds, "", slow_after)


def check_links(
    urls: Iterable[str],
    *,
    timeout: float = 10.0,
    concurrency: int = 8,
    slow_after: float = 3.0,
    user_agent: str = DEFAULT_USER_AGENT,
    allow_private: bool = False,
) -> list[LinkResult]:
    """One result per distinct URL, in the order they first appear; never raises for a bad URL.

    ``timeout`` bounds each request as a whole. Links to loopback, private and other
    internal addresses are errors ("refused: ...") and no request is made, unless
    ``allow_private`` (``[collect] allow_private``).
    """
    unique = list(dict.fromkeys(urls))
    if not unique:
        return []
    with (
        netguard.client(
            timeout=timeout, headers={"User-Agent": user_agent}, max_connections=concurrency
        ) as session,
        ThreadPoolExecutor(max_workers=concurrency) as pool,
    ):
        asker = _Asker(session, timeout, slow_after, allow_private)
        return list(pool.map(lambda url: _check(asker, url), unique))
