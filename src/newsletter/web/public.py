"""The subscriber-facing routes: unsubscribe, subscribe (double opt-in), the archive.

Every URL here is the one the messages carry (``newsletter.urls``), under the path of
``base_url``. Nothing acts on a bare address: unsubscribing needs a signed token, and a
form that takes an address only mails that address a signed link.
"""

from __future__ import annotations

import logging
from typing import Any

from starlette.background import BackgroundTask
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from .. import ledger, subscribers, throttle, tokens
from ..settings import Settings
from ..store import Store
from ..urls import confirm_url, resubscribe_url, subscribe_url, unsubscribe_url
from .archive import ISSUE_CSP, WEEK, feed_xml, index_entries, issue_page
from .guard import client_ip, csrf_ok
from .pages import Pages

__all__ = ["PublicRoutes"]

log = logging.getLogger("newsletter.web")

#: How long the "resubscribe" button works after unsubscribing.
RESUBSCRIBE_SECONDS = 3600.0
#: The form field that only bots fill in (hidden from people by the stylesheet).
HONEYPOT = "website"
ONE_CLICK = "One-Click"


def mask(email: str) -> str:
    """``ada@example.org`` -> ``a•••@example.org``: enough to recognise, not to harvest."""
    local, _, domain = email.partition("@")
    return f"{local[:1]}\u2022\u2022\u2022@{domain}"


class PublicRoutes:
    """The route handlers over one project's settings and store."""

    def __init__(self, settings: Settings, pages: Pages) -> None:
        self.settings = settings
        self.pages = pages
        self.base = settings.newsletter.base_url
        self.secrets = settings.security.all_secrets()

    def store(self) -> Store:
        # One connection per request: SQLite connections are not shared between threads.
        return Store(self.settings.store_path)

    # -- the archive ---------------------------------------------------------------------

    def index(self, request: Request) -> Response:
        with self.store() as store:
            sent = ledger.sent_issues(store)
        entries = index_entries(sent, lambda week: f"{week}/")
        return self.pages.render(request, "archive.html", entries=entries)

    def feed(self, request: Request) -> Response:
        with self.store() as store:
            sent = ledger.sent_issues(store)
        return Response(feed_xml(self.settings, sent), media_type="application/atom+xml")

    def issue(self, request: Request) -> Response:
        week = request.path_params["week"]
        if not WEEK.fullmatch(week):
            return self.pages.not_found(request)
        if not request.url.path.endswith("/"):
            return RedirectResponse(request.url.path + "/", status_code=301)
        with self.store() as store:
            page = issue_page(store, self.settings, week)
        if page is None:
            return self.pages.not_found(request)
        return Response(
            page, media_type="text/html", headers={"content-security-policy": ISSUE_CSP}
        )

    # -- unsubscribe ---------------------------------------------------------------------

    async def unsubscribe(self, request: Request) -> Response:
        token = request.query_params.get("token", "")
        if request.method == "POST":
            form = await _read_form(request)
            if not token:
                return self._mail_unsubscribe_link(request, _field(form, "email"), form)
            if _field(form, "List-Unsubscribe") == ONE_CLICK:
                # RFC 8058: a mail client's one-click POST. No cookie, no CSRF token: the
                # signed token in the URL is the proof.
                return self._one_click(request, token)
            if not csrf_ok(request, _field(form, "csrf"), self.secrets):
                return self.pages.form_expired(request, str(request.url))
            return self._unsubscribe_page(request, token, act=True)
        if not token:
            return self.pages.render(request, "unsubscribe_ask.html", form=True)
        return self._unsubscribe_page(request, token, act=False)

    def _one_click(self, request: Request, token: str) -> Response:
        with self.store() as store:
            try:
                subscribers.unsubscribe_by_token(store, self.secrets, token)
            except subscribers.SubscriberError:
                return self.pages.invalid_link(request)
        return self.pages.render(request, "unsubscribed.html", address="", resubscribe="")

    def _unsubscribe_page(self, request: Request, token: str, act: bool) -> Response:
        with self.store() as store:
            token_id = tokens.verify_token(self.secrets, token)
            found = subscribers.by_token(store, token_id) if token_id else None
            if found is None:
                return self.pages.invalid_link(request)
            if act:
                found = subscribers.unsubscribe_by_token(store, self.secrets, token)
        if found.status == "active":
            # GET changes nothing: link scanners fetch every link in a message.
            return self.pages.render(
                request, "unsubscribe.html", form=True, address=mask(found.email),
                action=unsubscribe_url(self.base, token),
            )  # fmt: skip
        again = tokens.sign_expiring(
            self.secrets[0], "resubscribe", found.token, RESUBSCRIBE_SECONDS
        )
        return self.pages.render(
            request, "unsubscribed.html", form=True, address=mask(found.email),
            resubscribe=resubscribe_url(self.base, again), just_now=act,
        )  # fmt: skip

    def _mail_unsubscribe_link(self, request: Request, email: str, form: Any) -> Response:
        """The generic page: mail the address its own unsubscribe link, if it is on the
        list. The answer is the same either way, and the mail goes after it."""
        if not csrf_ok(request, _field(form, "csrf"), self.secrets):
            return self.pages.form_expired(request, unsubscribe_url(self.base))
        refused = self._limit(request)
        if refused:
            return refused
        task = None
        if not _field(form, HONEYPOT):
            task = BackgroundTask(self._send_unsubscribe_link, email)
        return self.pages.render(request, "check_inbox.html", what="unsubscribe", task=task)

    def _send_unsubscribe_link(self, email: str) -> None:
        try:
            address = subscribers.normalise_email(email)
        except ValueError:
            return
        with self.store() as store:
            found = subscribers.get(store, address)
            if found is None or found.status != "active":
                return
            if not self._address_allowed(store, found.email):
                return
        link = unsubscribe_url(self.base, tokens.sign_token(self.secrets[0], found.token))
        self.pages.send_mail(found.email, "unsubscribe", link=link)

    # -- resubscribe ---------------------------------------------------------------------

    async def resubscribe(self, request: Request) -> Response:
        token = request.query_params.get("token", "")
        checked = tokens.verify_expiring(self.secrets, "resubscribe", token)
        if checked is None:
            return self.pages.invalid_link(request)
        if checked.expired():
            return self.pages.expired_link(request)
        with self.store() as store:
            found = subscribers.by_token(store, checked.payload)
            if found is None:
                return self.pages.invalid_link(request)
            if request.method == "POST":
                form = await _read_form(request)
                if not csrf_ok(request, _field(form, "csrf"), self.secrets):
                    return self.pages.form_expired(request, str(request.url))
                ip = client_ip(request, self.settings.web.trusted_proxies)
                found = subscribers.confirm(store, found.email, found.name, ip, "resubscribe")
                return self.pages.render(request, "subscribed.html", address=mask(found.email))
        return self.pages.render(
            request, "resubscribe.html", form=True, address=mask(found.email),
            action=resubscribe_url(self.base, token),
        )  # fmt: skip

    # -- subscribe (double opt-in) -------------------------------------------------------

    async def subscribe(self, request: Request) -> Response:
        if request.method == "GET":
            # Prefilled from an organisation's own form (method=get): nothing happens
            # until the person presses our button, which carries our CSRF token.
            query = request.query_params
            return self.pages.render(
                request, "subscribe.html", form=True,
                email=query.get("email", "")[:320], name=query.get("name", "")[:200],
            )  # fmt: skip
        form = await _read_form(request)
        email, name = _field(form, "email").strip(), " ".join(_field(form, "name").split())
        if not csrf_ok(request, _field(form, "csrf"), self.secrets):
            return self.pages.form_expired(request, subscribe_url(self.base))
        try:
            address = subscribers.normalise_email(email)
        except ValueError:
            return self.pages.render(
                request, "subscribe.html", status_code=400, form=True, email=email[:320],
                name=name[:200], error="That does not look like an email address.",
            )  # fmt: skip
        if len(name) > subscribers.NAME_MAX:
            name = ""
        refused = self._limit(request)
        if refused:
            return refused
        task = None
        if not _field(form, HONEYPOT):
            task = BackgroundTask(self._send_confirmation, address, name)
        # The same answer for a new, pending, active or unsubscribed address.
        return self.pages.render(request, "check_inbox.html", what="subscribe", task=task)

    def _send_confirmation(self, address: str, name: str) -> None:
        with self.store() as store:
            if not self._address_allowed(store, address):
                return
        hours = self.settings.subscribe.confirm_hours
        token = tokens.sign_expiring(
            self.secrets[0], "confirm", tokens.encode_payload({"e": address, "n": name}),
            hours * 3600,
        )  # fmt: skip
        self.pages.send_mail(address, "confirm", link=confirm_url(self.base, token), hours=hours)

    async def confirm(self, request: Request) -> Response:
        token = request.query_params.get("token", "")
        checked = tokens.verify_expiring(self.secrets, "confirm", token)
        data = tokens.decode_payload(checked.payload) if checked else None
        if checked is None or data is None or "e" not in data:
            return self.pages.invalid_link(request)
        if checked.expired():
            return self.pages.expired_link(request)
        if request.method == "POST":
            form = await _read_form(request)
            if not csrf_ok(request, _field(form, "csrf"), self.secrets):
                return self.pages.form_expired(request, str(request.url))
            ip = client_ip(request, self.settings.web.trusted_proxies)
            with self.store() as store:
                try:
                    found = subscribers.confirm(store, data["e"], data.get("n", ""), ip, "web")
                except subscribers.SubscriberError:
                    return self.pages.invalid_link(request)
            return self.pages.render(request, "subscribed.html", address=mask(found.email))
        # GET changes nothing: the button confirms (scanners follow links, not buttons).
        return self.pages.render(
            request, "confirm.html", form=True, address=mask(data["e"]),
            action=confirm_url(self.base, token),
        )  # fmt: skip

    # -- limits --------------------------------------------------------------------------

    def _limit(self, request: Request) -> Response | None:
        """Per client address: too many posts get a 429 (that says nothing about the list)."""
        limits = self.settings.subscribe
        ip = client_ip(request, self.settings.web.trusted_proxies)
        with self.store() as store:
            if not throttle.allow(store, f"ip:{ip}", limits.per_ip_per_hour, 3600):
                return self.pages.render(request, "too_many.html", status_code=429)
        return None

    def _address_allowed(self, store: Store, address: str) -> bool:
        """Per address, checked when the mail is due: over the limit, no mail, same answer
        (so the form cannot be used to flood someone's inbox, nor to learn anything)."""
        limit = self.settings.subscribe.per_address_per_day
        return throttle.allow(store, f"address:{address.lower()}", limit, 24 * 3600)


async def _read_form(request: Request) -> FormData:
    """The posted fields. Our forms upload no files: a file part is closed at once (its
    temporary file would otherwise stay open until garbage collection) and reads as ""."""
    form = await request.form()
    await form.close()
    return form


def _field(form: Any, name: str) -> str:
    value = form.get(name, "")
    return value if isinstance(value, str) else ""
