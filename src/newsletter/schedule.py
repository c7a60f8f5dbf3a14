"""The next scheduled send, from ``[weekly] send_at`` (shown in the studio).

The schedule itself stays with cron or a systemd timer: this only says when the next run
is due, so that staff know how long they have to approve the issue.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from .settings import Settings

__all__ = ["next_send", "schedule_zone"]


def schedule_zone(settings: Settings) -> ZoneInfo:
    """The zone of ``send_at``: ``[weekly] timezone``, else ``[draft] timezone``."""
    return ZoneInfo(settings.weekly.timezone or settings.draft.timezone)


def next_send(settings: Settings, now: dt.datetime | None = None) -> dt.datetime | None:
    """The next ``[weekly] send_at`` strictly after ``now``, as an aware datetime in its zone.

    None when no schedule is set. ``now`` defaults to the current time; a naive ``now``
    is read as wall-clock time in the schedule's zone. Rules, as cron runs them:

    - at exactly the slot, the next one is a week later (the run is due or under way);
    - the days are counted on the local calendar, so the UTC time moves with summer time;
    - a slot in the hour skipped when clocks go forward ("Sun 02:30" on that day) is that
      instant's real time, 03:30 summer time; a slot in the hour repeated when they go
      back is its first occurrence.
    """
    slot = settings.weekly.schedule()
    if slot is None:
        return None
    weekday, hour, minute = slot
    zone = schedule_zone(settings)
    if now is None:
        now = dt.datetime.now(zone)
    elif now.tzinfo is None:
        now = now.replace(tzinfo=zone)
    after = now.astimezone(dt.UTC)
    today = after.astimezone(zone).date()
    # Seven days ahead at most; the eighth day covers "today's slot has passed".
    for days in range(8):
        day = today + dt.timedelta(days=days)
        if day.weekday() != weekday:
            continue
        # fold=0: the first of a repeated time; a skipped time keeps its old offset,
        # which the round trip through UTC turns into the real wall-clock time.
        when = dt.datetime.combine(day, dt.time(hour, minute), tzinfo=zone).astimezone(dt.UTC)
        # Compared in UTC: aware datetimes in the same zone compare by wall clock.
        if when > after:
            return when.astimezone(zone)
    raise AssertionError("unreachable: every weekday occurs within eight days")
