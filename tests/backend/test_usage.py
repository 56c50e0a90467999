"""The usage dashboard and the CSV export against the ledger they summarise."""

from __future__ import annotations

import csv
import io
import random
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from backend import ledger, periods, spend_controls, usage
from backend.db import Database, iso_utc, sqlite_url
from backend.errors import InvalidDateRange
from backend.schema import orders
from tests.conftest import Databases
from tests.helpers.payments import database, new_order, session_event
from tests.helpers.sqlite_template import migrated_copy

USER = 11
ZONE = "America/New_York"  # falls back on 1 November 2026
NOW = datetime(2027, 1, 8, 17, 0, tzinfo=UTC)


def post(db: Database, entry_type: str, amount: int, reference: str, at: datetime, description: str = "",
         feature: str | None = None, user: int = USER) -> None:
    with db.transaction() as conn:
        ledger.post(conn, user_id=user, type=entry_type, amount=amount, reference=reference,  # type: ignore[arg-type]
                    description=description, feature=feature, created_at=iso_utc(at))


def controls(db: Database, zone: str = ZONE) -> spend_controls.Controls:
    with db.transaction() as conn:
        return spend_controls.update_controls(conn, USER, {"timeZone": zone})


Entry = tuple[datetime, str, int, str, str | None]


@pytest.fixture(scope="session")
def history_made(
    db_engine: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, tuple[Entry, ...]]]:
    """The history posted once per test process and engine (through the ledger, as spends and purchases are): the
    database's URL, which each test's ``db`` is a copy of (``db_template``), and the entries. Posting them took
    2 s a test on PostgreSQL."""
    made = Databases(db_engine, request)
    url = made.new() or sqlite_url(migrated_copy(tmp_path_factory.mktemp("history") / "history.sqlite3"))
    source = Database(url)
    try:
        entries = tuple(post_history(source))
    finally:
        source.close()
    yield url, entries
    made.drop_all()


@pytest.fixture
def db_template(request: pytest.FixtureRequest) -> str | None:
    """A test that asks for ``history`` starts from a copy of it."""
    if "history" not in request.fixturenames:
        return None
    return str(request.getfixturevalue("history_made")[0])


@pytest.fixture
def history(history_made: tuple[str, tuple[Entry, ...]], db: Database) -> tuple[Entry, ...]:
    """About 700 entries of every kind over 100 days, at random times (the same every run), in ``db``."""
    return history_made[1]


def post_history(db: Database) -> list[Entry]:
    rng = random.Random(20261126)
    start = datetime(2026, 10, 1, tzinfo=UTC)
    moments = sorted(start + timedelta(seconds=rng.randrange(100 * 86400)) for _ in range(700))
    made: list[Entry] = []
    balance = 0
    with db.transaction() as conn:  # one transaction: the test is about reading them
        for n, moment in enumerate(moments):
            roll = rng.random()
            if roll < 0.1 or balance < 50:
                entry = ("purchase", rng.choice([100, 550, 1200]), "", None)
            elif roll < 0.13:
                entry = ("refund", -rng.randrange(1, 300), "Refund", None)
            elif roll < 0.16:
                entry = ("adjustment", rng.choice([-17, 25, 3]), "Goodwill", None)
            else:
                feature = rng.choice([None, None, "export", "ocr"])
                description = rng.choice(["Résumé", "Report", "=SUM(A1)"])
                entry = ("spend", -rng.randrange(1, min(balance, 60) + 1), description, feature)
            kind, amount, description, feature = entry
            ledger.post(conn, user_id=USER, type=kind, amount=amount, reference=f"ref-{n}",  # type: ignore[arg-type]
                        description=description, feature=feature, created_at=iso_utc(moment))
            balance += amount
            made.append((moment, kind, amount, description, feature))
    return made


def expected(entries: list[tuple[datetime, str, int, str, str | None]], period: periods.Period, first: date,
             last: date, zone: str = ZONE) -> dict[date, usage.Sums]:
    """What the dashboard should say, counted the slow way: each entry's local date, one by one."""
    tz = periods.zone(zone)
    found: dict[date, usage.Sums] = defaultdict(usage.Sums)
    for moment, kind, amount, _, _ in entries:
        day = moment.astimezone(tz).date()
        if first <= day <= last:
            found[max(periods.start_of(period, day), first)].add(kind, amount)
    return found


# Zones whose midnights fall on whole hours, on quarters (+05:45) and on half hours with a half-hour clock change:
# the dashboard sums quarter hours (backend/rollups.py), which every one of them is made of.
ZONES = [ZONE, "Asia/Kathmandu", "Australia/Lord_Howe"]


@pytest.mark.parametrize("zone", ZONES)
@pytest.mark.parametrize(("period", "first", "last"), [
    ("day", date(2026, 10, 20), date(2026, 11, 10)),  # across the clock change
    ("week", date(2026, 10, 7), date(2027, 1, 8)),  # starts on a Wednesday
    ("month", date(2026, 9, 1), date(2027, 1, 31)),
])
def test_the_dashboard_adds_up_to_the_ledger(db: Database, history: list, period: periods.Period, first: date,
                                             last: date, zone: str) -> None:
    settings = controls(db, zone)
    board = usage.dashboard(db, USER, settings, period, first, last, now=NOW)
    want = expected(history, period, first, last, zone)
    assert board["timeZone"] == zone and board["from"] == first.isoformat() and board["to"] == last.isoformat()
    got = {date.fromisoformat(b["start"]): b for b in board["buckets"]}
    assert list(got) == [w.first for w in periods.buckets(period, first, last, periods.zone(zone))]
    for start, bucket in got.items():
        assert {k: v for k, v in bucket.items() if k != "start"} == want[start].as_json(), start
    totals = board["totals"]
    assert totals["spent"] == sum(b["spent"] for b in board["buckets"]) > 0
    # The columns add up to the change of the balance over the range.
    tz = periods.zone(zone)
    before = [e for e in history if e[0].astimezone(tz).date() < first]
    upto = [e for e in history if e[0].astimezone(tz).date() <= last]
    assert totals["openingBalance"] == sum(e[2] for e in before)
    assert totals["closingBalance"] == sum(e[2] for e in upto)
    assert totals["closingBalance"] == (totals["openingBalance"] + totals["purchased"] - totals["spent"]
                                        - totals["clawedBack"] + totals["adjusted"])


@pytest.mark.parametrize("zone", ZONES)
@pytest.mark.parametrize(("first", "last"), [
    (date(2026, 9, 1), date(2027, 1, 31)),  # every entry
    (date(2026, 10, 14), date(2026, 11, 2)),  # whole UTC days from the daily sums, the hours at the ends not
    (date(2026, 10, 31), date(2026, 10, 31)),  # one local day: less than a whole UTC day, all from the ledger
])
def test_spending_by_feature_or_description(db: Database, history: list, zone: str, first: date, last: date) -> None:
    board = usage.dashboard(db, USER, controls(db, zone), "day", first, last, now=NOW)
    tz = periods.zone(zone)
    by_label: dict[str, int] = defaultdict(int)
    for moment, kind, amount, description, feature in history:
        if kind == "spend" and first <= moment.astimezone(tz).date() <= last:
            by_label[feature or description] -= amount
    assert board["byDescription"] == sorted(
        ({"description": label, "spent": spent} for label, spent in by_label.items()),
        key=lambda row: (-row["spent"], row["description"]))
    assert sum(row["spent"] for row in board["byDescription"]) == board["totals"]["spent"]


def test_a_zone_whose_midnight_is_not_on_a_quarter_hour_is_summed_from_the_ledger(db: Database) -> None:
    """Liberia was 44 min 30 s behind UTC until May 1972: its midnights fall on no quarter hour."""
    start = datetime(1971, 3, 1, 12, tzinfo=UTC)
    post(db, "purchase", 1000, "cs_old", start)
    for n in range(40):
        post(db, "spend", -(n % 7 + 1), f"k{n}", start + timedelta(hours=n * 7 + 0.3), description=f"d{n % 3}")
    # Ten seconds into 10 March there, in the quarter hour that began on the 9th: a quarter's sum would misplace it.
    post(db, "spend", -5, "k-edge", datetime(1971, 3, 10, 0, 44, 40, tzinfo=UTC))
    first, last = date(1971, 3, 1), date(1971, 3, 31)
    board = usage.dashboard(db, USER, controls(db, "Africa/Monrovia"), "day", first, last, now=NOW)
    tz = periods.zone("Africa/Monrovia")
    want: dict[date, int] = defaultdict(int)
    with db.read() as conn:
        entries = ledger.history(conn, USER, limit=100)[0]
    for entry in entries:
        if entry.type == "spend":
            want[datetime.fromisoformat(entry.created_at).astimezone(tz).date()] -= entry.amount
    assert {b["start"]: b["spent"] for b in board["buckets"] if b["spent"]} == {
        d.isoformat(): v for d, v in sorted(want.items())}
    assert want[date(1971, 3, 10)] >= 5 and board["totals"]["spent"] == sum(n % 7 + 1 for n in range(40)) + 5


def test_many_descriptions_end_in_one_row_for_the_rest(db: Database) -> None:
    post(db, "purchase", 10_000, "cs_1", NOW - timedelta(days=2))
    for n in range(15):
        post(db, "spend", -(n + 1), f"k{n}", NOW - timedelta(hours=n + 1), description=f"feature {n:02}")
    board = usage.dashboard(db, USER, controls(db), "day", None, None, now=NOW)
    rows = board["byDescription"]
    assert len(rows) == usage.BY_DESCRIPTION_ROWS and rows[0] == {"description": "feature 14", "spent": 15}
    assert rows[-1] == {"description": "Everything else", "spent": sum(range(1, 7)), "rest": True}
    assert sum(r["spent"] for r in rows) == sum(range(1, 16)) == board["totals"]["spent"]


def test_default_ranges_end_today_in_the_users_time_zone(db: Database) -> None:
    settings = controls(db, "Pacific/Auckland")  # already 9 January there
    day = usage.dashboard(db, USER, settings, "day", None, None, now=NOW)
    assert (day["from"], day["to"], len(day["buckets"])) == ("2026-12-11", "2027-01-09", 30)
    week = usage.dashboard(db, USER, settings, "week", None, None, now=NOW)
    assert (week["from"], len(week["buckets"])) == ("2026-10-19", 12)
    month = usage.dashboard(db, USER, settings, "month", None, None, now=NOW)
    assert (month["from"], month["buckets"][-1]["start"], len(month["buckets"])) == ("2026-02-01", "2027-01-01", 12)


@pytest.mark.parametrize(("period", "first", "last", "reason"), [
    ("day", date(2026, 12, 2), date(2026, 12, 1), "from (2026-12-02) is after to (2026-12-01)"),
    ("day", date(2025, 1, 1), date(2026, 12, 1), "more than 400 days"),
    ("month", date(1969, 12, 1), date(2026, 12, 1), "dates must be between"),
])
def test_ranges_that_cannot_be_shown_are_refused(db: Database, period: periods.Period, first: date, last: date,
                                                 reason: str) -> None:
    with pytest.raises(InvalidDateRange) as info:
        usage.dashboard(db, USER, controls(db), period, first, last, now=NOW)
    assert reason in info.value.reason


def spend_on_days(db: Database, amounts: dict[int, int], balance: int = 1000) -> None:
    """A purchase 40 days ago, then ``amounts[n]`` spent ``n`` days before NOW."""
    post(db, "purchase", balance, "cs_1", NOW - timedelta(days=40))
    for days_ago, amount in sorted(amounts.items(), reverse=True):
        post(db, "spend", -amount, f"k{days_ago}", NOW - timedelta(days=days_ago))


def forecast(db: Database) -> dict[str, object]:
    return usage.dashboard(db, USER, controls(db, "UTC"), "day", None, None, now=NOW)["forecast"]


def test_forecast_from_the_seven_and_thirty_day_averages(db: Database) -> None:
    spend_on_days(db, {0: 10, 1: 25, 3: 35, 20: 130})  # 70 in 7 days, 200 in 30; 800 left
    assert forecast(db) == {"dailyAverage7": 10.0, "dailyAverage30": 6.67, "daysLeft": 80, "daysLeft30": 120,
                            "activeDays": 4, "balance": 800}


def test_no_forecast_below_three_active_days(db: Database) -> None:
    spend_on_days(db, {0: 300, 1: 300})
    assert forecast(db)["daysLeft"] is None and forecast(db)["daysLeft30"] is None


def test_a_new_user_is_averaged_over_the_days_they_have(db: Database) -> None:
    post(db, "purchase", 100, "cs_1", NOW - timedelta(days=2))  # the account is three days old (today included)
    for days_ago in (0, 1, 2):
        post(db, "spend", -10, f"k{days_ago}", NOW - timedelta(days=days_ago, minutes=1))
    assert forecast(db) == {"dailyAverage7": 10.0, "dailyAverage30": 10.0, "daysLeft": 7, "daysLeft30": 7,
                            "activeDays": 3, "balance": 70}


def test_never_a_negative_or_infinite_forecast(db: Database) -> None:
    spend_on_days(db, {12: 5, 13: 5, 14: 5})  # nothing in the last 7 days
    outlook = forecast(db)
    assert outlook["dailyAverage7"] == 0.0 and outlook["daysLeft"] is None and outlook["daysLeft30"] == 1970
    post(db, "spend", -900, "k-big", NOW - timedelta(hours=1))
    post(db, "refund", -500, "pi_1:1", NOW)  # the balance is now below zero
    assert forecast(db)["daysLeft"] == 0 and forecast(db)["daysLeft30"] == 0


def read_csv(db: Database, first: date, last: date) -> tuple[bytes, list[dict[str, str]]]:
    settings = controls(db)
    raw = b"".join(usage.csv_chunks(db, USER, settings, usage.csv_range(settings, first, last, now=NOW)))
    return raw, list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"), newline="")))


def test_the_csv_has_every_entry_of_the_range_and_its_totals_match_the_dashboard(
    db: Database, history: list, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(usage, "CSV_PAGE", 37)  # several pages, and a page boundary inside the range
    first, last = date(2026, 10, 20), date(2026, 12, 31)
    raw, rows = read_csv(db, first, last)
    header = b"id,createdAt,localTime,type,amount,balanceAfter,description,feature,reference,paid,tax,discount," \
             b"currency,paidCredits,promotionalCredits\r\n"
    assert raw.startswith(b"\xef\xbb\xbf" + header)  # UTF-8 with a byte order mark, then the header
    tz = periods.zone(ZONE)
    inside = [e for e in history if first <= e[0].astimezone(tz).date() <= last]
    assert len(rows) == len(inside) and [r["reference"] for r in rows] == sorted(
        (r["reference"] for r in rows), key=lambda ref: int(ref.split("-")[1]))
    board = usage.dashboard(db, USER, controls(db), "week", first, last, now=NOW)
    sums = usage.Sums()
    for row in rows:
        sums.add(row["type"], int(row["amount"]))
    assert sums.as_json() == {k: board["totals"][k] for k in ("spent", "purchased", "clawedBack", "adjusted")}
    assert int(rows[-1]["balanceAfter"]) == board["totals"]["closingBalance"]
    # Paid and promotional apart (extension): each row's two add up to its amount, the spends' to what was spent.
    assert all(int(r["paidCredits"]) + int(r["promotionalCredits"]) == int(r["amount"]) for r in rows)
    assert board["totals"]["spentPaid"] + board["totals"]["spentPromotional"] == board["totals"]["spent"]
    assert board["totals"]["spentPaid"] == -sum(int(r["paidCredits"]) for r in rows if r["type"] == "spend")
    assert int(rows[0]["balanceAfter"]) - int(rows[0]["amount"]) == board["totals"]["openingBalance"]
    # Local time in the user's zone; text a spreadsheet would run as a formula is made inert.
    first_row = rows[0]
    moment = datetime.fromisoformat(first_row["createdAt"].replace("Z", "+00:00"))
    assert first_row["localTime"] == moment.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S")
    descriptions = {r["description"] for r in rows if r["type"] == "spend"}
    assert descriptions == {"Résumé", "Report", "'=SUM(A1)"}


def test_the_whole_history_in_csv_adds_up_to_the_balance(db: Database, history: list) -> None:
    _, rows = read_csv(db, date(2026, 9, 1), date(2027, 12, 31))
    with db.read() as conn:
        assert sum(int(r["amount"]) for r in rows) == ledger.balance(conn, USER) == int(rows[-1]["balanceAfter"])


def test_each_purchase_says_what_it_paid_with_its_tax_and_discount_for_an_expense_claim(db: Database) -> None:
    """In the currency's units as Stripe counts them: 1000 cents less a 137 discount plus 83 tax is 9.46 USD paid;
    503 JPY is 503 yen. Other entries leave the money cells empty."""
    dollars = new_order(db, credits=333, amount=1000)
    paid = session_event(dollars)
    paid["data"]["object"].update(amount_total=946, total_details={"amount_discount": 137, "amount_shipping": 0,
                                                                    "amount_tax": 83})
    assert dollars.apply(paid) == "granted"
    yen = new_order(db, credits=7, amount=503, currency="jpy")
    with db.transaction() as conn:  # the yen buyer is the dollar buyer, for one export
        conn.execute(update(orders).where(orders.c.id == yen.order_id).values(user_id=dollars.user_id))
    yen.user_id = dollars.user_id
    assert yen.apply(session_event(yen)) == "granted"
    with db.transaction() as conn:
        ledger.spend(conn, user_id=dollars.user_id, amount=13, idempotency_key="k", description="Report",
                     fingerprint="f")
        settings = spend_controls.load(conn, dollars.user_id)
    today = datetime.now(UTC).date()
    raw = b"".join(usage.csv_chunks(db, dollars.user_id, settings,
                                    usage.csv_range(settings, today - timedelta(days=1), today + timedelta(days=1))))
    rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"), newline="")))
    money = [(r["type"], r["amount"], r["paid"], r["tax"], r["discount"], r["currency"]) for r in rows]
    assert money == [("purchase", "333", "9.46", "0.83", "1.37", "USD"), ("purchase", "7", "503", "0", "0", "JPY"),
                     ("spend", "-13", "", "", "", "")]


def test_an_empty_range_is_a_header_only(db: Database) -> None:
    raw, rows = read_csv(db, date(2026, 1, 1), date(2026, 1, 31))
    assert rows == [] and raw.count(b"\r\n") == 1


def _export_steps(tmp_path: Path, entries: int, monkeypatch: pytest.MonkeyPatch) -> tuple[int, list[str]]:
    """SQLite's virtual machine steps (in thousands) to export ``entries`` entries, three to each instant, in
    pages of 7, and the references exported."""
    db = database(tmp_path / f"export-{entries}.sqlite3")
    start = datetime(2026, 11, 2, tzinfo=UTC)
    with db.transaction() as conn:
        for n in range(entries):  # ids do not follow time: the keyset's tie-break on id is what orders a tie
            ledger.post(conn, user_id=USER, type="purchase", amount=1, reference=f"r-{n}",
                        created_at=iso_utc(start + timedelta(seconds=(entries - n) // 3)))
    monkeypatch.setattr(usage, "CSV_PAGE", 7)
    settings = controls(db, "Asia/Kathmandu")  # UTC+05:45
    steps = [0]

    def count() -> int:
        steps[0] += 1
        return 0

    with db.read() as conn:
        driver = conn.connection.driver_connection
    driver.set_progress_handler(count, 1000)  # type: ignore[union-attr]
    raw = b"".join(usage.csv_chunks(db, USER, settings, usage.csv_range(settings, date(2026, 11, 1),
                                                                         date(2026, 11, 30), now=NOW)))
    driver.set_progress_handler(None, 1000)  # type: ignore[union-attr]
    rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"), newline="")))
    db.close()
    local = datetime.fromisoformat(rows[0]["createdAt"]).astimezone(periods.zone("Asia/Kathmandu"))
    assert rows[0]["localTime"] == local.strftime("%Y-%m-%d %H:%M:%S")
    return steps[0], [r["reference"] for r in rows]


def test_the_csv_export_grows_with_its_rows_not_their_square(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each page enters the index where the last one ended (keyset paging with one lower bound): ten times the
    rows is about ten times SQLite's work. Entering it at the window's start made it a hundred."""
    small, small_refs = _export_steps(tmp_path, 150, monkeypatch)
    large, large_refs = _export_steps(tmp_path, 1500, monkeypatch)
    # Every entry once, oldest first, a tie (the same instant) in the order of id, across page boundaries.
    assert large_refs == [f"r-{n}" for n in sorted(range(1500), key=lambda n: ((1500 - n) // 3, n))]
    assert len(small_refs) == 150
    assert large < 15 * small, (small, large)
