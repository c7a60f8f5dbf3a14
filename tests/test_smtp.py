"""The SMTP connection against real servers on loopback (aiosmtpd, and a bare socket server)."""

from __future__ import annotations

import base64
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from newsletter.send.smtp import Connection
from newsletter.send.transport import (
    Envelope,
    PermanentFailure,
    ServerFailure,
    TemporaryFailure,
)
from newsletter.settings import SmtpSettings

from .smtp_servers import (  # the fixture_* are used by their fixture names
    DROP,
    DropDuringDataServer,
    EchoAuthHandler,
    RecordingHandler,
    Server,
    StallingServer,
    fixture_server_tls,  # noqa: F401
    fixture_smtp_ca,  # noqa: F401
    fixture_smtp_ca_file,  # noqa: F401
    fixture_start_smtp_server,  # noqa: F401
    free_port,
)

StartServer = Callable[..., Server]

SENDER = "news@example.org"
MESSAGE = (
    "From: news@example.org\r\n"
    "To: ada@example.net\r\n"
    "Subject: Week 25\r\n"
    "\r\n"
    "Hello Ada,\r\n"
    ".a line that starts with a dot\r\n"
    ".\r\n"
    "..two dots\r\n"
    "caf\u00e9 (8-bit)\r\n"
    "the end"
).encode()


def stuff(message: bytes) -> bytes:
    """Dot-stuff as the message builder does (RFC 5321 4.5.2)."""
    return b"\r\n".join(
        b"." + line if line.startswith(b".") else line for line in message.split(b"\r\n")
    )


def relay(server: Server, **overrides: Any) -> SmtpSettings:
    values: dict[str, Any] = {"security": "none", "timeout": 5.0, **overrides}
    return SmtpSettings(mode="relay", host=server.host, port=server.port, **values)


@pytest.fixture(params=[True, False], ids=["pipelining", "lockstep"])
def pipelining(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


# -- plain delivery -------------------------------------------------------------------------------


def test_plain_delivery_is_byte_exact(start_smtp_server: StartServer, pipelining: bool) -> None:
    server = start_smtp_server(RecordingHandler(pipelining=pipelining))
    with Connection(relay(server)) as conn:
        reply = conn.send(Envelope(SENDER, "ada@example.net", stuff(MESSAGE)))
        assert conn.pipelining is pipelining
        # A message that already ends with CRLF gets only ".\r\n" appended.
        conn.send(Envelope(SENDER, "bob@example.net", stuff(MESSAGE) + b"\r\n"))
        assert conn.sent == 2
    assert reply.code == 250
    assert str(reply).startswith("250 2.0.0 OK queued as 1")
    first, second = server.handler.messages
    assert (first.mail_from, first.rcpt_tos) == (SENDER, ("ada@example.net",))
    assert first.content == MESSAGE + b"\r\n"
    assert second.content == MESSAGE + b"\r\n"
    assert b"\r\n.a line" in first.content and b"\r\n.\r\n" in first.content


def test_needs_reconnect_after_messages_per_connection(start_smtp_server: StartServer) -> None:
    server = start_smtp_server()
    with Connection(relay(server, messages_per_connection=2)) as conn:
        conn.send(Envelope(SENDER, "a@example.net", b"x"))
        assert not conn.needs_reconnect
        conn.send(Envelope(SENDER, "b@example.net", b"x"))
        assert conn.needs_reconnect
        conn.close()
        conn.send(Envelope(SENDER, "c@example.net", b"x"))
        assert conn.sent == 1
    assert len(server.handler.messages) == 3


def test_connection_refused_is_temporary() -> None:
    settings = SmtpSettings(mode="relay", host="127.0.0.1", port=free_port(), security="none")
    conn = Connection(settings)
    with pytest.raises(TemporaryFailure, match=r"refused") as failure:
        conn.open()
    assert failure.value.concerns == "connection"
    assert not conn.is_open


# -- TLS ------------------------------------------------------------------------------------------


def test_starttls_with_ca_file(
    start_smtp_server: StartServer, server_tls: ssl.SSLContext, smtp_ca_file: Path
) -> None:
    # require_starttls: the server refuses MAIL before the upgrade, so delivery proves TLS.
    server = start_smtp_server(tls_context=server_tls, require_starttls=True)
    with Connection(relay(server, security="starttls", ca_file=smtp_ca_file)) as conn:
        conn.send(Envelope(SENDER, "ada@example.net", stuff(MESSAGE)))
    assert server.handler.messages[0].content == MESSAGE + b"\r\n"


def test_starttls_untrusted_certificate(
    start_smtp_server: StartServer, server_tls: ssl.SSLContext
) -> None:
    server = start_smtp_server(tls_context=server_tls)
    with pytest.raises(ServerFailure, match=r"TLS failure.*certificate.*ca_file"):
        Connection(relay(server, security="starttls")).open()


def test_starttls_not_offered_never_falls_back(start_smtp_server: StartServer) -> None:
    server = start_smtp_server()
    conn = Connection(relay(server, security="starttls"))
    with pytest.raises(ServerFailure, match=r"does not offer STARTTLS"):
        conn.send(Envelope(SENDER, "ada@example.net", b"x"))
    assert not conn.is_open
    assert server.handler.messages == []


def test_implicit_tls_with_ca_file(
    start_smtp_server: StartServer, server_tls: ssl.SSLContext, smtp_ca_file: Path
) -> None:
    server = start_smtp_server(tls_context=server_tls, implicit_tls=True)
    with Connection(relay(server, security="tls", ca_file=smtp_ca_file)) as conn:
        conn.send(Envelope(SENDER, "ada@example.net", stuff(MESSAGE)))
    assert server.handler.messages[0].content == MESSAGE + b"\r\n"


def test_implicit_tls_untrusted_certificate(
    start_smtp_server: StartServer, server_tls: ssl.SSLContext
) -> None:
    server = start_smtp_server(tls_context=server_tls, implicit_tls=True)
    with pytest.raises(ServerFailure, match=r"TLS failure.*certificate.*ca_file"):
        Connection(relay(server, security="tls")).open()


def test_implicit_tls_against_a_plaintext_port(
    start_smtp_server: StartServer, smtp_ca_file: Path
) -> None:
    server = start_smtp_server()
    with pytest.raises(ServerFailure, match=r"TLS failure"):
        Connection(relay(server, security="tls", ca_file=smtp_ca_file, timeout=2)).open()


def test_unreadable_ca_file(start_smtp_server: StartServer, tmp_path: Path) -> None:
    server = start_smtp_server()
    settings = relay(server, security="tls", ca_file=tmp_path / "missing.pem")
    with pytest.raises(ServerFailure, match=r"ca_file"):
        Connection(settings).open()


# -- AUTH -----------------------------------------------------------------------------------------

PASSWORD = "s3cret-pa55word"


@pytest.mark.parametrize("implicit_tls", [False, True], ids=["starttls", "tls"])
def test_auth(
    start_smtp_server: StartServer,
    server_tls: ssl.SSLContext,
    smtp_ca_file: Path,
    implicit_tls: bool,
) -> None:
    server = start_smtp_server(
        tls_context=server_tls, implicit_tls=implicit_tls, auth={"news": PASSWORD}
    )
    security = "tls" if implicit_tls else "starttls"
    base = {"security": security, "ca_file": smtp_ca_file, "username": "news"}
    with Connection(relay(server, **base, password=PASSWORD)) as conn:
        conn.send(Envelope(SENDER, "ada@example.net", b"x"))
    assert len(server.handler.messages) == 1

    with pytest.raises(ServerFailure, match=r"refused the login") as failure:
        Connection(relay(server, **base, password=PASSWORD + "-wrong")).open()
    assert failure.value.reply is not None and failure.value.reply.code == 535
    assert PASSWORD not in str(failure.value) and PASSWORD not in repr(failure.value.reply)

    # Without a username there is no AUTH, and the server refuses the envelope.
    with pytest.raises(ServerFailure, match=r"530"):
        Connection(relay(server, security=security, ca_file=smtp_ca_file)).send(
            Envelope(SENDER, "ada@example.net", b"x")
        )


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
def test_a_relay_echoing_the_auth_exchange_never_shows_the_credentials(
    start_smtp_server: StartServer, mechanism: str
) -> None:
    # Issue 11, item 11: the 535 reply quotes what the client sent (AUTH PLAIN's base64 of
    # "\0user\0password"; AUTH LOGIN's base64 user name, then the password continuation).
    handler = EchoAuthHandler(mechanism)
    server = start_smtp_server(handler, auth={"news-user": PASSWORD})
    settings = relay(server, username="news-user", password=PASSWORD)
    with pytest.raises(ServerFailure, match=r"refused the login.*535") as failure:
        Connection(settings).open()
    assert handler.received, "the server saw no AUTH data"
    shown = str(failure.value) + repr(failure.value.reply)
    forms = {
        "news-user",
        PASSWORD,
        *handler.received,
        base64.b64encode(b"news-user").decode(),
        base64.b64encode(PASSWORD.encode()).decode(),
        base64.b64encode(b"\0news-user\0" + PASSWORD.encode()).decode(),
    }
    for form in forms:
        assert form not in shown, (form, shown)
    assert "***" in shown


# -- replies --------------------------------------------------------------------------------------


def test_451_on_data_is_temporary_and_the_retry_reconnects(
    start_smtp_server: StartServer, pipelining: bool
) -> None:
    handler = RecordingHandler(
        lambda envelope, attempt: "451 4.3.0 try later" if attempt == 1 else None,
        pipelining=pipelining,
    )
    server = start_smtp_server(handler)
    with Connection(relay(server)) as conn:
        with pytest.raises(TemporaryFailure, match=r"451 4.3.0 try later") as failure:
            conn.send(Envelope(SENDER, "ada@example.net", b"x"))
        assert failure.value.reply is not None and failure.value.reply.code == 451
        # The relay could not take the message: not this recipient's doing.
        assert failure.value.concerns == "connection"
        assert not conn.is_open
        assert conn.send(Envelope(SENDER, "ada@example.net", b"x")).code == 250
    assert len(handler.messages) == 1


def test_451_on_rcpt_is_temporary(start_smtp_server: StartServer, pipelining: bool) -> None:
    handler = RecordingHandler(decide_rcpt=lambda a, n: "450 4.2.0 busy", pipelining=pipelining)
    server = start_smtp_server(handler)
    with (
        Connection(relay(server)) as conn,
        pytest.raises(TemporaryFailure, match=r"RCPT TO") as failure,
    ):
        conn.send(Envelope(SENDER, "ada@example.net", b"x"))
    assert failure.value.concerns == "recipient"


def test_550_on_rcpt_is_permanent_and_the_connection_stays_usable(
    start_smtp_server: StartServer, pipelining: bool
) -> None:
    def refuse_ghost(address: str, attempt: int) -> str | None:
        return "550 5.1.1 no such user" if address.startswith("ghost") else None

    server = start_smtp_server(RecordingHandler(decide_rcpt=refuse_ghost, pipelining=pipelining))
    with Connection(relay(server)) as conn:
        conn.send(Envelope(SENDER, "ada@example.net", b"first"))
        with pytest.raises(PermanentFailure, match=r"550 5.1.1 no such user") as failure:
            conn.send(Envelope(SENDER, "ghost@example.net", b"lost"))
        assert failure.value.stage == "rcpt" and failure.value.concerns == "recipient"
        assert conn.is_open and conn.sent == 1
        conn.send(Envelope(SENDER, "bob@example.net", b"second"))
        assert conn.sent == 2
    assert [m.content for m in server.handler.messages] == [b"first\r\n", b"second\r\n"]


def test_554_on_data_is_permanent_and_the_connection_stays_usable(
    start_smtp_server: StartServer, pipelining: bool
) -> None:
    handler = RecordingHandler(
        lambda envelope, attempt: "554 5.7.1 spam" if envelope.content == b"spam\r\n" else None,
        pipelining=pipelining,
    )
    server = start_smtp_server(handler)
    with Connection(relay(server)) as conn:
        with pytest.raises(PermanentFailure, match=r"554 5.7.1 spam") as failure:
            conn.send(Envelope(SENDER, "ada@example.net", b"spam"))
        assert failure.value.stage == "data"
        assert conn.is_open
        conn.send(Envelope(SENDER, "ada@example.net", b"ham"))
    assert [m.content for m in handler.messages] == [b"ham\r\n"]


def test_553_on_mail_from_is_a_server_failure(
    start_smtp_server: StartServer, pipelining: bool
) -> None:
    handler = RecordingHandler(
        decide_mail=lambda address, attempt: "553 5.7.1 sender not allowed", pipelining=pipelining
    )
    server = start_smtp_server(handler)
    conn = Connection(relay(server))
    with pytest.raises(ServerFailure, match=r"MAIL FROM.*553 5.7.1 sender not allowed") as failure:
        conn.send(Envelope(SENDER, "ada@example.net", b"x"))
    assert failure.value.concerns == "connection"
    assert not conn.is_open
    assert handler.messages == []


def test_multiline_reply_is_one_line(start_smtp_server: StartServer) -> None:
    handler = RecordingHandler(lambda e, n: "550-5.7.1 first line\r\n550 5.7.1 second line")
    server = start_smtp_server(handler)
    with Connection(relay(server)) as conn, pytest.raises(PermanentFailure) as failure:
        conn.send(Envelope(SENDER, "ada@example.net", b"x"))
    assert failure.value.reply is not None
    assert failure.value.reply.text == "5.7.1 first line 5.7.1 second line"


# -- drops and timeouts ---------------------------------------------------------------------------


def test_drop_in_the_middle_of_data_is_temporary() -> None:
    with DropDuringDataServer(read_bytes=100) as server:
        settings = SmtpSettings(
            mode="relay", host=server.host, port=server.port, security="none", timeout=5
        )
        conn = Connection(settings)
        with pytest.raises(TemporaryFailure, match=r"connection to .* lost") as failure:
            conn.send(Envelope(SENDER, "ada@example.net", b"x" * 30_000))
        assert failure.value.concerns == "connection"
        assert not conn.is_open


def test_drop_before_the_reply_then_the_next_send_reconnects(
    start_smtp_server: StartServer, pipelining: bool
) -> None:
    handler = RecordingHandler(
        lambda envelope, attempt: DROP if attempt == 1 else None, pipelining=pipelining
    )
    server = start_smtp_server(handler)
    with Connection(relay(server)) as conn:
        with pytest.raises(TemporaryFailure):
            conn.send(Envelope(SENDER, "ada@example.net", stuff(MESSAGE)))
        assert not conn.is_open
        assert conn.send(Envelope(SENDER, "ada@example.net", stuff(MESSAGE))).code == 250
    assert [m.content for m in handler.messages] == [MESSAGE + b"\r\n"]


def test_slow_reply_times_out_promptly(start_smtp_server: StartServer) -> None:
    handler = RecordingHandler(delay=2.0)
    server = start_smtp_server(handler)
    with Connection(relay(server, timeout=0.3)) as conn:
        with pytest.raises(TemporaryFailure, match=r"timed out") as failure:
            conn.send(Envelope(SENDER, "ada@example.net", b"x"))
        assert failure.value.concerns == "connection"
        assert not conn.is_open
        handler.delay = 0
        assert conn.send(Envelope(SENDER, "ada@example.net", b"x")).code == 250


def test_a_trickled_data_reply_times_out_within_the_timeout() -> None:
    # Issue 11, item 13: the socket timeout bounds each read, not the reply; a server that
    # sends one byte every 0.1 s held a 0.5 s timeout for the whole 5 s of its reply.
    with StallingServer("trickle", interval=0.1) as server:
        conn = Connection(relay(server, timeout=0.5))  # type: ignore[arg-type]
        # The whole reply takes 5 s to trickle in: succeeding would mean no timeout held.
        with pytest.raises(TemporaryFailure, match=r"timed out after 0.5 s") as failure:
            conn.send(Envelope(SENDER, "ada@example.net", b"x"))
        assert failure.value.concerns == "connection" and not conn.is_open


def test_a_server_that_stops_reading_mid_data_times_out() -> None:
    with StallingServer("stall") as server:
        conn = Connection(relay(server, timeout=0.5))  # type: ignore[arg-type]
        with pytest.raises(TemporaryFailure, match=r"timed out after 0.5 s"):
            # Far more than the socket buffers hold, so the write itself has to wait.
            conn.send(Envelope(SENDER, "ada@example.net", b"y" * 64_000_000))


# -- addresses ------------------------------------------------------------------------------------


def test_internationalised_domain_goes_out_as_idna(start_smtp_server: StartServer) -> None:
    server = start_smtp_server()
    with Connection(relay(server)) as conn:
        conn.send(Envelope(SENDER, "ada@b\u00fccher.example", b"x"))
    assert server.handler.messages[0].rcpt_tos == ("ada@xn--bcher-kva.example",)


@pytest.mark.parametrize(
    "recipient",
    ["ghost@example.net>\r\nRCPT TO:<eve@example.net", "j\u00f6rg@example.net"],
    ids=["line-break", "non-ascii-local-part"],
)
def test_unusable_recipient_is_permanent(start_smtp_server: StartServer, recipient: str) -> None:
    server = start_smtp_server()
    with Connection(relay(server)) as conn:
        with pytest.raises(PermanentFailure) as failure:
            conn.send(Envelope(SENDER, recipient, b"x"))
        assert failure.value.stage == "rcpt" and failure.value.reply is None
        conn.send(Envelope(SENDER, "ada@example.net", b"x"))
    assert [m.rcpt_tos for m in server.handler.messages] == [("ada@example.net",)]


@pytest.mark.parametrize(
    ("password", "reply"),
    [
        ("tab\tsecret pass", "bad password tab\tsecret pass"),  # whitespace folded
        ("ab", "bad password ab"),  # short
        ("password", "got cGFzc3dv\r\n cmQ="),  # base64 split over lines
    ],
    ids=["folded-whitespace", "short", "split-base64"],
)
def test_credentials_are_masked_in_every_form(password: str, reply: str) -> None:
    from newsletter.settings import SmtpSettings

    settings = SmtpSettings(mode="relay", host="localhost", username="user1", password=password)
    masked = Connection(settings)._reply(535, reply).text
    squeezed = "".join(masked.split())
    assert "".join(password.split()) not in squeezed and "cGFzc3dvcmQ" not in squeezed, masked


def test_a_trickled_greeting_times_out_when_opening() -> None:
    # Each byte arrives within the socket timeout, so only a bound on the whole opening
    # ends it; the greeting would otherwise take 20 s.
    with StallingServer("greeting", interval=0.1) as server:
        conn = Connection(relay(server, timeout=0.5))  # type: ignore[arg-type]
        with pytest.raises(TemporaryFailure, match=r"timed out after 0.5 s opening") as failure:
            conn.open()
        assert failure.value.concerns == "connection" and not conn.is_open


# -- the next envelope with this message's end (RFC 2920 across messages) ------------------------


def _counting_writes(conn: Connection) -> list[bytes]:
    """Every write the connection makes on its session (commands and messages), in order."""
    writes: list[bytes] = []
    command = conn._command

    def spy(smtp: Any, line: bytes) -> None:
        writes.append(line)
        command(smtp, line)

    conn._command = spy  # type: ignore[method-assign]
    return writes


def _chain(conn: Connection, envelopes: list[Envelope]) -> None:
    """Send each envelope with the next one as ``then``, as a worker does."""
    for envelope, following in zip(envelopes, [*envelopes[1:], None], strict=True):
        conn.send(envelope, following)


def test_then_goes_with_the_end_of_the_message_and_each_is_delivered_once(
    start_smtp_server: StartServer,
) -> None:
    server = start_smtp_server(RecordingHandler())
    envelopes = [Envelope(SENDER, f"r{n}@example.net", stuff(MESSAGE)) for n in range(5)]
    with Connection(relay(server)) as conn:
        writes = _counting_writes(conn)
        _chain(conn, envelopes)
        assert conn.sent == 5
    # One envelope write for the first message, then one write per message: its content,
    # its end and the next message's MAIL FROM, RCPT TO and DATA together.
    assert len(writes) == 1 + 5
    assert writes[1].endswith(
        b"\r\n.\r\nMAIL FROM:<news@example.org>\r\nRCPT TO:<r1@example.net>\r\nDATA\r\n"
    )
    assert writes[-1].endswith(b"\r\n.\r\n")
    received = server.handler.messages
    assert [m.rcpt_tos for m in received] == [(e.recipient,) for e in envelopes]
    assert all(m.content == MESSAGE + b"\r\n" for m in received)


def test_then_is_ignored_without_pipelining(start_smtp_server: StartServer) -> None:
    server = start_smtp_server(RecordingHandler(pipelining=False))
    envelopes = [Envelope(SENDER, f"r{n}@example.net", b"x") for n in range(3)]
    with Connection(relay(server)) as conn:
        writes = _counting_writes(conn)
        _chain(conn, envelopes)
    assert len(writes) == 3 * 4  # MAIL, RCPT, DATA, content: each on its own
    assert len(server.handler.messages) == 3


def test_a_primed_envelope_never_sent_delivers_nothing(start_smtp_server: StartServer) -> None:
    # The caller stops (close) or sends another envelope: the server is reading the primed
    # message's content; the connection is dropped, never ended with ".", so nothing of it
    # is delivered, and close() does not wait for an answer to a QUIT it cannot give.
    server = start_smtp_server(RecordingHandler())
    with Connection(relay(server)) as conn:
        conn.send(Envelope(SENDER, "a@example.net", b"a"), Envelope(SENDER, "b@example.net", b"b"))
        conn.send(Envelope(SENDER, "c@example.net", b"c"), Envelope(SENDER, "d@example.net", b"d"))
        conn.close()
        assert not conn.is_open
        conn.send(Envelope(SENDER, "e@example.net", b"e"))
    got = [(m.rcpt_tos, m.content) for m in server.handler.messages]
    assert got == [
        (("a@example.net",), b"a\r\n"),
        (("c@example.net",), b"c\r\n"),
        (("e@example.net",), b"e\r\n"),
    ]


def test_a_refusal_of_the_primed_recipient_is_theirs_alone(start_smtp_server: StartServer) -> None:
    def refuse_ghost(address: str, attempt: int) -> str | None:
        return "550 5.1.1 no such user" if address.startswith("ghost") else None

    server = start_smtp_server(RecordingHandler(decide_rcpt=refuse_ghost))
    envelopes = [
        Envelope(SENDER, "ada@example.net", b"one"),
        Envelope(SENDER, "ghost@example.net", b"lost"),
        Envelope(SENDER, "bob@example.net", b"two"),
    ]
    with Connection(relay(server)) as conn:
        conn.send(envelopes[0], envelopes[1])  # ghost's RCPT goes out with ada's end
        with pytest.raises(PermanentFailure, match=r"550 5.1.1") as failure:
            conn.send(envelopes[1], envelopes[2])
        assert failure.value.stage == "rcpt" and conn.is_open
        conn.send(envelopes[2])
    assert [m.content for m in server.handler.messages] == [b"one\r\n", b"two\r\n"]


def test_a_refused_message_keeps_the_primed_envelope(start_smtp_server: StartServer) -> None:
    # 554 to the end of one message: the next envelope, already written, is still good.
    handler = RecordingHandler(
        lambda envelope, attempt: "554 5.7.1 spam" if envelope.content == b"spam\r\n" else None
    )
    server = start_smtp_server(handler)
    spam, ham = (
        Envelope(SENDER, "a@example.net", b"spam"),
        Envelope(SENDER, "b@example.net", b"ham"),
    )
    with Connection(relay(server)) as conn:
        with pytest.raises(PermanentFailure, match=r"554 5.7.1 spam"):
            conn.send(spam, ham)
        assert conn.is_open
        conn.send(ham)
        assert conn.sent == 1
    assert [m.content for m in handler.messages] == [b"ham\r\n"]


def test_nothing_is_primed_on_the_last_message_of_a_connection(
    start_smtp_server: StartServer,
) -> None:
    server = start_smtp_server(RecordingHandler())
    envelopes = [Envelope(SENDER, f"r{n}@example.net", b"x") for n in range(3)]
    with Connection(relay(server, messages_per_connection=2)) as conn:
        writes = _counting_writes(conn)
        conn.send(envelopes[0], envelopes[1])
        conn.send(envelopes[1], envelopes[2])
        assert conn.needs_reconnect and writes[-1].endswith(b"\r\n.\r\n")
        conn.close()
        conn.send(envelopes[2])
    assert len(server.handler.messages) == 3
