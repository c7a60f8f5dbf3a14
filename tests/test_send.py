"""Sending against a real SMTP server on loopback (aiosmtpd): headers, faults, ledger."""

from __future__ import annotations

import email
import json
import os
import re
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Callable
from email.message import EmailMessage
from email.policy import default
from pathlib import Path
from typing import Any

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from newsletter import ledger, load_settings, open_issue, subscribers
from newsletter.errors import NewsletterError
from newsletter.send import LeaseHeld, send_issue
from newsletter.send.deliver import IN_FLIGHT
from newsletter.send.memory import DROP as MEMORY_DROP, MemoryRelay, MemoryTransport
from newsletter.send.transport import Envelope, Reply
from newsletter.settings import Settings
from newsletter.store import Store
from newsletter.tokens import verify_token
from tests.conftest import SAMPLE_ISSUE
from tests.smtp_servers import DROP, SECRET, RecordingHandler, Server

ISSUE = Path("issues/2023-W25.toml")


def relay_env(server: Server, **extra: str) -> dict[str, str]:
    env = {
        "NEWSLETTER_SMTP__MODE": "relay",
        "NEWSLETTER_SMTP__HOST": server.host,
        "NEWSLETTER_SMTP__PORT": str(server.port),
        "NEWSLETTER_SMTP__SECURITY": "none",
        "NEWSLETTER_SMTP__RETRY_DELAY": "0.001",
        "NEWSLETTER_SECURITY__SECRET": SECRET,
    }
    env.update(extra)
    return env


@pytest.fixture
def relay(
    project: Path, monkeypatch: pytest.MonkeyPatch, start_smtp_server: Callable[..., Server]
) -> Callable[..., tuple[Settings, Server]]:
    """Start a server with the given handler and point the project's settings at it."""

    def start(handler: RecordingHandler | None = None, **extra: str) -> tuple[Settings, Server]:
        server = start_smtp_server(handler or RecordingHandler())
        for key, value in relay_env(server, **extra).items():
            monkeypatch.setenv(key, value)
        return load_settings(project / "config.toml"), server

    return start


def add_subscribers(settings: Settings, people: list[tuple[str, str]]) -> None:
    with Store(settings.store_path) as store:
        for address, name in people:
            subscribers.add(store, address, name)


PEOPLE = [
    ("ada@example.org", "Ada Lovelace"),
    ("anon@example.com", ""),
    ("zofia@example.org", "Zofia Nowak-Żółć"),
]


def parse(content: bytes) -> EmailMessage:
    message = email.message_from_bytes(content, policy=default)
    assert isinstance(message, EmailMessage)
    return message


def body(message: EmailMessage, kind: str) -> str:
    part = message.get_body((kind,))
    assert part is not None
    return str(part.get_content()).replace("\r\n", "\n")


def ledger_rows(settings: Settings) -> int:
    """Delivery rows written: none until a message to a subscriber was tried."""
    with Store(settings.store_path) as store:
        return int(store.db.execute("SELECT COUNT(*) FROM deliveries").fetchone()[0])


def states(settings: Settings) -> dict[str, str]:
    """The ledger's view: each row's state, and ``pending`` for an active subscriber with
    no row yet (never tried)."""
    with Store(settings.store_path) as store:
        rows = store.db.execute(
            "SELECT s.email, coalesce(d.state, 'pending') FROM subscribers s "
            "LEFT JOIN deliveries d ON d.subscriber_id = s.id "
            "WHERE d.state IS NOT NULL OR s.status = 'active'"
        ).fetchall()
    return {row[0]: row[1] for row in rows}


def test_each_message_is_personal_and_compliant(relay: Any, project: Path) -> None:
    settings, server = relay()
    add_subscribers(settings, PEOPLE)
    report = send_issue(open_issue(project / ISSUE, settings), settings)
    assert (report.sent, report.failed, report.remaining) == (3, 0, 0)
    received = {m.rcpt_tos[0]: parse(m.content) for m in server.handler.messages}
    assert set(received) == {p[0] for p in PEOPLE}
    ids = {str(m["Message-ID"]) for m in received.values()}
    assert len(ids) == 3 and all(i.endswith("@example.org>") for i in ids)
    with Store(settings.store_path) as store:
        tokens = {s.email: s.token for s in subscribers.iter_subscribers(store)}
    for address, name in PEOPLE:
        message = received[address]
        assert message.get_content_type() == "multipart/alternative"
        assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"]
        assert message["Subject"] == "Montenegro's role in the Balkans, and DIANA goes live"
        assert message["From"] == "NATO Newsroom Weekly <newsletter@example.org>"
        assert message["Reply-To"] == "NATO Newsroom Weekly <press@example.org>"
        assert message["To"].addresses[0].addr_spec == address
        assert message["To"].addresses[0].display_name == name
        assert message["List-Id"] == "NATO Newsroom Weekly <nato-newsroom-weekly.example.org>"
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert message["Date"] is not None
        url = re.fullmatch(
            r"<(https://newsletter\.example\.org/unsubscribe\?token=(\S+))>",
            message["List-Unsubscribe"],
        )
        assert url, message["List-Unsubscribe"]
        assert verify_token(SECRET, url[2]) == tokens[address]
        text, html = body(message, "plain"), body(message, "html")
        # The shipped greeting is "Hello {first_name},": none of them gave a first name.
        greeting = "Hello,"
        assert f"\n{greeting}\n" in text
        assert f">{greeting}</p>" in html
        assert f"Unsubscribe:\n{url[1]}\n" in text
        assert f'href="{url[1]}"' in html
        # No placeholder left behind.
        assert "PLACEHOLDERX" not in text + html


def test_the_greeting_uses_the_first_name_only_where_it_is_known(
    relay: Any, project: Path, tmp_path: Path
) -> None:
    settings, server = relay()
    csv = tmp_path / "people.csv"
    csv.write_text(
        "Email Address,First Name,Last Name\n"  # Mailchimp's export
        "ada@example.org,Ada,Lovelace\n"
        "kim@example.org,,Kim Jong\n"
        "grace@example.org,Grace,Hopper\n",
        encoding="utf-8",
    )
    with Store(settings.store_path) as store:
        subscribers.import_csv(store, csv)
        # "Family, Given" says which part is which; "Zofia Nowak" does not.
        subscribers.add(store, "alan@example.org", "Turing, Alan")
        subscribers.add(store, "zofia@example.org", "Zofia Nowak")
    send_issue(open_issue(project / ISSUE, settings), settings)
    greetings = {
        m.rcpt_tos[0]: body(parse(m.content), "plain").split("\n\n")[2]
        for m in server.handler.messages
    }
    assert greetings == {
        "ada@example.org": "Hello Ada,",
        "grace@example.org": "Hello Grace,",
        "alan@example.org": "Hello Alan,",
        "kim@example.org": "Hello,",
        "zofia@example.org": "Hello,",
    }
    # `{name}` still works for those who prefer the full name.
    newsletter = settings.newsletter.model_copy(update={"greeting": "Dear {name},"})
    assert newsletter.greet("Grace Hopper", "Grace") == "Dear Grace Hopper,"
    assert newsletter.greet("", "Grace") == "Hello,"


def test_temporary_failures_are_retried_and_everyone_gets_it_once(
    relay: Any, project: Path
) -> None:
    # The first try of every third message gets a 4xx or a dropped connection.
    def flaky(envelope: Any, attempt: int) -> str | None:
        number = int(re.search(r"(\d+)@", envelope.rcpt_tos[0])[1])  # type: ignore[index]
        if attempt == 1 and number % 3 == 0:
            return ["421 4.3.2 shutting down", "451 4.3.0 try later", DROP][number % 9 // 3]
        return None

    settings, server = relay(RecordingHandler(decide=flaky))
    add_subscribers(settings, [(f"user{n}@example.org", "") for n in range(60)])
    report = send_issue(open_issue(project / ISSUE, settings), settings)
    assert (report.sent, report.failed, report.deferred, report.remaining) == (60, 0, 0, 0)
    got = Counter(m.rcpt_tos[0] for m in server.handler.messages)
    assert len(got) == 60 and set(got.values()) == {1}
    assert len(server.handler.refusals) == 20


def test_permanent_failures_are_recorded_never_retried(relay: Any, project: Path) -> None:
    refused = {"bad1@example.org", "bad2@example.org"}
    handler = RecordingHandler(
        decide_rcpt=lambda address, attempt: (
            "550 5.1.1 no such user" if address in refused else None
        )
    )
    settings, _ = relay(handler, NEWSLETTER_SMTP__BOUNCE_AFTER="1")
    add_subscribers(settings, [(a, "") for a in sorted(refused)] + [("ok@example.org", "")])
    report = send_issue(open_issue(project / ISSUE, settings), settings)
    assert (report.sent, report.failed) == (1, 2)
    assert {f["email"] for f in report.failures} == refused
    assert all("550" in f["reply"] for f in report.failures)
    assert states(settings) == {
        "bad1@example.org": "failed",
        "bad2@example.org": "failed",
        "ok@example.org": "sent",
    }
    with Store(settings.store_path) as store:
        assert {s.email for s in subscribers.iter_subscribers(store, "bounced")} == refused
    # A second run tries nobody again.
    before = len(handler.refusals)
    again = send_issue(open_issue(project / ISSUE, settings), settings)
    assert again.recipients == 0 and len(handler.refusals) == before


def test_cli_exit_code_is_non_zero_when_someone_failed(
    project: Path, start_smtp_server: Callable[..., Server]
) -> None:
    server = start_smtp_server(
        RecordingHandler(
            decide_rcpt=lambda a, n: "550 5.1.1 unknown" if a.startswith("bad") else None
        )
    )
    env = {**os.environ, **relay_env(server)}
    run = [sys.executable, "-m", "newsletter"]
    (project / "list.csv").write_text("email\nbad@example.org\ngood@example.org\n")
    subprocess.run(
        [*run, "subscribers", "import", "list.csv"],
        cwd=project,
        env=env,
        check=True,
        capture_output=True,
    )
    result = subprocess.run(
        [*run, "send", str(ISSUE), "--yes"], cwd=project, env=env, capture_output=True, text=True
    )
    assert result.returncode == 1, result.stderr
    assert "sent 1, failed 1" in result.stdout
    assert re.search(r"failed: bad@example.org: .*RCPT TO with 550", result.stderr)
    assert "Traceback" not in result.stderr


def test_slow_reply_times_out_and_is_retried(relay: Any, project: Path) -> None:
    handler = RecordingHandler(delay=0.0)
    settings, _ = relay(handler, NEWSLETTER_SMTP__TIMEOUT="0.3", NEWSLETTER_SMTP__CONNECTIONS="1")
    add_subscribers(settings, [("slow@example.org", "")])
    handler.delay = 1.0  # longer than the timeout, on every try
    settings = settings.model_copy(
        update={"smtp": settings.smtp.model_copy(update={"max_attempts": 2})}
    )
    report = send_issue(open_issue(project / ISSUE, settings), settings)
    # Never answered in time: not marked sent, not failed; left pending for the next run.
    assert (report.sent, report.failed, report.deferred, report.remaining) == (0, 0, 1, 1)
    assert "the relay keeps failing" in report.stopped and "timed out after 0.3 s" in report.stopped
    assert states(settings) == {"slow@example.org": "pending"}
    handler.delay = 0.0
    assert send_issue(open_issue(project / ISSUE, settings), settings).sent == 1
    assert states(settings) == {"slow@example.org": "sent"}


def test_refused_login_stops_the_run_and_marks_nothing(
    project: Path, monkeypatch: pytest.MonkeyPatch, start_smtp_server: Callable[..., Server]
) -> None:
    server = start_smtp_server(RecordingHandler(), auth={"newsletter": "right"})
    for key, value in relay_env(
        server, NEWSLETTER_SMTP__USERNAME="newsletter", NEWSLETTER_SMTP__PASSWORD="wrong-password"
    ).items():
        monkeypatch.setenv(key, value)
    settings = load_settings(project / "config.toml")
    add_subscribers(settings, PEOPLE)
    report = send_issue(open_issue(project / ISSUE, settings), settings)
    assert report.sent == 0 and report.stopped and not report.ok
    assert "wrong-password" not in report.stopped
    assert set(states(settings).values()) == {"pending"}
    assert server.handler.messages == []


def test_unsubscribed_and_bounced_are_skipped(relay: Any, project: Path) -> None:
    settings, server = relay()
    add_subscribers(settings, PEOPLE)
    with Store(settings.store_path) as store:
        subscribers.unsubscribe_address(store, "ada@example.org")
        subscribers.set_status(store, subscribers.get(store, "anon@example.com").id, "bounced")  # type: ignore[union-attr]
    report = send_issue(open_issue(project / ISSUE, settings), settings)
    assert report.sent == 1
    assert [m.rcpt_tos for m in server.handler.messages] == [("zofia@example.org",)]


def test_header_injection_is_refused_before_anything_is_sent(relay: Any, project: Path) -> None:
    settings, server = relay()
    add_subscribers(settings, PEOPLE)
    with Store(settings.store_path) as store, store.transaction() as db:
        # Only a hand-edited store can hold this: add/import flatten line breaks.
        db.execute(
            "UPDATE subscribers SET name = 'Eve\r\nBcc: x@example.net' "
            "WHERE email = 'zofia@example.org'"
        )
    with pytest.raises(NewsletterError, match="line break"):
        send_issue(open_issue(project / ISSUE, settings), settings)
    assert server.handler.messages == []


def test_a_live_lease_blocks_a_second_sender_and_a_dead_one_does_not(
    relay: Any, project: Path
) -> None:
    settings, _ = relay()
    add_subscribers(settings, PEOPLE)
    with Store(settings.store_path) as store:
        # A live process on this host (our parent) holds it.
        ledger.acquire_lease(store, "2023-W25", "s", 60)
        with store.transaction() as db:
            db.execute(
                "UPDATE campaigns SET lease_owner = ? WHERE issue = '2023-W25'",
                (f"{os.uname().nodename}:{os.getppid()}:0a1b2c3d",),
            )
    with pytest.raises(LeaseHeld, match="another send of 2023-W25 is running"):
        send_issue(open_issue(project / ISSUE, settings), settings)
    with Store(settings.store_path) as store, store.transaction() as db:
        db.execute(
            "UPDATE campaigns SET lease_owner = ? WHERE issue = '2023-W25'",
            (f"{os.uname().nodename}:999999999:0a1b2c3d",),
        )
    assert send_issue(open_issue(project / ISSUE, settings), settings).sent == 3


def test_test_send_goes_only_to_the_given_addresses(relay: Any, project: Path) -> None:
    settings, server = relay()
    add_subscribers(settings, PEOPLE)
    result = subprocess.run(
        [sys.executable, "-m", "newsletter", "send", str(ISSUE), "--test", "me@example.net"],
        cwd=project, env={**os.environ}, capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    (message,) = server.handler.messages
    assert message.rcpt_tos == ("me@example.net",)
    # Folded onto a continuation line (legal); the folding space is not part of the subject.
    assert parse(message.content)["Subject"].strip().startswith("[TEST] Montenegro")
    assert ledger_rows(settings) == 0


def test_dry_run_sends_nothing_and_writes_nothing(relay: Any, project: Path) -> None:
    settings, server = relay()
    add_subscribers(settings, PEOPLE)
    result = subprocess.run(
        [sys.executable, "-m", "newsletter", "send", str(ISSUE), "--dry-run"],
        cwd=project, env={**os.environ}, capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0
    assert "Would send to 3 subscribers (0 already have it)." in result.stdout
    assert "ada@example.org" in result.stdout
    assert server.handler.messages == [] and ledger_rows(settings) == 0


def test_dkim_signature_verifies(relay: Any, project: Path, tmp_path: Path) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    (tmp_path / "dkim.pem").write_bytes(pem)
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    import base64

    record = b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)
    settings, server = relay(
        NEWSLETTER_DKIM__DOMAIN="example.org", NEWSLETTER_DKIM__SELECTOR="news2023",
        NEWSLETTER_DKIM__KEY_FILE=str(tmp_path / "dkim.pem"),
    )  # fmt: skip
    add_subscribers(settings, PEOPLE[:2])
    assert send_issue(open_issue(project / ISSUE, settings), settings).sent == 2

    def dns(name: bytes, timeout: int = 5) -> bytes:
        assert name == b"news2023._domainkey.example.org."
        return record

    for message in server.handler.messages:
        assert message.content.startswith(b"DKIM-Signature:")
        assert dkim.verify(message.content, dnsfunc=dns)
        tampered = message.content.replace(b"Hello", b"Hallo", 1)
        assert not dkim.verify(tampered, dnsfunc=dns)


def test_relay_refuses_the_sample_secret(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEWSLETTER_SMTP__MODE", "relay")
    settings = load_settings(project / "config.toml")
    with pytest.raises(NewsletterError, match="secret is still the sample value"):
        send_issue(open_issue(project / ISSUE, settings), settings)


def test_capture_mode_and_weekly_twice_sends_once(project: Path) -> None:
    """The embedded default: the README's main flow, with the local capture server."""
    shutil_copy = (Path(__file__).parents[1] / "examples" / "subscribers.csv").read_text()
    (project / "subscribers.csv").write_text(shutil_copy)
    run = [sys.executable, "-m", "newsletter"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    subprocess.run(
        [*run, "subscribers", "import", "subscribers.csv"],
        cwd=project,
        env=env,
        check=True,
        capture_output=True,
    )
    first = subprocess.run(
        [*run, "weekly", "--week", "2023-W25"], cwd=project, env=env, capture_output=True, text=True
    )
    assert first.returncode == 0, first.stderr
    assert "2023-W25: sent 20, failed 0" in first.stdout and "captured in out/mail" in first.stdout
    maildir = project / "out" / "mail" / "new"
    assert len(list(maildir.iterdir())) == 20
    assert (project / "out" / "2023-W25" / "email.html").is_file()  # built on the way
    second = subprocess.run(
        [*run, "weekly", "--week", "2023-W25"], cwd=project, env=env, capture_output=True, text=True
    )
    assert second.returncode == 0
    assert "Nothing to send: 2023-W25 already went to 20 subscribers." in second.stdout
    assert len(list(maildir.iterdir())) == 20
    missing = subprocess.run(
        [*run, "weekly", "--week", "2023-W30"], cwd=project, env=env, capture_output=True, text=True
    )
    assert missing.returncode == 2 and "no issue file for 2023-W30" in missing.stderr


def test_sample_issue_path_constant() -> None:
    assert SAMPLE_ISSUE.name == ISSUE.name


def test_wire_bytes_are_the_dot_stuffed_message(settings: Settings) -> None:
    from newsletter import open_issue
    from newsletter.render.message import Recipient, dot_stuff

    # A greeting that starts with the name puts a per-recipient value at the start of a line.
    newsletter = settings.newsletter.model_copy(update={"greeting": "{name}, welcome"})
    settings = settings.model_copy(update={"newsletter": newsletter})
    builder = open_issue(SAMPLE_ISSUE, settings).message_builder()
    for recipient in (
        Recipient("ada@example.org", ".Ada", "tok", 1),
        Recipient("anon@example.org", "", "tok2", 2),
    ):
        message = builder.message_bytes(recipient)
        assert builder.wire(recipient) == dot_stuff(message)
        assert b"\r\n..Ada, welcome" in builder.wire(recipient) or not recipient.name
        assert max(len(line) for line in message.split(b"\r\n")[20:]) <= 76  # QP lines


def test_a_run_that_loses_its_lease_stops(relay: Any, project: Path) -> None:
    handler = RecordingHandler(delay=0.01)
    settings, server = relay(handler, NEWSLETTER_SMTP__CONNECTIONS="2")
    add_subscribers(settings, [(f"user{n}@example.org", "") for n in range(200)])
    taken = []

    def take_over(ok: bool) -> None:
        if not taken:
            taken.append(True)
            with Store(settings.store_path) as store, store.transaction() as db:
                db.execute("UPDATE campaigns SET lease_owner = 'elsewhere:1:ffff'")

    report = send_issue(open_issue(project / ISSUE, settings), settings, on_result=take_over)
    assert "another run took over" in report.stopped and not report.ok
    # Only the messages already in flight went out after the takeover: up to IN_FLIGHT
    # per connection, and one more each that was already composed and under way.
    assert len(server.handler.messages) <= 1 + IN_FLIGHT * 2 + 2


def test_unreachable_relay_stops_at_once_and_marks_nothing(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.smtp_servers import free_port

    closed = Server("127.0.0.1", free_port(), RecordingHandler())
    for key, value in relay_env(closed).items():
        monkeypatch.setenv(key, value)
    settings = load_settings(project / "config.toml")
    add_subscribers(settings, PEOPLE)
    report = send_issue(open_issue(project / ISSUE, settings), settings)
    assert report.stopped.startswith("cannot reach the relay") and report.sent == 0
    assert set(states(settings).values()) == {"pending"}


def test_limit_leaves_the_rest_for_later_and_exits_0(
    project: Path, start_smtp_server: Callable[..., Server]
) -> None:
    server = start_smtp_server(RecordingHandler())
    env = {**os.environ, **relay_env(server)}
    run = [sys.executable, "-m", "newsletter"]
    (project / "list.csv").write_text("email\n" + "".join(f"u{n}@example.org\n" for n in range(5)))
    subprocess.run([*run, "subscribers", "import", "list.csv"], cwd=project, env=env, check=True)
    first = subprocess.run(
        [*run, "send", str(ISSUE), "--yes", "--limit", "3"],
        cwd=project, env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert first.returncode == 0, first.stderr
    assert "sent 3" in first.stdout and "2 left for the next run (--limit)" in first.stdout
    rest = subprocess.run(
        [*run, "send", str(ISSUE), "--yes"], cwd=project, env=env, capture_output=True, text=True
    )
    assert rest.returncode == 0 and "sent 2" in rest.stdout
    assert len(server.handler.messages) == 5


def test_each_test_copy_has_a_new_message_id(settings: Settings) -> None:
    from newsletter import open_issue
    from newsletter.render.message import Recipient

    builder = open_issue(SAMPLE_ISSUE, settings).message_builder(test=True)
    me = Recipient("me@example.org")
    assert builder.message_id(me) != builder.message_id(me)


def test_password_in_clear_to_a_remote_relay_is_refused(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {
        "NEWSLETTER_SMTP__MODE": "relay",
        "NEWSLETTER_SMTP__HOST": "smtp.example.net",
        "NEWSLETTER_SMTP__SECURITY": "none",
        "NEWSLETTER_SMTP__USERNAME": "newsletter",
        "NEWSLETTER_SMTP__PASSWORD": "hunter2",
        "NEWSLETTER_SECURITY__SECRET": SECRET,
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = load_settings(project / "config.toml")
    with pytest.raises(NewsletterError, match="password in clear") as info:
        send_issue(open_issue(project / ISSUE, settings), settings)
    assert "hunter2" not in str(info.value)


# -- the delivery loop, against the in-memory relay ------------------------------------------------


def quick(settings: Settings, **smtp: Any) -> Settings:
    """No waiting between tries."""
    values = {"retry_delay": 0.0, **smtp}
    return settings.model_copy(update={"smtp": settings.smtp.model_copy(update=values)})


def test_a_given_transport_gets_every_message_once(settings: Settings, project: Path) -> None:
    relay = MemoryRelay()
    add_subscribers(settings, PEOPLE)
    report = send_issue(open_issue(project / ISSUE, settings), settings, transport=relay.transport)
    assert report.ok and report.mode == "custom" and report.sent == 3 and not report.capture_dir
    assert sorted(e.recipient for e in relay.accepted) == sorted(p[0] for p in PEOPLE)
    for envelope in relay.accepted:
        assert envelope.sender == settings.newsletter.from_address
        # Each recipient's own message, dot-stuffed for the wire.
        assert parse(envelope.data)["To"].addresses[0].addr_spec == envelope.recipient
        lines = envelope.data.split(b"\r\n")
        assert all(line.startswith(b"..") for line in lines if line.startswith(b"."))
    assert states(settings) == dict.fromkeys((p[0] for p in PEOPLE), "sent")


def test_a_recipients_4xx_does_not_stop_the_run(settings: Settings, project: Path) -> None:
    # More greylisted recipients in a row than there are connections: each is deferred for a
    # later run, but they say nothing about the relay, so everyone after them still gets it.
    settings = quick(settings, connections=2, max_attempts=2)
    people = [f"user{n:02d}@example.org" for n in range(10)]
    greylisted = set(people[2:5])
    relay = MemoryRelay(rcpt=lambda a, n: "451 4.7.1 greylisted" if a in greylisted else None)
    add_subscribers(settings, [(a, "") for a in people])
    report = send_issue(open_issue(project / ISSUE, settings), settings, transport=relay.transport)
    assert report.stopped == ""
    assert (report.sent, report.deferred, report.failed, report.remaining) == (7, 3, 0, 3)
    assert {e.recipient for e in relay.accepted} == set(people) - greylisted
    assert len([r for r in relay.refusals if r[0] == "rcpt"]) == 3  # deferred at once
    assert {a for a, state in states(settings).items() if state == "pending"} == greylisted


def test_a_421_to_every_rcpt_stops_the_run(settings: Settings, project: Path) -> None:
    # 421 closes the session: the relay is busy or throttling, whatever the stage.
    settings = quick(settings, connections=2, max_attempts=2)
    relay = MemoryRelay(rcpt=lambda a, n: "421 4.3.2 try again later")
    add_subscribers(settings, [(f"user{n:02d}@example.org", "") for n in range(20)])
    report = send_issue(open_issue(project / ISSUE, settings), settings, transport=relay.transport)
    assert report.stopped.startswith("the relay keeps failing")
    assert report.deferred <= 2 + 2 and report.remaining == 20


def test_a_stored_name_that_cannot_be_sent_fails_alone(settings: Settings, project: Path) -> None:
    # A store from before the name rules may hold a control character: that subscriber
    # fails for good, with the reason, and everyone after them still gets the issue.
    people = [f"user{n:02d}@example.org" for n in range(6)]
    add_subscribers(settings, [(a, "") for a in people])
    with Store(settings.store_path) as store, store.transaction() as db:
        db.execute("UPDATE subscribers SET name = 'Bad\x01Name' WHERE email = ?", (people[0],))
    relay = MemoryRelay()
    report = send_issue(open_issue(project / ISSUE, settings), settings, transport=relay.transport)
    assert report.stopped == "" and (report.sent, report.failed) == (5, 1)
    assert "control character" in report.failures[0]["reply"]
    assert {e.recipient for e in relay.accepted} == set(people[1:])


def test_relay_failures_in_a_row_stop_the_run(settings: Settings, project: Path) -> None:
    settings = quick(settings, connections=2, max_attempts=2)
    relay = MemoryRelay(data=lambda a, n: "451 4.3.0 queue full")
    add_subscribers(settings, [(f"user{n:02d}@example.org", "") for n in range(20)])
    report = send_issue(open_issue(project / ISSUE, settings), settings, transport=relay.transport)
    assert (
        report.stopped
        == "the relay keeps failing: memory:25 answered DATA with 451 4.3.0 queue full"
    )
    assert report.sent == 0 and report.remaining == 20 and not report.ok
    # It stops after about one failing message per connection, not after all twenty.
    assert report.deferred <= 2 + 2


def test_a_relay_that_refuses_connections_stops_the_run(settings: Settings, project: Path) -> None:
    settings = quick(settings, connections=2, max_attempts=3)
    relay = MemoryRelay(connect=lambda n: MEMORY_DROP)
    add_subscribers(settings, PEOPLE)
    report = send_issue(open_issue(project / ISSUE, settings), settings, transport=relay.transport)
    assert "the relay keeps failing" in report.stopped and "Connection refused" in report.stopped
    assert report.sent == 0 and set(states(settings).values()) == {"pending"}


def test_a_transport_is_reconnected_after_messages_per_connection(
    settings: Settings, project: Path
) -> None:
    settings = quick(settings, connections=1)
    relay = MemoryRelay(messages_per_connection=2)
    add_subscribers(settings, [(f"user{n}@example.org", "") for n in range(5)])
    assert (
        send_issue(open_issue(project / ISSUE, settings), settings, transport=relay.transport).sent
        == 5
    )
    assert relay.connections == 3


# -- issue 11 regressions -------------------------------------------------------------------------


def cli(
    project: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "newsletter", *args], cwd=project, env=env or {**os.environ},
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


@pytest.mark.parametrize("mode", [["--test", "me@example.net"], ["--yes", "--force"]])
def test_an_injected_base_url_never_sends_a_bcc(relay: Any, project: Path, mode: list[str]) -> None:
    settings, server = relay()
    add_subscribers(settings, PEOPLE)
    env = {**os.environ, "NEWSLETTER_NEWSLETTER__BASE_URL": "https://x.example/\r\nBcc: eve@x.net"}
    result = cli(project, "send", str(ISSUE), *mode, env=env)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "base_url" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert server.handler.messages == []


def test_send_without_yes_and_without_a_terminal_refuses(relay: Any, project: Path) -> None:
    settings, server = relay()
    add_subscribers(settings, PEOPLE)
    result = cli(project, "send", str(ISSUE))
    assert result.returncode == 2, result.stdout + result.stderr
    assert "use --yes to send without a terminal" in result.stderr
    assert server.handler.messages == [] and ledger_rows(settings) == 0


def test_a_rerun_after_permanent_failures_says_so(relay: Any, project: Path) -> None:
    handler = RecordingHandler(decide_rcpt=lambda a, n: "550 5.1.1 no" if a[0] == "a" else None)
    settings, _ = relay(handler)
    add_subscribers(settings, PEOPLE)
    first = cli(project, "send", str(ISSUE), "--yes")
    assert first.returncode == 1 and "sent 1, failed 2" in first.stdout
    again = cli(project, "send", str(ISSUE), "--yes")
    # 0: a rerun cannot change a 5xx; but the summary must not hide who never got it.
    assert again.returncode == 0, again.stdout + again.stderr
    assert "Nothing to send: 2023-W25 already went to 1 subscriber." in again.stdout
    assert "2 failed permanently in earlier runs; see send-report.json" in again.stderr


def test_a_no_op_rerun_keeps_the_real_report(relay: Any, project: Path) -> None:
    handler = RecordingHandler(decide_rcpt=lambda a, n: "550 5.1.1 no" if a[0] == "a" else None)
    settings, _ = relay(handler)
    add_subscribers(settings, PEOPLE)
    loaded = open_issue(project / ISSUE, settings)
    send_issue(loaded, settings)
    out = project / "out" / "2023-W25"
    runs_before = sorted(out.glob("send-report-*.json"))
    assert len(runs_before) == 1
    again = send_issue(open_issue(project / ISSUE, settings), settings)
    assert again.recipients == 0
    runs = sorted(out.glob("send-report-*.json"))
    assert len(runs) == 2 and runs_before[0] in runs
    first_run = json.loads(runs_before[0].read_text())
    assert (first_run["recipients"], first_run["sent"], first_run["failed"]) == (3, 1, 2)
    total = json.loads((out / "send-report.json").read_text())
    assert (total["sent"], total["failed"], total["remaining"]) == (1, 2, 0)
    assert {f["email"] for f in total["failures"]} == {"ada@example.org", "anon@example.com"}
    assert total["last_run"] == runs[-1].name and total["runs"] == [r.name for r in runs]


def test_a_rerun_tries_never_tried_recipients_before_deferred_ones(
    settings: Settings, project: Path
) -> None:
    # A block of greylisted addresses at the start of the list, and runs of 4 (--limit):
    # each rerun must reach new people instead of the same block again.
    settings = quick(settings, connections=1, max_attempts=1)
    people = [f"user{n:02d}@example.org" for n in range(10)]
    block = set(people[:4])
    relay = MemoryRelay(rcpt=lambda a, n: "451 4.7.1 greylisted" if a in block else None)
    add_subscribers(settings, [(a, "") for a in people])
    first = send_issue(open_issue(project / ISSUE, settings), settings, limit=4,
                       transport=relay.transport)  # fmt: skip
    assert (first.sent, first.deferred) == (0, 4)
    second = send_issue(open_issue(project / ISSUE, settings), settings, limit=4,
                        transport=relay.transport)  # fmt: skip
    assert second.sent == 4
    assert [e.recipient for e in relay.accepted] == people[4:8]
    block.clear()  # greylisting over: the deferred ones come after the rest
    third = send_issue(open_issue(project / ISSUE, settings), settings, transport=relay.transport)
    assert third.sent == 6
    assert [e.recipient for e in relay.accepted][4:] == people[8:] + people[:4]


def test_capture_maildir_parents_are_created(settings: Settings, project: Path) -> None:
    # Issue 11, item 12: [paths] output_dir moved elsewhere and [smtp] capture_dir nested.
    paths = settings.paths.model_copy(update={"output_dir": project / "elsewhere" / "build"})
    smtp = settings.smtp.model_copy(
        update={"mode": "capture", "capture_dir": project / "var" / "deep" / "er" / "mail"}
    )
    settings = settings.model_copy(update={"paths": paths, "smtp": smtp})
    add_subscribers(settings, PEOPLE)
    report = send_issue(open_issue(project / ISSUE, settings), settings)
    assert report.sent == 3 and report.ok, report
    assert len(list((project / "var" / "deep" / "er" / "mail" / "new").iterdir())) == 3
    assert (project / "elsewhere" / "build" / "2023-W25" / "send-report.json").is_file()


def test_long_names_are_refused_at_input_and_folded_when_already_stored(
    relay: Any, project: Path
) -> None:
    settings, server = relay()
    with Store(settings.store_path) as store:
        with pytest.raises(NewsletterError, match=r"the name is 990 characters; at most 200"):
            subscribers.add(store, "long@example.org", "A" * 990)
        subscribers.add(store, "long@example.org", "A" * 200)
        subscribers.add(store, "accent@example.org", "x")
        subscribers.add(store, "ascii@example.org", "y")
        with store.transaction() as db:  # stored before the limit existed
            db.execute("UPDATE subscribers SET name = ? WHERE email = 'accent@example.org'",
                       ("\u00e9" * 400,))  # fmt: skip
            db.execute("UPDATE subscribers SET name = ? WHERE email = 'ascii@example.org'",
                       ("B" * 990,))  # fmt: skip
    report = send_issue(open_issue(project / ISSUE, settings), settings)
    # aiosmtpd, like real relays, refuses a line over 998 characters with "500 Line too long".
    assert (report.sent, report.failed) == (3, 0), report.failures
    for message in server.handler.messages:
        head = message.content.split(b"\r\n\r\n", 1)[0]
        assert max(len(line) for line in head.split(b"\r\n")) <= 998


def test_subscribers_add_refuses_a_long_name_in_one_line(project: Path) -> None:
    result = cli(project, "subscribers", "add", "ada@example.org", "--name", "\u00e9" * 400)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: ada@example.org: the name is 400 characters; at most 200"
    ]


def test_an_echoed_auth_string_is_masked_on_stderr_and_in_the_report(
    project: Path, start_smtp_server: Callable[..., Server]
) -> None:
    from tests.smtp_servers import EchoAuthHandler

    handler = EchoAuthHandler("PLAIN")
    server = start_smtp_server(handler, auth={"newsletter": "right"})
    env = {**os.environ, **relay_env(server, NEWSLETTER_SMTP__USERNAME="newsletter",
                                     NEWSLETTER_SMTP__PASSWORD="hunter2-secret")}  # fmt: skip
    (project / "list.csv").write_text("email\nada@example.org\n")
    assert cli(project, "subscribers", "import", "list.csv", env=env).returncode == 0
    result = cli(project, "send", str(ISSUE), "--yes", env=env)
    assert result.returncode == 1 and "535" in result.stderr, result.stderr
    (echoed,) = handler.received
    reports = "".join(p.read_text() for p in (project / "out" / "2023-W25").glob("send-report*"))
    assert "535" in reports
    for text in (result.stdout + result.stderr, reports):
        for secret in (echoed, "hunter2-secret", "newsletter:", "bmV3c2xldHRlcg"):
            assert secret not in text


def test_a_connection_never_runs_ahead_of_the_ledger(settings: Settings, project: Path) -> None:
    """The in-flight bound (duplicates after a SIGKILL <= IN_FLIGHT x connections) rests on
    this: a connection sends its next message while the previous result commits, but not
    one more until the earlier ones are in the ledger. Checked on every message, from the
    store itself, while the send runs."""
    connections = 3
    settings = quick(settings, connections=connections)
    people = [(f"user{n:03d}@example.org", "") for n in range(60)]
    add_subscribers(settings, people)
    relay = MemoryRelay()
    violations: list[str] = []
    lock = threading.Lock()

    def watched() -> MemoryTransport:
        inner = relay.transport()
        sent_before: list[str] = []
        store = Store(settings.store_path)  # this worker thread's own connection

        class Checking:
            needs_reconnect = False

            def open(self) -> None:
                inner.open()

            def close(self) -> None:
                inner.close()

            def send(self, envelope: Envelope, then: Envelope | None = None) -> Reply:
                if len(sent_before) >= IN_FLIGHT:
                    # Everything but the last IN_FLIGHT - 1 messages must be recorded.
                    earlier = sent_before[-IN_FLIGHT]
                    row = store.db.execute(
                        "SELECT d.state FROM deliveries d JOIN subscribers s "
                        "ON s.id = d.subscriber_id WHERE d.issue = ? AND s.email = ?",
                        ("2023-W25", earlier),
                    ).fetchone()
                    if row is None or row[0] != "sent":
                        with lock:
                            violations.append(f"{envelope.recipient} before {earlier}")
                reply = inner.send(envelope, then)
                sent_before.append(envelope.recipient)
                return reply

        return Checking()  # type: ignore[return-value]

    report = send_issue(open_issue(project / ISSUE, settings), settings, transport=watched)
    assert report.ok and report.sent == len(people)
    assert violations == []
