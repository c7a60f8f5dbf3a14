"""The public app (``newsletter serve``), route by route, through Starlette's TestClient.

Every test starts from a "sent project": the sample project (the ``project`` fixture)
with three subscribers, to whom the sample issue went out in capture mode through the
library, so there is a sent issue in the ledger and real List-Unsubscribe URLs in the
captured Maildir. The mails the pages send (confirmation, unsubscribe link) land in the
same Maildir, through the real local SMTP server, and are read back from there.

Nothing here is timed: expiry is tested by moving the tokens module's clock.
"""

from __future__ import annotations

import email
import html
import mailbox
import re
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import default
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import feedparser
import pytest
from pydantic import SecretStr
from starlette.requests import Request
from starlette.testclient import TestClient

from newsletter import ledger, open_issue, subscribers, tokens
from newsletter.send import send_issue
from newsletter.settings import SAMPLE_SECRET, Settings, load_settings
from newsletter.store import Store
from newsletter.web import create_app
from newsletter.web.guard import CSRF_COOKIE, client_ip
from newsletter.web.public import RESUBSCRIBE_SECONDS
from tests.bad_input_project import run_cli

WEEK = "2023-W25"
ISSUE = Path("issues") / f"{WEEK}.toml"
#: A later week whose issue file exists (and is even built) but never went out.
DRAFT_WEEK = "2023-W26"
ORIGIN = "https://newsletter.example.org"
PEOPLE = [
    ("ada@example.org", "Ada Lovelace"),
    ("bob@example.net", "Bob Stone"),
    ("chen@example.com", ""),
]
#: The client address TestClient reports as the peer, unless a test says otherwise.
PEER = ("203.0.113.9", 50000)
FORM = {"content-type": "application/x-www-form-urlencoded"}
ONE_CLICK = b"List-Unsubscribe=One-Click"
SUBJECT = "Montenegro's role in the Balkans, and DIANA goes live"
CONFIRM_SUBJECT = "Confirm your subscription to NATO Newsroom Weekly"
UNSUBSCRIBE_SUBJECT = "Your unsubscribe link for NATO Newsroom Weekly"


# -- a sent project ---------------------------------------------------------------------------


def updated(settings: Settings, **sections: dict[str, Any]) -> Settings:
    """``settings`` with some keys of some sections replaced: ``updated(s, web={...})``."""
    changes = {
        name: getattr(settings, name).model_copy(update=values) for name, values in sections.items()
    }
    return settings.model_copy(update=changes)


def send_sample(settings: Settings, project: Path, issue: Path = ISSUE) -> None:
    report = send_issue(open_issue(project / issue, settings), settings)
    assert report.ok and report.remaining == 0, report


def write_draft(project: Path, week: str = DRAFT_WEEK) -> Path:
    """Another week's issue file: the sample with its week (and date) moved on."""
    text = (project / ISSUE).read_text(encoding="utf-8")
    text = text.replace(f'week = "{WEEK}"', f'week = "{week}"', 1)
    text = text.replace("date = 2023-06-23", "date = 2023-06-30", 1)
    path = project / "issues" / f"{week}.toml"
    path.write_text(text, encoding="utf-8")
    return path.relative_to(project)


@dataclass
class Site:
    """A project whose sample issue went to ``PEOPLE``, and the app over it."""

    project: Path
    settings: Settings

    def client(
        self, settings: Settings | None = None, peer: tuple[str, int] = PEER, **kwargs: Any
    ) -> TestClient:
        app = create_app(settings or self.settings)
        origin = (settings or self.settings).newsletter.base_url.split("/", 3)
        return TestClient(app, base_url="/".join(origin[:3]), client=peer, **kwargs)

    def messages(self) -> list[EmailMessage]:
        """Every message in the capture Maildir, issues and notices alike."""
        maildir = self.settings.path(self.settings.smtp.capture_dir)
        if not maildir.is_dir():
            return []
        return [parse(bytes(m)) for m in mailbox.Maildir(maildir, create=False)]

    def notices(self, subject: str, to: str | None = None) -> list[EmailMessage]:
        """The pages' mails with this subject (to one address, if given)."""
        found = [m for m in self.messages() if m["Subject"] == subject]
        return [m for m in found if to is None or m["To"] == to]

    def links(self) -> dict[str, str]:
        """Each subscriber's List-Unsubscribe URL, as the issue carried it."""
        found = {}
        for message in self.messages():
            if message["List-Unsubscribe"]:
                found[message["To"].addresses[0].addr_spec] = re.findall(
                    r"<(https?://[^>]+)>", str(message["List-Unsubscribe"])
                )[0]
        return found

    def get(self, address: str) -> subscribers.Subscriber | None:
        with Store(self.settings.store_path) as store:
            return subscribers.get(store, address)

    def status(self, address: str) -> str:
        found = self.get(address)
        return found.status if found else "absent"

    def table(self) -> list[tuple[Any, ...]]:
        """The subscribers table, every column: "the store unchanged" for the list."""
        return subscriber_rows(self.settings.store_path)


def subscriber_rows(path: Path) -> list[tuple[Any, ...]]:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return [tuple(row) for row in db.execute("SELECT * FROM subscribers ORDER BY id")]
    finally:
        db.close()


def make_sent_site(project: Path, settings: Settings | None = None) -> Site:
    """Subscribe ``PEOPLE`` and send them the sample issue in capture mode."""
    settings = settings or load_settings(project / "config.toml")
    with Store(settings.store_path) as store:
        for address, name in PEOPLE:
            subscribers.add(store, address, name)
    send_sample(settings, project)
    return Site(project, settings)


@pytest.fixture
def site(project: Path) -> Site:
    return make_sent_site(project)


@pytest.fixture
def web(site: Site) -> Iterator[TestClient]:
    with site.client() as client:
        yield client


# -- reading pages and mails ------------------------------------------------------------------


def parse(data: bytes) -> EmailMessage:
    message = email.message_from_bytes(data, policy=default)
    assert isinstance(message, EmailMessage)
    return message


def text_of(message: EmailMessage) -> str:
    part = message.get_body(("plain",))
    assert part is not None
    return str(part.get_content())


def link_in(message: EmailMessage, path: str) -> str:
    """The one URL in a notice's text that goes to ``path`` (``confirm``, ``unsubscribe``)."""
    found = re.findall(r"https?://\S+/" + path + r"\?token=\S+", text_of(message))
    assert len(found) == 1, text_of(message)
    return str(found[0])


def csrf_from(response: Any) -> str:
    """The CSRF token in a page's form (the cookie it is bound to is in the client)."""
    found = re.findall(r'name="csrf" value="([^"]*)"', response.text)
    assert len(found) == 1, response.text
    return str(found[0])


def form_action(response: Any) -> str:
    found = re.findall(r'<form method="post" action="([^"]*)"', response.text)
    assert len(found) == 1, response.text
    return html.unescape(found[0])


def without_csrf(page: str) -> str:
    return re.sub(r'name="csrf" value="[^"]*"', 'name="csrf" value=""', page)


def later(monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
    """Move the clock the tokens are checked against ``seconds`` ahead."""
    now = time.time() + seconds
    monkeypatch.setattr(tokens, "time", SimpleNamespace(time=lambda: now))


def token_of(url: str) -> str:
    return url.partition("?token=")[2]


def altered(token: str) -> str:
    """The same token with one character of its MAC changed."""
    last = token[-2]
    return token[:-2] + ("A" if last != "A" else "B") + token[-1]


def script_sources(csp: str) -> str:
    """What the policy allows for scripts (script-src, or default-src when it is absent)."""
    parts = [part.strip() for part in csp.split(";")]
    directives = {part.split()[0]: part for part in parts if part}
    return directives.get("script-src", directives.get("default-src", ""))


def assert_safe(response: Any) -> None:
    """What every response carries, whatever its status: no traceback, the headers."""
    assert len(response.headers.get_list("content-security-policy")) == 1, response.headers
    csp = response.headers["content-security-policy"]
    scripts = script_sources(csp)
    assert scripts and "'unsafe-inline'" not in scripts and "'unsafe-eval'" not in scripts, csp
    assert "frame-ancestors 'none'" in csp
    assert response.headers.get("x-content-type-options") == "nosniff"
    assert response.headers.get("referrer-policy") == "no-referrer"
    assert "Traceback" not in response.text and 'File "' not in response.text


def one_click(client: TestClient, url: str) -> Any:
    """RFC 8058: what a mail client posts: no cookie, no CSRF token, exactly this body."""
    client.cookies.clear()
    return client.post(url, content=ONE_CLICK, headers=FORM)


# -- one-click unsubscribe (RFC 8058) ---------------------------------------------------------


def test_one_click_post_unsubscribes_with_no_cookie_and_no_csrf(
    site: Site, web: TestClient
) -> None:
    url = site.links()["ada@example.org"]
    assert url.startswith(f"{ORIGIN}/unsubscribe?token=")
    response = one_click(web, url)
    assert response.status_code == 200, response.text
    assert_safe(response)
    assert "You are unsubscribed" in response.text
    assert "ada@example.org" not in response.text
    assert site.status("ada@example.org") == "unsubscribed"
    assert site.status("bob@example.net") == site.status("chen@example.com") == "active"

    again = one_click(web, url)  # mail clients retry: the second one is no error
    assert again.status_code == 200 and site.status("ada@example.org") == "unsubscribed"

    # The next issue goes to everyone but her.
    send_sample(site.settings, site.project, write_draft(site.project))
    issues = Counter(
        m["To"].addresses[0].addr_spec for m in site.messages() if m["List-Unsubscribe"]
    )
    assert issues == {"ada@example.org": 1, "bob@example.net": 2, "chen@example.com": 2}


def test_one_click_as_multipart_works_too(site: Site, web: TestClient) -> None:
    body = (
        b"--b0undary\r\n"
        b'Content-Disposition: form-data; name="List-Unsubscribe"\r\n\r\n'
        b"One-Click\r\n--b0undary--\r\n"
    )
    headers = {"content-type": "multipart/form-data; boundary=b0undary"}
    response = web.post(site.links()["bob@example.net"], content=body, headers=headers)
    assert response.status_code == 200, response.text
    assert site.status("bob@example.net") == "unsubscribed"


def test_a_post_with_another_body_and_no_csrf_changes_nothing(site: Site, web: TestClient) -> None:
    url = site.links()["ada@example.org"]
    for body in (b"", b"List-Unsubscribe=one-click", b"List-Unsubscribe=Yes", b"unsubscribe=1"):
        web.cookies.clear()
        response = web.post(url, content=body, headers=FORM)
        assert response.status_code == 400, (body, response.text)
        assert_safe(response)
        assert "Please try again" in response.text
    assert site.status("ada@example.org") == "active"


# -- the unsubscribe page: GET shows, the form's POST acts ------------------------------------


def test_get_changes_nothing_and_shows_only_the_masked_address(site: Site, web: TestClient) -> None:
    before = site.table()
    url = site.links()["ada@example.org"]
    for _ in range(3):  # a link scanner, a preview, the person
        response = web.get(url)
        assert response.status_code == 200
        assert_safe(response)
        assert "a\u2022\u2022\u2022@example.org" in response.text
        assert "ada@example.org" not in response.text and "Lovelace" not in response.text
        assert response.headers["cache-control"] == "no-store"
    head = web.head(url)
    assert head.status_code == 200
    assert site.table() == before


def test_the_page_form_unsubscribes_and_offers_a_resubscribe_button(
    site: Site, web: TestClient
) -> None:
    url = site.links()["ada@example.org"]
    page = web.get(url)
    assert form_action(page) == url
    cookie = web.cookies.get(CSRF_COOKIE)
    assert cookie and "httponly" in page.headers["set-cookie"].lower()
    assert "samesite=strict" in page.headers["set-cookie"].lower()
    assert "secure" in page.headers["set-cookie"].lower()

    done = web.post(url, data={"csrf": csrf_from(page)})
    assert done.status_code == 200, done.text
    assert_safe(done)
    assert "You are unsubscribed" in done.text and "a\u2022\u2022\u2022@example.org" in done.text
    assert "ada@example.org" not in done.text
    assert site.status("ada@example.org") == "unsubscribed"

    resubscribe = form_action(done)
    assert resubscribe.startswith(f"{ORIGIN}/resubscribe?token=")
    checked = tokens.verify_expiring(
        site.settings.security.all_secrets(), "resubscribe", token_of(resubscribe)
    )
    assert checked is not None
    assert checked.expires <= time.time() + RESUBSCRIBE_SECONDS + 1  # short-lived

    shown = web.get(resubscribe)  # the GET asks; it does not act
    assert shown.status_code == 200 and "a\u2022\u2022\u2022@example.org" in shown.text
    assert site.status("ada@example.org") == "unsubscribed"

    back = web.post(resubscribe, data={"csrf": csrf_from(done)})
    assert back.status_code == 200, back.text
    assert "You are subscribed" in back.text and "ada@example.org" not in back.text
    found = site.get("ada@example.org")
    assert found is not None and found.status == "active"
    assert found.consent_at and found.consent_ip == PEER[0]
    assert found.name == "Ada Lovelace"  # kept


def test_the_page_form_without_its_csrf_token_changes_nothing(site: Site, web: TestClient) -> None:
    url = site.links()["ada@example.org"]
    page = web.get(url)
    attempts = [
        {},  # no token
        {"csrf": "0" * 64},  # a made-up one
        {"csrf": csrf_from(page) + "0"},
    ]
    for data in attempts:
        response = web.post(url, data=data)
        assert response.status_code == 400, response.text
        assert "Please try again" in response.text
    web.cookies.clear()  # the right token, but the cookie it is bound to is gone
    response = web.post(url, data={"csrf": csrf_from(page)})
    assert response.status_code == 400
    # Another browser's cookie and token do not match this one's either.
    with site.client() as other:
        theirs = csrf_from(other.get(url))
    web.get(url)
    assert web.post(url, data={"csrf": theirs}).status_code == 400
    assert site.status("ada@example.org") == "active"


def test_resubscribe_token_expired_is_410_and_altered_is_400(
    site: Site, web: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = site.links()["ada@example.org"]
    done = web.post(url, data={"csrf": csrf_from(web.get(url))})
    resubscribe, csrf = form_action(done), csrf_from(done)
    token = token_of(resubscribe)

    forged = web.post(f"{ORIGIN}/resubscribe?token={altered(token)}", data={"csrf": csrf})
    assert forged.status_code == 400 and "This link does not work" in forged.text
    assert_safe(forged)

    later(monkeypatch, RESUBSCRIBE_SECONDS + 1)
    for response in (web.get(resubscribe), web.post(resubscribe, data={"csrf": csrf})):
        assert response.status_code == 410, response.text
        assert_safe(response)
        assert "This link has expired" in response.text
    assert site.status("ada@example.org") == "unsubscribed"


# -- tokens that are not ours, not for this, or too old ---------------------------------------


def _bad_unsubscribe_tokens(site: Site) -> dict[str, str]:
    found = site.get("ada@example.org")
    assert found is not None
    good = token_of(site.links()["ada@example.org"])
    confirm = tokens.sign_expiring(
        SAMPLE_SECRET, "confirm", tokens.encode_payload({"e": "ada@example.org"}), 3600
    )
    return {
        "forged": "AAAAAAAAAAAAAAAA.BBBBBBBBBBBBBBBBBBBBBBBB",
        "altered": altered(good),
        "other-id": tokens.sign_token(SAMPLE_SECRET, "x" + found.token),
        "foreign-secret": tokens.sign_token("somebody-elses-secret", found.token),
        "confirm-token": confirm,
        "resubscribe-token": tokens.sign_expiring(SAMPLE_SECRET, "resubscribe", found.token, 60),
        "id-only": found.token,
        "mac-only": good.partition(".")[2],
        "empty-id": "." + good.partition(".")[2],
    }


BAD_KINDS = [
    "forged",
    "altered",
    "other-id",
    "foreign-secret",
    "confirm-token",
    "resubscribe-token",
    "id-only",
    "mac-only",
    "empty-id",
]


@pytest.mark.parametrize("kind", BAD_KINDS)
def test_a_bad_unsubscribe_token_gets_a_polite_400_and_changes_nothing(
    site: Site, web: TestClient, kind: str
) -> None:
    token = _bad_unsubscribe_tokens(site)[kind]
    url = f"{ORIGIN}/unsubscribe?token={token}"
    before = site.table()
    page = web.get(url)
    assert page.status_code == 400, page.text
    assert_safe(page)
    assert "This link does not work" in page.text and 'href="/unsubscribe"' in page.text
    assert one_click(web, url).status_code == 400
    csrf = csrf_from(web.get(f"{ORIGIN}/subscribe"))
    assert web.post(url, data={"csrf": csrf}).status_code == 400
    assert site.table() == before


def _bad_confirm_tokens(site: Site) -> dict[str, str]:
    found = site.get("ada@example.org")
    assert found is not None
    payload = tokens.encode_payload({"e": "new@example.org", "n": "New"})
    good = tokens.sign_expiring(SAMPLE_SECRET, "confirm", payload, 3600)
    return {
        "unsubscribe-token": token_of(site.links()["ada@example.org"]),
        "resubscribe-token": tokens.sign_expiring(SAMPLE_SECRET, "resubscribe", payload, 3600),
        "foreign-secret": tokens.sign_expiring("somebody-elses-secret", "confirm", payload, 3600),
        "altered": altered(good),
        "other-payload": tokens.encode_payload({"e": "evil@example.net"}) + good[len(payload) :],
        "later-expiry": good.replace(".", ".9", 1),
        "forged": "eyJlIjoiZXZpbEBleGFtcGxlLm5ldCJ9.9999999999.AAAAAAAAAAAAAAAAAAAAAAAA",
        # Signed by us, but not a payload we make.
        "not-json": tokens.sign_expiring(SAMPLE_SECRET, "confirm", "bm90IGpzb24", 3600),
        "no-address": tokens.sign_expiring(
            SAMPLE_SECRET, "confirm", tokens.encode_payload({"n": "x"}), 3600
        ),
    }


@pytest.mark.parametrize(
    "kind",
    [
        "unsubscribe-token",
        "resubscribe-token",
        "foreign-secret",
        "altered",
        "other-payload",
        "later-expiry",
        "forged",
        "not-json",
        "no-address",
    ],
)
def test_a_bad_confirm_token_gets_a_polite_400_and_adds_nobody(
    site: Site, web: TestClient, kind: str
) -> None:
    url = f"{ORIGIN}/confirm?token={_bad_confirm_tokens(site)[kind]}"
    before = site.table()
    page = web.get(url)
    assert page.status_code == 400, page.text
    assert_safe(page)
    assert "This link does not work" in page.text
    csrf = csrf_from(web.get(f"{ORIGIN}/subscribe"))
    assert web.post(url, data={"csrf": csrf}).status_code == 400
    assert site.table() == before


@pytest.mark.parametrize("path", ["resubscribe", "confirm"])
def test_an_expired_link_is_410(
    site: Site, web: TestClient, path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    found = site.get("ada@example.org")
    assert found is not None
    with Store(site.settings.store_path) as store:
        subscribers.unsubscribe_address(store, "ada@example.org")
    payload = (
        found.token if path == "resubscribe" else tokens.encode_payload({"e": "x@example.org"})
    )
    url = f"{ORIGIN}/{path}?token={tokens.sign_expiring(SAMPLE_SECRET, path, payload, 60)}"
    csrf = csrf_from(web.get(url))  # still good now
    before = site.table()
    later(monkeypatch, 61)
    for response in (web.get(url), web.post(url, data={"csrf": csrf})):
        assert response.status_code == 410, response.text
        assert_safe(response)
        assert "This link has expired" in response.text
    assert site.table() == before


def test_the_link_of_someone_forgotten_is_400(site: Site, web: TestClient) -> None:
    url = site.links()["ada@example.org"]
    with Store(site.settings.store_path) as store:
        assert ledger.forget(store, "ada@example.org")
    before = site.table()
    assert web.get(url).status_code == 400
    assert one_click(web, url).status_code == 400
    assert site.table() == before and site.status("ada@example.org") == "absent"


def test_a_resubscribe_token_for_someone_forgotten_is_400(site: Site, web: TestClient) -> None:
    token = tokens.sign_expiring(SAMPLE_SECRET, "resubscribe", "no-such-token-id", 60)
    response = web.get(f"{ORIGIN}/resubscribe?token={token}")
    assert response.status_code == 400 and "This link does not work" in response.text


def test_a_confirm_or_unsubscribe_token_does_not_resubscribe(site: Site, web: TestClient) -> None:
    found = site.get("ada@example.org")
    assert found is not None
    with Store(site.settings.store_path) as store:
        subscribers.unsubscribe_address(store, "ada@example.org")
    confirm = tokens.sign_expiring(SAMPLE_SECRET, "confirm", found.token, 60)
    for token in (confirm, token_of(site.links()["ada@example.org"])):
        response = web.get(f"{ORIGIN}/resubscribe?token={token}")
        assert response.status_code == 400, token
    assert site.status("ada@example.org") == "unsubscribed"


# -- secret rotation --------------------------------------------------------------------------

NEW_SECRET = "the-rotated-secret-0123456789abcdef"


def test_links_signed_with_a_previous_secret_keep_working(site: Site) -> None:
    rotated = updated(
        site.settings,
        security={"secret": SecretStr(NEW_SECRET), "previous_secrets": [SecretStr(SAMPLE_SECRET)]},
    )
    url = site.links()["ada@example.org"]
    with site.client(rotated) as web:
        page = web.get(url)
        assert page.status_code == 200 and "a\u2022\u2022\u2022@example.org" in page.text
        done = web.post(url, data={"csrf": csrf_from(page)})
        assert done.status_code == 200 and site.status("ada@example.org") == "unsubscribed"
        # The new resubscribe link is signed with the new secret.
        token = token_of(form_action(done))
        assert tokens.verify_expiring(NEW_SECRET, "resubscribe", token)
        assert tokens.verify_expiring(SAMPLE_SECRET, "resubscribe", token) is None
        assert one_click(web, site.links()["bob@example.net"]).status_code == 200
    assert site.status("bob@example.net") == "unsubscribed"


def test_once_the_old_secret_is_dropped_its_links_stop_working(site: Site) -> None:
    dropped = updated(site.settings, security={"secret": SecretStr(NEW_SECRET)})
    before = site.table()
    with site.client(dropped) as web:
        url = site.links()["ada@example.org"]
        assert web.get(url).status_code == 400
        assert one_click(web, url).status_code == 400
    assert site.table() == before


def test_tokens_made_by_sign_token_keep_working(site: Site, web: TestClient) -> None:
    """Old-format links (``<id>.<mac>``, the library's ``sign_token``) still unsubscribe."""
    found = site.get("chen@example.com")
    assert found is not None
    token = tokens.sign_token(SAMPLE_SECRET, found.token)
    assert web.get(f"{ORIGIN}/unsubscribe?token={token}").status_code == 200
    assert one_click(web, f"{ORIGIN}/unsubscribe?token={token}").status_code == 200
    assert site.status("chen@example.com") == "unsubscribed"


# -- subscribe: double opt-in -----------------------------------------------------------------


def subscribe(client: TestClient, address: str, name: str = "", **extra: str) -> Any:
    """Fill in and post the subscribe form, as a browser does (the page first)."""
    page = client.get(f"{ORIGIN}/subscribe")
    return client.post(
        f"{ORIGIN}/subscribe",
        data={"csrf": csrf_from(page), "email": address, "name": name, **extra},
    )


def test_the_subscribe_form_has_a_csrf_token_and_cookie(web: TestClient) -> None:
    page = web.get(f"{ORIGIN}/subscribe")
    assert page.status_code == 200
    assert_safe(page)
    assert len(csrf_from(page)) == 64 and web.cookies.get(CSRF_COOKIE)
    assert 'name="website"' in page.text  # the honeypot
    assert form_action(page) == "/subscribe"


def test_a_prefilled_form_sends_nothing(site: Site, web: TestClient) -> None:
    page = web.get(f"{ORIGIN}/subscribe", params={"email": "new@example.org", "name": "Nu"})
    assert page.status_code == 200 and 'value="new@example.org"' in page.text
    assert not site.notices(CONFIRM_SUBJECT) and site.status("new@example.org") == "absent"


def test_a_post_without_csrf_is_400_and_sends_no_mail(site: Site, web: TestClient) -> None:
    response = web.post(f"{ORIGIN}/subscribe", data={"email": "new@example.org"})
    assert response.status_code == 400
    assert_safe(response)
    assert "Please try again" in response.text
    csrf = csrf_from(web.get(f"{ORIGIN}/subscribe"))
    web.cookies.clear()
    response = web.post(f"{ORIGIN}/subscribe", data={"email": "new@example.org", "csrf": csrf})
    assert response.status_code == 400
    assert not site.notices(CONFIRM_SUBJECT)


def test_the_answer_is_the_same_for_new_active_and_unsubscribed_addresses(
    site: Site, web: TestClient
) -> None:
    with Store(site.settings.store_path) as store:
        subscribers.unsubscribe_address(store, "bob@example.net")
    answers = {}
    for address in ("new@example.org", "ada@example.org", "bob@example.net"):
        response = subscribe(web, address)
        assert response.status_code == 200, response.text
        assert_safe(response)
        answers[address] = without_csrf(response.text)
    assert len(set(answers.values())) == 1, answers
    assert "Check your inbox" in answers["new@example.org"]
    # Each of them gets a confirmation mail; nobody's status moved.
    assert {m["To"] for m in site.notices(CONFIRM_SUBJECT)} == set(answers)
    assert site.status("new@example.org") == "absent"
    assert site.status("bob@example.net") == "unsubscribed"


def test_subscribing_takes_the_confirmation_link_and_its_button(
    site: Site, web: TestClient
) -> None:
    response = subscribe(web, "new@example.org", "  Nu   Person ")
    assert response.status_code == 200
    (mail,) = site.notices(CONFIRM_SUBJECT, to="new@example.org")
    assert mail["Auto-Submitted"] == "auto-generated"
    assert mail["From"] == "NATO Newsroom Weekly <newsletter@example.org>"
    link = link_in(mail, "confirm")
    assert link.startswith(f"{ORIGIN}/confirm?token=")
    assert "48 hours" in text_of(mail)

    page = web.get(link)  # a scanner, or the person: nothing happens yet
    assert page.status_code == 200
    assert_safe(page)
    assert "n\u2022\u2022\u2022@example.org" in page.text and "new@example.org" not in page.text
    assert site.status("new@example.org") == "absent"
    assert form_action(page) == link

    done = web.post(link, data={"csrf": csrf_from(page)})
    assert done.status_code == 200, done.text
    assert "You are subscribed" in done.text
    found = site.get("new@example.org")
    assert found is not None
    assert (found.status, found.name, found.source) == ("active", "Nu Person", "web")
    assert found.consent_at.startswith("20") and found.consent_ip == PEER[0]

    # The consent record is in the export.
    exported = run_cli(site.project, ["subscribers", "export"])
    assert exported.returncode == 0, exported.stderr
    header, *rows = exported.stdout.splitlines()
    assert header.split(",")[-2:] == ["consent_at", "consent_ip"]
    (row,) = [r for r in rows if r.startswith("new@example.org,")]
    assert row.endswith(f",{found.consent_at},{PEER[0]}")
    # Confirming twice is harmless.
    assert web.post(link, data={"csrf": csrf_from(page)}).status_code == 200


def test_an_expired_confirmation_link_does_not_subscribe(
    site: Site, web: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    subscribe(web, "new@example.org")
    (mail,) = site.notices(CONFIRM_SUBJECT)
    link = link_in(mail, "confirm")
    csrf = csrf_from(web.get(link))
    later(monkeypatch, site.settings.subscribe.confirm_hours * 3600 + 1)
    assert web.get(link).status_code == 410
    response = web.post(link, data={"csrf": csrf})
    assert response.status_code == 410 and "This link has expired" in response.text
    assert site.status("new@example.org") == "absent"


def test_the_honeypot_gets_the_same_answer_and_no_mail(site: Site, web: TestClient) -> None:
    person = subscribe(web, "person@example.org")
    bot = subscribe(web, "bot@example.org", website="https://spam.example.net/")
    assert bot.status_code == 200
    assert without_csrf(bot.text) == without_csrf(person.text)
    assert [m["To"] for m in site.notices(CONFIRM_SUBJECT)] == ["person@example.org"]


def test_too_many_posts_from_one_address_get_429(site: Site) -> None:
    settings = updated(site.settings, subscribe={"per_ip_per_hour": 3})
    with site.client(settings) as web:
        for n in range(3):
            assert subscribe(web, f"n{n}@example.org").status_code == 200
        refused = subscribe(web, "n3@example.org")
        assert refused.status_code == 429
        assert_safe(refused)
        assert "Too many requests" in refused.text
        # The generic unsubscribe form counts against the same limit.
        page = web.get(f"{ORIGIN}/unsubscribe")
        asked = web.post(
            f"{ORIGIN}/unsubscribe", data={"csrf": csrf_from(page), "email": "ada@example.org"}
        )
        assert asked.status_code == 429
    with site.client(settings, peer=("198.51.100.20", 1)) as other:
        assert subscribe(other, "n4@example.org").status_code == 200
    assert sorted(m["To"] for m in site.notices(CONFIRM_SUBJECT)) == [
        "n0@example.org", "n1@example.org", "n2@example.org", "n4@example.org"
    ]  # fmt: skip
    assert not site.notices(UNSUBSCRIBE_SUBJECT)


def test_too_many_mails_to_one_address_get_the_same_answer_and_no_more_mail(
    site: Site,
) -> None:
    limit = site.settings.subscribe.per_address_per_day
    answers = set()
    for n in range(limit + 2):
        # From different client addresses: the per-address limit holds on its own.
        with site.client(peer=(f"198.51.100.{n + 1}", 1)) as web:
            address = "Victim@Example.org" if n % 2 else "victim@example.org"
            response = subscribe(web, address)
            assert response.status_code == 200
            answers.add(without_csrf(response.text))
    assert len(answers) == 1
    assert len(site.notices(CONFIRM_SUBJECT)) == limit


def test_an_unsubscribed_person_comes_back_only_through_confirmation(
    site: Site, web: TestClient
) -> None:
    one_click(web, site.links()["bob@example.net"])
    assert site.status("bob@example.net") == "unsubscribed"
    subscribe(web, "bob@example.net", "Robert")
    assert site.status("bob@example.net") == "unsubscribed"  # the form alone does nothing
    (mail,) = site.notices(CONFIRM_SUBJECT, to="bob@example.net")
    link = link_in(mail, "confirm")
    web.get(link)
    assert site.status("bob@example.net") == "unsubscribed"
    done = web.post(link, data={"csrf": csrf_from(web.get(link))})
    assert done.status_code == 200
    found = site.get("bob@example.net")
    assert found is not None and found.status == "active" and found.consent_ip == PEER[0]
    assert found.name == "Bob Stone"  # a known name is not replaced by the form's


def test_line_breaks_in_a_name_reach_no_header(site: Site, web: TestClient) -> None:
    subscribe(web, "eve@example.org", "Eve\r\nBcc: x@evil.example.net\r\nX-Injected: 1")
    (mail,) = site.notices(CONFIRM_SUBJECT)
    assert mail["Bcc"] is None and mail["X-Injected"] is None and mail["To"] == "eve@example.org"
    link = link_in(mail, "confirm")
    assert web.post(link, data={"csrf": csrf_from(web.get(link))}).status_code == 200
    found = site.get("eve@example.org")
    assert found is not None and found.name == "Eve Bcc: x@evil.example.net X-Injected: 1"
    # The next issue addresses her by that one-line name, and nobody else.
    send_sample(site.settings, site.project, write_draft(site.project))
    issues = [m for m in site.messages() if m["List-Unsubscribe"]]
    (issue,) = [m for m in issues if m["To"].addresses[0].addr_spec == "eve@example.org"]
    assert issue["Bcc"] is None and issue["X-Injected"] is None
    assert [a.display_name for a in issue["To"].addresses] == [found.name]


def test_an_invalid_address_is_shown_again_with_the_error(site: Site, web: TestClient) -> None:
    response = subscribe(web, "not an address", "Someone")
    assert response.status_code == 400
    assert_safe(response)
    assert "does not look like an email address" in response.text
    assert 'value="not an address"' in response.text and csrf_from(response)
    assert not site.notices(CONFIRM_SUBJECT)


# -- the generic unsubscribe page -------------------------------------------------------------


def ask_for_link(client: TestClient, address: str) -> Any:
    page = client.get(f"{ORIGIN}/unsubscribe")
    return client.post(f"{ORIGIN}/unsubscribe", data={"csrf": csrf_from(page), "email": address})


def test_the_generic_page_asks_for_an_address(web: TestClient) -> None:
    page = web.get(f"{ORIGIN}/unsubscribe")
    assert page.status_code == 200
    assert_safe(page)
    assert 'name="email"' in page.text and csrf_from(page)


def test_the_generic_page_mails_a_signed_link_and_unsubscribes_nobody(
    site: Site, web: TestClient
) -> None:
    before = site.table()
    known = ask_for_link(web, "ada@example.org")
    assert known.status_code == 200 and "Check your inbox" in known.text
    assert_safe(known)
    answers = {without_csrf(known.text)}
    with Store(site.settings.store_path) as store:
        subscribers.unsubscribe_address(store, "chen@example.com")
    before_chen = site.table()
    for address in ("nobody@example.org", "chen@example.com", "not an address"):
        response = ask_for_link(web, address)
        assert response.status_code == 200
        answers.add(without_csrf(response.text))
    assert len(answers) == 1
    assert site.table() == before_chen
    assert [row for row in before if row[1] != "chen@example.com"] == [
        row for row in before_chen if row[1] != "chen@example.com"
    ]
    (mail,) = site.notices(UNSUBSCRIBE_SUBJECT)  # only the active subscriber's
    assert mail["To"] == "ada@example.org"
    link = link_in(mail, "unsubscribe")
    assert link == site.links()["ada@example.org"]
    assert site.status("ada@example.org") == "active"
    assert one_click(web, link).status_code == 200
    assert site.status("ada@example.org") == "unsubscribed"


def test_the_generic_page_needs_its_csrf_token(site: Site, web: TestClient) -> None:
    response = web.post(f"{ORIGIN}/unsubscribe", data={"email": "ada@example.org"})
    assert response.status_code == 400
    assert not site.notices(UNSUBSCRIBE_SUBJECT)


# -- the client's address ---------------------------------------------------------------------


def request_from(peer: str, *forwarded: str) -> Request:
    headers = [(b"x-forwarded-for", value.encode()) for value in forwarded]
    scope = {"type": "http", "method": "GET", "path": "/", "headers": headers, "client": (peer, 1)}
    return Request(scope)


@pytest.mark.parametrize(
    ("peer", "forwarded", "trusted", "expected"),
    [
        ("203.0.113.9", ["198.51.100.7"], [], "203.0.113.9"),
        ("203.0.113.9", ["198.51.100.7"], ["10.0.0.0/8"], "203.0.113.9"),
        ("10.0.0.1", ["198.51.100.7"], ["10.0.0.0/8"], "198.51.100.7"),
        ("10.0.0.1", ["1.2.3.4, 198.51.100.7, 10.0.0.2"], ["10.0.0.0/8"], "198.51.100.7"),
        ("10.0.0.1", ["1.2.3.4", "198.51.100.7"], ["10.0.0.0/8"], "198.51.100.7"),
        ("10.0.0.1", ["10.0.0.3"], ["10.0.0.0/8"], "10.0.0.1"),
        ("10.0.0.1", [], ["10.0.0.0/8"], "10.0.0.1"),
        ("10.0.0.1", ["not-an-ip"], ["10.0.0.0/8"], "10.0.0.1"),
        ("10.0.0.1", ["198.51.100.7, garbage"], ["10.0.0.0/8"], "10.0.0.1"),
        ("::1", ["2001:db8::7"], ["::1"], "2001:db8::7"),
        ("testclient", ["198.51.100.7"], ["10.0.0.0/8"], "testclient"),
    ],
)
def test_client_ip_believes_forwarded_for_only_from_a_trusted_proxy(
    peer: str, forwarded: list[str], trusted: list[str], expected: str
) -> None:
    assert client_ip(request_from(peer, *forwarded), trusted) == expected


def test_forwarded_for_from_an_untrusted_peer_is_ignored_end_to_end(site: Site) -> None:
    settings = updated(
        site.settings, web={"trusted_proxies": ["10.0.0.0/8"]}, subscribe={"per_ip_per_hour": 2}
    )
    spoofed = {"x-forwarded-for": "198.51.100.7"}
    with site.client(settings, headers=spoofed) as web:  # peer 203.0.113.9: not a proxy
        statuses = [subscribe(web, f"s{n}@example.org").status_code for n in range(2)]
        web.headers["x-forwarded-for"] = "198.51.100.8"  # a new "address" every time
        statuses.append(subscribe(web, "s2@example.org").status_code)
    assert statuses == [200, 200, 429]
    (mail, *_) = site.notices(CONFIRM_SUBJECT, to="s0@example.org")
    with site.client(settings, headers=spoofed) as web:
        link = link_in(mail, "confirm")
        web.post(link, data={"csrf": csrf_from(web.get(link))})
    found = site.get("s0@example.org")
    assert found is not None and found.consent_ip == PEER[0]


def test_forwarded_for_from_a_trusted_proxy_names_the_client(site: Site) -> None:
    settings = updated(site.settings, web={"trusted_proxies": ["10.0.0.0/8"]})
    proxied = {"x-forwarded-for": "198.51.100.7, 10.0.0.2"}
    with site.client(settings, peer=("10.0.0.1", 123), headers=proxied) as web:
        subscribe(web, "p@example.org")
        (mail,) = site.notices(CONFIRM_SUBJECT, to="p@example.org")
        link = link_in(mail, "confirm")
        assert web.post(link, data={"csrf": csrf_from(web.get(link))}).status_code == 200
    found = site.get("p@example.org")
    assert found is not None and found.consent_ip == "198.51.100.7"


# -- the archive ------------------------------------------------------------------------------


@pytest.fixture
def draft_too(site: Site) -> Site:
    """The next week's issue file, built, and its send stopped before anyone got it."""
    from newsletter.render import build_issue

    draft = write_draft(site.project)
    build_issue(open_issue(site.project / draft, site.settings))
    stop = threading.Event()
    stop.set()
    report = send_issue(open_issue(site.project / draft, site.settings), site.settings, stop=stop)
    assert report.sent == 0 and report.remaining == len(PEOPLE), report
    return site


def test_the_index_lists_sent_issues_only(draft_too: Site, web: TestClient) -> None:
    index = web.get(f"{ORIGIN}/")
    assert index.status_code == 200
    assert_safe(index)
    assert SUBJECT in html.unescape(index.text) and f'href="{WEEK}/"' in index.text
    assert DRAFT_WEEK not in index.text
    for path in (f"/{DRAFT_WEEK}/", f"/{DRAFT_WEEK}", "/2023-W24/", "/2023-W99/"):
        response = web.get(ORIGIN + path)
        assert response.status_code == 404, path
        assert_safe(response)


def test_an_issue_page_has_its_own_csp_and_no_personal_data(site: Site, web: TestClient) -> None:
    page = web.get(f"{ORIGIN}/{WEEK}/")
    assert page.status_code == 200
    assert_safe(page)
    assert page.headers["content-type"].startswith("text/html")
    csp = page.headers["content-security-policy"]
    assert "style-src 'unsafe-inline'" in csp and "default-src 'none'" in csp
    assert SUBJECT in html.unescape(page.text)
    for address, name in PEOPLE:
        assert address not in page.text
        for part in name.split():
            assert part not in page.text
    assert "Hello Ada" not in page.text and "token=" not in page.text
    with Store(site.settings.store_path) as store:
        ids = [s.token for s in subscribers.iter_subscribers(store)]
    assert not any(token_id in page.text for token_id in ids)
    # Its images are relative, and served.
    images = re.findall(r'src="(\.\./images/[^"]+)"', page.text)
    assert images
    for src in images:
        image = web.get(f"{ORIGIN}/{WEEK}/{src}")
        assert image.status_code == 200 and image.headers["content-type"] == "image/png"
    redirect = web.get(f"{ORIGIN}/{WEEK}", follow_redirects=False)
    assert redirect.status_code == 301 and redirect.headers["location"] == f"/{WEEK}/"


def test_the_feed_is_valid_atom_of_sent_issues(draft_too: Site, web: TestClient) -> None:
    response = web.get(f"{ORIGIN}/feed.xml")
    assert response.status_code == 200
    assert_safe(response)
    assert response.headers["content-type"].startswith("application/atom+xml")
    feed = feedparser.parse(response.content)
    assert feed.bozo == 0, feed.get("bozo_exception")
    assert [entry.link for entry in feed.entries] == [f"{ORIGIN}/{WEEK}/"]
    assert feed.entries[0].title == SUBJECT
    assert "@" not in response.text.replace("newsletter@", "")


def test_static_images_are_served_and_hidden_files_are_not(site: Site, web: TestClient) -> None:
    static = site.project / "static"
    (static / ".env").write_text("SECRET=leak\n")
    (static / "images" / ".hidden.png").write_bytes(b"leak")
    (static / ".git").mkdir()
    (static / ".git" / "config").write_text("leak\n")
    image = web.get(f"{ORIGIN}/images/{WEEK}-lead.png")
    assert image.status_code == 200
    assert_safe(image)
    assert image.content == (static / "images" / f"{WEEK}-lead.png").read_bytes()
    for path in (
        "/.env",
        "/images/.hidden.png",
        "/.git/config",
        "/images/../.env",
        "/images/%2e%2e/.env",
        "/images/%2e%2e/%2e%2e/config.toml",
        "/images/..%2f..%2fconfig.toml",
        "/%2e%2e/config.toml",
        "/images/%00.png",
        "/images/nothing.png",
    ):
        response = web.get(ORIGIN + path)
        assert response.status_code == 404, path
        assert_safe(response)
        assert "leak" not in response.text and SAMPLE_SECRET not in response.text


def test_an_unknown_path_gets_a_404_page_in_the_newsletter_style(web: TestClient) -> None:
    response = web.get(f"{ORIGIN}/no/such/page")
    assert response.status_code == 404
    assert_safe(response)
    assert "Page not found" in response.text and "NATO Newsroom Weekly" in response.text
    assert '<link rel="stylesheet" href="/_/newsletter.css">' in response.text
    css = web.get(f"{ORIGIN}/_/newsletter.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")


def _one_of_each_status(client: TestClient) -> dict[int, Any]:
    """A response of each status the app gives, but 429 and 500 (tested on their own)."""
    csrf = csrf_from(client.get(f"{ORIGIN}/subscribe"))
    return {
        200: client.get(f"{ORIGIN}/"),
        301: client.get(f"{ORIGIN}/{WEEK}", follow_redirects=False),
        400: client.get(f"{ORIGIN}/unsubscribe?token=nope"),
        404: client.get(f"{ORIGIN}/nope/"),
        405: client.put(f"{ORIGIN}/subscribe"),
        410: client.get(
            f"{ORIGIN}/confirm?token="
            + tokens.sign_expiring(
                SAMPLE_SECRET, "confirm", tokens.encode_payload({"e": "a@b.c"}), -1
            )
        ),
        413: client.post(
            f"{ORIGIN}/subscribe",
            content=b"csrf=" + csrf.encode() + b"&x=" + b"y" * 17_000,
            headers=FORM,
        ),
    }


def test_every_response_carries_the_security_headers_and_no_traceback(
    site: Site, web: TestClient
) -> None:
    examples = _one_of_each_status(web)
    assert {status: r.status_code for status, r in examples.items()} == {s: s for s in examples}
    for response in examples.values():
        assert_safe(response)
    settings = updated(site.settings, subscribe={"per_ip_per_hour": 1})
    with site.client(settings) as limited:
        subscribe(limited, "one@example.org")
        too_many = subscribe(limited, "two@example.org")
    assert too_many.status_code == 429
    assert_safe(too_many)


def test_an_unexpected_error_is_a_styled_500_with_the_headers_and_no_traceback(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(store: Store) -> None:
        raise RuntimeError(f"database exploded at {site.settings.store_path}")

    monkeypatch.setattr(ledger, "sent_issues", broken)
    with site.client(raise_server_exceptions=False) as web:
        response = web.get(f"{ORIGIN}/")
    assert response.status_code == 500
    assert_safe(response)
    assert "Something went wrong" in response.text and "NATO Newsroom Weekly" in response.text
    assert "exploded" not in response.text and str(site.project) not in response.text


def test_a_file_at_the_top_of_static_is_served(site: Site, web: TestClient) -> None:
    logo = site.project / "static" / "logo.png"
    logo.write_bytes((site.project / "static" / "images" / f"{WEEK}-lead.png").read_bytes())
    response = web.get(f"{ORIGIN}/logo.png")
    assert response.status_code == 200 and response.content == logo.read_bytes()


# -- under a base_url path --------------------------------------------------------------------


@pytest.fixture
def weekly(project: Path) -> Site:
    settings = load_settings(project / "config.toml")
    settings = updated(settings, newsletter={"base_url": "https://news.example.org/weekly/"})
    return make_sent_site(project, settings)


def test_routes_sit_under_the_base_url_path(weekly: Site) -> None:
    origin = "https://news.example.org"
    with weekly.client() as web:
        url = weekly.links()["ada@example.org"]
        assert url.startswith(f"{origin}/weekly/unsubscribe?token=")
        index = web.get(f"{origin}/weekly/")
        assert index.status_code == 200 and f'href="{WEEK}/"' in index.text
        assert 'href="/weekly/_/newsletter.css"' in index.text
        redirect = web.get(f"{origin}/weekly", follow_redirects=False)
        assert redirect.status_code in (301, 307, 308)
        assert redirect.headers["location"].endswith("/weekly/")
        for path in ("/", "/unsubscribe", "/subscribe", f"/{WEEK}/", "/feed.xml", "/weeklyx/"):
            response = web.get(origin + path)
            assert response.status_code == 404, path
            assert_safe(response)
        for path in (f"/weekly/{WEEK}/", "/weekly/feed.xml", "/weekly/_/newsletter.css"):
            assert web.get(origin + path).status_code == 200, path
        assert web.get(f"{origin}/weekly/images/{WEEK}-lead.png").status_code == 200

        page = web.get(f"{origin}/weekly/subscribe")
        assert form_action(page) == "/weekly/subscribe"
        assert "path=/weekly/" in page.headers["set-cookie"].lower()
        response = web.post(
            f"{origin}/weekly/subscribe", data={"csrf": csrf_from(page), "email": "w@example.org"}
        )
        assert response.status_code == 200
        (mail,) = weekly.notices(CONFIRM_SUBJECT)
        assert link_in(mail, "confirm").startswith(f"{origin}/weekly/confirm?token=")

        assert web.get(url).status_code == 200
        assert one_click(web, url).status_code == 200
    assert weekly.status("ada@example.org") == "unsubscribed"


# -- bodies too big ---------------------------------------------------------------------------


def test_a_body_over_16_kb_is_413_and_changes_nothing(site: Site, web: TestClient) -> None:
    before = site.table()
    url = site.links()["ada@example.org"]
    padded = ONE_CLICK + b"&pad=" + b"x" * (16 * 1024)
    web.cookies.clear()
    response = web.post(url, content=padded, headers=FORM)
    assert response.status_code == 413
    assert_safe(response)
    csrf = csrf_from(web.get(f"{ORIGIN}/subscribe"))
    big = f"csrf={csrf}&email=new@example.org&name={'n' * 17_000}".encode()
    assert web.post(f"{ORIGIN}/subscribe", content=big, headers=FORM).status_code == 413

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
        yield f"csrf={csrf}&email=new@example.org&name=".encode()
        for _ in range(20):
            yield b"n" * 1024

    assert web.post(f"{ORIGIN}/subscribe", content=chunks(), headers=FORM).status_code == 413
    assert site.table() == before
    assert not site.notices(CONFIRM_SUBJECT)
    # Just under the limit is fine.
    fits = ONE_CLICK + b"&pad=" + b"x" * (16 * 1024 - len(ONE_CLICK) - 5)
    web.cookies.clear()
    assert web.post(url, content=fits, headers=FORM).status_code == 200
