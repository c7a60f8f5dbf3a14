"""Which transport a run uses: a registry keyed by ``[smtp] mode``.

A mode first checks the settings (before anything is built or sent), then, for the length
of one run, provides a factory of transports, one per worker. Adding a mode (an HTTP API
of a mail provider, say) means one class here and one value of ``[smtp] mode``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

from ..errors import ConfigError, InputError
from ..files import check_writable
from ..settings import SAMPLE_SECRET, Settings
from .capture import CaptureServer
from .smtp import Connection
from .transport import ServerFailure, TemporaryFailure, TransportFactory

__all__ = ["LOOPBACK_HOSTS", "MODES", "Custom", "Mode", "Transports", "mode_for"]

LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")


@dataclass(frozen=True)
class Transports:
    """What a mode provides for one run."""

    new: TransportFactory
    #: The Maildir the messages land in when they stay on this machine, for the report.
    capture_dir: str = ""


class Mode(Protocol):
    @property
    def name(self) -> str:
        """Recorded in the send report."""

    def check(self, settings: Settings) -> None:
        """Refuse settings that must not send (:class:`ConfigError`)."""

    def target(self, settings: Settings) -> str:
        """Where the messages go, for a question such as "Send ... through {target}?"."""

    def start(self, settings: Settings) -> AbstractContextManager[Transports]:
        """Transports for one run; whatever they need (a server) lives until the exit."""


class Relay:
    """``mode = "relay"``: SMTP to ``host:port``."""

    name = "relay"

    def check(self, settings: Settings) -> None:
        smtp = settings.smtp
        if settings.security.secret.get_secret_value() == SAMPLE_SECRET:
            raise ConfigError(
                "[security] secret is still the sample value; set a long random secret "
                "(NEWSLETTER_SECURITY__SECRET) before sending through a relay"
            )
        _require_https(settings.newsletter.base_url)
        if smtp.ca_file is not None and smtp.security != "none":
            # Said before anything is built or sent, not after the first connection.
            ca_file = settings.path(smtp.ca_file)
            try:
                ca_file.open("rb").close()
            except OSError as exc:
                raise ConfigError(
                    f"[smtp] ca_file {ca_file}: cannot read: {exc.strerror}"
                ) from None
        loopback = smtp.host in LOOPBACK_HOSTS
        if smtp.username and smtp.security == "none" and not loopback:
            raise ConfigError(
                "[smtp] security = none with a username would send the password in clear "
                f"to {smtp.host}; use starttls or tls"
            )

    def target(self, settings: Settings) -> str:
        return settings.smtp.host

    @contextmanager
    def start(self, settings: Settings) -> Iterator[Transports]:
        smtp = settings.smtp

        def new() -> Connection:
            return Connection(smtp)

        _probe(new)
        yield Transports(new)


def _require_https(base_url: str) -> None:
    """RFC 8058: a one-click unsubscribe URL must be https. Plain http is for trying things
    on this machine (loopback), where nothing reaches a real inbox."""
    parts = urlsplit(base_url)
    if parts.scheme == "https" or (parts.hostname or "") in LOOPBACK_HOSTS:
        return
    raise ConfigError(
        f"[newsletter] base_url {base_url} is http://: unsubscribe links in real mail must be "
        "https:// (RFC 8058); plain http is allowed only for loopback or [smtp] mode = capture"
    )


def _probe(new: TransportFactory) -> None:
    """Open one connection first: a relay that cannot be reached, a TLS or a login failure
    stops the run here, before any worker starts, instead of after every message's retries.
    """
    for attempt in (1, 2):
        transport = new()
        try:
            transport.open()
            return
        except TemporaryFailure as exc:
            if attempt == 2:
                raise ServerFailure(f"cannot reach the relay: {exc}") from None
            time.sleep(1.0)
        finally:
            transport.close()


class Capture:
    """``mode = "capture"``: a real SMTP server on loopback files every message in a Maildir."""

    name = "capture"

    def check(self, settings: Settings) -> None:
        # Nothing leaves the machine; but a Maildir that cannot be written would defer
        # every message, so say so before the first one.
        maildir = settings.path(settings.smtp.capture_dir)
        if maildir.exists() and not maildir.is_dir():
            raise InputError(f"{maildir} is a file, not a folder", "[smtp] capture_dir")
        # The Maildir itself is made by the capture server (with its tmp/new/cur).
        check_writable(maildir.parent, what="[smtp] capture_dir")

    def target(self, settings: Settings) -> str:
        return "the local capture"

    @contextmanager
    def start(self, settings: Settings) -> Iterator[Transports]:
        maildir = settings.path(settings.smtp.capture_dir)
        plain = settings.smtp.model_copy(update={"security": "none", "username": ""})
        with CaptureServer(maildir) as server:

            def new() -> Connection:
                return Connection(plain, host=server.host, port=server.port)

            yield Transports(new, capture_dir=str(maildir))


@dataclass(frozen=True)
class Custom:
    """A transport factory given by the caller (tests, embedding): no checks, no server."""

    new: TransportFactory
    name: str = "custom"

    def check(self, settings: Settings) -> None:
        pass

    def target(self, settings: Settings) -> str:
        return "the given transport"

    @contextmanager
    def start(self, settings: Settings) -> Iterator[Transports]:
        yield Transports(self.new)


MODES: dict[str, Mode] = {"relay": Relay(), "capture": Capture()}


def mode_for(settings: Settings, transport: TransportFactory | None = None) -> Mode:
    """The mode that ``[smtp] mode`` names, or :class:`Custom` for a given ``transport``."""
    if transport is not None:
        return Custom(transport)
    try:
        return MODES[settings.smtp.mode]
    except KeyError:
        known = ", ".join(sorted(MODES))
        raise ConfigError(f"[smtp] mode {settings.smtp.mode!r} is not one of {known}") from None
