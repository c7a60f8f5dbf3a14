"""What the studio's report pages show, assembled from the library.

No SQL here: the figures come from ``ledger`` (an issue's send) and ``subscribers`` (the
list's growth); the chart from :mod:`.chart`. Every object handed to a template is a
frozen dataclass, and none of them holds a subscriber.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from .. import ledger, subscribers
from ..ledger import IssueStats
from ..store import Store
from ..subscribers import WeekGrowth
from .chart import growth_svg

__all__ = [
    "IssueReport",
    "ListGrowth",
    "issue_report",
    "list_growth",
]

#: Weeks of growth a report shows before its issue's send, and at most in all.
WEEKS_BEFORE_SEND = 8
WEEKS_SHOWN = 52


@dataclass(frozen=True)
class ListGrowth:
    """The list's growth per ISO week, with its chart (SVG markup, escaped: ``|safe``)."""

    weeks: list[WeekGrowth]
    svg: str

    @property
    def confirmed(self) -> int:
        return sum(week.confirmed for week in self.weeks)

    @property
    def unsubscribed(self) -> int:
        return sum(week.unsubscribed for week in self.weeks)

    @property
    def net(self) -> int:
        return self.confirmed - self.unsubscribed


def _today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


def list_growth(
    store: Store,
    since: dt.date | None = None,
    until: dt.date | None = None,
    *,
    mark: str | None = None,
    id_prefix: str = "growth",
) -> ListGrowth:
    """Growth from the week of ``since`` (default: 25 weeks before ``until``) to the week
    of ``until`` (default: today, UTC); ``mark`` flags one week in the chart."""
    until = until or _today()
    since = since or until - dt.timedelta(weeks=25)
    weeks = subscribers.growth_by_week(store, since, until)
    return ListGrowth(weeks, growth_svg(weeks, mark=mark, id_prefix=id_prefix))


@dataclass(frozen=True)
class IssueReport:
    """A past issue's report page: its send's figures and the list's growth around it."""

    stats: IssueStats
    growth: ListGrowth
    #: The ISO week the send began in (marked in the chart), "" if its time is unreadable.
    sent_week: str

    @property
    def finished(self) -> str:
        """When its last delivery was recorded; "" while a send of it is running."""
        return "" if self.stats.sending else self.stats.last_delivery

    @property
    def settled(self) -> int:
        """Deliveries that reached an end: accepted or refused for good."""
        return self.stats.sent + self.stats.failed


def issue_report(store: Store, issue: str, today: dt.date | None = None) -> IssueReport | None:
    """The report of ``issue``; None if no send of it was ever started.

    The growth chart runs from :data:`WEEKS_BEFORE_SEND` weeks before the send's week to
    today, at most :data:`WEEKS_SHOWN` weeks (an old issue: the year after its send).
    """
    stats = ledger.issue_report(store, issue)
    if stats is None:
        return None
    today = today or _today()
    try:
        started = dt.datetime.fromisoformat(stats.started).date()
    except ValueError:
        growth = list_growth(store, until=today, id_prefix="report-growth")
        return IssueReport(stats, growth, "")
    since = started - dt.timedelta(weeks=WEEKS_BEFORE_SEND)
    until = min(today, since + dt.timedelta(weeks=WEEKS_SHOWN - 1))
    year, week, _ = started.isocalendar()
    sent_week = f"{year}-W{week:02d}"
    growth = list_growth(store, since, until, mark=sent_week, id_prefix="report-growth")
    return IssueReport(stats, growth, sent_week)
