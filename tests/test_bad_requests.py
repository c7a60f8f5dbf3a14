"""The bad-request catalogue: hostile or broken HTTP requests to the public app, one each.

The web twin of tests/test_bad_inputs.py. Each record is one request (method, path,
body, headers) and the status it must get. Every case runs on a fresh copy of a sent
project (tests/test_web.py's "sent project": three subscribers, the sample issue sent
in capture mode) and asserts, whatever the request:

- the expected status, and never a 5xx;
- no traceback in the response ("Traceback", 'File "');
- the security headers (CSP with no inline script, nosniff, Referrer-Policy);
- the subscribers table unchanged, unless the record says the request may change it;
- as many mails as the record says, and none with a header the request injected.

Paths and bodies may name values of the project: ``{token}`` (ada's signed unsubscribe
token, as her List-Unsubscribe URL carries it), ``{confirm}`` (a good confirmation token
for new@example.org) and ``{csrf}`` (a form token; the case then fetches the subscribe
page first, so the client holds the cookie it is bound to).
"""

from __future__ import annotations

import shutil
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from newsletter import tokens
from newsletter.settings import SAMPLE_SECRET, load_settings
from tests.conftest import ROOT, SAMPLE_ISSUE, STATIC
from tests.test_web import (
    ORIGIN,
    WEEK,
    Site,
    assert_safe,
    csrf_from,
    make_sent_site,
    token_of,
)

FORM = {"content-type": "application/x-www-form-urlencoded"}
MULTIPART = {"content-type": "multipart/form-data; boundary=XyZ"}
ONE_CLICK = b"List-Unsubscribe=One-Click"
#: Headers a page's mail may carry; anything else was injected.
NOTICE_HEADERS = {
    "from", "reply-to", "to", "subject", "date", "message-id", "auto-submitted",
    "mime-version", "content-type", "content-transfer-encoding",
    # Added by the capture server, as a final delivery does (RFC 5321 4.4).
    "return-path",
}  # fmt: skip
#: What a request tries to smuggle into a mail or a response; it must appear in neither.
INJECTED = ("evil.example.net", "Bcc", "X-Injected", "x=injected")


@dataclass(frozen=True)
class Bad:
    """One bad request and what it must get."""

    id: str
    method: str
    path: str
    body: bytes | list[bytes] = b""
    headers: dict[str, str] = field(default_factory=dict)
    #: The status it must get (a set when either answer is right, and says why).
    status: int | frozenset[int] = 400
    #: Whether the subscribers table may change (a request that is odd but valid).
    changes: bool = False
    #: How many mails the pages must send for it.
    mails: int = 0
    #: Text the response must not contain (markup it was sent, unescaped).
    hidden: tuple[str, ...] = ()


def part(name: str, value: bytes, extra: str = "") -> bytes:
    """One field of a multipart/form-data body (boundary XyZ)."""
    disposition = f'Content-Disposition: form-data; name="{name}"{extra}'
    return f"--XyZ\r\n{disposition}\r\n\r\n".encode() + value + b"\r\n"


def multipart(*parts: bytes) -> bytes:
    return b"".join(parts) + b"--XyZ--\r\n"


def form(**fields: str) -> bytes:
    """An urlencoded body, the csrf field first (values are sent as given, unencoded)."""
    return "&".join(f"{k}={v}" for k, v in {"csrf": "{csrf}", **fields}.items()).encode()


U = "/unsubscribe?token="
C = "/confirm?token="
GOOD_CONFIRM = f"{C}{{confirm}}"

CASES: list[Bad] = [
    # -- tokens: giant, non-ASCII, NUL, extra dots, repeated ---------------------------------
    Bad("token-giant-get", "GET", U + "A" * 60_000),
    Bad("token-giant-one-click", "POST", U + "A" * 5000 + "." + "B" * 5000, ONE_CLICK, FORM),
    Bad("token-valid-then-giant-tail", "GET", U + "{token}" + "A" * 5000),
    Bad("token-non-ascii", "GET", U + "%C3%A9t%C3%A9.abc"),
    Bad("token-non-ascii-one-click", "POST", U + "%E2%80%AE{token}", ONE_CLICK, FORM),
    Bad("token-nul", "GET", U + "{token}%00"),
    Bad("token-nul-one-click", "POST", U + "%00{token}", ONE_CLICK, FORM),
    Bad("token-extra-dot", "GET", U + "{token}.x"),
    Bad("token-extra-dot-one-click", "POST", U + "{token}.", ONE_CLICK, FORM),
    Bad("token-only-dots", "GET", U + "..."),
    Bad("token-leading-dot", "GET", U + ".{token}"),
    Bad("token-crlf-header-injection", "GET", U + "{token}%0D%0ASet-Cookie:%20x=injected"),
    Bad("token-percent-garbage", "GET", U + "%ZZ%%.%"),
    # Starlette reads the last of repeated parameters: the one that is checked is the one
    # that acts, so a forged one after the real one only gets a 400.
    Bad("token-repeated-forged-last", "POST", U + "{token}&token=AAAA.BBBB", ONE_CLICK, FORM),
    Bad("token-repeated-1000-times", "GET", "/unsubscribe?" + "&".join(["token=A.B"] * 1000)),
    Bad("token-repeated-real-last-get", "GET", U + "AAAA.BBBB&token={token}", status=200),
    # Spaces around a token (a mail client's line wrap) are forgiven; a GET still acts not.
    Bad("token-surrounded-by-spaces", "GET", U + "%20{token}%20", status=200),
    Bad("token-as-array-param", "GET", "/unsubscribe?token[]={token}", status=200),
    Bad("confirm-four-parts", "GET", C + "a.b.c.d"),
    Bad("confirm-giant", "GET", C + "A" * 3000 + ".1.B"),
    Bad("confirm-negative-expiry", "GET", C + "eyJlIjoiYUBiLmMifQ.-1.AAAA"),
    Bad("confirm-13-digit-expiry", "GET", C + "eyJlIjoiYUBiLmMifQ.9999999999999.AAAA"),
    Bad("confirm-arabic-digits", "GET", C + "eyJlIjoiYUBiLmMifQ.%D9%A1%D9%A2.AAAA"),
    Bad("confirm-nul", "GET", C + "{confirm}%00"),
    Bad("confirm-extra-dot", "POST", C + "{confirm}.", form()),
    Bad("confirm-empty", "GET", C),
    Bad("confirm-no-param", "POST", "/confirm", form()),
    Bad("confirm-unsubscribe-token", "POST", C + "{token}", form()),
    Bad("resubscribe-no-param", "GET", "/resubscribe"),
    Bad("resubscribe-confirm-token", "POST", "/resubscribe?token={confirm}", form()),
    Bad("resubscribe-giant", "GET", "/resubscribe?token=" + "9." * 3000),
    # -- form bodies: encodings, shapes, duplicates -----------------------------------------
    Bad(
        "subscribe-non-utf8-address",
        "POST",
        "/subscribe",
        b"csrf={csrf}&email=\xff\xfe@example.org",
        FORM,
    ),
    Bad(
        "subscribe-non-utf8-name",
        "POST",
        "/subscribe",
        b"csrf={csrf}&email=new@example.org&name=\xe9\xff\x00",
        FORM,
        status=200,
        mails=1,
    ),
    Bad(
        "subscribe-percent-encoded-bad-utf8",
        "POST",
        "/subscribe",
        form(email="new%FF@example.org", name="%C3%28"),
        FORM,
    ),
    Bad(
        "subscribe-latin1-charset",
        "POST",
        "/subscribe",
        b"csrf={csrf}&email=new@example.org&name=Zo\xeb",
        {"content-type": "application/x-www-form-urlencoded; charset=latin-1"},
        status=200,
        mails=1,
    ),
    Bad(
        "one-click-non-utf8",
        "POST",
        U + "{token}",
        b"List-Unsubscribe=One-Click\xff",
        FORM,
    ),
    Bad(
        "subscribe-multipart",
        "POST",
        "/subscribe",
        multipart(part("csrf", b"{csrf}"), part("email", b"new@example.org")),
        MULTIPART,
        status=200,
        mails=1,
    ),
    Bad(
        "subscribe-multipart-address-as-file",
        "POST",
        "/subscribe",
        multipart(part("csrf", b"{csrf}"), part("email", b"new@example.org", '; filename="a.txt"')),
        MULTIPART,
    ),
    Bad(
        "subscribe-multipart-no-boundary",
        "POST",
        "/subscribe",
        b"csrf={csrf}",
        {"content-type": "multipart/form-data"},
    ),
    Bad(
        "subscribe-multipart-unterminated",
        "POST",
        "/subscribe",
        b'--XyZ\r\nContent-Disposition: form-data; name="csrf"\r\n\r\n{csrf}',
        MULTIPART,
    ),
    Bad(
        "subscribe-multipart-garbage",
        "POST",
        "/subscribe",
        b"\x00\xff" * 1000,
        MULTIPART,
    ),
    Bad(
        "one-click-multipart-250-fields",
        "POST",
        U + "{token}",
        multipart(*[part("a", b"")] * 250, part("List-Unsubscribe", b"One-Clicks")),
        MULTIPART,
    ),
    Bad(
        "one-click-urlencoded-1001-fields",
        "POST",
        U + "{token}",
        b"a&" * 1001 + ONE_CLICK,
        FORM,
    ),
    Bad(
        "subscribe-json",
        "POST",
        "/subscribe",
        b'{"email": "new@example.org"}',
        {"content-type": "application/json"},
    ),
    Bad(
        "subscribe-text-plain",
        "POST",
        "/subscribe",
        form(email="new@example.org"),
        {"content-type": "text/plain"},
    ),
    Bad("subscribe-no-content-type", "POST", "/subscribe", form(email="new@example.org")),
    Bad(
        "one-click-json",
        "POST",
        U + "{token}",
        b'{"List-Unsubscribe": "One-Click"}',
        {"content-type": "application/json"},
    ),
    Bad(
        "one-click-then-other-value",
        "POST",
        U + "{token}",
        ONE_CLICK + b"&List-Unsubscribe=No",
        FORM,
    ),
    # The last of duplicated fields counts: here that is the one-click value, so it acts.
    Bad(
        "one-click-other-value-first",
        "POST",
        U + "{token}",
        b"List-Unsubscribe=No&" + ONE_CLICK,
        FORM,
        status=200,
        changes=True,
    ),
    Bad(
        "subscribe-duplicated-email",
        "POST",
        "/subscribe",
        form(email="new@example.org") + b"&email=other@example.org",
        FORM,
        status=200,
        mails=1,
    ),
    Bad(
        "subscribe-duplicated-csrf-bad-last",
        "POST",
        "/subscribe",
        form(email="new@example.org") + b"&csrf=" + b"0" * 64,
        FORM,
    ),
    Bad(
        "unsubscribe-ask-duplicated-csrf-bad-last",
        "POST",
        "/unsubscribe",
        form(email="ada@example.org") + b"&csrf=x",
        FORM,
    ),
    # -- line breaks and sizes in the address and name --------------------------------------
    Bad(
        "subscribe-crlf-in-address",
        "POST",
        "/subscribe",
        form(email="new@example.org%0D%0ABcc:%20x@evil.example.net"),
        FORM,
    ),
    Bad(
        "subscribe-lf-in-address",
        "POST",
        "/subscribe",
        form(email="new@example.org%0ABcc:x@evil.example.net"),
        FORM,
    ),
    Bad(
        "subscribe-crlf-in-name",
        "POST",
        "/subscribe",
        form(email="new@example.org", name="Eve%0D%0ABcc:%20x@evil.example.net%0D%0AX-Injected:1"),
        FORM,
        status=200,
        mails=1,
    ),
    Bad(
        "subscribe-address-with-display-name",
        "POST",
        "/subscribe",
        form(email="Eve%20%3Cx@evil.example.net%3E"),
        FORM,
    ),
    Bad(
        "subscribe-two-addresses",
        "POST",
        "/subscribe",
        form(email="new@example.org,%20x@evil.example.net"),
        FORM,
    ),
    Bad("subscribe-nul-in-address", "POST", "/subscribe", form(email="new%00@example.org"), FORM),
    Bad(
        "subscribe-5000-char-name",
        "POST",
        "/subscribe",
        form(email="new@example.org", name="n" * 5000),
        FORM,
        status=200,
        mails=1,
    ),
    Bad(
        "subscribe-5000-char-address",
        "POST",
        "/subscribe",
        form(email="a" * 5000 + "@example.org"),
        FORM,
    ),
    Bad(
        "subscribe-control-and-bidi-in-name",
        "POST",
        "/subscribe",
        form(email="new@example.org", name="%1B[31mEve%E2%80%AE%00"),
        FORM,
        status=200,
        mails=1,
    ),
    Bad(
        "subscribe-idn-domain",
        "POST",
        "/subscribe",
        form(email="new@ex%C3%A4mple.org"),
        FORM,
        status=200,
        mails=1,
    ),
    Bad(
        "subscribe-unicode-local-part",
        "POST",
        "/subscribe",
        form(email="j%C3%B6s%C3%A9@example.org"),
        FORM,
    ),
    Bad("subscribe-empty-address", "POST", "/subscribe", form(email=""), FORM),
    Bad(
        "unsubscribe-ask-crlf-in-address",
        "POST",
        "/unsubscribe",
        form(email="ada@example.org%0D%0ABcc:%20x@evil.example.net"),
        FORM,
        status=200,
    ),
    Bad(
        "unsubscribe-ask-5000-char-address",
        "POST",
        "/unsubscribe",
        form(email="a" * 5000),
        FORM,
        status=200,
    ),
    Bad("confirm-post-without-csrf", "POST", GOOD_CONFIRM, b"", FORM),
    Bad("confirm-post-wrong-csrf", "POST", GOOD_CONFIRM, b"csrf=" + b"f" * 64, FORM),
    Bad("confirm-post-giant-csrf", "POST", GOOD_CONFIRM, b"csrf=" + b"f" * 10_000, FORM),
    # -- markup where text goes ----------------------------------------------------------------
    Bad(
        "subscribe-prefill-markup",
        "GET",
        "/subscribe?email=%22%3E%3Cscript%3Ex()%3C/script%3E&name=%3Cimg%20src=x%20onerror=y%3E",
        status=200,
        hidden=("<script>", "<img src=x"),
    ),
    Bad(
        "subscribe-markup-in-address",
        "POST",
        "/subscribe",
        form(email="%22%3E%3Cscript%3Ex()%3C/script%3E@example.org"),
        FORM,
        hidden=("<script>",),
    ),
    Bad(
        "subscribe-markup-in-name",
        "POST",
        "/subscribe",
        form(email="bad", name="%3C/textarea%3E%3Cscript%3Ex()%3C/script%3E"),
        FORM,
        hidden=("<script>",),
    ),
    Bad(
        "token-markup",
        "GET",
        U + "%22%3E%3Cscript%3Ex()%3C/script%3E",
        hidden=("<script>",),
    ),
    # -- methods -----------------------------------------------------------------------------
    Bad("put-subscribe", "PUT", "/subscribe", form(email="new@example.org"), FORM, status=405),
    Bad("delete-unsubscribe", "DELETE", U + "{token}", status=405),
    Bad("patch-confirm", "PATCH", GOOD_CONFIRM, status=405),
    Bad("put-resubscribe", "PUT", "/resubscribe?token=x", status=405),
    Bad("post-index", "POST", "/", ONE_CLICK, FORM, status=405),
    Bad("post-feed", "POST", "/feed.xml", status=405),
    Bad("post-issue", "POST", f"/{WEEK}/", status=405),
    Bad("post-image", "POST", f"/images/{WEEK}-lead.png", status=405),
    Bad("post-stylesheet", "POST", "/_/newsletter.css", status=405),
    Bad("options-index", "OPTIONS", "/", status=405),
    Bad("trace-index", "TRACE", "/", status=405),
    Bad("get-with-a-body", "GET", "/subscribe", b"email=x", FORM, status=200),
    Bad("head-unsubscribe", "HEAD", U + "{token}", status=200),
    # -- paths -------------------------------------------------------------------------------
    Bad("week-99", "GET", "/2023-W99/", status=404),
    Bad("week-00", "GET", "/2023-W00/", status=404),
    Bad("week-unsent", "GET", "/2023-W26/", status=404),
    Bad("week-fullwidth-digits", "GET", "/%EF%BC%92%EF%BC%90%EF%BC%92%EF%BC%93-W25/", status=404),
    Bad("week-with-suffix", "GET", f"/{WEEK}x/", status=404),
    Bad("week-file-inside", "GET", f"/{WEEK}/archive.html", status=404),
    Bad("week-dotdot", "GET", f"/{WEEK}/%2e%2e/%2e%2e/config.toml", status=404),
    # An unencoded /../ never reaches the app: the client resolves it, as browsers do.
    Bad("dotdot", "GET", "/../", status=200),
    Bad("dotdot-encoded", "GET", "/%2e%2e/", status=404),
    Bad("dotdot-encoded-slash", "GET", "/images/..%2f..%2fconfig.toml", status=404),
    Bad("dotdot-stylesheet", "GET", "/_/%2e%2e/config.toml", status=404),
    Bad("double-slash", "GET", "//etc/passwd", status=404),
    Bad("config-file", "GET", "/config.toml", status=404),
    Bad("store-file", "GET", "/newsletter.db", status=404),
    Bad("out-folder", "GET", f"/out/{WEEK}/email.eml", status=404),
    Bad("static-prefix", "GET", f"/static/images/{WEEK}-lead.png", status=404),
    Bad("directory-listing", "GET", "/images/", status=404),
    Bad("nul-in-path", "GET", "/images/%00.png", status=404),
    Bad("invalid-utf8-path", "GET", "/%FF%FE", status=404),
    Bad("long-path", "GET", "/" + "a" * 10_000, status=404),
    # Taken by the /{week}/ route, and not a week.
    Bad("trailing-slash-on-route", "GET", "/unsubscribe/", status=404),
    # -- headers and sizes -------------------------------------------------------------------
    Bad(
        "content-length-huge",
        "POST",
        "/subscribe",
        b"csrf=x",
        {**FORM, "content-length": "99999999999"},
        status=413,
    ),
    Bad(
        "content-length-not-a-number",
        "POST",
        U + "{token}",
        ONE_CLICK,
        {**FORM, "content-length": "26abc"},
        status=413,
    ),
    Bad(
        "content-length-negative",
        "POST",
        U + "{token}",
        ONE_CLICK,
        {**FORM, "content-length": "-1"},
        status=413,
    ),
    Bad(
        "body-one-byte-too-big",
        "POST",
        U + "{token}",
        ONE_CLICK + b"&" + b"x" * 16_358,
        FORM,
        status=413,
    ),
    Bad(
        "body-chunked-too-big",
        "POST",
        "/subscribe",
        [b"csrf={csrf}&name="] + [b"n" * 4096] * 5,
        FORM,
        status=413,
    ),
    Bad(
        "forwarded-for-garbage",
        "GET",
        "/",
        headers={"x-forwarded-for": "../../, <x>, \x7f"},
        status=200,
    ),
    Bad(
        "host-header-poisoning",
        "GET",
        "/subscribe",
        headers={"host": "evil.example.net"},
        status=200,
    ),
    Bad(
        "csrf-cookie-giant",
        "GET",
        "/subscribe",
        headers={"cookie": "newsletter_csrf=" + "c" * 4000},
        status=200,
    ),
    Bad(
        "csrf-cookie-control-chars",
        "GET",
        "/subscribe",
        headers={"cookie": "newsletter_csrf=%00%0d%0a\x7f"},
        status=200,
    ),
    Bad(
        "csrf-cookie-chosen-by-attacker",
        "POST",
        "/subscribe",
        b"csrf=" + b"0" * 64 + b"&email=new@example.org",
        {**FORM, "cookie": "newsletter_csrf=attacker-chosen-cookie-value"},
    ),
]


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A sent project (as the ``project`` fixture lays one out), made once per module."""
    folder = tmp_path_factory.mktemp("bad-requests") / "project"
    folder.mkdir()
    shutil.copy(ROOT / "config.toml", folder / "config.toml")
    (folder / "issues").mkdir()
    shutil.copy(SAMPLE_ISSUE, folder / "issues" / SAMPLE_ISSUE.name)
    shutil.copytree(STATIC, folder / "static")
    make_sent_site(folder)
    return folder


@pytest.fixture
def site(template: Path, tmp_path: Path) -> Site:
    project = tmp_path / "project"
    shutil.copytree(template, project)
    return Site(project, load_settings(project / "config.toml"))


@pytest.fixture
def client(site: Site) -> Iterator[TestClient]:
    with site.client(raise_server_exceptions=False, follow_redirects=False) as web:
        yield web


def _values(site: Site, web: TestClient, case: Bad) -> dict[str, str]:
    confirm = tokens.sign_expiring(
        SAMPLE_SECRET, "confirm", tokens.encode_payload({"e": "new@example.org"}), 3600
    )
    values = {"token": token_of(site.links()["ada@example.org"]), "confirm": confirm}
    if b"{csrf}" in b"".join(case.body if isinstance(case.body, list) else [case.body]):
        values["csrf"] = csrf_from(web.get(f"{ORIGIN}/subscribe"))
    return values


def _fill(text: str, values: dict[str, str]) -> str:
    for name, value in values.items():
        text = text.replace("{" + name + "}", value)
    return text


def _send(web: TestClient, case: Bad, values: dict[str, str]) -> Any:
    def fill(data: bytes) -> bytes:
        return _fill(data.decode("latin-1"), values).encode("latin-1")

    content: Any = None
    if isinstance(case.body, list):
        chunks = [fill(chunk) for chunk in case.body]
        content = iter(chunks)  # no Content-Length: sent as it comes
    elif case.body:
        content = fill(case.body)
    return web.request(
        case.method, ORIGIN + _fill(case.path, values), content=content, headers=case.headers
    )


def _injected_headers(site: Site, before: Counter[str]) -> list[str]:
    """Headers of the new mails that no page's mail has, or that carry injected text."""
    problems = []
    for message in site.messages():
        if message["List-Unsubscribe"] or before[str(message["Message-ID"])]:
            continue
        for name, value in message.items():
            if name.lower() not in NOTICE_HEADERS or any(bad in value for bad in INJECTED):
                problems.append(f"{name}: {value}")
    return problems


def test_catalogue_is_big_and_distinct() -> None:
    ids = [case.id for case in CASES]
    assert len(ids) == len(set(ids)), [i for i, n in Counter(ids).items() if n > 1]
    assert len(CASES) >= 100
    assert {case.method for case in CASES} >= {"GET", "POST", "PUT", "DELETE", "OPTIONS"}


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_request(case: Bad, site: Site, client: TestClient) -> None:
    values = _values(site, client, case)
    before = site.table()
    notices_before = Counter(
        str(m["Message-ID"]) for m in site.messages() if not m["List-Unsubscribe"]
    )
    response = _send(client, case, values)
    shown = f"{case.method} {case.path[:80]} -> {response.status_code}\n{response.text[:500]}"

    expected = {case.status} if isinstance(case.status, int) else set(case.status)
    assert response.status_code in expected, shown
    assert response.status_code < 500, shown
    assert_safe(response)
    for bad in INJECTED:
        assert bad not in str(response.headers), shown
    for text in case.hidden:
        assert text not in response.text, shown
    if case.changes:  # only ada's row, the one the token names
        changed = [row for row in site.table() if row not in before]
        assert all(row[1] == "ada@example.org" for row in changed), changed
    else:
        assert site.table() == before, "the subscribers changed\n" + shown
    notices = [m for m in site.messages() if not m["List-Unsubscribe"]]
    assert len(notices) - sum(notices_before.values()) == case.mails, shown
    assert not _injected_headers(site, notices_before), _injected_headers(site, notices_before)
