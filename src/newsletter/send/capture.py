"""The local capture server: a real SMTP server on loopback that files messages in a Maildir.

It makes the embedded default work on a fresh machine with no mail server: `send`
holds a real SMTP conversation with it, and every message lands in ``capture_dir``.
"""

from __future__ import annotations

import mailbox
import socket
import threading
from pathlib import Path
from types import TracebackType
from typing import Any

from aiosmtpd.controller import Controller

from ..errors import ConfigError

__all__ = ["CaptureServer"]


class _MaildirHandler:
    def __init__(self, maildir: Path) -> None:
        try:
            # Maildir creates only its last folder.
            maildir.parent.mkdir(parents=True, exist_ok=True)
            self.box = mailbox.Maildir(maildir, create=True)
        except OSError as exc:
            raise ConfigError(
                f"[smtp] capture_dir {maildir}: cannot create: {exc.strerror}"
            ) from None
        self.lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        content = envelope.original_content or envelope.content
        # What a final delivery does (RFC 5321 4.4): record the envelope sender, where
        # bounces go ([smtp] return_path), so the capture shows it like a real inbox.
        sender = (envelope.mail_from or "").encode("ascii", "replace")
        content = b"Return-Path: <" + sender + b">\r\n" + content
        try:
            with self.lock:
                self.box.add(content)
        except OSError as exc:
            # Temporary: the message stays pending and a later run retries it.
            return f"451 4.3.0 cannot store the message: {exc.strerror}"
        return "250 2.0.0 Message captured"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class CaptureServer:
    """``with CaptureServer(path) as server: ... server.port``"""

    def __init__(self, maildir: Path) -> None:
        self.maildir = maildir
        self.handler = _MaildirHandler(maildir)
        self.host = "127.0.0.1"
        self.port = _free_port()
        # 40 MB: far above any newsletter; aiosmtpd's default of 32 MB would also do.
        self._controller = Controller(
            self.handler, hostname=self.host, port=self.port, data_size_limit=40 * 2**20
        )

    def __enter__(self) -> CaptureServer:
        self._controller.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._controller.stop()
