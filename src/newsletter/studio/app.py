"""The studio's ASGI app: its routes, sign-in, and the guard every request passes.

``create_app(settings)`` builds it for one project; ``newsletter.studio.app:app`` builds it
from ``$NEWSLETTER_CONFIG`` for any ASGI server. It serves none of the public routes:
deploy it apart from ``newsletter serve`` (another port, or another host), reachable by
staff only.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from .. import audit
from ..settings import Settings, load_settings
from ..web import _WeekConvertor  # noqa: F401  (registers the isoweek convertor)
from ..web.guard import Guard
from . import accounts
from .base import (
    CSP,
    CSRF_COOKIE,
    SESSION_COOKIE,
    Form,
    Staff,
    Studio,
    field,
    is_loopback,
    read_form,
    redirect,
)
from .history import ReportRoutes
from .people import PeopleRoutes
from .sending import SendRoutes
from .week import WeekRoutes

__all__ = ["create_app"]

log = logging.getLogger("newsletter.studio")
STATIC = Path(__file__).resolve().parent / "static"
#: A CSV import is the biggest thing the studio takes (on its own path only).
MAX_UPLOAD_BODY = 9 * 1024 * 1024
#: Every other form: an intro of 5,000 characters of any script, percent-encoded.
MAX_FORM_BODY = 64 * 1024


class _ProjectFiles(StaticFiles):
    """The project's static folder (the preview's images), minus hidden files."""

    def get_path(self, scope: Scope) -> str:
        path = str(super().get_path(scope))
        if any(part.startswith(".") for part in Path(path).parts):
            raise HTTPException(status_code=404)
        return path


class _LoopbackHostOnly:
    """Refuse a request whose Host header names anything but this computer (400)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            host = Headers(scope=scope).get("host", "").lower()
            # "[::1]:8001" keeps its brackets; "localhost:8001" and "127.0.0.1" lose the port.
            name = host.partition("]")[0] + "]" if host.startswith("[") else host.partition(":")[0]
            if name != "localhost" and not is_loopback(name.strip("[]")):
                await PlainTextResponse("Invalid host header\n", status_code=400)(
                    scope, receive, send
                )
                return
        await self.app(scope, receive, send)


def _safe_next(target: str) -> str:
    # Only a path on this site: never //evil.example or https://evil.example.
    parts = urlsplit(target)
    if (
        parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//")
        or "\\" in target
    ):  # fmt: skip
        return "/"
    return target


def create_app(settings: Settings) -> Starlette:
    studio = Studio(settings)
    week = WeekRoutes(studio)
    sending = SendRoutes(studio, week)
    people = PeopleRoutes(studio)
    reports = ReportRoutes(studio)

    async def login(request: Request) -> Response:
        target = _safe_next(request.query_params.get("next", "/"))
        if settings.studio.auth == "none":
            return redirect(target)
        if request.method == "GET":
            return studio.render(request, "login.html", title="Sign in", next=target)
        form = await read_form(request)
        from ..web.guard import csrf_ok

        if not csrf_ok(request, field(form, "csrf"), studio.secrets, CSRF_COOKIE):
            return studio.render(
                request, "login.html", status_code=403, title="Sign in", next=target,
                error="The form had expired. Please sign in again.",
            )  # fmt: skip
        name = field(form, "name").strip()[:64]
        client = studio.client(request)

        def sign_in() -> tuple[accounts.Staff | None, str]:
            # scrypt takes ~50 ms: off the event loop, like every handler's work; one at a
            # time, so parallel guesses cannot all pass the count before any is recorded.
            with studio.login_lock, studio.store() as store:
                found = accounts.login(
                    store, name, field(form, "password"), client, settings.studio.logins_per_hour
                )
                if found is None:
                    return None, ""
                audit.record(store, found.name, "login", client)
                return found, accounts.new_session(store, found, settings.studio.session_hours)

        try:
            found, token = await run_in_threadpool(sign_in)
        except accounts.LoginRefused:
            return studio.render(
                request, "login.html", status_code=429, title="Sign in", next=target, name=name,
                error="Too many failed sign-ins. Wait an hour, or ask an admin.",
            )  # fmt: skip
        if not found:
            return studio.render(
                request, "login.html", status_code=401, title="Sign in", next=target, name=name,
                error="That name and password do not match.",
            )  # fmt: skip
        response = redirect(_safe_next(field(form, "next") or target))
        response.set_cookie(
            SESSION_COOKIE, token, max_age=int(settings.studio.session_hours * 3600),
            path="/", httponly=True, samesite="lax", secure=studio.secure(request),
        )  # fmt: skip
        return response

    @studio.route("view")
    def logout(request: Request, user: Staff, form: Form) -> Response:
        token = request.cookies.get(SESSION_COOKIE, "")
        with studio.store() as store:
            accounts.end_session(store, token)
            audit.record(store, user.name, "logout")
        response = redirect("/login")
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    async def stylesheet(request: Request) -> Response:
        return FileResponse(STATIC / "studio.css", headers={"cache-control": "max-age=300"})

    async def script(request: Request) -> Response:
        return FileResponse(STATIC / "studio.js", headers={"cache-control": "max-age=300"})

    view, compose, approve = studio.route("view"), studio.route("compose"), studio.route("approve")
    send, people_ = studio.route("send"), studio.route("subscribers")
    upload = studio.route("subscribers", form=True)
    routes: list[Route | Mount] = [
        Route("/login", login, methods=["GET", "POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/_/studio.css", stylesheet),
        Route("/_/studio.js", script),
        Route("/", view(week.home)),
        Route("/week/{week:isoweek}", view(week.show)),
        Route("/week/{week:isoweek}/edit", compose(week.edit), methods=["POST"]),
        Route("/week/{week:isoweek}/draft", compose(week.draft), methods=["POST"]),
        Route("/week/{week:isoweek}/collect", compose(week.collect), methods=["POST"]),
        Route("/week/{week:isoweek}/collect.json", view(week.collect_status)),
        Route("/week/{week:isoweek}/approve", approve(week.approve), methods=["POST"]),
        Route("/week/{week:isoweek}/preview", view(week.preview)),
        Route("/week/{week:isoweek}/test", compose(sending.test), methods=["POST"]),
        Route("/week/{week:isoweek}/send", send(sending.confirm)),
        Route("/week/{week:isoweek}/send", send(sending.send), methods=["POST"]),
        Route("/week/{week:isoweek}/progress", view(sending.progress)),
        Route("/week/{week:isoweek}/progress.json", view(sending.progress)),
        Route("/reports", view(reports.index)),
        Route("/reports/{week:isoweek}", view(reports.issue)),
        Route("/subscribers", people_(people.subscribers)),
        Route("/subscribers/add", people_(people.add), methods=["POST"]),
        Route("/subscribers/import", upload(people.import_csv), methods=["POST"]),
        Route("/subscribers/export", people_(people.export)),
        Route("/subscribers/{id:int}/unsubscribe", people_(people.unsubscribe), methods=["POST"]),
        # It names subscribers (who was added, removed): for those who manage them.
        Route("/audit", people_(people.audit)),
        Route("/staff", studio.route("accounts")(people.staff)),
        Route("/staff", studio.route("accounts")(people.staff_change), methods=["POST"]),
    ]
    if settings.static_dir.is_dir():
        routes.append(Mount("/files", app=_ProjectFiles(directory=settings.static_dir)))

    async def http_error(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        titles = {404: "Page not found", 405: "Method not allowed", 400: "Bad request"}
        return studio.error(request, status, titles.get(status, "Something went wrong"),
                            "Go back to the week page and try again.")  # fmt: skip

    handlers: dict[Any, Any] = {HTTPException: http_error, 500: http_error}

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        studio.jobs.stop.clear()  # a server started again on the same app sends again
        yield
        # A send in progress finishes its messages in flight and releases its lease.
        await run_in_threadpool(studio.jobs.shutdown)

    app = Starlette(routes=routes, exception_handlers=handlers, lifespan=lifespan)
    if settings.studio.auth == "none":
        # No sign-in: only a browser that asked for this computer by name gets in, so
        # that a web page cannot reach it by pointing its own name at 127.0.0.1.
        app.add_middleware(_LoopbackHostOnly)
    # Outermost: its headers go on every answer, the host check's included.
    app.add_middleware(
        Guard, csp=CSP, large={"/subscribers/import": MAX_UPLOAD_BODY}, max_body=MAX_FORM_BODY
    )
    app.state.studio = studio
    if settings.studio.auth == "none":
        log.warning('[studio] auth = "none": anyone who can reach this address is an admin')
    return app


def __getattr__(name: str) -> Any:
    if name == "app":
        return create_app(load_settings(os.environ.get("NEWSLETTER_CONFIG", "config.toml")))
    raise AttributeError(name)
