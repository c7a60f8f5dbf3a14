"""The retry policy against the in-memory relay: no sockets, and no real waiting."""

from __future__ import annotations

import threading

import pytest

from newsletter.send.memory import DROP, MemoryRelay
from newsletter.send.retry import Policy, RelayFailing, Result, attempt
from newsletter.send.transport import Envelope, ServerFailure
from newsletter.settings import SmtpSettings

ADA = Envelope("news@example.org", "ada@example.org", b"Subject: hi\r\n\r\nhello\r\n")
#: Pauses of exactly 1, 2, 4, ... seconds: easy to check.
EXACT = Policy(max_attempts=4, retry_delay=1.0, jitter=0.0)


class Clock:
    """An injected sleep that records the pauses and can stop the run during one."""

    def __init__(self, stop: threading.Event | None = None, stop_after: int = 0) -> None:
        self.pauses: list[float] = []
        self.stop, self.stop_after = stop, stop_after

    def __call__(self, seconds: float) -> None:
        self.pauses.append(seconds)
        if self.stop is not None and len(self.pauses) >= self.stop_after:
            self.stop.set()


def test_sent_at_the_first_try() -> None:
    relay, clock = MemoryRelay(), Clock()
    result = attempt(relay.transport(), ADA, EXACT, threading.Event(), clock)
    assert (result.state, result.attempts, result.concerns) == ("sent", 1, None)
    assert result.reply == "250 2.0.0 OK queued as 1"
    assert relay.accepted == [ADA] and clock.pauses == []


def test_4xx_is_retried_with_doubling_pauses_on_a_new_connection() -> None:
    relay = MemoryRelay(data={ADA.recipient: ["451 4.3.0 queue full", "451 4.3.0 queue full"]})
    clock = Clock()
    result = attempt(relay.transport(), ADA, EXACT, threading.Event(), clock)
    assert (result.state, result.attempts) == ("sent", 3)
    assert clock.pauses == [1.0, 2.0]
    assert relay.connections == 3  # every retry starts afresh
    assert relay.accepted == [ADA]


@pytest.mark.parametrize(
    ("script", "concerns"),
    [
        ({"data": {ADA.recipient: ["451 4.3.0 queue full"] * 9}}, "connection"),
        ({"mail": {ADA.sender: ["421 4.3.2 shutting down"] * 9}}, "connection"),
        ({"data": {ADA.recipient: [DROP] * 9}}, "connection"),
        ({"connect": [DROP] * 9}, "connection"),
    ],
    ids=["data-4xx", "mail-4xx", "drop", "refused"],
)
def test_out_of_tries_leaves_it_pending_and_says_what_failed(
    script: dict[str, object], concerns: str
) -> None:
    relay, clock = MemoryRelay(**script), Clock()  # type: ignore[arg-type]
    result = attempt(relay.transport(), ADA, EXACT, threading.Event(), clock)
    assert (result.state, result.attempts, result.concerns) == ("pending", 4, concerns)
    # No pause after the last try: the worker moves on at once.
    assert clock.pauses == [1.0, 2.0, 4.0]
    assert relay.accepted == []


def test_a_recipients_4xx_is_deferred_at_once_without_holding_the_connection() -> None:
    # Greylisting answers for minutes: retrying within the run would only hold the
    # connection (62 s of backoff per address); the next run tries again.
    relay, clock = MemoryRelay(rcpt={ADA.recipient: ["450 4.2.2 mailbox full"] * 9}), Clock()
    result = attempt(relay.transport(), ADA, EXACT, threading.Event(), clock)
    assert (result.state, result.attempts, result.concerns) == ("pending", 1, "recipient")
    assert clock.pauses == [] and relay.accepted == []


@pytest.mark.parametrize(
    ("stage", "bounce"), [("rcpt", True), ("data", False)], ids=["rcpt-5xx", "data-5xx"]
)
def test_5xx_is_permanent_and_never_retried(stage: str, bounce: bool) -> None:
    relay, clock = MemoryRelay(**{stage: {ADA.recipient: ["550 5.1.1 no"]}}), Clock()  # type: ignore[arg-type]
    result = attempt(relay.transport(), ADA, EXACT, threading.Event(), clock)
    assert (result.state, result.attempts, result.bounce) == ("failed", 1, bounce)
    assert result.concerns == "recipient" and "550 5.1.1 no" in result.reply
    assert clock.pauses == []


def test_a_server_failure_is_not_caught() -> None:
    relay = MemoryRelay(mail=lambda sender, n: "553 5.7.1 sender not allowed")
    with pytest.raises(ServerFailure, match=r"from_address") as failure:
        attempt(relay.transport(), ADA, EXACT, threading.Event(), Clock())
    assert failure.value.concerns == "connection"


def test_a_stop_during_a_pause_ends_the_tries() -> None:
    stop = threading.Event()
    relay = MemoryRelay(rcpt=lambda a, n: "451 4.7.1 later")
    clock = Clock(stop, stop_after=1)
    result = attempt(relay.transport(), ADA, EXACT, stop, clock)
    assert (result.state, result.attempts) == ("pending", 1)


def test_the_first_try_runs_even_when_stopped() -> None:
    # The worker checks the stop before it takes a message; once taken, it is tried.
    stop = threading.Event()
    stop.set()
    relay = MemoryRelay()
    assert attempt(relay.transport(), ADA, EXACT, stop, Clock()).state == "sent"


def test_the_default_pause_is_the_stop_event() -> None:
    stop = threading.Event()
    stop.set()  # so that waiting on it returns at once
    relay = MemoryRelay(rcpt=lambda a, n: "451 4.7.1 later")
    policy = Policy(max_attempts=3, retry_delay=3600.0)
    assert attempt(relay.transport(), ADA, policy, stop).attempts == 1


def test_pauses_are_jittered_and_capped() -> None:
    policy = Policy(retry_delay=2.0, jitter=0.5, max_backoff=300.0)
    firsts = {policy.delay(1) for _ in range(200)}
    assert all(1.0 <= d <= 3.0 for d in firsts) and len(firsts) > 100
    assert all(4.0 <= policy.delay(3) <= 12.0 for _ in range(100))
    assert policy.delay(50) == 300.0 and policy.delay(10_000) == 300.0


def test_policy_from_settings() -> None:
    smtp = SmtpSettings(max_attempts=3, retry_delay=0.5)
    assert Policy.from_settings(smtp) == Policy(max_attempts=3, retry_delay=0.5)
    with pytest.raises(ValueError, match="max_attempts"):
        Policy(max_attempts=0)


def _result(state: str, concerns: str | None = None) -> Result:
    return Result(state, "reply", 1, concerns=concerns)  # type: ignore[arg-type]


def test_relay_failures_in_a_row_stop_but_a_recipients_reply_restarts_the_count() -> None:
    relay = "connection"
    failing = RelayFailing(2)
    assert not failing.observe(_result("pending", relay))
    # A greylisted recipient, a 5xx and a 250 each prove the relay answers.
    for proof in (_result("pending", "recipient"), _result("failed"), _result("sent")):
        assert not failing.observe(proof)
        assert not failing.observe(_result("pending", relay))
    assert failing.observe(_result("pending", relay))  # two in a row


def test_greylisting_alone_never_stops_a_run() -> None:
    failing = RelayFailing(1)
    assert not any(failing.observe(_result("pending", "recipient")) for _ in range(1000))
