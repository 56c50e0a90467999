"""Periods in the user's time zone as UTC ranges: days of 23 and 25 hours, weeks from Monday, months."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta

import pytest

from backend import periods


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(("period", "zone", "moment", "start", "end"), [
    # An ordinary day, and the same instant seen from either side of the date line.
    ("day", "UTC", "2026-11-26 13:00", "2026-11-26 00:00", "2026-11-27 00:00"),
    ("day", "Pacific/Kiritimati", "2026-11-26 13:00", "2026-11-26 10:00", "2026-11-27 10:00"),
    ("day", "Pacific/Pago_Pago", "2026-11-26 09:00", "2026-11-25 11:00", "2026-11-26 11:00"),
    ("day", "Asia/Kolkata", "2026-11-26 18:29", "2026-11-25 18:30", "2026-11-26 18:30"),
    ("day", "Asia/Kolkata", "2026-11-26 18:30", "2026-11-26 18:30", "2026-11-27 18:30"),
    # Paris springs forward on 29 March 2026 (a 23-hour day) and falls back on 25 October (25 hours).
    ("day", "Europe/Paris", "2026-03-29 12:00", "2026-03-28 23:00", "2026-03-29 22:00"),
    ("day", "Europe/Paris", "2026-10-24 22:30", "2026-10-24 22:00", "2026-10-25 23:00"),
    ("day", "Europe/Paris", "2026-10-25 22:59", "2026-10-24 22:00", "2026-10-25 23:00"),
    ("day", "Europe/Paris", "2026-10-25 23:00", "2026-10-25 23:00", "2026-10-26 23:00"),
    # New York falls back on 1 November 2026.
    ("day", "America/New_York", "2026-11-01 04:30", "2026-11-01 04:00", "2026-11-02 05:00"),
    # Santiago skips midnight itself (00:00 -> 01:00 on 6 September 2026): the day starts at 01:00.
    ("day", "America/Santiago", "2026-09-06 12:00", "2026-09-06 04:00", "2026-09-07 03:00"),
    # Weeks run Monday to Sunday; this one holds Paris's autumn change, so it is 169 hours.
    ("week", "Europe/Paris", "2026-10-25 12:00", "2026-10-18 22:00", "2026-10-25 23:00"),
    ("week", "UTC", "2026-11-30 00:00", "2026-11-30 00:00", "2026-12-07 00:00"),
    ("week", "Australia/Sydney", "2026-11-29 12:59", "2026-11-22 13:00", "2026-11-29 13:00"),
    # Months, across the end of a year and a leap day.
    ("month", "UTC", "2026-12-31 23:59", "2026-12-01 00:00", "2027-01-01 00:00"),
    ("month", "America/Los_Angeles", "2027-01-01 07:59", "2026-12-01 08:00", "2027-01-01 08:00"),
    ("month", "Europe/Paris", "2028-02-29 12:00", "2028-01-31 23:00", "2028-02-29 23:00"),
    ("month", "Europe/Paris", "2026-03-15 12:00", "2026-02-28 23:00", "2026-03-31 22:00"),
])
def test_the_period_of_an_instant(period: periods.Period, zone: str, moment: str, start: str, end: str) -> None:
    window = periods.window(period, utc(moment), periods.zone(zone))
    assert (window.start, window.end) == (utc(start), utc(end))
    assert window.start <= utc(moment) < window.end


@pytest.mark.parametrize("period", periods.PERIODS)
@pytest.mark.parametrize("zone", ["Europe/Paris", "America/Santiago", "Australia/Lord_Howe", "UTC"])
def test_buckets_tile_the_range_with_no_gap_and_no_overlap(period: periods.Period, zone: str) -> None:
    tz = periods.zone(zone)
    first, last = date(2026, 1, 14), date(2027, 2, 3)
    found = periods.buckets(period, first, last, tz)
    assert len(found) == periods.count(period, first, last)
    assert found[0].first == first and found[-1].last == last
    assert found[0].start == periods.midnight(first, tz) and found[-1].end == periods.midnight(last + timedelta(1), tz)
    for before, after in itertools.pairwise(found):
        assert before.end == after.start and before.last + timedelta(days=1) == after.first
        assert after.first == periods.start_of(period, after.first)  # only the first bucket may start mid-period


def test_time_zone_names_are_the_iana_ones() -> None:
    assert periods.is_time_zone("Europe/Paris") and periods.is_time_zone("UTC")
    for bad in ("Mars/Olympus_Mons", "", "europe/paris", "../../etc/passwd", "localtime", "+02:00"):
        assert not periods.is_time_zone(bad)
    assert periods.zone("No/Longer_Known").key == "UTC"
