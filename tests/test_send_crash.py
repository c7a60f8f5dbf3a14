"""`newsletter send` under abuse: SIGKILL mid-run, two runs at once, an unsubscribe mid-run.

Real subprocesses talk SMTP to an in-process aiosmtpd server on loopback; what the server
received and what the ledger says are checked afterwards. The promise under test: a killed run
resumes without losing anyone and repeats at most the messages in flight (one per connection),
and two runs of the same issue never both send.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from newsletter.send.deliver import IN_FLIGHT
from newsletter.store import Store
from newsletter.subscribers import import_csv, unsubscribe_address
from tests.smtp_servers import Received, RecordingHandler, Server

WEEK = "2023-W25"
ISSUE_FILE = f"issues/{WEEK}.toml"
SEND = [sys.executable, "-m", "newsletter", "send", ISSUE_FILE, "--yes"]
SENDER = "newsletter@example.org"
SECRET = "crash-test-secret-not-the-sample-0123456789abcdef"
SUBSCRIBERS = 2000
CONNECTIONS = 4
#: Safety nets only: no assertion depends on how fast anything is.
TIMEOUT = 120.0

ADDRESSES = [f"user{n:04d}@example.org" for n in range(1, SUBSCRIBERS + 1)]


# -- fixtures and helpers -------------------------------------------------------------------------


@pytest.fixture
def subscribers(project: Path) -> list[str]:
    """2,000 active subscribers in the project's store, in id order."""
    csv_path = project / "subscribers.csv"
    rows = "".join(f"{email},User {n}\n" for n, email in enumerate(ADDRESSES, start=1))
    csv_path.write_text("email,name\n" + rows, encoding="utf-8")
    with Store(project / "newsletter.db") as store:
        report = import_csv(store, csv_path)
    assert report.imported == SUBSCRIBERS, report.problems
    return ADDRESSES


@pytest.fixture
def server(start_smtp_server: Callable[..., Server]) -> Server:
    # A small delay before each 250 keeps several messages in flight when a kill lands.
    # PIPELINING is offered, so each connection writes its next envelope with the end of
    # the current message: kills land with primed envelopes too, which must deliver nothing.
    return start_smtp_server(RecordingHandler(delay=0.002, pipelining=True))


def send_env(server: Server, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    env.update(
        NEWSLETTER_SMTP__MODE="relay",
        NEWSLETTER_SMTP__HOST=server.host,
        NEWSLETTER_SMTP__PORT=str(server.port),
        NEWSLETTER_SMTP__SECURITY="none",
        NEWSLETTER_SMTP__CONNECTIONS=str(CONNECTIONS),
        NEWSLETTER_SMTP__RETRY_DELAY="0.01",
        NEWSLETTER_SECURITY__SECRET=SECRET,
    )
    env.update(extra)
    return env


@contextlib.contextmanager
def sending(project: Path, server: Server, **extra: str) -> Iterator[subprocess.Popen[str]]:
    """A running `newsletter send`; killed if the test leaves it running, always reaped."""
    proc = subprocess.Popen(
        SEND,
        cwd=project,
        env=send_env(server, **extra),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    with proc:  # closes the pipes and waits on the way out
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.kill()


def run_send(project: Path, server: Server, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        SEND,
        cwd=project,
        env=send_env(server, **extra),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )


def wait_for_messages(handler: RecordingHandler, count: int, proc: subprocess.Popen[str]) -> None:
    """Poll until the server holds ``count`` messages; fail if the send ends first."""
    deadline = time.monotonic() + TIMEOUT
    while len(handler.messages) < count:
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(
                f"send exited with {proc.returncode} after {len(handler.messages)} messages, "
                f"before {count}:\n{out}\n{err}"
            )
        if time.monotonic() > deadline:
            pytest.fail(f"only {len(handler.messages)} of {count} messages arrived")
        time.sleep(0.002)


def received(handler: RecordingHandler) -> Counter[str]:
    """How many copies each recipient got; every message must be addressed as composed."""
    counts: Counter[str] = Counter()
    for message in handler.messages:
        check_message(message)
        counts.update(message.rcpt_tos)
    return counts


def check_message(message: Received) -> None:
    assert message.mail_from == SENDER
    assert len(message.rcpt_tos) == 1, message.rcpt_tos
    # The copy composed for this subscriber (their To header), not someone else's.
    assert message.rcpt_tos[0].encode() in message.content


def ledger(project: Path) -> dict[str, str]:
    """Each subscriber's delivery state for the issue: ``pending`` with no row (never tried)."""
    with Store(project / "newsletter.db") as store:
        rows = store.db.execute(
            "SELECT s.email, coalesce(d.state, 'pending') AS state FROM subscribers s "
            "LEFT JOIN deliveries d ON d.subscriber_id = s.id AND d.issue = ?",
            (WEEK,),
        ).fetchall()
    return {row["email"]: row["state"] for row in rows}


def lease_owner(project: Path) -> str | None:
    with Store(project / "newsletter.db") as store:
        row = store.db.execute(
            "SELECT lease_owner FROM campaigns WHERE issue = ?", (WEEK,)
        ).fetchone()
    return row["lease_owner"] if row else None


def sent_count(stdout: str) -> int:
    """The ``sent N`` of a run's summary line."""
    match = re.search(rf"^{WEEK}: sent (\d+), failed 0, deferred 0, remaining 0 ", stdout, re.M)
    assert match, stdout
    return int(match[1])


def assert_clean(stderr: str) -> None:
    assert "Traceback" not in stderr, stderr


# -- a killed send resumes ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kill_points",
    # Each case costs one full send (the server parses ~300 messages a second): the double kill
    # covers the kill point 300 too, and a resumed run being killed in turn.
    [(1,), (1200,), (300, 1200)],
    ids=["kill-at-1", "kill-at-1200", "kill-at-300-then-1200"],
)
def test_killed_send_resumes_without_loss_and_few_duplicates(
    project: Path, subscribers: list[str], server: Server, kill_points: tuple[int, ...]
) -> None:
    handler = server.handler
    for kills, point in enumerate(kill_points, start=1):
        with sending(project, server) as proc:
            wait_for_messages(handler, point, proc)
            os.kill(proc.pid, signal.SIGKILL)
            proc.communicate(timeout=TIMEOUT)
        assert proc.returncode == -signal.SIGKILL, "the send finished before the kill"

        states = ledger(project)
        assert len(states) == SUBSCRIBERS
        sent = {email for email, state in states.items() if state == "sent"}
        got = set(received(handler))
        # Never marked sent without the server having it; the kill landed mid-run.
        assert sent <= got
        assert len(sent) < SUBSCRIBERS
        # Received but not recorded: only what was in flight at each kill so far.
        assert len(got - sent) <= IN_FLIGHT * CONNECTIONS * kills
        # The dead run's lease is still there: the next run must take it over at once.
        assert (lease_owner(project) or "").startswith(f"{socket.gethostname()}:{proc.pid}:")

    before = sum(state == "sent" for state in ledger(project).values())
    result = run_send(project, server)
    assert result.returncode == 0, result.stdout + result.stderr
    assert_clean(result.stderr)
    assert sent_count(result.stdout) == SUBSCRIBERS - before

    got = received(handler)
    assert set(got) == set(subscribers), "someone never got the issue"
    duplicates = got.total() - SUBSCRIBERS
    assert duplicates <= IN_FLIGHT * CONNECTIONS * len(kill_points), got.most_common(10)
    assert max(got.values()) <= 1 + len(kill_points)

    states = ledger(project)
    assert len(states) == SUBSCRIBERS
    assert set(states.values()) == {"sent"}
    assert lease_owner(project) is None


# -- two sends at once ----------------------------------------------------------------------------


def test_concurrent_sends_never_both_send(
    project: Path, subscribers: list[str], server: Server
) -> None:
    handler = server.handler
    with sending(project, server) as first, sending(project, server) as second:
        outputs = [proc.communicate(timeout=TIMEOUT) for proc in (first, second)]
    runs = [
        (proc.returncode, out, err)
        for proc, (out, err) in zip((first, second), outputs, strict=True)
    ]

    # Every subscriber exactly once, whoever sent it.
    assert received(handler) == Counter(subscribers)

    total = 0
    outcomes: list[str] = []
    for code, out, err in runs:
        assert_clean(err)
        if code == 1:
            # Found the other's lease: one line, says why, sent nothing.
            assert f"another send of {WEEK} is running" in err, err
            assert "sent" not in out, out
            outcomes.append("lease held")
        elif "Nothing to send" in out:
            # Started late enough that the other had finished.
            assert code == 0, out + err
            outcomes.append("nothing")
        else:
            assert code == 0, out + err
            total += sent_count(out)
            outcomes.append("sent")
    assert "sent" in outcomes, runs
    assert total == SUBSCRIBERS, runs

    states = ledger(project)
    assert len(states) == SUBSCRIBERS
    assert set(states.values()) == {"sent"}
    assert lease_owner(project) is None

    third = run_send(project, server)
    assert third.returncode == 0, third.stdout + third.stderr
    assert_clean(third.stderr)
    assert "Nothing to send" in third.stdout
    assert len(handler.messages) == SUBSCRIBERS


# -- an unsubscribe during a send -----------------------------------------------------------------


def test_unsubscribe_during_send_is_honoured(
    project: Path, subscribers: list[str], server: Server
) -> None:
    handler = server.handler
    leaving, staying = subscribers[-100:], subscribers[:-100]
    with sending(project, server) as proc:
        wait_for_messages(handler, 1, proc)
        with Store(project / "newsletter.db") as store:
            for email in leaving:
                assert unsubscribe_address(store, email).status == "unsubscribed"
        out, err = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == 0, out + err
    assert_clean(err)
    assert sent_count(out) == len(staying)

    got = received(handler)
    assert not set(got) & set(leaving), "an unsubscribed address still got the issue"
    assert got == Counter(staying)

    states = ledger(project)
    assert {states[email] for email in staying} == {"sent"}
    assert {states[email] for email in leaving} == {"pending"}


# -- a kill during a storm of 4xx deferrals --------------------------------------------------------

#: The first 600 subscribers are greylisted (451 to RCPT TO) on their first try only.
GREYLISTED = set(ADDRESSES[:600])


def test_killed_during_a_deferral_storm_loses_nobody(
    project: Path, subscribers: list[str], start_smtp_server: Callable[..., Server]
) -> None:
    def greylist(address: str, attempt: int) -> str | None:
        return "451 4.7.1 greylisted, try later" if address in GREYLISTED and attempt == 1 else None

    handler = RecordingHandler(decide_rcpt=greylist, delay=0.002)
    server = start_smtp_server(handler)
    # One try per run: every greylisted address is deferred, and the run goes on.
    kills = 2
    for point in (300, 900):
        with sending(project, server, NEWSLETTER_SMTP__MAX_ATTEMPTS="1") as proc:
            wait_for_messages(handler, point, proc)
            os.kill(proc.pid, signal.SIGKILL)
            proc.communicate(timeout=TIMEOUT)
        assert proc.returncode == -signal.SIGKILL, "the send finished before the kill"
        states = ledger(project)
        sent = {email for email, state in states.items() if state == "sent"}
        arrived = set(received(handler))
        assert sent <= arrived and len(sent) < SUBSCRIBERS
        # The storm never stopped the run: people after the greylisted block got it.
        assert arrived - GREYLISTED

    # Reruns until done: the second try of each greylisted address is accepted.
    for _ in range(3):
        result = run_send(project, server, NEWSLETTER_SMTP__MAX_ATTEMPTS="1")
        assert_clean(result.stderr)
        assert "the relay keeps failing" not in result.stderr, result.stderr
        if result.returncode == 0:
            break
    assert result.returncode == 0, result.stdout + result.stderr

    got = received(handler)
    assert set(got) == set(subscribers), "someone never got the issue"
    duplicates = got.total() - SUBSCRIBERS
    assert duplicates <= IN_FLIGHT * CONNECTIONS * kills, got.most_common(10)
    assert set(ledger(project).values()) == {"sent"}
    assert lease_owner(project) is None
