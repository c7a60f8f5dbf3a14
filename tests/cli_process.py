"""The command line as a user runs it: a separate process, in the project's folder."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def run_newsletter(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``newsletter ARGS`` in ``project``, with no NEWSLETTER_* variables from this shell."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    return subprocess.run(
        [sys.executable, "-m", "newsletter", *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
