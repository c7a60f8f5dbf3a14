"""Real SMTP servers on loopback for tests: aiosmtpd in a thread, trustme certificates.

Typical use::

    handler = RecordingHandler(decide=lambda envelope, attempt: "451 4.3.0 later" if attempt == 1
                               else None)
    with smtp_server(handler) as (host, port, handler):
        ...  # send to host:port
    handler.messages  # what arrived, byte for byte

Fixtures: ``smtp_ca`` (a trustme CA), ``smtp_ca_file`` (its PEM, for ``[smtp] ca_file``),
``server_tls`` (a server-side context with a certificate for 127.0.0.1 and localhost) and
``start_smtp_server`` (a factory whose servers stop at teardown). Their functions are named
``fixture_<name>`` so that importing them into a test module or conftest does not clash with
the parameters that use them::

    from .smtp_servers import fixture_server_tls, fixture_smtp_ca  # noqa: F401
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import socket
import ssl
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, Self

import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from pydantic import SecretStr

from newsletter.settings import Settings

__all__ = [
    "DROP",
    "DropDuringDataServer",
    "EchoAuthHandler",
    "Received",
    "RecordingHandler",
    "Server",
    "StallingServer",
    "fixture_server_tls",
    "fixture_smtp_ca",
    "fixture_smtp_ca_file",
    "fixture_start_smtp_server",
    "free_port",
    "server_tls_context",
    "smtp_server",
    "write_ca_file",
]

HOST = "127.0.0.1"

#: Returned by a ``decide`` hook: close the connection instead of replying.
DROP = "drop"

#: decide(envelope, attempt) -> reply such as "451 4.3.0 try later", DROP, or None for "250 OK".
DataHook = Callable[[Envelope, int], "str | None"]
#: decide_rcpt(address, attempt) -> reply such as "550 5.1.1 no such user", DROP, or None;
#: decide_mail(address, attempt) the same for MAIL FROM.
AddressHook = Callable[[str, int], "str | None"]


@dataclass(frozen=True)
class Received:
    mail_from: str
    rcpt_tos: tuple[str, ...]
    #: The message as the server stored it: dot-unstuffed, CRLF line endings, final CRLF kept.
    content: bytes


class RecordingHandler:
    """An aiosmtpd handler that records what it accepts and fails on request.

    ``attempt`` counts, from 1, how often the same recipient(s) reached that stage, so a hook can
    fail the first try and accept the retry. ``delay`` (seconds) is slept before answering DATA.
    ``pipelining`` advertises PIPELINING, which aiosmtpd handles but does not announce.
    """

    def __init__(
        self,
        decide: DataHook | None = None,
        decide_rcpt: AddressHook | None = None,
        *,
        decide_mail: AddressHook | None = None,
        delay: float = 0.0,
        pipelining: bool = True,
    ) -> None:
        self.decide = decide
        self.decide_rcpt = decide_rcpt
        self.decide_mail = decide_mail
        self.delay = delay
        self.pipelining = pipelining
        self._lock = threading.Lock()
        self._messages: list[Received] = []
        self._data_attempts: Counter[tuple[str, ...]] = Counter()
        self._rcpt_attempts: Counter[str] = Counter()
        self._mail_attempts: Counter[str] = Counter()
        #: Every refusal given by a hook, in order: (recipients, or the sender for MAIL; reply).
        self.refusals: list[tuple[tuple[str, ...], str]] = []

    @property
    def messages(self) -> list[Received]:
        with self._lock:
            return list(self._messages)

    def _refuse(self, server: SMTP, rcpts: tuple[str, ...], reply: str) -> str:
        with self._lock:
            self.refusals.append((rcpts, reply))
        if reply == DROP:
            if server.transport is not None:
                server.transport.close()  # the reply below then goes nowhere
            return "421 4.4.2 dropped"
        return reply

    async def handle_EHLO(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        session.host_name = hostname  # this hook's contract: aiosmtpd leaves it to us
        if self.pipelining:
            responses.insert(-1, "250-PIPELINING")
        return responses

    async def handle_MAIL(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        mail_options: list[str],
    ) -> str:
        with self._lock:
            self._mail_attempts[address] += 1
            attempt = self._mail_attempts[address]
        reply = self.decide_mail(address, attempt) if self.decide_mail else None
        if reply:
            return self._refuse(server, (address,), reply)
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 OK"

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        with self._lock:
            self._rcpt_attempts[address] += 1
            attempt = self._rcpt_attempts[address]
        reply = self.decide_rcpt(address, attempt) if self.decide_rcpt else None
        if reply:
            return self._refuse(server, (address,), reply)
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        rcpts = tuple(envelope.rcpt_tos)
        with self._lock:
            self._data_attempts[rcpts] += 1
            attempt = self._data_attempts[rcpts]
        if self.delay:
            await asyncio.sleep(self.delay)
        reply = self.decide(envelope, attempt) if self.decide else None
        if reply:
            return self._refuse(server, rcpts, reply)
        content = envelope.original_content or b""
        with self._lock:
            self._messages.append(Received(str(envelope.mail_from), rcpts, content))
            number = len(self._messages)
        return f"250 2.0.0 OK queued as {number}"


class EchoAuthHandler(RecordingHandler):
    """Refuses every login with a 535 that echoes what the client sent, as some relays do.

    ``mechanism`` ("PLAIN" or "LOGIN") is the only one advertised. LOGIN asks for the
    password in a continuation and echoes the user name and password lines both.
    """

    def __init__(self, mechanism: str) -> None:
        super().__init__()
        self.mechanism = mechanism
        #: What the client sent, base64 as on the wire.
        self.received: list[str] = []

    async def handle_EHLO(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        responses = await super().handle_EHLO(server, session, envelope, hostname, responses)
        return [f"250-AUTH {self.mechanism}" if "AUTH" in r else r for r in responses]

    async def handle_AUTH(
        self, server: SMTP, session: Session, envelope: Envelope, args: list[str]
    ) -> str:
        sent = args[1:]
        if args[0].upper() == "LOGIN":
            if not sent:
                user = _blob(await server.challenge_auth("Username:"))
                sent.append(base64.b64encode(user.encode()).decode())
            password = _blob(await server.challenge_auth("Password:"))
            # The continuation both as it came (base64) and decoded.
            sent += [base64.b64encode(password.encode()).decode(), password]
        self.received.extend(sent)
        return f"535 5.7.8 authentication failed for {' '.join(sent)}"


def _blob(response: Any) -> str:
    return response.decode() if isinstance(response, bytes) else ""


class _BareSocketServer:
    """A bare socket server on loopback, one session at a time, for replies that a real
    SMTP server library would never send. Use it as a context manager; ``port`` is where it
    listens, ``connections`` how many clients it has served. Subclasses write ``_session``.
    """

    #: Seconds a session's socket waits for the client.
    session_timeout = 10.0

    def __init__(self) -> None:
        self.connections = 0
        self._listener = socket.create_server((HOST, 0))
        self._listener.settimeout(0.05)
        self.host = HOST
        self.port: int = self._listener.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self._listener.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            self.connections += 1
            with conn, contextlib.suppress(OSError):
                conn.settimeout(self.session_timeout)
                self._session(conn)

    def _session(self, conn: socket.socket) -> None:
        raise NotImplementedError


class StallingServer(_BareSocketServer):
    """A bare socket server that takes the envelope and then stalls DATA.

    ``mode="trickle"``: it reads the whole message, then sends its 250 reply one byte every
    ``interval`` seconds, so that no single read ever waits long. ``mode="stall"``: it stops
    reading in the middle of the message and never answers. ``mode="greeting"``: the
    greeting itself trickles. Use it as a context manager.
    """

    def __init__(self, mode: str = "trickle", interval: float = 0.1) -> None:
        super().__init__()
        self.mode, self.interval = mode, interval

    def _session(self, conn: socket.socket) -> None:
        reader = conn.makefile("rb")
        with reader:
            if self.mode == "greeting":
                # The greeting one byte at a time, for far longer than any timeout.
                for byte in b"220 " + b"x" * 200 + b"\r\n":
                    if self._stop.is_set():
                        return
                    conn.sendall(bytes([byte]))
                    time.sleep(self.interval)
                return
            conn.sendall(b"220 stall.test ESMTP\r\n")
            for line in reader:
                verb = line[:4].upper()
                if verb == b"DATA":
                    conn.sendall(b"354 go ahead\r\n")
                    break
                if verb == b"QUIT":
                    return
                conn.sendall(b"250 ok\r\n")
            else:
                return
            if self.mode == "stall":
                reader.read(100)
                self._stop.wait()  # never reads on, never answers
                return
            for line in reader:
                if line == b".\r\n":
                    break
            for byte in b"250 2.0.0 accepted at last, one byte at a time\r\n":
                if self._stop.wait(self.interval):
                    return
                conn.sendall(bytes([byte]))


class Server(NamedTuple):
    host: str
    port: int
    handler: Any


def free_port() -> int:
    # aiosmtpd's Controller connects to its own port to start up, so port=0 cannot work.
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


class _Controller(Controller):
    """A Controller that closes its client connections before its loop goes away.

    aiosmtpd's stop() closes the listening socket but leaves open connections to be garbage
    collected after the loop is closed, which warns about unclosed transports.
    """

    def __init__(self, *args: Any, auth_over_plaintext: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._auth_over_plaintext = auth_over_plaintext
        self._sessions: list[SMTP] = []

    def factory(self) -> SMTP:
        smtpd = SMTP(self.handler, **self.SMTP_kwargs)
        if self._auth_over_plaintext:
            # aiosmtpd cannot see implicit TLS, and passing auth_require_tls=False together with
            # auth_required=True makes it warn (an error under filterwarnings = error).
            smtpd._auth_require_tls = False
        self._sessions.append(smtpd)
        return smtpd

    async def _abort_sessions(self) -> None:
        for smtpd in self._sessions:
            if isinstance(smtpd.transport, asyncio.Transport):
                smtpd.transport.abort()
        # Let connection_lost() run, which closes the sockets and cancels the session tasks.
        for _ in range(3):
            await asyncio.sleep(0)

    def stop(self, no_assert: bool = False) -> None:
        if self._thread is not None:
            future = asyncio.run_coroutine_threadsafe(self._abort_sessions(), self.loop)
            future.result(timeout=5)
        super().stop(no_assert)


@contextlib.contextmanager
def smtp_server(
    handler: Any = None,
    *,
    tls_context: ssl.SSLContext | None = None,
    require_starttls: bool = False,
    auth: dict[str, str] | None = None,
    implicit_tls: bool = False,
) -> Iterator[Server]:
    """Run an aiosmtpd server on 127.0.0.1 and a free port; yield ``(host, port, handler)``.

    ``tls_context`` offers STARTTLS, or with ``implicit_tls`` wraps the whole connection (port
    465 style). ``auth`` maps user names to passwords and makes AUTH required; over STARTTLS
    AUTH is only offered after the upgrade, as real servers do.
    """
    handler = RecordingHandler() if handler is None else handler
    if implicit_tls and tls_context is None:
        raise ValueError("implicit_tls needs a tls_context")
    kwargs: dict[str, Any] = {"server_hostname": "smtp.test", "timeout": 30}
    if tls_context is not None and not implicit_tls:
        kwargs.update(tls_context=tls_context, require_starttls=require_starttls)
    if auth is not None:
        users = {name.encode(): password.encode() for name, password in auth.items()}

        def authenticator(
            server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
        ) -> AuthResult:
            ok = isinstance(data, LoginPassword) and users.get(data.login) == data.password
            return AuthResult(success=ok, handled=False)

        kwargs.update(authenticator=authenticator, auth_required=True)
    controller = _Controller(
        handler,
        hostname=HOST,
        port=free_port(),
        ssl_context=tls_context if implicit_tls else None,
        auth_over_plaintext=auth is not None and (implicit_tls or tls_context is None),
        **kwargs,
    )
    controller.start()
    try:
        yield Server(HOST, controller.port, handler)
    finally:
        controller.stop()


class DropDuringDataServer(_BareSocketServer):
    """A bare socket server that accepts the envelope, answers DATA with 354, reads
    ``read_bytes`` of the message and then closes the connection.

    Use it as a context manager; ``port`` is where it listens, ``connections`` how many clients
    it has served.
    """

    session_timeout = 5.0

    def __init__(self, read_bytes: int = 100) -> None:
        super().__init__()
        self.read_bytes = read_bytes

    def _session(self, conn: socket.socket) -> None:
        reader = conn.makefile("rb")
        with reader:
            conn.sendall(b"220 drop.test ESMTP\r\n")
            for line in reader:
                verb = line[:4].upper()
                if verb == b"DATA":
                    conn.sendall(b"354 go ahead\r\n")
                    reader.read(self.read_bytes)
                    return
                if verb == b"QUIT":
                    conn.sendall(b"221 bye\r\n")
                    return
                conn.sendall(b"250 ok\r\n")


def server_tls_context(ca: trustme.CA) -> ssl.SSLContext:
    """A server-side context presenting a certificate for 127.0.0.1 and localhost."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    return context


def write_ca_file(ca: trustme.CA, path: Path) -> Path:
    """Write the CA certificate as PEM, for ``[smtp] ca_file``."""
    ca.cert_pem.write_to_path(str(path))
    return path


@pytest.fixture(scope="session", name="smtp_ca")
def fixture_smtp_ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(name="smtp_ca_file")
def fixture_smtp_ca_file(smtp_ca: trustme.CA, tmp_path: Path) -> Path:
    return write_ca_file(smtp_ca, tmp_path / "smtp-ca.pem")


@pytest.fixture(name="server_tls")
def fixture_server_tls(smtp_ca: trustme.CA) -> ssl.SSLContext:
    return server_tls_context(smtp_ca)


@pytest.fixture(name="start_smtp_server")
def fixture_start_smtp_server() -> Iterator[Callable[..., Server]]:
    """A factory taking :func:`smtp_server`'s arguments; the servers stop at teardown."""
    with contextlib.ExitStack() as stack:

        def start(handler: Any = None, **kwargs: Any) -> Server:
            return stack.enter_context(smtp_server(handler, **kwargs))

        yield start


#: The [security] secret of tests that check tokens (not the sample config's).
SECRET = "a-test-secret-that-is-not-the-sample"


def relay_settings(settings: Settings, server: Server, **smtp: Any) -> Settings:
    """``settings`` sending through ``server`` in relay mode (plain, no retry wait)."""
    relay = {"mode": "relay", "host": server.host, "port": server.port, "security": "none"}
    return settings.model_copy(
        update={
            "smtp": settings.smtp.model_copy(update={**relay, "retry_delay": 0.001, **smtp}),
            "security": settings.security.model_copy(update={"secret": SecretStr(SECRET)}),
        }
    )
