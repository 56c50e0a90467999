"""The usage dashboard and the CSV export of the ledger, aggregated by the database.

Periods are cut in the user's time zone by :mod:`backend.periods` (in Python, with zoneinfo); the database
gets their UTC bounds as a small table of ranges and sums the entries that fall in each with one indexed
range join, so the work grows with the entries in the range asked for, not with the user's whole history,
and the same query runs on SQLite and PostgreSQL.

Every entry type lands in one column, so that the columns add up to the change of the balance:
``closingBalance = openingBalance + purchased - spent - clawedBack + adjusted``.
"""

from __future__ import annotations

import csv
import io
import math
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, Integer, Text, and_, column, func, or_, select, values

from backend import entries, ledger, periods
from backend.db import Database, iso_utc
from backend.errors import InvalidDateRange
from backend.periods import Period, Window
from backend.schema import grant_allocations, grants, ledger_entries, orders, usage_labels, usage_quarters
from backend.spend_controls import Controls
from resources import currencies

MAX_BUCKETS = 400
BY_DESCRIPTION_ROWS = 10
EARLIEST, LATEST = date(1970, 1, 1), date(2999, 12, 31)
MIN_ACTIVE_DAYS = 3
CSV_PAGE = 1000


@dataclass
class Sums:
    """Credits per dashboard column, each a positive figure for what it moved (spent and clawed back left the
    balance; ``adjusted`` is the net of adjustments and any other entry type)."""

    spent: int = 0
    purchased: int = 0
    clawed_back: int = 0
    adjusted: int = 0

    def add(self, entry_type: str, amount: int) -> None:
        if entry_type == "spend":
            self.spent -= amount
        elif entry_type == "purchase":
            self.purchased += amount
        elif entry_type in entries.CLAWBACK_TYPES or entry_type in entries.CLAWBACK_REVERSAL_TYPES:
            self.clawed_back -= amount
        else:
            self.adjusted += amount

    def __add__(self, other: Sums) -> Sums:
        return Sums(self.spent + other.spent, self.purchased + other.purchased,
                    self.clawed_back + other.clawed_back, self.adjusted + other.adjusted)

    @property
    def net(self) -> int:
        return self.purchased - self.spent - self.clawed_back + self.adjusted

    def as_json(self) -> dict[str, int]:
        return {"spent": self.spent, "purchased": self.purchased, "clawedBack": self.clawed_back,
                "adjusted": self.adjusted}


def date_range(granularity: Period, first: date | None, last: date | None, today: date) -> tuple[date, date]:
    """The range asked for, or a default that ends today: 30 days, 12 weeks or 12 months."""
    last = last or (max(today, first) if first else today)
    if first is None:
        if granularity == "day":
            first = last - timedelta(days=29)
        elif granularity == "week":
            first = periods.start_of("week", last) - timedelta(weeks=11)
        else:
            first = periods.start_of("month", last)
            for _ in range(11):
                first = periods.start_of("month", first - timedelta(days=1))
    if not EARLIEST <= first <= LATEST or not EARLIEST <= last <= LATEST:
        raise InvalidDateRange(f"dates must be between {EARLIEST} and {LATEST}")
    if first > last:
        raise InvalidDateRange(f"from ({first}) is after to ({last})")
    if periods.count(granularity, first, last) > MAX_BUCKETS:
        raise InvalidDateRange(f"that is more than {MAX_BUCKETS} {granularity}s; choose a shorter range or a longer "
                               "granularity")
    return first, last


def sums_by_window(conn: Connection, user_id: int, windows: Sequence[Window],
                   types: Sequence[str] | None = None) -> list[Sums]:
    """The sums of each window's entries, in one query: the windows' bounds become a small table
    (``WITH bounds(i, lo, hi) AS (VALUES ...)``) joined on an index by time. From the quarter-hour sums
    (:mod:`backend.rollups`) where every bound falls on a quarter hour, as local midnights do; else from the
    ledger's entries."""
    if not windows:
        return []
    bounds = values(column("i", Integer), column("lo", Text), column("hi", Text), name="bounds").data(
        [(i, iso_utc(w.start), iso_utc(w.end)) for i, w in enumerate(windows)]
    ).cte("bounds")
    if all(_on_a_quarter(w.start) and _on_a_quarter(w.end) for w in windows):
        q = usage_quarters.c
        user, moment, entry_type, amount, table = q.user_id, q.quarter, q.type, q.amount, usage_quarters
    else:
        e = ledger_entries.c
        user, moment, entry_type, amount, table = e.user_id, e.created_at, e.type, e.amount, ledger_entries
    condition = and_(user == user_id, moment >= bounds.c.lo, moment < bounds.c.hi)
    if types is not None:
        condition = and_(condition, entry_type.in_(types))
    query = (select(bounds.c.i, entry_type, func.sum(amount))
             .select_from(bounds.join(table, condition)).group_by(bounds.c.i, entry_type))
    found = [Sums() for _ in windows]
    for i, found_type, total in conn.execute(query):
        found[int(i)].add(found_type, int(total))
    return found


def _on_a_quarter(moment: datetime) -> bool:
    utc = moment.astimezone(UTC)
    return utc.minute % 15 == 0 and utc.second == 0 and utc.microsecond == 0


def by_description(conn: Connection, user_id: int, window: Window, spent_total: int) -> list[dict[str, object]]:
    """Spending in ``window`` by feature (where the spend names one) or description, largest first; what does
    not fit in the first rows is summed in a last row with ``"rest": true``. The whole UTC days of the window
    are summed from the daily sums (:mod:`backend.rollups`), the hours before and after them from the ledger."""
    totals: dict[str, int] = defaultdict(int)
    first_day = datetime.combine(window.start.astimezone(UTC).date(), time(), UTC)
    if first_day < window.start:
        first_day += timedelta(days=1)
    end_day = datetime.combine(window.end.astimezone(UTC).date(), time(), UTC)
    edges = [(window.start, window.end)]
    if first_day < end_day:
        edges = [(window.start, first_day), (end_day, window.end)]
        u = usage_labels.c
        for found_label, total in conn.execute(
            select(u.label, func.sum(u.amount)).where(u.user_id == user_id, u.day >= first_day.date().isoformat(),
                                                      u.day < end_day.date().isoformat()).group_by(u.label)
        ):
            totals[found_label] += int(total)
    e = ledger_entries.c
    label = func.coalesce(e.feature, e.description, "")
    for lo, hi in edges:
        if lo < hi:
            for found_label, total in conn.execute(
                select(label, func.sum(e.amount)).where(e.user_id == user_id, e.type == "spend",
                                                        e.created_at >= iso_utc(lo), e.created_at < iso_utc(hi))
                .group_by(label)
            ):
                totals[found_label] += int(total)
    rows = sorted((total, found_label) for found_label, total in totals.items())[:BY_DESCRIPTION_ROWS + 1]
    shown = rows if len(rows) <= BY_DESCRIPTION_ROWS else rows[:BY_DESCRIPTION_ROWS - 1]
    found: list[dict[str, object]] = [{"description": name, "spent": -total} for total, name in shown]
    if len(rows) > len(shown):
        found.append({"description": "Everything else", "spent": spent_total + sum(total for total, _ in shown),
                      "rest": True})
    return found


def balance_before(conn: Connection, user_id: int, moment: datetime) -> int:
    """The balance just before ``moment``: that after the user's last entry before it (0 if none)."""
    e = ledger_entries.c
    value = conn.execute(
        select(e.balance_after).where(e.user_id == user_id, e.created_at < iso_utc(moment))
        .order_by(e.created_at.desc(), e.id.desc()).limit(1)
    ).scalar()
    return int(value or 0)


def forecast(conn: Connection, user_id: int, tz: ZoneInfo, now: datetime) -> dict[str, object]:
    """Days left at the average daily spending of the last 7 and 30 days (today included). A user newer than
    the window is averaged over the days since their first entry; below three days with spending, or with
    nothing spent lately, there is no figure (``null``), never a negative or infinite one."""
    today = periods.local_date(now, tz)
    days = [periods.days(today - timedelta(days=n), today - timedelta(days=n), tz) for n in range(29, -1, -1)]
    spent = [s.spent for s in sums_by_window(conn, user_id, days, types=("spend",))]
    first_entry = conn.execute(
        select(func.min(ledger_entries.c.created_at)).where(ledger_entries.c.user_id == user_id)
    ).scalar()
    known_days = (today - periods.local_date(_parse(first_entry), tz)).days + 1 if first_entry else 0
    active = sum(1 for s in spent if s > 0)
    balance = ledger.balance(conn, user_id)

    def average(n: int) -> float:
        span = min(n, max(known_days, 1))
        return sum(spent[-n:]) / span

    def days_left(daily: float) -> int | None:
        if active < MIN_ACTIVE_DAYS or daily <= 0:
            return None
        return 0 if balance <= 0 else math.floor(balance / daily)

    avg7, avg30 = average(7), average(30)
    return {"dailyAverage7": round(avg7, 2), "dailyAverage30": round(avg30, 2), "daysLeft": days_left(avg7),
            "daysLeft30": days_left(avg30), "activeDays": active, "balance": balance}


def spent_by_kind(conn: Connection, user_id: int, window: Window) -> dict[str, int]:
    """Of what spends took in the window, the paid and the promotional credits (extension, grants), by the spends'
    allocations: ``spentPaid``, ``spentPromotional``; and ``expired``, the credits that expired (part of
    ``adjusted``). A spend from before grants (migration 0016) has no allocations and spent paid credits: there were
    no others then."""
    e, a, g = ledger_entries.c, grant_allocations.c, grants.c
    found = dict(conn.execute(
        select(g.kind, func.sum(a.amount)).select_from(ledger_entries).join(grant_allocations, a.entry_id == e.id)
        .join(grants, g.id == a.grant_id)
        .where(e.user_id == user_id, e.type == "spend", e.created_at >= iso_utc(window.start),
               e.created_at < iso_utc(window.end)).group_by(g.kind)).all())
    expired = conn.execute(select(func.coalesce(func.sum(e.amount), 0)).where(
        e.user_id == user_id, e.type == "expiry", e.created_at >= iso_utc(window.start),
        e.created_at < iso_utc(window.end))).scalar_one()
    spent = conn.execute(select(func.coalesce(func.sum(e.amount), 0)).where(
        e.user_id == user_id, e.type == "spend", e.created_at >= iso_utc(window.start),
        e.created_at < iso_utc(window.end))).scalar_one()
    promotional = -int(found.get("promotional", 0))
    return {"spentPaid": -int(spent) - promotional, "spentPromotional": promotional, "expired": -int(expired)}


def _kinds_of_entries(conn: Connection, entry_ids: list[int]) -> dict[int, tuple[int, int]]:
    """Per entry of a CSV page: the paid and the promotional credits it moved (its allocations; extension). An entry
    without allocations is from before grants (migration 0016; ``check`` proves every later one allocated whole): the
    caller counts its amount as paid, as every credit was then."""
    if not entry_ids:
        return {}
    a, g = grant_allocations.c, grants.c
    found: dict[int, tuple[int, int]] = {}
    for entry_id, kind, amount in conn.execute(
        select(a.entry_id, g.kind, a.amount).join(grants, g.id == a.grant_id).where(a.entry_id.in_(entry_ids))
    ):
        paid, promotional = found.get(entry_id, (0, 0))
        found[entry_id] = (paid + amount, promotional) if kind == "paid" else (paid, promotional + amount)
    for entry_id, kind, amount in conn.execute(  # what an entry put in a grant it made
        select(g.entry_id, g.kind, g.opening).where(g.entry_id.in_(entry_ids), g.source != "migration")
    ):
        paid, promotional = found.get(entry_id, (0, 0))
        found[entry_id] = (paid + amount, promotional) if kind == "paid" else (paid, promotional + amount)
    return found


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def dashboard(db: Database, user_id: int, controls: Controls, granularity: Period, first: date | None,
              last: date | None, *, now: datetime | None = None) -> dict[str, object]:
    now = now or datetime.now(UTC)
    tz = controls.zone
    first, last = date_range(granularity, first, last, periods.local_date(now, tz))
    windows = periods.buckets(granularity, first, last, tz)
    whole = periods.days(first, last, tz)
    with db.read() as conn:
        sums = sums_by_window(conn, user_id, windows)
        totals = sum(sums, Sums())
        opening = balance_before(conn, user_id, whole.start)
        breakdown = by_description(conn, user_id, whole, totals.spent)
        outlook = forecast(conn, user_id, tz, now)
        split = spent_by_kind(conn, user_id, whole)
    return {
        "timeZone": controls.time_zone, "granularity": granularity, "from": first.isoformat(), "to": last.isoformat(),
        "buckets": [{"start": w.first.isoformat(), **s.as_json()} for w, s in zip(windows, sums, strict=True)],
        "totals": {**totals.as_json(), "openingBalance": opening, "closingBalance": opening + totals.net, **split},
        "byDescription": breakdown, "forecast": outlook,
    }


# -- CSV ----------------------------------------------------------------------------------------------------

CSV_COLUMNS = ("id", "createdAt", "localTime", "type", "amount", "balanceAfter", "description", "feature",
               "reference", "paid", "tax", "discount", "currency", "paidCredits", "promotionalCredits")
# A spreadsheet runs a cell that starts with one of these as a formula (CSV injection): such text is prefixed
# with an apostrophe, which spreadsheets show as text and do not display.
_FORMULA_FIRST = frozenset("=+-@\t\r")


def _text_cell(value: str | None) -> str:
    if not value:
        return ""
    return "'" + value if value[0] in _FORMULA_FIRST else value


def csv_range(controls: Controls, first: date | None, last: date | None, *, now: datetime | None = None) -> Window:
    """The local days the export covers: as asked, or from the first day of this month to today."""
    now = now or datetime.now(UTC)
    today = periods.local_date(now, controls.zone)
    first = first or periods.start_of("month", last or today)
    last = last or max(today, first)
    if not EARLIEST <= first <= LATEST or not EARLIEST <= last <= LATEST:
        raise InvalidDateRange(f"dates must be between {EARLIEST} and {LATEST}")
    if first > last:
        raise InvalidDateRange(f"from ({first}) is after to ({last})")
    return periods.days(first, last, controls.zone)


NO_MONEY = ("", "", "", "")


def _money_of_purchases(conn: Connection, user_id: int, sessions: list[str]) -> dict[str, tuple[str, ...]]:
    """What each purchase of a page paid, with its tax and discount, by its Checkout Session (a purchase entry's
    reference), in the currency's units as Stripe counts them (``25.50``): for an expense claim. One query a page.
    A purchase whose order never recorded what was paid (before 0004) has only its currency."""
    if not sessions:
        return {}
    o = orders.c
    found = conn.execute(select(o.session_id, o.amount_paid, o.amount_tax, o.amount_discount, o.currency)
                         .where(o.user_id == user_id, o.session_id.in_(sessions))).all()
    return {session: (_units(paid, currency), _units(tax, currency) if paid is not None else "",
                      _units(discount, currency) if paid is not None else "", currency.upper())
            for session, paid, tax, discount, currency in found}


def _units(amount: int | None, currency: str) -> str:
    return "" if amount is None else f"{currencies.value(amount, currency)}"


def csv_chunks(db: Database, user_id: int, controls: Controls, window: Window) -> Iterator[bytes]:
    """The CSV file, UTF-8 with a byte order mark, in chunks of rows read page by page (oldest first)."""
    tz = controls.zone
    buffer = io.StringIO()
    writer = csv.writer(buffer)  # RFC 4180: quoted where needed, CRLF line ends
    buffer.write("\ufeff")
    writer.writerow(CSV_COLUMNS)
    e = ledger_entries.c
    lo, hi = iso_utc(window.start), iso_utc(window.end)
    after: tuple[str, int] | None = None
    while True:
        # Keyset paging with one lower bound, where the last page ended: the index is entered there, so each
        # page costs its own rows. (With the window's start as a second bound SQLite enters the index at the
        # start of the window, and the export grows with the square of its rows.)
        start = lo if after is None else max(lo, after[0])
        query = select(e.id, e.created_at, e.type, e.amount, e.balance_after, e.description, e.feature, e.reference) \
            .where(e.user_id == user_id, e.created_at >= start, e.created_at < hi)
        if after is not None:
            query = query.where(or_(e.created_at > after[0], and_(e.created_at == after[0], e.id > after[1])))
        with db.read() as conn:
            rows = conn.execute(query.order_by(e.created_at, e.id).limit(CSV_PAGE)).all()
            money = _money_of_purchases(conn, user_id, [r.reference for r in rows if r.type == "purchase"])
            kinds = _kinds_of_entries(conn, [r.id for r in rows])
        # The rows unpacked as tuples, the local time by isoformat (three times strftime's speed) and the cells
        # checked inline: this loop is the export's cost per row (bench/export.py).
        for entry_id, created_at, entry_type, amount, balance_after, description, feature, reference in rows:
            local = datetime.fromisoformat(created_at).astimezone(tz).isoformat(" ", "seconds")[:19]
            paid = money.get(reference, NO_MONEY) if entry_type == "purchase" else NO_MONEY
            writer.writerow((entry_id, created_at, local, entry_type, amount, balance_after,
                             _text_cell(description), _text_cell(feature), _text_cell(reference), *paid,
                             *kinds.get(entry_id, (amount, 0))))
        yield buffer.getvalue().encode("utf-8")
        buffer.seek(0)
        buffer.truncate()
        if len(rows) < CSV_PAGE:
            return
        after = (rows[-1].created_at, rows[-1].id)

