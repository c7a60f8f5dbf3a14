"""The SMTP transport: one persistent connection to a relay (or to the capture server).

The delivery loop (``deliver.py``) owns retries, backoff and the ledger; this module only
talks SMTP and says which kind of failure happened (see ``transport.py``).
:meth:`Connection.open` raises :class:`TemporaryFailure` for a refused, reset or timed-out
connection (a run's first connection treats that as fatal, see ``modes.py``) and
:class:`ServerFailure` for TLS, certificate and login problems.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import functools
import math
import re
import smtplib
import socket
import ssl
import threading
import time
import weakref
from typing import Literal, NoReturn

from ..settings import SmtpSettings
from .transport import (
    Envelope,
    PermanentFailure,
    Reply,
    ServerFailure,
    TemporaryFailure,
    TransportError,
    refusal,
)

__all__ = ["Connection"]

_CA_HINT = "set [smtp] ca_file to trust a private CA"
# A misspelt host is a configuration error; other resolver errors may pass.
_NO_SUCH_HOST = {socket.EAI_NONAME, getattr(socket, "EAI_NODATA", socket.EAI_NONAME)}


@functools.cache
def _default_local_hostname() -> str:
    # What smtplib would compute, but once per process: getfqdn() can block on DNS for seconds,
    # and smtplib would repeat it on every reconnect.
    fqdn = socket.getfqdn()
    if "." in fqdn:
        return fqdn
    try:
        return f"[{socket.gethostbyname(socket.gethostname())}]"
    except OSError:
        return "[127.0.0.1]"


class Connection:
    """A persistent SMTP session, a :class:`~newsletter.send.transport.Transport`.

    :meth:`send` opens it when needed and after a drop. Not thread-safe: give each worker
    its own.
    """

    def __init__(
        self,
        settings: SmtpSettings,
        *,
        host: str | None = None,
        port: int | None = None,
        local_hostname: str | None = None,
    ) -> None:
        self.settings = settings
        self.host = host or settings.host
        self.port = port or settings.port
        self.local_hostname = local_hostname
        self.sent = 0
        self._smtp: smtplib.SMTP | None = None
        self._pipelining = False
        self._context: ssl.SSLContext | None = None
        #: When the command being answered must have its whole reply (time.monotonic());
        #: infinity between commands. The watchdog shuts the socket once it has passed.
        self._deadline = math.inf
        #: Whether the watchdog shut the socket (what the failure then reports).
        self._expired = False
        #: The MAIL FROM and RCPT TO lines already written, with DATA, after the previous
        #: message (its ``then``): their replies are the next ones on the wire.
        self._primed: tuple[bytes, bytes] | None = None
        #: What must never appear in a message: the credentials, in every form sent.
        self._secrets = (
            _credential_forms(settings.username, settings.password.get_secret_value())
            if settings.username
            else ()
        )

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def is_open(self) -> bool:
        return self._smtp is not None

    @property
    def pipelining(self) -> bool:
        """Whether the server advertised PIPELINING on the current connection."""
        return self._pipelining

    @property
    def needs_reconnect(self) -> bool:
        return self.sent >= self.settings.messages_per_connection

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- opening ---------------------------------------------------------------------------------

    def open(self) -> None:
        """Connect, EHLO, secure and log in; a no-op when already open."""
        if self._smtp is not None:
            return
        s = self.settings
        local = self.local_hostname or _default_local_hostname()
        smtp: smtplib.SMTP | None = None
        # The socket timeout bounds each read only: a server trickling its greeting or
        # EHLO reply one byte at a time would hold the run. Opening (greeting to login)
        # counts as one command: a watchdog shuts the socket at [smtp] timeout.
        cls = smtplib.SMTP_SSL if s.security == "tls" else smtplib.SMTP
        pending = cls.__new__(cls)
        fired = threading.Event()
        watchdog = threading.Timer(s.timeout, _shut, args=(pending, fired))
        watchdog.daemon = True
        watchdog.start()
        try:
            # Connecting in the constructor is what sets the name that TLS checks the
            # certificate against; it closes the socket itself if the greeting is an error.
            if s.security == "tls":
                pending.__init__(  # type: ignore[misc]
                    self.host, self.port, local, timeout=s.timeout, context=self._tls_context()
                )
            else:
                pending.__init__(self.host, self.port, local, timeout=s.timeout)  # type: ignore[misc]
            smtp = pending
            self._handshake(smtp)
        except BaseException as exc:
            if smtp is not None:
                smtp.close()
            if fired.is_set() and isinstance(exc, OSError):
                raise TemporaryFailure(
                    f"{self.where} timed out after {s.timeout:g} s opening the connection"
                ) from None
            if isinstance(exc, OSError):
                raise self._classify(exc, "talking to" if smtp else "connecting to") from None
            raise
        finally:
            watchdog.cancel()
        self._smtp = smtp
        self._pipelining = smtp.has_extn("pipelining")
        self.sent = 0
        # From here on the socket blocks without a timeout (no poll() before each read
        # and write, no ioctl to change the timeout per reply) and the watchdog keeps
        # [smtp] timeout instead: a few system calls per message fewer.
        if smtp.sock is not None:
            smtp.sock.settimeout(None)
        self._expired = False
        _WATCHDOG.watch(self)

    def _handshake(self, smtp: smtplib.SMTP) -> None:
        self._ehlo(smtp)
        if self.settings.security == "starttls":
            if not smtp.has_extn("starttls"):
                raise ServerFailure(
                    f"{self.where} does not offer STARTTLS; refusing to send in plaintext "
                    '(use security = "tls" for an implicit-TLS port such as 465)'
                )
            code, text = smtp.starttls(context=self._tls_context())
            self._expect(code, text, 220, "STARTTLS refused by")
            self._ehlo(smtp)
        if self.settings.username:
            self._login(smtp)

    def _classify(self, exc: OSError, stage: str) -> TransportError:
        """The failure kind for an error raised while opening the connection."""
        if isinstance(exc, ssl.SSLCertVerificationError):
            reason = exc.verify_message or exc.reason or str(exc)
            return ServerFailure(f"TLS failure talking to {self.where}: {reason}; {_CA_HINT}")
        if isinstance(exc, ssl.SSLEOFError | ssl.SSLZeroReturnError):
            return TemporaryFailure(f"{self.where} closed the connection during TLS: {exc}")
        if isinstance(exc, ssl.SSLError):
            hint = 'port 465 usually wants security = "tls", port 587 "starttls"'
            reason = exc.reason or str(exc)
            return ServerFailure(f"TLS failure talking to {self.where}: {reason} ({hint})")
        if isinstance(exc, socket.gaierror):
            kind = ServerFailure if exc.errno in _NO_SUCH_HOST else TemporaryFailure
            return kind(f"cannot resolve SMTP host {self.host!r}: {exc.strerror}")
        if isinstance(exc, smtplib.SMTPResponseException):
            reply = self._reply(exc.smtp_code, exc.smtp_error)
            kind = TemporaryFailure if 400 <= reply.code < 500 else ServerFailure
            return kind(f"{stage} {self.where}: {reply}", reply)
        # Refused, reset, timed out, disconnected.
        reason = _describe(exc, self.settings.timeout)
        if stage == "connecting to" and _timed_out(exc) and self.settings.security != "tls":
            # The classic: an implicit-TLS port waits for a TLS hello and never greets.
            reason += ' (if this port expects TLS from the start, set security = "tls")'
        return TemporaryFailure(f"{stage} {self.where} failed: {reason}")

    def _ehlo(self, smtp: smtplib.SMTP) -> None:
        if not 200 <= smtp.ehlo()[0] < 300:
            self._expect(*smtp.helo(), 250, "EHLO and HELO refused by")

    def _login(self, smtp: smtplib.SMTP) -> None:
        s = self.settings
        if not smtp.has_extn("auth"):
            raise ServerFailure(
                f"{self.where} does not offer AUTH (over this connection); "
                "check [smtp] security, or leave username empty"
            )
        password = s.password.get_secret_value()
        try:
            smtp.login(s.username, password)
        except smtplib.SMTPResponseException as exc:
            # A server may echo what it was sent (AUTH PLAIN's base64, AUTH LOGIN's user
            # name and password): every reply is masked before it becomes a message.
            reply = self._reply(exc.smtp_code, exc.smtp_error)
            if 400 <= reply.code < 500:
                raise TemporaryFailure(f"{self.where} cannot log in now: {reply}", reply) from None
            raise ServerFailure(
                f"{self.where} refused the login ([smtp] username and password): {reply}", reply
            ) from None
        except smtplib.SMTPException as exc:
            if isinstance(exc, smtplib.SMTPServerDisconnected):
                raise
            # No common mechanism: smtplib says so without a reply code.
            raise ServerFailure(f"cannot log in to {self.where}: {self._mask(str(exc))}") from None

    def _tls_context(self) -> ssl.SSLContext:
        if self._context is None:
            context = ssl.create_default_context()
            if self.settings.ca_file is not None:
                try:
                    context.load_verify_locations(cafile=self.settings.ca_file)
                except (OSError, ssl.SSLError) as exc:
                    raise ServerFailure(
                        f"cannot load [smtp] ca_file {self.settings.ca_file}: {exc.strerror or exc}"
                    ) from None
            self._context = context
        return self._context

    def _expect(self, code: int, text: bytes, expected: int, what: str) -> None:
        if code != expected:
            self._raise_for(self._reply(code, text), f"{what} {self.where}")

    def _reply(self, code: int, text: bytes | str) -> Reply:
        """A server's reply, with any echo of the credentials masked."""
        if not self._secrets:
            return Reply.of(code, text)
        raw = text.decode("utf-8", errors="replace") if isinstance(text, bytes) else text
        # Masked before whitespace is folded, then once more after.
        masked = self._mask(Reply.of(code, self._mask(raw)).text)
        squeezed = "".join(masked.split())
        if any("".join(secret.split()) in squeezed for secret in self._secrets if len(secret) > 3):
            # Split over lines or spaces, a credential escapes word-by-word masking.
            return Reply(code, "*** (the reply quoted the credentials)")
        return Reply(code, masked)

    def _mask(self, text: str) -> str:
        """``text`` with the user name, the password and their base64 forms as ``***``.

        Known forms are replaced as they are; any other base64 word that decodes to
        something holding a credential (AUTH PLAIN with an authorisation id, CRAM-MD5's
        answer) is masked whole.
        """
        if not self._secrets:
            return text
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return _BASE64_WORD.sub(lambda m: "***" if self._holds_secret(m[0]) else m[0], text)

    def _holds_secret(self, word: str) -> bool:
        try:
            decoded = base64.b64decode(word + "=" * (-len(word) % 4), validate=True)
        except (binascii.Error, ValueError):
            return False
        plain = decoded.decode("utf-8", errors="replace")
        return any(secret in plain for secret in self._secrets)

    @staticmethod
    def _raise_for(reply: Reply, what: str) -> NoReturn:
        if 400 <= reply.code < 500:
            raise TemporaryFailure(f"{what}: {reply}", reply)
        raise ServerFailure(f"{what}: {reply}", reply)

    # -- sending ---------------------------------------------------------------------------------

    def send(self, envelope: Envelope, then: Envelope | None = None) -> Reply:
        """Send one message; return the server's reply to the end of DATA.

        ``envelope.data`` has CRLF line endings and is already dot-stuffed. The end-of-data
        marker is appended: ``.\\r\\n`` if it ends with CRLF, ``\\r\\n.\\r\\n`` otherwise.
        With ``then`` and a server that offers PIPELINING, the next message's MAIL FROM,
        RCPT TO and DATA go in the same write as this message's end (RFC 2920 3.1 allows
        message content first in a group): one round trip per message instead of two.
        Nothing is delivered by them; ``then`` must be the next envelope sent (any other
        drops the connection first, and :meth:`close` drops rather than QUITs).
        """
        commands = _envelope(envelope.sender, envelope.recipient)
        if self._primed is not None and self._primed != commands:
            self._drop()  # mid-DATA for another recipient: only closing ends that cleanly
        self.open()
        smtp = self._smtp
        assert smtp is not None
        try:
            reply = self._transaction(smtp, commands, envelope.data, then)
        except TemporaryFailure:
            self._drop()
            raise
        except PermanentFailure:
            if self._primed is None:
                self._reset(smtp)
            # else: the next replies on the wire are the primed envelope's: keep them.
            raise
        except ServerFailure:
            self.close()
            raise
        except OSError as exc:  # includes smtplib.SMTPServerDisconnected and timeouts
            self._drop()
            reason = _describe(exc, self.settings.timeout)
            if self._expired:
                reason = f"timed out after {self.settings.timeout:g} s"
            raise TemporaryFailure(
                f"connection to {self.where} lost while sending to {envelope.recipient}: {reason}"
            ) from None
        self.sent += 1
        return reply

    def _transaction(
        self,
        smtp: smtplib.SMTP,
        commands: tuple[bytes, bytes],
        data: bytes,
        then: Envelope | None,
    ) -> Reply:
        mail_cmd, rcpt_cmd = commands
        try:
            if self._pipelining:
                # RFC 2920: one write, then every reply in order; the first failure decides.
                if self._primed == commands:
                    self._primed = None  # written with the previous message's end
                    self._deadline = time.monotonic() + self.settings.timeout
                else:
                    self._command(smtp, mail_cmd + rcpt_cmd + b"DATA\r\n")
                mail, rcpt, go = self._read(smtp), self._read(smtp), self._read(smtp)
                try:
                    self._check(mail, "mail")
                    self._check(rcpt, "rcpt")
                except (PermanentFailure, ServerFailure):
                    if go.code == 354:
                        # DATA was accepted although the envelope was not (RFC 2920 allows
                        # this): end it empty so that RSET or QUIT are read as commands.
                        self._command(smtp, b".\r\n")
                        self._read(smtp)
                    raise
            else:
                self._command(smtp, mail_cmd)
                self._check(self._read(smtp), "mail")
                self._command(smtp, rcpt_cmd)
                self._check(self._read(smtp), "rcpt")
                self._command(smtp, b"DATA\r\n")
                go = self._read(smtp)
            self._check(go, "data", ok=354)
            following = self._following(then)
            # One write: a separate small write for the terminator can stall on Nagle +
            # delayed ACK. The deadline covers sending the message and its reply.
            end = b".\r\n" if data.endswith(b"\r\n") else b"\r\n.\r\n"
            if following is None:
                self._command(smtp, data + end)
            else:
                self._command(smtp, data + end + b"".join(following) + b"DATA\r\n")
                self._primed = following
            done = self._read(smtp)
            self._check(done, "data")
            return done
        finally:
            self._deadline = math.inf

    def _following(self, then: Envelope | None) -> tuple[bytes, bytes] | None:
        """The next envelope's command lines, when they can go with this message's end."""
        if then is None or not self._pipelining:
            return None
        if self.sent + 1 >= self.settings.messages_per_connection:
            return None  # this connection closes after this message
        try:
            return _envelope(then.sender, then.recipient)
        except TransportError:
            return None  # its own send() reports the bad address

    def _command(self, smtp: smtplib.SMTP, line: bytes) -> None:
        """Send a command (or the message): its whole reply is due within ``[smtp] timeout``.

        The deadline covers writing and the whole reply, however the server trickles it or
        stops reading mid-DATA: past it, the watchdog shuts the socket, which ends a blocked
        read or write at once, and :meth:`_budget` refuses to start another read.
        """
        self._deadline = time.monotonic() + self.settings.timeout
        self._budget(smtp)
        smtp.send(line)

    def _budget(self, smtp: smtplib.SMTP) -> None:
        if time.monotonic() >= self._deadline:
            raise TimeoutError("the SMTP command took longer than [smtp] timeout")

    def _expire(self, now: float) -> None:
        """Called by the watchdog: shut the socket of a command past its deadline."""
        smtp = self._smtp
        if smtp is None or now < self._deadline:
            return
        self._expired = True
        sock = smtp.sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def _read(self, smtp: smtplib.SMTP) -> Reply:
        """One reply (every line of it) by the current command's deadline."""
        lines: list[bytes] = []
        code = -1
        while True:
            line = self._readline(smtp)
            lines.append(line[4:].strip(b" \t\r\n"))
            try:
                code = int(line[:3])
            except ValueError:
                code = -1
                break
            if line[3:4] != b"-":
                break
        return self._reply(code, b"\n".join(lines))

    def _readline(self, smtp: smtplib.SMTP) -> bytes:
        if smtp.file is None:
            assert smtp.sock is not None
            smtp.file = smtp.sock.makefile("rb")
        line = b""
        while True:
            self._budget(smtp)
            # peek does at most one read from the socket; read then only takes what is
            # buffered, up to the end of the line, so the next reply stays buffered.
            buffered = smtp.file.peek(1)
            if not buffered:
                raise smtplib.SMTPServerDisconnected("Connection unexpectedly closed")
            end = buffered.find(b"\n")
            line += smtp.file.read(len(buffered) if end < 0 else end + 1)
            if end >= 0:
                return line
            if len(line) > _MAX_REPLY_LINE:
                raise smtplib.SMTPResponseException(500, b"Line too long.")

    def _check(self, reply: Reply, stage: Literal["mail", "rcpt", "data"], ok: int = 0) -> None:
        if reply.code == ok or (not ok and 200 <= reply.code < 300):
            return
        raise refusal(reply, stage, self.where)

    # -- closing ---------------------------------------------------------------------------------

    def _reset(self, smtp: smtplib.SMTP) -> None:
        """RSET after a refused transaction so the session stays usable; drop it if that fails."""
        try:
            self._command(smtp, b"RSET\r\n")
            if self._read(smtp).code == 250:
                return
        except (OSError, smtplib.SMTPException):
            pass
        finally:
            self._deadline = math.inf
        self._drop()

    def _drop(self) -> None:
        """Forget the connection without QUIT: after a timeout or drop the session is unusable."""
        smtp, self._smtp = self._smtp, None
        self.sent, self._primed = 0, None
        if smtp is not None:
            smtp.close()

    def close(self) -> None:
        """QUIT politely; never raises. A primed envelope leaves the server reading the next
        message's content, where QUIT would be data: closing the socket aborts it instead,
        and a server never delivers a message whose content did not end."""
        if self._primed is not None:
            self._drop()
            return
        smtp, self._smtp = self._smtp, None
        self.sent = 0
        if smtp is None:
            return
        try:
            if smtp.sock is not None:
                smtp.sock.settimeout(self.settings.timeout)  # the watchdog no longer looks
            smtp.quit()
        except (OSError, smtplib.SMTPException):
            pass
        finally:
            smtp.close()


#: smtplib's limit on one reply line.
_MAX_REPLY_LINE = 8192

#: A word that may be base64: what a server echoing an AUTH exchange would show.
_BASE64_WORD = re.compile(r"[A-Za-z0-9+/]{4,}={0,2}")


class _Watchdog:
    """One thread for all the connections of the process: every ``TICK`` seconds it shuts
    the socket of any connection whose command has run past its deadline.

    The sockets then need no timeout of their own, which saves a poll() before every read
    and write and an ioctl per reply; a deadline is kept to within ``TICK``.
    """

    TICK = 0.02

    def __init__(self) -> None:
        self._connections: weakref.WeakSet[Connection] = weakref.WeakSet()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def watch(self, connection: Connection) -> None:
        with self._lock:
            self._connections.add(connection)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="smtp-watchdog", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            time.sleep(self.TICK)
            with self._lock:
                connections = list(self._connections)
            now = time.monotonic()
            for connection in connections:
                connection._expire(now)


_WATCHDOG = _Watchdog()


def _shut(smtp: smtplib.SMTP, fired: threading.Event) -> None:
    """The open() watchdog: shut the socket, which ends any read blocked on it."""
    fired.set()
    sock = getattr(smtp, "sock", None)
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


def _credential_forms(username: str, password: str) -> tuple[str, ...]:
    """Every form of the credentials an SMTP login puts on the wire, longest first.

    AUTH PLAIN sends base64("\\0user\\0password"); AUTH LOGIN sends base64(user) and
    base64(password) as separate lines (the first as the initial response).
    """

    def b64(value: str) -> str:
        return base64.b64encode(value.encode("utf-8")).decode("ascii")

    forms = {username, password, b64(username), b64(password)}
    forms |= {b64(f"\0{username}\0{password}"), b64(f"{username}\0{username}\0{password}")}
    # Base64 without its padding, as a server might quote it; and never short fragments
    # of ordinary words (a one-letter user name would mask every "a").
    forms |= {form.rstrip("=") for form in forms}
    # A server may fold whitespace: "tab<TAB>pass" can come back as "tab pass".
    forms |= {" ".join(form.split()) for form in forms}
    # Even a short password is masked: unreadable replies are better than a leak.
    return tuple(sorted((f for f in forms if f.strip()), key=len, reverse=True))


# An address that needs no quoting, IDNA or checks: the common case, written directly
# because smtplib.quoteaddr goes through the pure-Python email.utils parser.
_PLAIN_ADDRESS = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9.-]+")


@functools.lru_cache(maxsize=8)
def _mail_from(sender: str) -> bytes:
    return _envelope_slow(sender, "postmaster@example.org")[0]


def _envelope(sender: str, recipient: str) -> tuple[bytes, bytes]:
    """The MAIL FROM and RCPT TO command lines, or the failure that sending them would cause."""
    if _PLAIN_ADDRESS.fullmatch(recipient):
        return _mail_from(sender), b"RCPT TO:<" + recipient.encode("ascii") + b">\r\n"
    return _envelope_slow(sender, recipient)


def _envelope_slow(sender: str, recipient: str) -> tuple[bytes, bytes]:
    lines: list[bytes] = []
    for verb, address in (("MAIL FROM", sender), ("RCPT TO", recipient)):
        problem = ""
        if "\r" in address or "\n" in address:
            # A line break in an address would smuggle extra SMTP commands into the session.
            problem = "contains a line break"
        elif (ascii_address := _ascii(address)) is None:
            problem = "is not ASCII (SMTPUTF8 is not supported)"
        if problem and verb == "MAIL FROM":
            raise ServerFailure(f"sender address {address!r} {problem}")
        if problem:
            raise PermanentFailure(f"recipient address {address!r} {problem}", stage="rcpt")
        lines.append(f"{verb}:{smtplib.quoteaddr(ascii_address or '')}\r\n".encode("ascii"))
    return lines[0], lines[1]


def _ascii(address: str) -> str | None:
    """The address with an internationalised domain in its ASCII (IDNA) form, if it has one."""
    if address.isascii():
        return address
    local, at, domain = address.rpartition("@")
    if not at or not local.isascii():
        return None
    try:
        return f"{local}@{domain.encode('idna').decode('ascii')}"
    except UnicodeError:
        return None


def _timed_out(exc: BaseException) -> bool:
    # smtplib reports a timeout while reading a reply as a generic disconnect.
    return isinstance(exc, TimeoutError) or isinstance(exc.__context__, TimeoutError)


def _describe(exc: BaseException, timeout: float) -> str:
    if _timed_out(exc):
        return f"timed out after {timeout:g} s"
    if isinstance(exc, smtplib.SMTPServerDisconnected) and isinstance(exc.__context__, OSError):
        exc = exc.__context__
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__
