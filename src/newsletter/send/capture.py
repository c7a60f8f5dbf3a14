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

__all__ = ["CaptureServer"]


class _MaildirHandler:
    def __init__(self, maildir: Path) -> None:
        self.box = mailbox.Maildir(maildir, create=True)
        self.lock = threading.Lock()
        self.received = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        content = envelope.original_content or envelope.content
        with self.lock:
            self.box.add(content)
            self.received += 1
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
