"""``newsletter weekly``: the cron / systemd-timer entry point.

For one ISO week it uses the issue file, runs the pre-send checks, builds, and sends.
Safe to run any number of times: the ledger makes a second run send nothing.

With ``[weekly] require_approval = true`` it sends only an issue approved in the studio
(:mod:`newsletter.approval`), and refuses in one line (exit 2) otherwise, so the cron mail
tells someone. The gate applies only when someone is left to send to: a rerun after a
complete send says "Nothing to send" even if the file was edited since (a typo fixed in
the archive copy, say).
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable

from .approval import require_approved
from .checks import Report
from .errors import InputError
from .models import iso_week, week_range
from .render import LoadedIssue, open_issue
from .send import SendReport, plan
from .send.checked import send_checked
from .settings import Settings

__all__ = ["check_approval", "current_week", "run_weekly"]


def current_week(today: dt.date | None = None) -> str:
    return iso_week(today or dt.date.today())


def check_approval(loaded: LoadedIssue, settings: Settings) -> None:
    """With ``[weekly] require_approval``, :class:`~newsletter.approval.NotApproved` unless
    ``loaded`` is validly approved or nobody is left to send it to. Checks the text that
    was parsed and will be sent: pass the same loaded issue on, with no re-read between."""
    if not settings.weekly.require_approval:
        return
    loaded.require_valid()  # a bad file is its own, located error, not "not approved"
    pending, _, _ = plan(loaded, settings)
    if pending:
        require_approved(loaded.text, str(loaded.path), settings.security.all_secrets())


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
    """Check, build and send this week's issue; :class:`ChecksFailed` stops it unless ``force``.

    :class:`~newsletter.approval.NotApproved` when ``[weekly] require_approval`` is set,
    someone is still to be sent the issue, and the file is not validly approved (``force``
    overrides the checks, never the approval).
    """
    week = week or current_week()
    week_range(week)  # a week that exists, or one line naming --week
    issue_file = settings.issues_dir / f"{week}.toml"
    if not issue_file.exists():
        raise InputError(
            f"no issue file for {week}; write it (see issues/2023-W25.toml) before the weekly run",
            str(issue_file),
        )
    loaded = open_issue(issue_file, settings)
    check_approval(loaded, settings)
    return send_checked(
        loaded,
        settings,
        force=force,
        on_checks=on_checks,
        on_start=on_start,
        on_result=on_result,
        stop=stop,
    )
