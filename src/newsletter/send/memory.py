"""A relay in memory, for tests: scripted replies and a record of what it accepted.

Like httpx's ``MockTransport`` and Django's ``locmem`` backend: no sockets, no waiting.
Replies are scripted per stage, as SMTP reply lines; they fail exactly as the same reply
from a real server would (see :func:`~newsletter.send.transport.refusal`)::

    relay = MemoryRelay(rcpt={"ada@example.org": ["451 4.7.1 greylisted"]})  # then 250
    send_issue(open_issue(path, settings), settings, transport=relay.transport)
    relay.accepted          # the envelopes it took, in order

A script is either a mapping from address to the replies for its successive attempts
(``None`` or a 2xx accepts; when the list runs out, everything is accepted), or a function
``(address, attempt) -> reply or None`` with ``attempt`` counted from 1. :data:`DROP`
stands for a dropped connection (or, at connect, a refused one).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import TypeAlias

from .transport import Envelope, Reply, Stage, TemporaryFailure, TransportError, refusal

__all__ = ["DROP", "MemoryRelay", "MemoryTransport", "Script"]

#: Scripted instead of a reply: the connection drops (or, at connect, is refused).
DROP = "drop"
WHERE = "memory:25"

Script: TypeAlias = Mapping[str, Sequence[str | None]] | Callable[[str, int], str | None]


def _lookup(script: Script | None, address: str, attempt: int) -> str | None:
    if script is None:
        return None
    if callable(script):
        return script(address, attempt)
    replies = script.get(address, ())
    return replies[attempt - 1] if attempt <= len(replies) else None


class MemoryRelay:
    """The shared side: scripts, counters and records; thread-safe.

    ``connect`` scripts the successive connections (the first is number 1):
    ``connect=[DROP, DROP]`` refuses two, ``connect=lambda n: "421 4.3.2 busy"`` refuses
    all. ``messages_per_connection`` (0: no limit) sets when a transport asks to reconnect.
    """

    def __init__(
        self,
        *,
        connect: Sequence[str | None] | Callable[[int], str | None] | None = None,
        mail: Script | None = None,
        rcpt: Script | None = None,
        data: Script | None = None,
        messages_per_connection: int = 0,
    ) -> None:
        self.connect_script = connect
        self.scripts: dict[Stage, Script | None] = {"mail": mail, "rcpt": rcpt, "data": data}
        self.messages_per_connection = messages_per_connection
        self._lock = threading.Lock()
        self._attempts: Counter[tuple[Stage, str]] = Counter()
        #: Connections opened, refused ones included.
        self.connections = 0
        #: Envelopes accepted, in order.
        self.accepted: list[Envelope] = []
        #: Every scripted refusal, in order: (stage, address, reply).
        self.refusals: list[tuple[Stage, str, str]] = []

    def transport(self) -> MemoryTransport:
        """A new connection to this relay: pass ``relay.transport`` as a transport factory."""
        return MemoryTransport(self)

    def reply(self, stage: Stage, address: str) -> str | None:
        """The scripted reply at ``stage`` (None: accept); counts the attempt."""
        with self._lock:
            if stage == "connect":
                self.connections += 1
                number, script = self.connections, self.connect_script
                if script is None:
                    answer = None
                elif callable(script):
                    answer = script(number)
                else:
                    answer = script[number - 1] if number <= len(script) else None
            else:
                self._attempts[stage, address] += 1
                answer = _lookup(self.scripts[stage], address, self._attempts[stage, address])
            if answer is not None and not answer.startswith("2"):
                self.refusals.append((stage, address, answer))
            return answer

    def accept(self, envelope: Envelope) -> int:
        with self._lock:
            self.accepted.append(envelope)
            return len(self.accepted)


class MemoryTransport:
    """One connection to a :class:`MemoryRelay`; a :class:`~.transport.Transport`."""

    def __init__(self, relay: MemoryRelay) -> None:
        self.relay = relay
        self.is_open = False
        self.sent = 0

    @property
    def needs_reconnect(self) -> bool:
        limit = self.relay.messages_per_connection
        return bool(limit) and self.sent >= limit

    def open(self) -> None:
        if self.is_open:
            return
        answer = self.relay.reply("connect", "")
        if answer == DROP:
            raise TemporaryFailure(f"connecting to {WHERE} failed: Connection refused")
        if answer is not None and not answer.startswith("2"):
            raise refusal(Reply.parse(answer), "connect", WHERE)
        self.is_open, self.sent = True, 0

    def send(self, envelope: Envelope, then: Envelope | None = None) -> Reply:
        # ``then`` is a hint for transports that pipeline; nothing here to start early.
        self.open()
        steps: tuple[tuple[Stage, str], ...] = (
            ("mail", envelope.sender),
            ("rcpt", envelope.recipient),
            ("data", envelope.recipient),
        )
        for stage, address in steps:
            answer = self.relay.reply(stage, address)
            if answer is None or answer.startswith("2"):
                continue
            failure: TransportError
            if answer == DROP:
                failure = TemporaryFailure(
                    f"connection to {WHERE} lost while sending to {envelope.recipient}"
                )
            else:
                failure = refusal(Reply.parse(answer), stage, WHERE)
            if failure.concerns == "connection":
                self.close()  # as an SMTP session would be: dropped or unusable
            raise failure
        number = self.relay.accept(envelope)
        self.sent += 1
        return Reply(250, f"2.0.0 OK queued as {number}")

    def close(self) -> None:
        self.is_open, self.sent = False, 0
