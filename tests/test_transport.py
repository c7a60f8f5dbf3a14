"""The transport seam: the in-memory relay fails as a real one does; modes chosen by name."""

from __future__ import annotations

import mailbox
from collections.abc import Callable
from pathlib import Path

import pytest

from newsletter import load_settings, open_issue
from newsletter.errors import ConfigError
from newsletter.send import send_test
from newsletter.send.memory import DROP, MemoryRelay, MemoryTransport
from newsletter.send.modes import MODES, Capture, Custom, Relay, mode_for
from newsletter.send.smtp import Connection
from newsletter.send.transport import (
    Envelope,
    PermanentFailure,
    Reply,
    TemporaryFailure,
    Transport,
    TransportError,
)
from newsletter.settings import Settings, SmtpSettings
from tests.smtp_servers import DROP as SERVER_DROP, RecordingHandler, Server

ADA = Envelope("news@example.org", "ada@example.org", b"Subject: hi\r\n\r\nhello\r\n")


def outcome(transport: Transport) -> tuple[type[TransportError], str, str | None, Reply | None]:
    with pytest.raises(TransportError) as failure:
        transport.send(ADA)
    exc = failure.value
    return type(exc), exc.concerns, getattr(exc, "stage", None), exc.reply


@pytest.mark.parametrize(
    ("stage", "reply"),
    [
        ("mail", "451 4.3.0 try later"),
        ("mail", "553 5.7.1 sender not allowed"),
        ("rcpt", "450 4.2.0 mailbox busy"),
        ("rcpt", "550 5.1.1 no such user"),
        ("rcpt", DROP),
        ("data", "451 4.3.0 try later"),
        ("data", "554 5.7.1 spam"),
        ("data", DROP),
    ],
)
def test_a_scripted_reply_fails_as_the_same_reply_from_a_real_server(
    start_smtp_server: Callable[..., Server], stage: str, reply: str
) -> None:
    hook_reply = SERVER_DROP if reply == DROP else reply
    hooks = {
        "mail": {"decide_mail": lambda a, n: hook_reply},
        "rcpt": {"decide_rcpt": lambda a, n: hook_reply},
        "data": {"decide": lambda e, n: hook_reply},
    }[stage]
    server = start_smtp_server(RecordingHandler(**hooks))  # type: ignore[arg-type]
    settings = SmtpSettings(mode="relay", host=server.host, port=server.port, security="none")
    real = Connection(settings)
    try:
        expected = outcome(real)
    finally:
        real.close()
    scripted = outcome(MemoryRelay(**{stage: lambda a, n: reply}).transport())  # type: ignore[arg-type]
    assert scripted == expected


def test_scripts_by_address_then_accept() -> None:
    relay = MemoryRelay(rcpt={ADA.recipient: ["451 4.7.1 greylisted", None, "250 OK"]})
    transport = relay.transport()
    with pytest.raises(TemporaryFailure) as failure:
        transport.send(ADA)
    assert failure.value.concerns == "recipient"
    assert "memory:25 answered RCPT TO with 451 4.7.1 greylisted" in str(failure.value)
    assert transport.send(ADA).code == 250
    assert transport.send(ADA).code == 250
    assert transport.send(ADA).code == 250  # the script ran out: accepted
    assert relay.accepted == [ADA] * 3
    assert relay.refusals == [("rcpt", ADA.recipient, "451 4.7.1 greylisted")]


def test_a_refused_recipient_keeps_the_connection_and_a_relay_failure_drops_it() -> None:
    relay = MemoryRelay(
        rcpt={"ghost@example.org": ["550 5.1.1 no such user"]},
        data={"bob@example.org": ["451 4.3.0 later"]},
    )
    transport = relay.transport()
    with pytest.raises(PermanentFailure):
        transport.send(Envelope(ADA.sender, "ghost@example.org", b"x"))
    assert transport.is_open
    with pytest.raises(TemporaryFailure):
        transport.send(Envelope(ADA.sender, "bob@example.org", b"x"))
    assert not transport.is_open
    assert relay.connections == 1
    transport.send(ADA)
    assert relay.connections == 2


def test_connects_can_be_refused_and_reconnects_asked_for() -> None:
    relay = MemoryRelay(connect=[DROP, "421 4.3.2 too busy", None], messages_per_connection=2)
    transport: Transport = relay.transport()
    with pytest.raises(TemporaryFailure, match="Connection refused"):
        transport.open()
    with pytest.raises(TemporaryFailure, match=r"421 4\.3\.2 too busy") as failure:
        transport.send(ADA)
    assert failure.value.concerns == "connection"
    transport.send(ADA)
    assert not transport.needs_reconnect
    transport.send(ADA)
    assert transport.needs_reconnect
    transport.close()
    transport.close()  # closing twice is fine
    assert not transport.needs_reconnect and relay.connections == 3


def test_both_transports_are_transports() -> None:
    relay = MemoryRelay()
    transports: list[Transport] = [relay.transport(), Connection(SmtpSettings())]
    assert isinstance(transports[0], MemoryTransport)
    for transport in transports:
        transport.close()


# -- modes ----------------------------------------------------------------------------------------


def test_modes_by_name(settings: Settings) -> None:
    assert set(MODES) == {"capture", "relay"}
    assert isinstance(mode_for(settings), Capture)  # the shipped default
    relay = settings.model_copy(update={"smtp": settings.smtp.model_copy(update={"mode": "relay"})})
    assert isinstance(mode_for(relay), Relay)
    assert mode_for(relay).target(relay) == relay.smtp.host
    given = mode_for(relay, MemoryRelay().transport)
    assert isinstance(given, Custom) and given.name == "custom"
    given.check(relay)  # a given transport is not the relay: no relay checks


def test_the_relay_refuses_the_sample_secret(settings: Settings) -> None:
    relay = settings.model_copy(update={"smtp": settings.smtp.model_copy(update={"mode": "relay"})})
    with pytest.raises(ConfigError, match="secret is still the sample value"):
        mode_for(relay).check(relay)


def test_capture_files_messages_in_the_maildir(settings: Settings) -> None:
    mode = mode_for(settings)
    mode.check(settings)
    with mode.start(settings) as transports:
        transport = transports.new()
        try:
            assert transport.send(ADA).code == 250
        finally:
            transport.close()
    maildir = Path(transports.capture_dir)
    assert maildir == settings.path(settings.smtp.capture_dir)
    (message,) = mailbox.Maildir(maildir, create=False)
    assert message.get_payload() == "hello\n"


def test_send_test_takes_a_transport(project: Path) -> None:
    settings = load_settings(project / "config.toml")
    relay = MemoryRelay(rcpt={"bad@example.org": ["550 5.1.1 no such user"]})
    report = send_test(
        open_issue(project / "issues" / "2023-W25.toml", settings),
        settings,
        ["me@example.org", "bad@example.org"],
        transport=relay.transport,
    )
    assert (report.sent, report.failed, report.mode) == (1, 1, "custom")
    assert [e.recipient for e in relay.accepted] == ["me@example.org"]
    assert b"[TEST]" in relay.accepted[0].data
    assert "550 5.1.1" in report.failures[0]["reply"]
