"""The seam between delivery and the wire: what a transport does, and how it can fail.

A transport carries envelopes over one connection, one at a time, like Django's email
backends and httpx's transports. The delivery loop (``deliver.py``) and the retry policy
(``retry.py``) see only this protocol. Implementations:

* :class:`~newsletter.send.smtp.Connection`: an SMTP relay, or the local capture server
  (``[smtp] mode``, see ``modes.py``);
* :class:`~newsletter.send.memory.MemoryTransport`: in memory, scripted, for tests.

Every failure is one of three kinds, and says what it concerns:

* :class:`TemporaryFailure`: try again later, on a new connection. It concerns
  ``"recipient"`` when the relay refused this address at RCPT TO (greylisting, a full
  mailbox), and ``"connection"`` for everything else (connect, greeting, MAIL FROM, the
  DATA reply, timeouts, drops), where the relay itself is the likely cause.
* :class:`PermanentFailure`: this recipient or this message was refused for good (5xx to
  RCPT TO or to DATA). Record it, never retry. It always concerns ``"recipient"``.
* :class:`ServerFailure`: the relay cannot be used at all (TLS, login, 5xx to MAIL FROM):
  stop the run. It always concerns ``"connection"``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

from ..errors import NewsletterError

__all__ = [
    "Concerns",
    "Envelope",
    "PermanentFailure",
    "Reply",
    "ServerFailure",
    "Stage",
    "TemporaryFailure",
    "Transport",
    "TransportError",
    "TransportFactory",
    "refusal",
]

Concerns = Literal["recipient", "connection"]
#: Where in an SMTP conversation a reply came.
Stage = Literal["connect", "mail", "rcpt", "data"]


@dataclass(frozen=True)
class Reply:
    """One SMTP reply, its text folded onto a single line."""

    code: int
    text: str

    def __str__(self) -> str:
        return f"{self.code} {self.text}" if self.text else str(self.code)

    @classmethod
    def of(cls, code: int, text: bytes | str) -> Reply:
        if isinstance(text, bytes):
            text = text.decode("utf-8", errors="replace")
        # Multi-line replies arrive joined by newlines; log lines and messages must stay one line.
        return cls(code, " ".join(text.split()))

    @classmethod
    def parse(cls, line: str) -> Reply:
        """``"451 4.3.0 try later"`` -> ``Reply(451, "4.3.0 try later")``."""
        code, _, text = line.strip().partition(" ")
        return cls.of(int(code), text)


@dataclass(frozen=True, slots=True)
class Envelope:
    sender: str
    recipient: str
    #: The message with CRLF line ends, already dot-stuffed (``MessageBuilder.wire``).
    data: bytes


class TransportError(NewsletterError):
    """Base of the three failure kinds; ``reply`` is the server's reply, when there was one."""

    def __init__(
        self, message: str, reply: Reply | None = None, *, concerns: Concerns = "connection"
    ) -> None:
        super().__init__(message)
        self.message = message
        self.reply = reply
        self.concerns: Concerns = concerns


class TemporaryFailure(TransportError):
    """Try again later, on a new connection."""


class PermanentFailure(TransportError):
    """The server refused this recipient or this message for good."""

    def __init__(
        self, message: str, reply: Reply | None = None, *, stage: Literal["rcpt", "data"]
    ) -> None:
        super().__init__(message, reply, concerns="recipient")
        #: "rcpt" counts towards marking the subscriber bounced; "data" does not.
        self.stage: Literal["rcpt", "data"] = stage


class ServerFailure(TransportError):
    """The server cannot be used at all: stop the run."""

    def __init__(self, message: str, reply: Reply | None = None) -> None:
        super().__init__(message, reply, concerns="connection")


_LABELS = {"connect": "the greeting", "mail": "MAIL FROM", "rcpt": "RCPT TO", "data": "DATA"}


def refusal(reply: Reply, stage: Stage, where: str) -> TransportError:
    """The failure that a reply other than the expected one means at ``stage``.

    Shared by every transport, so that a scripted reply fails exactly as a real one would.
    """
    message = f"{where} answered {_LABELS[stage]} with {reply}"
    if 400 <= reply.code < 500:
        # 421 closes the session whatever the stage: the relay is busy or throttling us.
        about_recipient = stage == "rcpt" and reply.code != 421
        return TemporaryFailure(
            message, reply, concerns="recipient" if about_recipient else "connection"
        )
    if 500 <= reply.code < 600:
        if stage == "mail":
            return ServerFailure(
                message + " (check [smtp] return_path, else [newsletter] from_address)", reply
            )
        if stage == "connect":
            return ServerFailure(message, reply)
        return PermanentFailure(message, reply, stage=stage)
    # Neither success nor an error code: the session is out of step, so start afresh.
    return TemporaryFailure(f"{message} (unexpected)", reply)


class Transport(Protocol):
    """One connection's worth of sending; not thread-safe: each worker makes its own.

    * :meth:`send` opens the connection when it is not open (first use, after
      :meth:`close`, after a failure) and returns the reply to the message.
    * After a :class:`TemporaryFailure` the caller closes the transport; the next
      :meth:`send` opens a new connection.
    * :attr:`needs_reconnect` turns true when the transport wants a fresh connection
      before its next envelope (``[smtp] messages_per_connection`` reached); the caller
      then calls :meth:`close`, and the next :meth:`send` reconnects.
    * :meth:`close` never raises, and may be called any number of times.

    * ``send(envelope, then)``: ``then`` names the envelope the caller will send next on
      this transport. A transport may start it early (the SMTP connection writes its MAIL
      FROM, RCPT TO and DATA with this message's end, RFC 2920); it is only a hint, and
      nothing of ``then`` counts as sent until its own :meth:`send` returns. Once it is
      given, the caller sends ``then`` next or closes the transport.
    """

    @property
    def needs_reconnect(self) -> bool: ...

    def open(self) -> None:
        """Connect now (a no-op when open): lets a run fail fast on a relay it cannot reach."""

    def send(self, envelope: Envelope, then: Envelope | None = None) -> Reply: ...

    def close(self) -> None: ...


#: Makes one transport per worker.
TransportFactory = Callable[[], Transport]
