"""Calendar periods in a user's IANA time zone, as ranges of UTC instants.

Caps count per day, week (Monday to Sunday, as ISO 8601 has it) and month, and the usage dashboard
groups by the same periods, all in the user's own time zone. The boundaries are computed here, in
Python with :mod:`zoneinfo`, and the database only ever compares stored UTC times with them: no
engine-specific date function, so SQLite and PostgreSQL count alike. A day is 23 or 25 hours long
when the clocks change; where a zone skips midnight itself, the day starts at its first instant.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

Period = Literal["day", "week", "month"]
PERIODS: tuple[Period, ...] = ("day", "week", "month")
DEFAULT_TIME_ZONE = "UTC"


@lru_cache(maxsize=1)
def time_zone_names() -> frozenset[str]:
    """Every IANA time zone name this machine knows (from the ``tzdata`` package or the system), without the
    system's own aliases that name no place ("localtime" is whatever this server is set to)."""
    return frozenset(available_timezones() - {"localtime", "posixrules", "Factory"}) | {"UTC"}


def is_time_zone(name: str) -> bool:
    return name in time_zone_names()


@lru_cache(maxsize=256)
def zone(name: str) -> ZoneInfo:
    """The time zone called ``name``; UTC for a name this machine no longer knows (a stored one)."""
    try:
        return ZoneInfo(name) if is_time_zone(name) else ZoneInfo(DEFAULT_TIME_ZONE)
    except ZoneInfoNotFoundError:
        return ZoneInfo(DEFAULT_TIME_ZONE)


def start_of(period: Period, day: date) -> date:
    """The first day of the ``period`` that contains ``day``."""
    if period == "day":
        return day
    if period == "week":
        return day - timedelta(days=day.weekday())
    return day.replace(day=1)


def after(period: Period, first: date) -> date:
    """The first day of the next ``period``, for a period that starts on ``first``."""
    if period == "day":
        return first + timedelta(days=1)
    if period == "week":
        return first + timedelta(days=7)
    return date(first.year + first.month // 12, first.month % 12 + 1, 1)


def midnight(day: date, tz: ZoneInfo) -> datetime:
    """The instant (in UTC) at which ``day`` begins in ``tz``.

    A wall time that the clocks skip is read with the offset from before the change (PEP 495's
    ``fold=0``), which lands on the first instant that exists on that day.
    """
    return datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)


def local_date(moment: datetime, tz: ZoneInfo) -> date:
    return moment.astimezone(tz).date()


@dataclass(frozen=True)
class Window:
    """A span of local calendar days, ``first`` to ``last`` inclusive, and the UTC instants ``[start, end)``."""

    first: date
    last: date
    start: datetime
    end: datetime


def window(period: Period, moment: datetime, tz: ZoneInfo) -> Window:
    """The ``period`` (in ``tz``) that ``moment`` falls in."""
    first = start_of(period, local_date(moment, tz))
    following = after(period, first)
    return Window(first, following - timedelta(days=1), midnight(first, tz), midnight(following, tz))


def days(first: date, last: date, tz: ZoneInfo) -> Window:
    """Local days ``first`` to ``last`` inclusive, as one window."""
    return Window(first, last, midnight(first, tz), midnight(last + timedelta(days=1), tz))


def buckets(period: Period, first: date, last: date, tz: ZoneInfo) -> list[Window]:
    """The ``period``s that cover ``first`` to ``last``, each cut to that range (so the first and last
    may be partial): their UTC ranges tile the range exactly, with no gap and no overlap."""
    found: list[Window] = []
    start = first
    while start <= last:
        following = after(period, start_of(period, start))
        end = min(following, last + timedelta(days=1))
        found.append(days(start, end - timedelta(days=1), tz))
        start = end
    return found


def count(period: Period, first: date, last: date) -> int:
    """How many ``period`` buckets :func:`buckets` would make, without making them."""
    if period == "day":
        return (last - first).days + 1
    if period == "week":
        return (start_of("week", last) - start_of("week", first)).days // 7 + 1
    return (last.year - first.year) * 12 + last.month - first.month + 1
