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

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from ..send.modes import mode_for
from ..settings import Settings, load_settings
from ..urls import base_path
from .guard import Guard
from .pages import Pages
from .public import PublicRoutes

__all__ = ["create_app"]

STATIC = Path(__file__).resolve().parent / "static"


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
    prefix = base_path(settings.newsletter.base_url).rstrip("/")

    def stylesheet(request: Request) -> Response:
        return FileResponse(STATIC / "newsletter.css", headers={"cache-control": "max-age=3600"})

    routes: list[Route | Mount] = [
        Route("/", public.index),
        Route("/feed.xml", public.feed),
        Route("/unsubscribe", public.unsubscribe, methods=["GET", "POST"]),
        Route("/resubscribe", public.resubscribe, methods=["GET", "POST"]),
        Route("/subscribe", public.subscribe, methods=["GET", "POST"]),
        Route("/confirm", public.confirm, methods=["GET", "POST"]),
        Route("/_/newsletter.css", stylesheet),
        Route("/{week}/", public.issue),
        Route("/{week}", public.issue),
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
        title = "Method not allowed" if status == 405 else "Something went wrong"
        return pages.render(request, "error.html", status_code=status, title=title,
                            message="Please try again later.")  # fmt: skip

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
