"""What every public request passes through: size and time limits, security headers,
the client's address, and CSRF tokens for our own forms.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import secrets
from collections.abc import Sequence

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = [
    "CSRF_COOKIE",
    "Guard",
    "add_security_headers",
    "client_ip",
    "csrf_ok",
    "csrf_token",
    "is_trusted",
    "set_csrf_cookie",
]

#: Our forms are a few short fields; anything bigger is not for us.
MAX_BODY = 16 * 1024
#: A client gets this long to send its whole body (slow-loris bodies are cut off).
BODY_SECONDS = 10.0
#: The slowest upload a large body (``Guard``'s ``large``) is given time for.
BODY_BYTES_PER_SECOND = 128 * 1024

#: Pages of our own: scripts none at all, styles and images from here (issue pages set theirs).
CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
]

CSRF_COOKIE = "newsletter_csrf"


def add_security_headers(response: Response) -> None:
    """The security headers on one response, where it does not set its own.

    The pages call this themselves, because Starlette's 500 page is sent by its
    outermost middleware, around :class:`Guard`, and never passes through it.
    """
    for name, value in (*HEADERS, (b"content-security-policy", CSP.encode())):
        response.headers.setdefault(name.decode(), value.decode())


class Guard:
    """ASGI middleware: bounded request bodies (read up front, with a deadline) and the
    security headers on every response, errors included (a 500 page gets them from the
    page itself: see :func:`add_security_headers`)."""

    def __init__(
        self,
        app: ASGIApp,
        csp: str = CSP,
        large: dict[str, int] | None = None,
        max_body: int = MAX_BODY,
    ) -> None:
        # The studio allows its own script and longer forms (``max_body``), and takes a CSV
        # upload on one path (``large``: path -> its limit).
        self.app, self.csp, self.large, self.max_body = app, csp.encode(), large or {}, max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {name.lower() for name, _ in headers}
                headers += [(n, v) for n, v in HEADERS if n not in names]
                if b"content-security-policy" not in names:
                    headers.append((b"content-security-policy", self.csp))
                message = {**message, "headers": headers}
            await send(message)

        if scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send_with_headers)
            return
        # Under a root path (uvicorn --root-path) the path carries it: the route does not.
        path = scope["path"].removeprefix(scope.get("root_path", "")) or "/"
        body = await _read_body(scope, receive, self.large.get(path, self.max_body))
        if isinstance(body, Response):
            await body(scope, receive, send_with_headers)
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()  # only http.disconnect comes after the body
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send_with_headers)


async def _read_body(scope: Scope, receive: Receive, max_body: int) -> bytes | Response:
    """The whole request body, or the response that refuses it (413 too big, 408 too slow)."""
    headers = dict(scope.get("headers", []))
    declared = headers.get(b"content-length", b"")
    too_big = PlainTextResponse("Request too large.\n", status_code=413)
    if declared and (not declared.isdigit() or int(declared) > max_body):
        return too_big
    chunks: list[bytes] = []
    size = 0
    try:
        # A big upload gets time in step with its size (at least ~1 Mbit/s).
        async with asyncio.timeout(BODY_SECONDS + max_body / BODY_BYTES_PER_SECOND):
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return PlainTextResponse("", status_code=400)
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > max_body:
                    return too_big
                chunks.append(chunk)
                if not message.get("more_body", False):
                    return b"".join(chunks)
    except TimeoutError:
        return PlainTextResponse("Request took too long.\n", status_code=408)


def is_trusted(address: str, trusted: Sequence[str]) -> bool:
    """Whether ``address`` is one of the ``[web] trusted_proxies`` (addresses or networks)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in ipaddress.ip_network(t, strict=False) for t in trusted)


def client_ip(request: Request, trusted: Sequence[str]) -> str:
    """The client's address: the peer, or, when the peer is a trusted proxy, the last
    address in X-Forwarded-For that is not itself a trusted proxy."""
    peer = request.client.host if request.client else ""
    if not trusted or not is_trusted(peer, trusted):
        return peer
    forwarded = ",".join(request.headers.getlist("x-forwarded-for"))
    for hop in reversed([h.strip() for h in forwarded.split(",") if h.strip()]):
        if not is_trusted(hop, trusted):
            try:
                return str(ipaddress.ip_address(hop))
            except ValueError:
                return peer  # a garbled header: believe only the proxy itself
    return peer


def _form_token(secret: str, cookie: str) -> str:
    return hmac.new(secret.encode(), b"csrf:" + cookie.encode(), hashlib.sha256).hexdigest()


def csrf_token(request: Request, secret: str, name: str = CSRF_COOKIE) -> tuple[str, str]:
    """(the token for a form on this page, the cookie value it is bound to).

    Double submit: the cookie is random and SameSite=Strict, the form carries its HMAC.
    Another site can make a browser post our form, but cannot read or set the cookie.
    """
    cookie = request.cookies.get(name, "")
    if not (16 <= len(cookie) <= 64 and cookie.isascii()):
        cookie = secrets.token_urlsafe(24)
    return _form_token(secret, cookie), cookie


def set_csrf_cookie(
    response: Response, cookie: str, path: str, secure: bool, name: str = CSRF_COOKIE
) -> None:
    response.set_cookie(name, cookie, path=path, secure=secure, httponly=True, samesite="strict")


def csrf_ok(
    request: Request, submitted: str, secrets_: Sequence[str], name: str = CSRF_COOKIE
) -> bool:
    """Whether a form's token matches this browser's cookie (any current or previous secret)."""
    cookie = request.cookies.get(name, "")
    if not cookie or not submitted or len(submitted) > 200:
        return False
    matched = [hmac.compare_digest(_form_token(s, cookie), submitted) for s in secrets_]
    return any(matched)
