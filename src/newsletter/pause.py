"""A test-only hook: stop at a named stage, so a test can interrupt exactly there.

With ``NEWSLETTER_TEST_PAUSE=<stage>`` in the environment, :func:`checkpoint` writes the
process id to ``NEWSLETTER_TEST_PAUSE_FILE`` and waits for a signal, so that Ctrl-C at a
given stage is tested deterministically rather than by racing a timer. Without the
variable it does nothing.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

__all__ = ["STAGES", "checkpoint"]

#: Where commands can be paused: each point is just before the stage writes anything.
STAGES = ("collect", "import", "draft", "check", "build", "send")


def checkpoint(stage: str) -> None:
    if os.environ.get("NEWSLETTER_TEST_PAUSE") != stage:
        return
    marker = os.environ.get("NEWSLETTER_TEST_PAUSE_FILE")
    if marker:
        Path(marker).write_text(str(os.getpid()), encoding="utf-8")
    signal.pause()  # returns once a handled signal arrives; Ctrl-C raises as usual
