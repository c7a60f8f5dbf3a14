"""The public web app (``newsletter serve``): the pages every message links to.

An ASGI app (Starlette). ``create_app(settings)`` builds it for one project;
``newsletter.web:app`` builds it from ``$NEWSLETTER_CONFIG`` (default ``config.toml``),
so that any ASGI server can run it::

    uvicorn newsletter.web:app --no-proxy-headers
    NEWSLETTER_CONFIG=/srv/news/config.toml uvicorn newsletter.web:app --workers 4

Every route sits under the path of ``base_url``, so the URLs written into the messages
resolve here with no rewriting.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.convertors import Convertor, register_url_convertor
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from ..send.modes import mode_for
from ..settings import Settings, load_settings
from ..urls import (
    base_path,
    browser_url,
    confirm_url,
    feed_url,
    home_url,
    resubscribe_url,
    stylesheet_url,
    subscribe_url,
    unsubscribe_url,
)
from .archive import WEEK
from .guard import Guard
from .pages import Pages
from .public import PublicRoutes

__all__ = ["create_app"]

STATIC = Path(__file__).resolve().parent / "static"


class _WeekConvertor(Convertor[str]):
    """``2023-W25`` and nothing else, so other one-segment paths reach the static files."""

    regex = WEEK.pattern

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("isoweek", _WeekConvertor())

#: Titles and messages of the error pages other than 404.
_ERRORS = {
    400: ("This request could not be read", "Go back, reload the page and try again."),
    405: ("Method not allowed", "This address does not accept that kind of request."),
}


class _PublicFiles(StaticFiles):
    """The project's static folder, minus hidden files (``.git``, ``.env``, ``.htaccess``)."""

    def get_path(self, scope: Scope) -> str:
        path = str(super().get_path(scope))
        if any(part.startswith(".") for part in Path(path).parts):
            raise HTTPException(status_code=404)
        return path


def create_app(settings: Settings) -> Starlette:
    """The public app for one project. Refuses settings that could not send its mails."""
    mode_for(settings).check(settings)
    pages = Pages(settings)
    public = PublicRoutes(settings, pages)
    base = settings.newsletter.base_url
    prefix = base_path(base).rstrip("/")

    def route(url: str) -> str:
        # Each path is cut from the URL the messages carry (newsletter.urls): one spelling.
        return urlsplit(url).path[len(prefix) :]

    def stylesheet(request: Request) -> Response:
        return FileResponse(STATIC / "newsletter.css", headers={"cache-control": "max-age=3600"})

    routes: list[Route | Mount] = [
        Route(route(home_url(base)), public.index),
        Route(route(feed_url(base)), public.feed),
        Route(route(unsubscribe_url(base)), public.unsubscribe, methods=["GET", "POST"]),
        Route(route(resubscribe_url(base, "")), public.resubscribe, methods=["GET", "POST"]),
        Route(route(subscribe_url(base)), public.subscribe, methods=["GET", "POST"]),
        Route(route(confirm_url(base, "")), public.confirm, methods=["GET", "POST"]),
        Route(route(stylesheet_url(base)), stylesheet),
        Route(route(browser_url(base, "{week:isoweek}")), public.issue),
        Route(route(browser_url(base, "{week:isoweek}")).rstrip("/"), public.issue),
    ]
    if settings.static_dir.is_dir():
        # Images and whatever else the issues use: static/images/x.png is <base>images/x.png.
        routes.append(Mount("/", app=_PublicFiles(directory=settings.static_dir)))

    async def not_found(request: Request, exc: Exception) -> Response:
        return pages.not_found(request)

    async def http_error(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        if status == 404:
            return pages.not_found(request)
        title, message = _ERRORS.get(status, ("Something went wrong", "Please try again later."))
        return pages.render(request, "error.html", status_code=status, title=title,
                            message=message)  # fmt: skip

    handlers: dict[Any, Any] = {404: not_found, HTTPException: http_error, 500: http_error}
    if prefix:

        def to_base(request: Request) -> Response:
            return RedirectResponse(prefix + "/", status_code=301)

        app = Starlette(
            routes=[Route(prefix, to_base), Mount(prefix, routes=routes)],
            exception_handlers=handlers,
        )
    else:
        app = Starlette(routes=routes, exception_handlers=handlers)
    app.add_middleware(Guard)
    return app


def __getattr__(name: str) -> Any:
    # `newsletter.web:app` for ASGI servers: built on first access, from the environment.
    if name == "app":
        return create_app(load_settings(os.environ.get("NEWSLETTER_CONFIG", "config.toml")))
    raise AttributeError(name)
