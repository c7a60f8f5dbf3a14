"""``newsletter weekly``: the cron / systemd-timer entry point.

For one ISO week it uses the issue file, runs the pre-send checks, builds, and sends.
Safe to run any number of times: the ledger makes a second run send nothing.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable

from .checks import Report
from .errors import InputError
from .models import iso_week, week_range
from .render import open_issue
from .send import SendReport
from .send.checked import send_checked
from .settings import Settings

__all__ = ["current_week", "run_weekly"]


def current_week(today: dt.date | None = None) -> str:
    return iso_week(today or dt.date.today())


def run_weekly(
    settings: Settings,
    week: str | None = None,
    *,
    force: bool = False,
    on_checks: Callable[[Report], None] | None = None,
    on_start: Callable[[int], None] | None = None,
    on_result: Callable[[bool], None] | None = None,
    stop: threading.Event | None = None,
) -> SendReport:
    """Check, build and send this week's issue; :class:`ChecksFailed` stops it unless ``force``."""
    week = week or current_week()
    week_range(week)  # a week that exists, or one line naming --week
    issue_file = settings.issues_dir / f"{week}.toml"
    if not issue_file.exists():
        raise InputError(
            f"no issue file for {week}; write it (see issues/2023-W25.toml) before the weekly run",
            str(issue_file),
        )
    return send_checked(
        open_issue(issue_file, settings),
        settings,
        force=force,
        on_checks=on_checks,
        on_start=on_start,
        on_result=on_result,
        stop=stop,
    )
