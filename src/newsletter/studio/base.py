"""What every studio route shares: the signed-in staff member, their role, CSRF tokens,
and rendering a page.

A route is wrapped by :meth:`Studio.route` with the action it needs (``view``: any
signed-in member; ``compose``, ``approve``, ``send``, ``subscribers``, ``accounts``: as
their role allows, see :mod:`.accounts`): it runs only for a signed-in
member whose role allows it, and a state-changing request only with a valid CSRF token.
"""

from __future__ import annotations

import datetime as dt
import functools
import inspect
import ipaddress
import logging
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from .. import audit
from ..settings import Settings
from ..store import Store
from ..web.guard import (
    add_security_headers,
    client_ip,
    csrf_ok,
    csrf_token,
    is_trusted,
    set_csrf_cookie,
)
from . import accounts
from .jobs import Jobs
from .preview import Previews

__all__ = ["CSRF_COOKIE", "SESSION_COOKIE", "Form", "Handler", "Staff", "Studio"]

log = logging.getLogger("newsletter.studio")

TEMPLATES = Path(__file__).resolve().parent / "templates"
SESSION_COOKIE = "newsletter_studio"
CSRF_COOKIE = "newsletter_studio_csrf"
#: Pages of the studio: its own script and styles, images from here, previews in frames.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: https:; "
    "frame-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'"
)

Staff = accounts.Staff
#: The posted form a route gets (None for GET).
Form = FormData | None
Handler = Callable[[Request], Awaitable[Response]]
#: A route's work: plain functions run in the thread pool (they read files, the store,
#: build, send a test), so one slow request never holds up the others.
Endpoint = Callable[[Request, Staff, Form], Awaitable[Response] | Response]


def _when(stamp: str) -> str:
    """``2026-12-02T15:42:03+00:00`` -> ``2 Dec 2026, 15:42 UTC`` (as stored, if unreadable)."""
    try:
        moment = dt.datetime.fromisoformat(str(stamp).replace("Z", "+00:00"))
    except ValueError:
        return str(stamp)
    zone = moment.tzname() or ""
    return f"{moment.day} {moment:%b %Y, %H:%M} {'UTC' if zone in ('UTC', 'UTC+00:00') else zone}"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Studio:
    """One project's studio: settings, templates, the preview builder, background jobs."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.secrets = settings.security.all_secrets()
        self.previews = Previews(settings)
        self.jobs = Jobs(settings)
        self.login_lock = threading.Lock()
        self.env = Environment(
            loader=FileSystemLoader(str(TEMPLATES)),
            autoescape=select_autoescape(["html", "xml"], default_for_string=True),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.globals.update(newsletter=settings.newsletter, allowed=accounts.allowed)
        root = f"{settings.root}/"
        # Findings name files under the project: shown from its folder, as the CLI's are.
        self.env.filters.update(when=_when, shorter=lambda where: str(where).replace(root, ""))

    def store(self) -> Store:
        # One connection per request: SQLite connections are not shared between threads.
        return Store(self.settings.store_path)

    # -- who is asking ------------------------------------------------------------------

    def secure(self, request: Request) -> bool:
        """Whether cookies get Secure: configured, else whether the browser used https
        (directly, or as a trusted proxy says in X-Forwarded-Proto)."""
        configured = self.settings.studio.secure_cookies
        if configured is not None:
            return configured
        if request.url.scheme == "https":
            return True
        peer = request.client.host if request.client else ""
        proto = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
        return proto == "https" and is_trusted(peer, self.settings.web.trusted_proxies)

    def user(self, request: Request) -> accounts.Staff | None:
        if self.settings.studio.auth == "none":
            return accounts.NO_AUTH
        token = request.cookies.get(SESSION_COOKIE, "")
        if not token or len(token) > 200:
            return None
        with self.store() as store:
            return accounts.session_user(store, token)

    def client(self, request: Request) -> str:
        return client_ip(request, self.settings.web.trusted_proxies)

    def route(self, action: str, *, form: bool = False) -> Callable[[Endpoint], Handler]:
        """Wrap an endpoint: sign-in, the role's permission, and for POST the CSRF token
        (the form is read here and passed on)."""

        def wrap(endpoint: Endpoint) -> Handler:
            @functools.wraps(endpoint)
            async def handler(request: Request) -> Response:
                refused = self._proxied_without_accounts(request)
                if refused:
                    return refused
                user = await run_in_threadpool(self.user, request)
                if user is None:
                    target = request.url.path + (
                        f"?{request.url.query}" if request.url.query else ""
                    )
                    return RedirectResponse(f"/login?next={quote(target)}", status_code=303)
                if action != "view" and not accounts.allowed(user.role, action):
                    return self.error(
                        request, 403, "Not allowed",
                        f"Your role ({user.role}) cannot {action.replace('-', ' ')}. "
                        "Ask an admin.", user=user,
                    )  # fmt: skip
                data: FormData | None = None
                if request.method == "POST":
                    data = await read_form(request, files=form)
                    if not csrf_ok(request, field(data, "csrf"), self.secrets, CSRF_COOKIE):
                        await data.close()  # an upload's temporary files, unread
                        return self.error(
                            request, 403, "Please try again",
                            "The form had expired, or your browser did not send its cookie. "
                            "Go back, reload the page and try again.", user=user,
                        )  # fmt: skip
                if inspect.iscoroutinefunction(endpoint):
                    result = await endpoint(request, user, data)
                else:
                    result = await run_in_threadpool(endpoint, request, user, data)
                assert isinstance(result, Response)
                return result

            return handler

        return wrap

    def _proxied_without_accounts(self, request: Request) -> Response | None:
        # auth = "none" is one person on their own computer: a request that came through
        # a proxy (or from another machine) is someone else.
        if self.settings.studio.auth != "none":
            return None
        forwarded = "x-forwarded-for" in request.headers or "forwarded" in request.headers
        peer = request.client.host if request.client else ""
        if forwarded or not is_loopback(peer):
            return self.error(
                request, 403, "Accounts required",
                '[studio] auth = "none" serves only this computer; behind a proxy, set '
                'auth = "accounts" and add staff with `newsletter studio user add`.',
            )  # fmt: skip
        return None

    # -- pages ----------------------------------------------------------------------------

    def render(
        self,
        request: Request,
        template: str,
        *,
        status_code: int = 200,
        user: accounts.Staff | None = None,
        headers: dict[str, str] | None = None,
        **context: Any,
    ) -> Response:
        token, cookie = csrf_token(request, self.secrets[0], CSRF_COOKIE)
        context.setdefault("title", "")
        body = self.env.get_template(template).render(
            csrf=token, user=user, auth=self.settings.studio.auth, path=request.url.path,
            **context,
        )  # fmt: skip
        response = HTMLResponse(body, status_code=status_code, headers=headers)
        set_csrf_cookie(response, cookie, "/", self.secure(request), CSRF_COOKIE)
        response.headers["cache-control"] = "no-store"
        # The studio's own policy (its script, the preview frame), not the public pages'.
        response.headers.setdefault("content-security-policy", CSP)
        add_security_headers(response)
        return response

    def error(
        self,
        request: Request,
        status: int,
        title: str,
        message: str,
        user: accounts.Staff | None = None,
    ) -> Response:
        return self.render(
            request, "error.html", status_code=status, user=user, title=title, message=message
        )

    def audit(self, user: accounts.Staff, action: str, what: str = "") -> None:
        with self.store() as store:
            audit.record(store, user.name, action, what)


async def read_form(request: Request, *, files: bool = False) -> FormData:
    """The posted fields. Only a form that uploads (``files``) keeps its file parts."""
    form = await request.form(max_part_size=8 * 1024 * 1024)
    if not files:
        await form.close()
    return form


def field(form: FormData | None, name: str) -> str:
    value = form.get(name, "") if form is not None else ""
    return value if isinstance(value, str) else ""


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)
