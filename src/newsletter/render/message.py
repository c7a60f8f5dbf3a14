"""Per-recipient messages without per-recipient rendering.

Jinja, MJML and premailer run once per issue, with placeholders where the greeting and
the unsubscribe token go. The MIME bytes are built once too: each body is encoded as
quoted-printable in pieces split at the placeholders, each piece ending in a soft line
break, so a placeholder is never cut by a QP line break and each recipient's message is
a join of ready-made bytes plus a few short encoded values.
"""

from __future__ import annotations

import binascii
import datetime as dt
import hashlib
import hmac
import html
import re
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, formataddr, make_msgid
from functools import cached_property

from ..errors import InputError
from ..models import Issue, control_problem
from ..settings import Settings
from ..tokens import sign_token
from ..urls import unsubscribe_url
from .signing import DkimSigner, FixedHeaders, dkim_signer
from .theme import Links, Renderer

__all__ = [
    "MessageBuilder",
    "Recipient",
    "Rendered",
    "dkim_signer",
    "dot_stuff",
    "feedback_id",
    "message_id",
    "render_with_placeholders",
]

# Plain ASCII letters: untouched by Jinja escaping, MJML, premailer, URLs and QP.
TOKEN = "XNLTOKENPLACEHOLDERX"
GREETING = "XNLGREETINGPLACEHOLDERX"
_PLACEHOLDER = re.compile(f"({TOKEN}|{GREETING})")


@dataclass(frozen=True)
class Recipient:
    email: str
    name: str = ""
    #: The subscriber's token id (``subscribers.token``); empty for test sends.
    token_id: str = ""
    #: Used in the Message-ID; 0 for test sends.
    subscriber_id: int = 0
    #: For ``{first_name}`` in the greeting; "" when not known.
    first_name: str = ""


def _refuse_line_breaks(**values: str) -> None:
    """Defence in depth: whatever a header value's source, it never breaks the line.

    The issue model and the settings apply the same rule (``control_problem``) earlier,
    with the file and line; this catches what reaches the builder by any other way.
    """
    for field, value in values.items():
        if control_problem(value):
            raise InputError(
                f"the {field} contains a line break or control character, "
                "which would inject a header"
            )


#: RFC 5322 2.1.1: lines should be at most 78 characters, and must be at most 998.
MAX_LINE = 78
#: UTF-8 bytes per RFC 2047 encoded word: 42 bytes are 56 base64 characters, so
#: "=?utf-8?b?" + 56 + "?=" is 68, and a line (" " or "To: " before it) stays under 78.
_WORD_BYTES = 42


def _encoded_words(text: str) -> list[str]:
    """``text`` as RFC 2047 encoded words, each whole characters and short enough to fold."""
    words: list[str] = []
    chunk = b""
    for char in text:
        encoded = char.encode("utf-8")
        if len(chunk) + len(encoded) > _WORD_BYTES:
            words.append(chunk.decode("utf-8"))
            chunk = b""
        chunk += encoded
    if chunk:
        words.append(chunk.decode("utf-8"))
    return [
        "=?utf-8?b?" + binascii.b2a_base64(w.encode("utf-8"), newline=False).decode() + "?="
        for w in words
    ]


def _to_header(name: str, address: str) -> bytes:
    """The ``To:`` line, folded when it would pass 78 characters.

    The common case (a short name) is ``formataddr``'s one line. A long name becomes
    encoded words, one per line, and the address goes on a line of its own; only an
    address longer than a line (at most 254 characters) is left unfolded.
    """
    line = "To: " + formataddr((name, address), charset="utf-8")
    if len(line) <= MAX_LINE or not name:
        return line.encode("ascii") + b"\r\n"
    parts = [*_encoded_words(name), f"<{address}>"]
    return ("To: " + "\r\n ".join(parts) + "\r\n").encode("ascii")


def _list_header(name: str, items: Sequence[str]) -> bytes:
    """``name: a, b`` on one line when it fits in 78 characters, else one item per line."""
    line = f"{name}: " + ", ".join(items)
    if len(line) > MAX_LINE:
        line = f"{name}: " + ",\r\n ".join(items)
    return line.encode("ascii") + b"\r\n"


def _qp(text: str) -> bytes:
    """Quoted-printable with CRLF line ends."""
    encoded = binascii.b2a_qp(text.replace("\r\n", "\n").encode("utf-8"), istext=True)
    return encoded.replace(b"\n", b"\r\n")


def _soft_break(encoded: bytes) -> bytes:
    # A soft line break ("=" CRLF) decodes to nothing; it restarts the line count so
    # the next piece, encoded on its own, stays within 76 columns.
    return encoded if encoded.endswith(b"\r\n") or not encoded else encoded + b"=\r\n"


def dot_stuff(data: bytes) -> bytes:
    """SMTP transparency (RFC 5321 4.5.2): a line starting with "." gets another."""
    stuffed = data.replace(b"\r\n.", b"\r\n..")
    return b"." + stuffed if stuffed.startswith(b".") else stuffed


class _Body:
    """One body part split at placeholders: static encoded pieces and slot names.

    Every piece starts a line (the part's first line, or after a soft line break), so
    each can be dot-stuffed on its own: the static ones once here, the short
    per-recipient values as they are spliced in. Stuffing a whole 70 KB message per
    recipient was the largest cost of sending.
    """

    def __init__(self, text: str) -> None:
        self.pieces: list[bytes | str] = []
        self.stuffed: list[bytes | str] = []
        for index, piece in enumerate(_PLACEHOLDER.split(text)):
            if index % 2:
                self.pieces.append(piece)
                self.stuffed.append(piece)
            else:
                encoded = _soft_break(_qp(piece))
                self.pieces.append(encoded)
                self.stuffed.append(dot_stuff(encoded))

    @cached_property
    def relaxed(self) -> list[bytes | str]:
        """The pieces after DKIM's line-by-line canonicalisation: made once, when signing."""
        from .signing import relaxed_lines

        return [relaxed_lines(p) if isinstance(p, bytes) else p for p in self.pieces]

    def render_relaxed(self, values: dict[str, bytes]) -> list[bytes]:
        """The canonical pieces, unjoined: they are only hashed."""
        from .signing import relaxed_lines

        return [p if isinstance(p, bytes) else relaxed_lines(values[p]) for p in self.relaxed]

    def render(self, values: dict[str, bytes], stuffed: bool = False) -> bytes:
        if stuffed:
            return b"".join(
                p if isinstance(p, bytes) else dot_stuff(values[p]) for p in self.stuffed
            )
        return b"".join(p if isinstance(p, bytes) else values[p] for p in self.pieces)


@dataclass(frozen=True)
class Rendered:
    """The email rendered once, with placeholders where each recipient's message differs."""

    html: str
    text: str


def render_with_placeholders(renderer: Renderer, issue: Issue, settings: Settings) -> Rendered:
    # TOKEN stands for the whole "?token=..." query, so the list's own copy can drop it.
    generic = Links.for_issue(settings, issue.week)
    links = Links(generic.home, generic.archive, generic.unsubscribe + TOKEN, generic.subscribe)
    return Rendered(
        html=renderer.render_html(issue, links, greeting=GREETING),
        text=renderer.render_text(issue, links, greeting=GREETING),
    )


def feedback_id(week: str, list_name: str, domain: str, *, test: bool = False) -> str:
    """``<week>:<list>:<newsletter|test>:<domain>``: Gmail's Feedback-ID (campaign, customer,
    mail type, sender), so its feedback loop reports complaints per issue. No personal data:
    every recipient of an issue gets the same value."""
    kind = "test" if test else "newsletter"
    value = f"{week}:{list_name}:{kind}:{domain}"
    _refuse_line_breaks(**{"Feedback-ID": value})
    return value


def _date_line(when: dt.datetime) -> bytes:
    return b"Date: " + format_datetime(when).encode("ascii") + b"\r\n"


def message_id(from_address: str) -> str:
    """A new unique Message-ID on the sender's own domain."""
    return make_msgid(domain=from_address.rsplit("@", 1)[1])


class MessageBuilder:
    """The one message builder: the build's preview, test copies and every real message.

    Rendering happened once (:class:`Rendered`); each message is the shared parts with a
    recipient's greeting and unsubscribe token spliced in.
    """

    def __init__(
        self,
        issue: Issue,
        settings: Settings,
        rendered: Rendered,
        *,
        test: bool = False,
        now: dt.datetime | None = None,
    ) -> None:
        self.issue, self.settings, self.test = issue, settings, test
        newsletter = settings.newsletter
        self.secret = settings.security.secret.get_secret_value()
        # Keyed once: each Message-ID then costs a copy and one hash, not a key set-up.
        self._id_mac = hmac.new(self.secret.encode(), digestmod=hashlib.sha256)
        self.domain = newsletter.from_address.rsplit("@", 1)[1]
        subject = ("[TEST] " if test else "") + issue.subject
        _refuse_line_breaks(
            subject=subject,
            **{
                "newsletter name": issue.newsletter,
                "[newsletter] from_address": newsletter.from_address,
                "[newsletter] reply_to": newsletter.reply_to,
                "[newsletter] unsubscribe_mailto": newsletter.unsubscribe_mailto or "",
                "[newsletter] base_url": newsletter.base_url,
            },
        )

        self.base_url = newsletter.base_url
        self.rendered = rendered
        self._text, self._html = _Body(rendered.text), _Body(rendered.html)

        boundary = "==newsletter-" + secrets.token_hex(12)
        self._boundary = boundary.encode()
        head = EmailMessage(policy=SMTP)
        head["From"] = Address(issue.newsletter, *newsletter.from_address.rsplit("@", 1))
        head["Reply-To"] = Address(issue.newsletter, *newsletter.reply_to.rsplit("@", 1))
        head["Subject"] = subject
        list_name = re.sub(r"[^a-z0-9]+", "-", issue.newsletter.lower()).strip("-") or "newsletter"
        head["List-Id"] = f"{issue.newsletter} <{list_name}.{self.domain}>"
        head["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        head["Feedback-ID"] = feedback_id(issue.week, list_name, self.domain, test=test)
        # RFC 3834 and the older Precedence: vacation and out-of-office responders stay
        # quiet, so replies to the list are people, not robots.
        head["Precedence"] = "bulk"
        head["Auto-Submitted"] = "auto-generated"
        head["MIME-Version"] = "1.0"
        head["Content-Type"] = f'multipart/alternative; boundary="{boundary}"'
        # Only the header block is wanted: the email package folds and encodes it.
        self._static_headers = head.as_bytes().split(b"\r\n\r\n", 1)[0] + b"\r\n"
        # Each message is dated when it is composed, not when the run started (a large
        # list takes minutes, a resumed one days); formatted once a second, not per message.
        self._pinned_date = _date_line(now) if now is not None else None
        self._date: tuple[int, bytes] = (0, b"")
        self.mailto = newsletter.unsubscribe_mailto

    def preview(self) -> tuple[str, str]:
        """(html, text) as the list itself would get it: no name, the generic unsubscribe page.

        What `build` writes as email.html and email.txt.
        """
        greeting = self.settings.newsletter.greeting_no_name
        html_part = self.rendered.html.replace(TOKEN, "").replace(
            GREETING, html.escape(greeting, quote=False)
        )
        text_part = self.rendered.text.replace(TOKEN, "").replace(GREETING, greeting)
        return html_part, text_part

    def preview_message(self, msgid: str) -> bytes:
        """The build's email.eml: the message addressed to the list itself."""
        the_list = Recipient(self.settings.newsletter.from_address, self.issue.newsletter)
        greeting = self.settings.newsletter.greeting_no_name
        # Unsigned: a validly signed copy lying in out/ could be replayed as ours.
        return self.message_bytes(the_list, message_id=msgid, greeting=greeting, sign=False)

    def message_id(self, recipient: Recipient) -> str:
        """Stable per issue and recipient, so a resend after a crash can be de-duplicated."""
        if self.test:
            # Each test copy is new: a repeated Message-ID would be dropped by Gmail.
            return f"<test.{self.issue.week}.{secrets.token_hex(8)}@{self.domain}>"
        key = f"{self.issue.week}:{recipient.subscriber_id}:{recipient.email.lower()}"
        mac = self._id_mac.copy()
        mac.update(key.encode())
        digest = mac.hexdigest()[:16]
        return f"<{self.issue.week}.{digest}@{self.domain}>"

    def token(self, recipient: Recipient) -> str:
        """The recipient's signed unsubscribe token ("test" for test copies, "" for the list)."""
        if recipient.token_id:
            return sign_token(self.secret, recipient.token_id)
        return "test" if self.test else ""

    def greeting(self, recipient: Recipient) -> str:
        return self.settings.newsletter.greet(recipient.name, recipient.first_name)

    def date_line(self) -> bytes:
        """``Date:`` for a message composed now (or the pinned date of a reproducible build)."""
        if self._pinned_date is not None:
            return self._pinned_date
        second = int(time.time())
        cached = self._date  # one read: other workers may replace it meanwhile
        if cached[0] != second:
            cached = (second, _date_line(dt.datetime.fromtimestamp(second, dt.UTC)))
            self._date = cached
        return cached[1]

    @cached_property
    def _signer(self) -> DkimSigner | None:
        # On first use: a build's preview is never signed, so it needs no key.
        return dkim_signer(self.settings)

    def wire(self, recipient: Recipient) -> bytes:
        """The message as it goes over SMTP: dot-stuffed (headers never start with ".")."""
        # Signing reads the headers (never stuffed) and hashes the canonical body made from
        # unstuffed pieces, so a signed message is stuffed piece by piece like any other.
        return self.message_bytes(recipient, stuffed=True)

    def message_bytes(
        self,
        recipient: Recipient,
        *,
        stuffed: bool = False,
        message_id: str = "",
        greeting: str | None = None,
        sign: bool = True,
    ) -> bytes:
        """The whole message for one recipient, CRLF line ends."""
        token = self.token(recipient)
        greeting = self.greeting(recipient) if greeting is None else greeting
        url = unsubscribe_url(self.base_url, token or None)
        unsubscribe = [f"<{url}>"]
        if self.mailto:
            query = f"unsubscribe%20{token}" if token else "unsubscribe"
            unsubscribe.append(f"<mailto:{self.mailto}?subject={query}>")
        msgid = message_id or self.message_id(recipient)
        # Every value with a variable part, whatever its source, just before it is written.
        _refuse_line_breaks(
            name=recipient.name,
            address=recipient.email,
            **{"Message-ID": msgid, "List-Unsubscribe": ", ".join(unsubscribe)},
        )
        try:
            headers = (
                self._static_headers
                + self.date_line()
                + _to_header(recipient.name, recipient.email)
                + b"Message-ID: "
                + msgid.encode("ascii")
                + b"\r\n"
                + _list_header("List-Unsubscribe", unsubscribe)
            )
        except UnicodeEncodeError:
            raise InputError(
                f"a header for {recipient.email!r} is not ASCII (Message-ID or unsubscribe URL)"
            ) from None
        if max(map(len, headers.split(b"\r\n"))) > 998:
            # RFC 5322's hard limit: a relay answers "500 Line too long", a permanent failure.
            raise InputError(f"a header line for {recipient.email!r} is over 998 characters")
        query = url[len(unsubscribe_url(self.base_url)) :]
        token_qp = _soft_break(_qp(query)) if query else b""
        text_values = {TOKEN: token_qp, GREETING: _soft_break(_qp(greeting))}
        html_values = {
            TOKEN: token_qp,
            GREETING: _soft_break(_qp(html.escape(greeting, quote=False))),
        }
        text = self._text.render(text_values, stuffed)
        body_html = self._html.render(html_values, stuffed)
        message = headers + self._mime(text, body_html)
        if sign and self._signer is not None:
            message = self._sign(message, headers, text_values, html_values)
        return message

    @cached_property
    def _fixed(self) -> FixedHeaders | None:
        assert self._signer is not None
        return self._signer.fixed(self._static_headers)

    def _sign(
        self,
        message: bytes,
        headers: bytes,
        text_values: dict[str, bytes],
        html_values: dict[str, bytes],
    ) -> bytes:
        """``message`` with its DKIM-Signature on top, from the pieces it was made of."""
        signer = self._signer
        assert signer is not None
        # The part headers and boundaries hold no runs of spaces: already canonical.
        body = self._mime_pieces(
            self._text.render_relaxed(text_values), self._html.render_relaxed(html_values)
        )
        body[0] = body[0][2:]  # the CRLF that ends the header block is not the body's
        own = headers[len(self._static_headers) :]
        field = None if self._fixed is None else signer.header_for(self._fixed, own, body)
        if field is None:
            return signer(message, b"".join(body))
        return field + message

    def _mime(self, text: bytes, body_html: bytes) -> bytes:
        """The body: both parts between the boundaries (with the CRLF that ends the head)."""
        return b"".join(self._mime_pieces([text], [body_html]))

    def _mime_pieces(self, text: list[bytes], body_html: list[bytes]) -> list[bytes]:
        b = self._boundary
        return [
            b"\r\n--" + b + b"\r\n"
            b'Content-Type: text/plain; charset="utf-8"\r\n'
            b"Content-Transfer-Encoding: quoted-printable\r\n\r\n",
            *text,
            b"\r\n--" + b + b"\r\n"
            b'Content-Type: text/html; charset="utf-8"\r\n'
            b"Content-Transfer-Encoding: quoted-printable\r\n\r\n",
            *body_html,
            b"\r\n--" + b + b"--\r\n",
        ]
