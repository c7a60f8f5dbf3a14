"""Check, then send: the one path from a loaded issue to subscribers.

`newsletter send` and `newsletter weekly` both go through
:func:`send_checked`, so the pre-send gate cannot be skipped by one of them alone.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from ..checks import Report, gate
from ..files import check_writable
from ..render import LoadedIssue
from ..settings import Settings
from . import SendReport, plan, send_issue
from .modes import mode_for
from .transport import TransportFactory

__all__ = ["send_checked"]


def send_checked(
    loaded: LoadedIssue,
    settings: Settings,
    *,
    force: bool = False,
    limit: int | None = None,
    confirm: Callable[[int], None] | None = None,
    on_checks: Callable[[Report], None] | None = None,
    on_start: Callable[[int], None] | None = None,
    on_result: Callable[[bool], None] | None = None,
    stop: threading.Event | None = None,
    transport: TransportFactory | None = None,
) -> SendReport:
    """Refuse an invalid issue, run the checks (:class:`ChecksFailed` unless ``force``),
    let ``confirm`` see the count (it raises to abort), then send.

    With nothing left to send, a rerun skips the checks and just says so.
    """
    loaded.require_valid()
    # A relay that cannot be used (a sample secret, a password in clear) is said before
    # the checks and the question, not after the user said yes.
    mode_for(settings, transport).check(settings)
    check_writable(loaded.out_dir(), "send-report.json", what="[paths] output_dir")
    count, _, _ = plan(loaded, settings)
    if limit is not None:
        count = min(count, limit)
    if count:
        report = gate(loaded, force=force)
        if on_checks:
            on_checks(report)
        if confirm:
            confirm(count)
    return send_issue(
        loaded, settings, limit=limit, on_start=on_start, on_result=on_result, stop=stop,
        transport=transport,
    )  # fmt: skip
