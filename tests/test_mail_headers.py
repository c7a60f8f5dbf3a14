"""Bounces and list headers: the Return-Path, Feedback-ID, Precedence, Auto-Submitted, Date.

Messages go through real SMTP servers on loopback (aiosmtpd), or the local capture.
"""

from __future__ import annotations

import datetime as dt
import email
import mailbox
import re
from collections.abc import Callable
from email.message import EmailMessage
from email.policy import default
from email.utils import parsedate_to_datetime
from pathlib import Path
from types import SimpleNamespace

import pytest

from newsletter import load_settings, open_issue
from newsletter.errors import ConfigError, InputError
from newsletter.render import message as message_module
from newsletter.render.message import Recipient, feedback_id
from newsletter.send import send_issue, send_test
from newsletter.send.notice import send_notice
from newsletter.settings import Settings
from newsletter.store import Store
from newsletter.subscribers import add
from tests.conftest import PINNED_NOW
from tests.smtp_servers import RecordingHandler, Server, relay_settings

ISSUE = Path("issues/2023-W25.toml")
BOUNCES = "bounces@news.example.org"
PEOPLE = [("ada@example.org", "Ada Lovelace"), ("bob@example.net", "")]


def parse(content: bytes) -> EmailMessage:
    message = email.message_from_bytes(content, policy=default)
    assert isinstance(message, EmailMessage)
    return message


@pytest.fixture
def bounce_settings(project: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("NEWSLETTER_SMTP__RETURN_PATH", BOUNCES)
    return load_settings(project / "config.toml")


def subscribe(settings: Settings, people: list[tuple[str, str]] = PEOPLE) -> None:
    with Store(settings.store_path) as store:
        for address, name in people:
            add(store, address, name)


def test_return_path_is_the_envelope_sender_of_every_kind_of_mail(
    bounce_settings: Settings, project: Path, start_smtp_server: Callable[..., Server]
) -> None:
    server = start_smtp_server(RecordingHandler())
    settings = relay_settings(bounce_settings, server)
    subscribe(settings)
    loaded = open_issue(project / ISSUE, settings)
    assert send_issue(loaded, settings).sent == 2
    assert send_test(loaded, settings, ["me@example.org"]).sent == 1
    send_notice(settings, "carol@example.org", "Confirm your subscription", "Click.\n")
    received = server.handler.messages
    assert len(received) == 4
    for message in received:
        assert message.mail_from == BOUNCES
        parsed = parse(message.content)
        # From stays the newsletter's; Return-Path is the receiving server's to write.
        assert parsed["From"].addresses[0].addr_spec == "newsletter@example.org"
        assert parsed["Return-Path"] is None


def test_without_return_path_bounces_go_to_from(
    settings: Settings, project: Path, start_smtp_server: Callable[..., Server]
) -> None:
    server = start_smtp_server(RecordingHandler())
    relay = relay_settings(settings, server)
    subscribe(relay, PEOPLE[:1])
    assert send_issue(open_issue(project / ISSUE, relay), relay).sent == 1
    assert [m.mail_from for m in server.handler.messages] == ["newsletter@example.org"]


def test_the_capture_records_the_return_path(bounce_settings: Settings, project: Path) -> None:
    subscribe(bounce_settings, PEOPLE[:1])
    report = send_issue(open_issue(project / ISSUE, bounce_settings), bounce_settings)
    assert report.sent == 1
    (stored,) = mailbox.Maildir(report.capture_dir, factory=None, create=False)
    assert stored["Return-Path"] == f"<{BOUNCES}>"


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("bounces-at-example.org", "not a valid email address"),
        ("bounces@example.org\r\nBcc: victim@example.net", "control characters"),
        ("bounces@example.org\nBcc: victim@example.net", "control characters"),
        ("a@example.org b@example.org", "no spaces"),
        ("<bounces@example.org>", "not a valid email address"),
    ],
)
def test_a_bad_return_path_is_one_line_naming_the_key(
    project: Path, monkeypatch: pytest.MonkeyPatch, value: str, problem: str
) -> None:
    monkeypatch.setenv("NEWSLETTER_SMTP__RETURN_PATH", value)
    with pytest.raises(ConfigError) as caught:
        load_settings(project / "config.toml")
    message = str(caught.value)
    assert "[smtp] return_path" in message and problem in message
    assert "\n" not in message and "\r" not in message


def test_return_path_is_normalised(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEWSLETTER_SMTP__RETURN_PATH", "  Bounces@News.Example.ORG ")
    settings = load_settings(project / "config.toml")
    assert settings.smtp.return_path.lower() == "bounces@news.example.org"
    assert settings.envelope_sender == settings.smtp.return_path


def test_subscriber_mail_carries_the_list_headers(settings: Settings, project: Path) -> None:
    loaded = open_issue(project / ISSUE, settings)
    builder = loaded.message_builder()
    values = set()
    for recipient in (Recipient("ada@example.org", "Ada", "t1", 1), Recipient("b@example.net")):
        parsed = parse(builder.message_bytes(recipient))
        assert parsed["Precedence"] == "bulk"
        assert parsed["Auto-Submitted"] == "auto-generated"
        values.add(parsed["Feedback-ID"])
        # No personal data: the same value for every recipient, no address or token in it.
        assert "ada" not in parsed["Feedback-ID"] and "t1" not in parsed["Feedback-ID"]
    assert values == {"2023-W25:nato-newsroom-weekly:newsletter:example.org"}


def test_test_copies_are_told_apart_in_feedback_loops(settings: Settings, project: Path) -> None:
    builder = open_issue(project / ISSUE, settings).message_builder(test=True)
    parsed = parse(builder.message_bytes(Recipient("me@example.org")))
    assert parsed["Feedback-ID"] == "2023-W25:nato-newsroom-weekly:test:example.org"
    # A test copy is what subscribers get, so it carries the same list headers.
    assert parsed["Precedence"] == "bulk" and parsed["Auto-Submitted"] == "auto-generated"


def test_a_notice_is_auto_generated_but_not_bulk(settings: Settings) -> None:
    from newsletter.send.notice import notice_bytes

    parsed = parse(notice_bytes(settings, "ada@example.org", "Confirm", "Click.\n"))
    assert parsed["Auto-Submitted"] == "auto-generated"
    # A confirmation someone is waiting for is one-to-one mail, not list mail.
    assert parsed["Precedence"] is None and parsed["Feedback-ID"] is None


def test_feedback_id_refuses_line_breaks() -> None:
    with pytest.raises(InputError, match="inject a header"):
        feedback_id("2023-W25", "list\r\nBcc: x@example.net", "example.org")


def test_every_header_line_stays_short(settings: Settings, project: Path) -> None:
    builder = open_issue(project / ISSUE, settings).message_builder()
    message = builder.message_bytes(Recipient("ada@example.org", "Ada " * 40, "t", 1))
    head = message.split(b"\r\n\r\n", 1)[0]
    # Only an unfoldable URL may pass 78 characters (the README's rule).
    long = [line for line in head.split(b"\r\n") if len(line) > 78]
    assert all(b"https://" in line and len(line) <= 998 for line in long), long
    for name in (b"Date", b"Feedback-ID", b"Precedence", b"Auto-Submitted"):
        assert len(re.search(rb"^" + name + rb": .*$", head, re.M)[0]) <= 78  # type: ignore[index]


def test_each_message_is_dated_when_it_is_composed(
    settings: Settings, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = [1_700_000_000.0]
    monkeypatch.setattr(message_module, "time", SimpleNamespace(time=lambda: clock[0]))
    builder = open_issue(project / ISSUE, settings).message_builder()
    ada = Recipient("ada@example.org", "Ada", "t1", 1)

    def date_of() -> dt.datetime:
        return parsedate_to_datetime(str(parse(builder.message_bytes(ada))["Date"]))

    first = date_of()
    assert first == dt.datetime.fromtimestamp(clock[0], dt.UTC)
    clock[0] += 0.4
    assert date_of() == first  # the same second: the cached line
    clock[0] += 3600 * 5  # a long list, or a run resumed the next day
    assert date_of() == first + dt.timedelta(hours=5)


def test_a_pinned_date_stays_pinned(settings: Settings, project: Path) -> None:
    builder = open_issue(project / ISSUE, settings).message_builder(now=PINNED_NOW)
    parsed = parse(builder.message_bytes(Recipient("ada@example.org")))
    assert parsed["Date"].datetime == PINNED_NOW


def test_sent_messages_carry_their_own_send_time(
    settings: Settings, project: Path, start_smtp_server: Callable[..., Server]
) -> None:
    server = start_smtp_server(RecordingHandler())
    relay = relay_settings(settings, server)
    subscribe(relay, PEOPLE[:1])
    loaded = open_issue(project / ISSUE, relay)
    before = dt.datetime.now(dt.UTC).replace(microsecond=0)
    assert send_issue(loaded, relay).sent == 1
    after = dt.datetime.now(dt.UTC)
    (received,) = server.handler.messages
    date = parse(received.content)["Date"].datetime
    assert before <= date <= after
    assert parse(received.content)["Precedence"] == "bulk"
