"""Rendering the public pages and the short mails they send, in the newsletter's style.

Templates are looked up in the project's ``templates/web/`` first, then the built-in ones
beside this module, so an organisation can brand its pages like its emails. Autoescaping
is on for every HTML template.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from jinja2 import ChoiceLoader, Environment, FileSystemLoader, select_autoescape
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from ..errors import NewsletterError
from ..settings import Settings
from ..urls import base_path, feed_url, home_url, subscribe_url, unsubscribe_url
from .guard import add_security_headers, csrf_token, set_csrf_cookie

__all__ = ["BUILTIN", "Pages"]

BUILTIN = Path(__file__).resolve().parent / "templates"
log = logging.getLogger("newsletter.web")

#: Subjects of the mails the pages send; their bodies are templates mail/<kind>.txt.
SUBJECTS = {
    "confirm": "Confirm your subscription to {name}",
    "unsubscribe": "Your unsubscribe link for {name}",
}


class Pages:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        newsletter = settings.newsletter
        self.base = newsletter.base_url
        self.secure = self.base.startswith("https://")
        self.path = base_path(self.base)
        project = settings.templates_dir / "web"
        self.env = Environment(
            loader=ChoiceLoader([FileSystemLoader(str(project)), FileSystemLoader(str(BUILTIN))]),
            autoescape=select_autoescape(["html", "xml"], default_for_string=True),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.globals.update(
            newsletter=newsletter,
            home=self.path,
            stylesheet=f"{self.path}_/newsletter.css",
            subscribe=self.path + "subscribe",
            unsubscribe=self.path + "unsubscribe",
            feed=self.path + "feed.xml",
            urls={
                "home": home_url(self.base),
                "subscribe": subscribe_url(self.base),
                "unsubscribe": unsubscribe_url(self.base),
                "feed": feed_url(self.base),
            },
        )

    def render(
        self,
        request: Request,
        template: str,
        *,
        status_code: int = 200,
        form: bool = False,
        task: BackgroundTask | None = None,
        **context: Any,
    ) -> Response:
        """A page; with ``form``, a CSRF token for its form and the cookie it is bound to."""
        cookie = ""
        if form:
            context["csrf"], cookie = csrf_token(request, self.settings.security.all_secrets()[0])
        body = self.env.get_template(template).render(**context)
        response = HTMLResponse(body, status_code=status_code, background=task)
        if cookie:
            set_csrf_cookie(response, cookie, self.path, self.secure)
        # Pages with a personal token or a form must not be kept by shared caches.
        response.headers["cache-control"] = "no-store"
        add_security_headers(response)  # the 500 page does not pass through Guard
        return response

    def page(self, template: str, **context: Any) -> str:
        """A page as text, outside any request (``newsletter publish``).

        ``context`` wins over the globals, so a caller can set the links every page
        carries (``home``, ``stylesheet``, ``feed``, ``subscribe``, ``unsubscribe``) for
        where the page will live; a page rendered this way has no form.
        """
        return self.env.get_template(template).render(**context)

    def not_found(self, request: Request) -> Response:
        return self.render(request, "error.html", status_code=404, title="Page not found",
                           message="There is no page at this address.")  # fmt: skip

    def invalid_link(self, request: Request) -> Response:
        return self.render(
            request, "error.html", status_code=400, title="This link does not work",
            message="The link is incomplete or was changed. Copy the whole link from the "
            "email, or use the form below.",
        )  # fmt: skip

    def expired_link(self, request: Request) -> Response:
        return self.render(
            request, "error.html", status_code=410, title="This link has expired",
            message="Links like this one work for a limited time. Please ask for a new one.",
        )  # fmt: skip

    def form_expired(self, request: Request, again: str) -> Response:
        return self.render(
            request, "error.html", status_code=400, title="Please try again",
            message="The form had expired, or your browser did not send its cookie. "
            "Go back, reload the page and send it again.", again=again,
        )  # fmt: skip

    def send_mail(self, to: str, kind: str, **context: Any) -> None:
        """Send one of the pages' mails now (they run after the response is sent)."""
        from ..send.notice import send_notice

        text = self.env.get_template(f"mail/{kind}.txt").render(**context)
        subject = SUBJECTS[kind].format(name=self.settings.newsletter.name)
        try:
            send_notice(self.settings, to, subject, text)
        except (NewsletterError, OSError) as exc:
            # The page has answered already; the person can ask again. Never the address.
            log.warning("could not send the %s mail: %s", kind, exc)
