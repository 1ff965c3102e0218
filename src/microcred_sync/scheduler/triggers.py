"""APScheduler triggers for the schedules of `scheduler/jobs.yaml`, and the next run
they give.

A job's crontab is read as crontab reads it: weekday 0 (or 7) is Sunday. APScheduler
3 counts weekdays from Monday, so numbers are turned into names before it sees them.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from .jobs import Schedule

#: Where interval schedules count their steps from: every replica's trigger fires at
#: the same times, whenever it started.
INTERVAL_ANCHOR = datetime(2026, 1, 1, tzinfo=UTC)

_WEEKDAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat", "sun")


def trigger(schedule: Schedule, start: datetime | None = None) -> BaseTrigger:
    """The trigger of ``schedule``; an interval counts from ``start`` (default: now).

    Jitter is left to the scheduler's caller: the trigger gives nominal times.
    """
    zone = ZoneInfo(schedule.timezone)
    if schedule.cron is not None:
        minute, hour, day, month, weekday = schedule.cron.split()
        return CronTrigger(
            minute=minute,
            hour=hour,
            day=day,
            month=month,
            day_of_week=crontab_weekdays(weekday),
            timezone=zone,
        )
    assert schedule.interval is not None
    return IntervalTrigger(seconds=schedule.interval, start_date=start, timezone=zone)


def crontab_weekdays(field: str) -> str:
    """A crontab weekday field in APScheduler's terms: the days it names, by name.

    Ranges and steps are spelt out (``1-5`` is ``mon,tue,wed,thu,fri``, ``*/2`` is
    ``sun,tue,thu,sat``), since APScheduler would count them from Monday.
    """
    days: list[str] = []
    for part in field.lower().split(","):
        values, _, step = part.partition("/")
        if values == "*" and not step:
            return "*"
        low, _, high = ("0-6" if values == "*" else values).partition("-")
        if not (low.isdigit() and (high.isdigit() or not high)):
            days.append(part)  # names: APScheduler reads those as crontab does
            continue
        last = int(high) if high else (6 if step else int(low))
        for number in range(int(low), last + 1, int(step or 1)):
            if _WEEKDAY_NAMES[number] not in days:
                days.append(_WEEKDAY_NAMES[number])
    return ",".join(days)


def next_run(
    schedule: Schedule, now: datetime, last_started: datetime | None = None
) -> datetime | None:
    """When a job with ``schedule`` runs next after ``now``.

    An interval job is due now when it never ran or its interval has passed since
    its last start (``last_started``); otherwise it runs at the next step of its
    interval counted from ``INTERVAL_ANCHOR``, as the daemon's trigger fires. None
    when the trigger has no time left.
    """
    if schedule.interval is not None:
        if (
            last_started is None
            or last_started + timedelta(seconds=schedule.interval) <= now
        ):
            return now
        fire: datetime | None = trigger(schedule, INTERVAL_ANCHOR).get_next_fire_time(
            None, now
        )
        return fire
    upcoming: datetime | None = trigger(schedule).get_next_fire_time(None, now)
    return upcoming
