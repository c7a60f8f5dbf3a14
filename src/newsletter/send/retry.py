"""How one message is tried: temporary failures are retried with backoff, permanent ones never.

A plain function over the :class:`~newsletter.send.transport.Transport` protocol, so that
it is tested against the in-memory transport with an injected ``sleep`` and no waiting.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from ..settings import SmtpSettings
from .transport import Concerns, Envelope, PermanentFailure, TemporaryFailure, Transport

__all__ = ["Policy", "RelayFailing", "Result", "attempt"]


@dataclass(frozen=True)
class Policy:
    #: Tries per message, the first included.
    max_attempts: int = 6
    #: The first pause, in seconds; it doubles after each further failure.
    retry_delay: float = 2.0
    #: The longest pause between two tries of one message.
    max_backoff: float = 300.0
    #: Each pause is scaled by a random factor in [1 - jitter, 1 + jitter], so that
    #: connections that failed together do not all retry at the same moment.
    jitter: float = 0.5

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")

    @classmethod
    def from_settings(cls, smtp: SmtpSettings) -> Policy:
        return cls(max_attempts=smtp.max_attempts, retry_delay=smtp.retry_delay)

    def delay(self, tries: int) -> float:
        """The pause after the ``tries``-th failed try."""
        base = self.retry_delay * 2.0 ** min(tries - 1, 64)
        scale = 1.0 + self.jitter * random.uniform(-1.0, 1.0) if self.jitter else 1.0
        return min(base * scale, self.max_backoff)


@dataclass(frozen=True, slots=True)
class Result:
    #: "pending": still not sent after every try (or a stop); a later run retries it.
    state: Literal["sent", "failed", "pending"]
    #: The reply to the message, or the last failure.
    reply: str
    attempts: int
    #: Refused for good at RCPT TO: counts towards marking the subscriber bounced.
    bounce: bool = False
    #: What the last failure concerned; None when sent.
    concerns: Concerns | None = None


def attempt(
    transport: Transport,
    envelope: Envelope,
    policy: Policy,
    stop: threading.Event,
    sleep: Callable[[float], object] | None = None,
    then: Envelope | None = None,
) -> Result:
    """Send ``envelope`` until it is accepted, refused for good, out of tries, or stopped.

    After a temporary failure the transport is closed, so the next try opens a new
    connection, and ``sleep(policy.delay(tries))`` runs before it; a temporary failure
    about the recipient (a 4xx to RCPT) is not retried in this run at all; the default sleep is
    ``stop.wait``, which a stop cuts short. Once ``stop`` is set no new try starts (the
    first always does). A :class:`~.transport.ServerFailure` is not caught: the relay
    cannot be used at all. ``then`` is passed on to :meth:`Transport.send` (the
    envelope the caller sends next).
    """
    pause = sleep or stop.wait
    last: TemporaryFailure | None = None
    tries = 0
    while tries < policy.max_attempts and not (tries and stop.is_set()):
        tries += 1
        try:
            reply = transport.send(envelope, then)
        except PermanentFailure as exc:
            return Result("failed", str(exc), tries, exc.stage == "rcpt", exc.concerns)
        except TemporaryFailure as exc:
            last = exc
            transport.close()
            if exc.concerns == "recipient":
                # Greylisting or a full mailbox: minutes away, not seconds. Waiting here
                # would hold the connection; the next run tries again.
                break
            if tries < policy.max_attempts:
                pause(policy.delay(tries))
        else:
            return Result("sent", str(reply), tries)
    assert last is not None  # the first try always runs
    return Result("pending", str(last), tries, concerns=last.concerns)


class RelayFailing:
    """When to give up on the relay: ``limit`` results in a row that blame the connection.

    A recipient's own reply (250, a 5xx, greylisting's 451 to RCPT) proves the relay works
    and restarts the count, so a block of greylisted addresses never stops a run.
    """

    def __init__(self, limit: int) -> None:
        self.limit, self.streak = limit, 0

    def observe(self, result: Result) -> bool:
        """Count one finished message; True when the run should stop."""
        if result.state != "pending" or result.concerns != "connection":
            self.streak = 0
            return False
        self.streak += 1
        return self.streak >= self.limit
