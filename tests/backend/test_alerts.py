"""Alerts made in the transaction of their cause, exactly once per crossing."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from backend import alerts, ledger, periods, spend_controls, spending
from backend.db import Database, iso_utc
from backend.errors import InsufficientCredits, SpendCapReached
from backend.order_status import (
    AFTER_PAYMENT,
    CANCELLED,
    CHARGED_BACK,
    DISPUTED,
    EXPIRED,
    FAILED,
    PAID,
    PENDING,
    REFUNDED,
    TRANSITIONS,
)
from backend.orders import Order
from tests.helpers.concurrency import all_at_once

USER = 3


def post(db: Database, amount: int, reference: str, type: str = "adjustment", user: int = USER) -> None:
    with db.transaction() as conn:
        ledger.post(conn, user_id=user, type=type, amount=amount, reference=reference)  # type: ignore[arg-type]


def spend(db: Database, amount: int, key: str, user: int = USER) -> None:
    spending.spend(db, user, spending.SpendRequest(amount, key), now=datetime(2026, 11, 26, 12, tzinfo=UTC))


def thresholds(db: Database, *levels: int, user: int = USER) -> None:
    with db.transaction() as conn:
        spend_controls.update_controls(conn, user, {"lowBalanceAlerts": list(levels)})


def found(db: Database, user: int = USER) -> list[alerts.Alert]:
    with db.read() as conn:
        return list(reversed(alerts.page(conn, user, unread_only=False, limit=200)[0]))


def low(db: Database) -> list[tuple[int, int]]:
    return [(a.data["threshold"], a.data["balance"]) for a in found(db) if a.kind == "low_balance"]


def test_a_threshold_fires_when_crossed_and_rearms_only_once_risen_above(db: Database) -> None:
    post(db, 150, "start")
    thresholds(db, 100)
    spend(db, 40, "a")  # 110
    assert low(db) == []
    spend(db, 11, "b")  # 99: below
    assert low(db) == [(100, 99)]
    post(db, 1, "c")  # 100: at the threshold, not above it
    spend(db, 1, "d")  # 99 again: hovering, no new alert
    post(db, 1, "e")
    spend(db, 1, "f")
    assert low(db) == [(100, 99)]
    post(db, 2, "g")  # 101: above, re-armed
    spend(db, 2, "h")  # 99: a new crossing
    assert low(db) == [(100, 99), (100, 99)]


def test_one_entry_that_crosses_several_thresholds_makes_one_alert(db: Database) -> None:
    post(db, 500, "start")
    thresholds(db, 300, 100, 50)
    spend(db, 460, "big")  # 40
    (alert,) = found(db)
    assert alert.kind == "low_balance" and alert.data["thresholds"] == [300, 100, 50] and alert.data["threshold"] == 50
    assert alert.message == "Your balance is 40 credits, below your alert level of 50 credits."


def test_a_new_threshold_the_balance_is_already_below_waits_for_the_next_crossing(db: Database) -> None:
    post(db, 30, "start")
    thresholds(db, 100)
    spend(db, 1, "a")
    assert low(db) == []
    post(db, 100, "top-up")  # 129
    spend(db, 30, "b")  # 99
    assert low(db) == [(100, 99)]


def test_concurrent_spends_that_cross_together_make_one_alert(db: Database) -> None:
    post(db, 300, "start")
    thresholds(db, 150)
    assert all_at_once(30, lambda n: spend(db, 10, f"k{n}")) == [None] * 30
    assert low(db) == [(150, 140)]


def test_clawbacks_make_an_alert_and_take_the_balance_below_thresholds(db: Database) -> None:
    post(db, 1200, "cs_1", type="purchase")
    thresholds(db, 1000)
    post(db, -320, "pi_1:1337", type="refund")
    clawback, below = sorted(found(db), key=lambda a: a.kind)
    assert clawback.kind == "clawback" and clawback.data["amount"] == -320 and clawback.data["balance"] == 880
    assert "320 credits were taken back because of a refund" in clawback.message
    assert below.kind == "low_balance" and below.data["balance"] == 880


@pytest.mark.parametrize(("entry_type", "amount", "kind", "words"), [
    ("refund", -320, "clawback", "320 credits were taken back because of a refund: "),
    ("dispute", -1200, "clawback", "1,200 credits were taken back because of a dispute: "),
    ("refund_reversal", 320, "clawback_reversed", "320 credits were given back: "),
    ("dispute_reversal", 1200, "clawback_reversed", "1,200 credits were given back: "),
])
def test_each_clawback_and_reversal_makes_one_alert(db: Database, entry_type: str, amount: int, kind: str,
                                                    words: str) -> None:
    post(db, 1200, "cs_1", type="purchase")
    post(db, amount, "re_1", type=entry_type)
    post(db, amount, "re_1", type=entry_type)  # the same reference again: no entry, no alert
    (alert,) = found(db)
    assert alert.kind == kind and alert.message.startswith(words)
    assert alert.data["amount"] == amount and alert.data["balance"] == 1200 + amount


def test_a_rolled_back_change_leaves_no_alert(db: Database) -> None:
    post(db, 100, "start")
    thresholds(db, 50)
    with pytest.raises(RuntimeError), db.transaction() as conn:
        ledger.post(conn, user_id=USER, type="adjustment", amount=-90, reference="oops")
        raise RuntimeError("the request failed after the entry")
    with pytest.raises(InsufficientCredits):
        spend(db, 101, "too-much")
    assert found(db) == []


def test_cap_alerts_at_eighty_and_one_hundred_percent_once_per_period(db: Database) -> None:
    post(db, 1000, "start")
    with db.transaction() as conn:
        spend_controls.update_controls(conn, USER, {"caps.month": 333})
    spend(db, 200, "a")
    assert found(db) == []
    spend(db, 67, "b")  # 267 of 333: 80.18 %
    spend(db, 1, "c")
    spend(db, 64, "d")  # 332
    assert [(a.kind, a.data["used"]) for a in found(db)] == [("cap_80", 267)]
    with pytest.raises(SpendCapReached):
        spend(db, 2, "e")  # refused: the cap is reached for the user
    spend(db, 1, "f")  # exactly 333
    with pytest.raises(SpendCapReached):
        spend(db, 1, "g")
    assert [(a.kind, a.data["used"], a.data["cap"]) for a in found(db)] == [("cap_80", 267, 333),
                                                                            ("cap_100", 332, 333)]
    assert found(db)[0].message == "You have spent 80 % of your monthly cap: 267 of 333 credits."
    # Raising the cap starts a new count against the new figure.
    with db.transaction() as conn:
        spend_controls.update_controls(conn, USER, {"caps.month": 500})
    spend(db, 100, "h")  # 433 of 500: 86 %
    assert [a.kind for a in found(db)] == ["cap_80", "cap_100", "cap_80"]


def test_the_inbox_pages_marks_read_and_keeps_users_apart(db: Database) -> None:
    with db.transaction() as conn:
        for _ in range(5):
            alerts.send_test(conn, USER)
        other = alerts.send_test(conn, USER + 1)
        first, cursor = alerts.page(conn, USER, unread_only=True, limit=3)
        rest, end = alerts.page(conn, USER, unread_only=True, limit=3, before=cursor)
        assert len(first) == 3 and len(rest) == 2 and end is None
        assert [a.id for a in first + rest] == sorted((a.id for a in first + rest), reverse=True)
        assert alerts.mark_read(conn, USER, [first[0].id, other.id]) == 4
        assert alerts.unread_count(conn, USER + 1) == 1  # someone else's id changed nothing
        still = alerts.page(conn, USER, unread_only=True, limit=10)[0]
        assert [a.id for a in still] == [a.id for a in first[1:] + rest]
        assert alerts.mark_read(conn, USER, None) == 0
        read = alerts.page(conn, USER, unread_only=False, limit=10)[0]
        assert all(a.read_at for a in read) and len(read) == 5


@pytest.mark.parametrize(("made", "limit", "pages"), [
    (3, 3, [3]),  # exactly a page: no cursor to an empty page
    (4, 3, [3, 1]),
    (7, 3, [3, 3, 1]),
])
def test_the_inbox_pages_end_where_the_alerts_do(db: Database, made: int, limit: int, pages: list[int]) -> None:
    with db.transaction() as conn:
        ids = [alerts.send_test(conn, USER).id for _ in range(made)]
        seen: list[int] = []
        sizes = []
        before = None
        while True:
            page, before = alerts.page(conn, USER, unread_only=False, limit=limit, before=before)
            sizes.append(len(page))
            seen += [a.id for a in page]
            if before is None:
                break
    assert sizes == pages and seen == ids[::-1]


OTHER = 4


def test_one_users_thresholds_are_theirs_alone(db: Database) -> None:
    """Setting, crossing, re-arming or removing one user's threshold leaves another's with the same level as it is."""
    for user in (USER, OTHER):
        post(db, 150, f"start-{user}", user=user)
        thresholds(db, 100, 50, user=user)
    spend(db, 51, "a", user=USER)  # 99: USER's 100 fires and is disarmed; OTHER's stays armed
    assert low(db) == [(100, 99)]
    spend(db, 53, "b", user=OTHER)  # 97: OTHER's own crossing
    assert [(a.data["threshold"], a.data["balance"]) for a in found(db, OTHER) if a.kind == "low_balance"] == [
        (100, 97)]
    post(db, 5, "c", user=USER)  # 104: USER's re-armed, OTHER's not
    spend(db, 1, "d", user=OTHER)  # 96: no new crossing for OTHER
    thresholds(db, 50, user=USER)  # USER removes 100
    with db.read() as conn:
        assert spend_controls.load(conn, OTHER).low_balance_alerts == (100, 50)
        assert spend_controls.load(conn, USER).low_balance_alerts == (50,)
    post(db, 10, "e", user=OTHER)  # 106: OTHER's 100 re-armed
    spend(db, 7, "f", user=OTHER)  # 99: fires again for OTHER, whose threshold USER's removal left alone
    assert [a.data["balance"] for a in found(db, OTHER) if a.kind == "low_balance"] == [97, 99]
    assert low(db) == [(100, 99)]


# -- each alert's words and data, as the inbox shows them ------------------------------------------------------
# Odd figures throughout (a cap of 97, 1,013 credits), so that a rule computed the wrong way cannot land on the
# right number by chance.

TIME = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$"


def test_an_alert_as_the_inbox_shows_it_and_read_once_marked(db: Database) -> None:
    post(db, 97, "start", type="purchase")
    post(db, -41, "re_1", type="refund")  # an older alert of the user's
    with db.transaction() as conn:
        made = alerts.send_test(conn, USER)  # answers the alert it made, not an older one
        shown = made.as_json()
        assert list(shown) == ["id", "kind", "createdAt", "readAt", "message", "data"]
        assert shown == {"id": made.id, "kind": "test", "createdAt": shown["createdAt"], "readAt": None,
                         "message": "This is a test notification from Creditdesk. Alerts reach you like this.",
                         "data": {}}
        assert re.match(TIME, str(shown["createdAt"]))
        alerts.mark_read(conn, USER, [made.id])
        read, older = alerts.page(conn, USER, unread_only=False, limit=10)[0]
    assert older.kind == "clawback" and older.read_at is None
    assert read.as_json() == {**shown, "readAt": read.read_at}
    assert re.match(TIME, str(read.read_at)) and str(read.read_at) >= str(shown["createdAt"])


@pytest.mark.parametrize(("entry_type", "amount", "description", "kind", "message"), [
    ("refund", -1013, "Refund of order 41", "clawback",
     "1,013 credits were taken back because of a refund: Refund of order 41. Your balance is now 1,000 credits."),
    ("dispute", -41, "", "clawback",
     "41 credits were taken back because of a dispute: re_97. Your balance is now 1,972 credits."),
    ("dispute", -1, "", "clawback",  # one credit: "was"
     "1 credit was taken back because of a dispute: re_97. Your balance is now 2,012 credits."),
    ("refund_reversal", 97, "", "clawback_reversed",
     "97 credits were given back: re_97. Your balance is now 2,110 credits."),
    ("refund_reversal", 1, "Refund 41 failed", "clawback_reversed",
     "1 credit was given back: Refund 41 failed. Your balance is now 2,014 credits."),
    ("dispute_reversal", 41, "Dispute 41 won", "clawback_reversed",
     "41 credits were given back: Dispute 41 won. Your balance is now 2,054 credits."),
], ids=lambda v: str(v)[:20])
def test_a_clawback_alert_says_how_much_why_and_the_balance_after(
    db: Database, entry_type: str, amount: int, description: str, kind: str, message: str,
) -> None:
    post(db, 2013, "cs_1", type="purchase")
    with db.transaction() as conn:
        entry = ledger.post(conn, user_id=USER, type=entry_type,  # type: ignore[arg-type]
                            amount=amount, reference="re_97", description=description)
    assert entry is not None
    (alert,) = found(db)
    assert (alert.kind, alert.message) == (kind, message)
    assert alert.data == {"transactionId": entry.id, "type": entry_type, "amount": amount,
                          "balance": 2013 + amount, "reference": "re_97"}


@pytest.mark.parametrize(("start", "spends", "made"), [
    # Landing exactly on the threshold is not below it; one credit more is.
    (50, [9], []),
    (50, [9, 1], [(41, [41], 40)]),
    # Several thresholds crossed by one entry: one alert naming the lowest, and every one crossed.
    (200, [160], [(41, [97, 41], 40)]),
    # Crossed one at a time: an alert each; the one above is disarmed already and not named again.
    (200, [104, 56], [(97, [97], 96), (41, [41], 40)]),
], ids=lambda v: str(v))
def test_low_balance_alerts_name_the_thresholds_crossed(
    db: Database, start: int, spends: list[int], made: list[tuple[int, list[int], int]],
) -> None:
    post(db, start, "start")
    thresholds(db, 97, 41)
    for n, amount in enumerate(spends):
        spend(db, amount, f"k{n}")
    low_alerts = [a for a in found(db) if a.kind == "low_balance"]
    assert [(a.data["threshold"], a.data["thresholds"], a.data["balance"]) for a in low_alerts] == made
    with db.read() as conn:
        spends_made = [e for e in ledger.history(conn, USER, limit=10)[0] if e.type == "spend"]
    # Each alert names the entry that crossed, and says so in words.
    for alert in low_alerts:
        (entry,) = [e for e in spends_made if e.balance_after == alert.data["balance"]]
        assert alert.data["transactionId"] == entry.id
        assert alert.message == (f"Your balance is {alert.data['balance']} credits, below your alert level of "
                                 f"{alert.data['threshold']} credits.")


def test_rising_above_a_lower_threshold_rearms_only_that_one(db: Database) -> None:
    post(db, 200, "start")
    thresholds(db, 97, 41)
    spend(db, 160, "a")  # 40: both crossed, one alert
    post(db, 10, "b")  # 50: above 41 again, still below 97
    spend(db, 1, "c")  # 49: below 97, which stays disarmed until the balance rises above it
    spend(db, 9, "d")  # 40: 41 crossed again
    assert [(a.data["threshold"], a.data["thresholds"], a.data["balance"]) for a in found(db)] == [
        (41, [97, 41], 40), (41, [41], 40)]


def test_a_new_threshold_at_the_balance_starts_armed(db: Database) -> None:
    post(db, 41, "start")
    thresholds(db, 41)  # the balance is at it, not below: the next step down is news
    spend(db, 1, "a")
    assert low(db) == [(41, 40)]


def test_a_threshold_of_one_credit_speaks_of_one_credit(db: Database) -> None:
    post(db, 3, "start")
    thresholds(db, 1)
    spend(db, 3, "all")
    (alert,) = found(db)
    assert alert.message == "Your balance is 0 credits, below your alert level of 1 credit."


PARIS = periods.zone("Europe/Paris")
# A Thursday in Paris: its week began on Monday 23 November (midnight there is 23:00 UTC the day before).
THURSDAY = datetime(2026, 11, 26, 12, tzinfo=UTC)
WEEK = periods.window("week", THURSDAY, PARIS)
NEXT_WEEK = periods.window("week", THURSDAY + timedelta(days=7), PARIS)
MONDAY = periods.window("day", datetime(2026, 11, 23, 12, tzinfo=UTC), PARIS)  # the week's first day, alone


def cap_usage(db: Database, period: str, cap: int, used: int, window: periods.Window) -> None:
    with db.transaction() as conn:
        alerts.on_cap_usage(conn, USER, period=period, cap=cap, used=used, window=window)


@pytest.mark.parametrize(("period", "cap", "used", "kind", "message"), [
    ("week", 97, 77, None, None),  # 79.4 %
    ("week", 97, 78, "cap_80", "You have spent 80 % of your weekly cap: 78 of 97 credits."),  # 80.4 %
    ("week", 97, 96, "cap_80", "You have spent 98 % of your weekly cap: 96 of 97 credits."),  # 98.97 %: not 99
    ("week", 97, 97, "cap_100",
     "You have reached your weekly cap: 97 of 97 credits spent. Further spends are refused until it resets."),
    ("month", 1015, 811, None, None),  # 79.9 %
    ("month", 1015, 812, "cap_80", "You have spent 80 % of your monthly cap: 812 of 1,015 credits."),  # exactly 80 %
    ("month", 1013, 1013, "cap_100",
     "You have reached your monthly cap: 1,013 of 1,013 credits spent. Further spends are refused until it resets."),
    ("day", 1, 1, "cap_100",
     "You have reached your daily cap: 1 of 1 credit spent. Further spends are refused until it resets."),
], ids=lambda v: str(v)[:12])
def test_a_cap_alerts_at_eighty_and_at_one_hundred_percent(
    db: Database, period: str, cap: int, used: int, kind: str | None, message: str | None,
) -> None:
    window = periods.window(period, THURSDAY, PARIS)  # type: ignore[arg-type]
    cap_usage(db, period, cap, used, window)
    made = found(db)
    assert [(a.kind, a.message) for a in made] == ([] if kind is None else [(kind, message)])
    for alert in made:
        assert alert.data == {"period": period, "cap": cap, "used": used, "resetsAt": iso_utc(window.end)}


def test_a_cap_alerts_once_per_kind_cap_value_period_and_window(db: Database) -> None:
    cap_usage(db, "week", 97, 78, WEEK)  # 80 %
    cap_usage(db, "week", 97, 90, WEEK)  # still 80 %: said already
    cap_usage(db, "week", 97, 97, WEEK)  # 100 %
    cap_usage(db, "week", 97, 97, WEEK)  # said already
    cap_usage(db, "week", 101, 97, WEEK)  # the cap raised: 96 % of a new cap
    cap_usage(db, "week", 97, 80, NEXT_WEEK)  # a new week
    cap_usage(db, "day", 97, 78, MONDAY)  # another period, though it starts on the same day
    assert [(a.kind, a.data["period"], a.data["cap"], a.data["used"], a.data["resetsAt"]) for a in found(db)] == [
        ("cap_80", "week", 97, 78, "2026-11-29T23:00:00.000Z"),
        ("cap_100", "week", 97, 97, "2026-11-29T23:00:00.000Z"),
        ("cap_80", "week", 101, 97, "2026-11-29T23:00:00.000Z"),
        ("cap_80", "week", 97, 80, "2026-12-06T23:00:00.000Z"),
        ("cap_80", "day", 97, 78, "2026-11-23T23:00:00.000Z"),
    ]


def test_a_refused_spend_says_the_cap_is_reached_once(db: Database) -> None:
    post(db, 1000, "start")
    with db.transaction() as conn:
        spend_controls.update_controls(conn, USER, {"caps.day": 97})
    spend(db, 41, "a")
    for key in ("b", "c"):
        with pytest.raises(SpendCapReached):
            spend(db, 57, key)  # 98 of 97
    (alert,) = found(db)
    assert alert.kind == "cap_100"
    assert alert.message == ("A spend was refused: it would have gone over your daily cap (41 of 97 credits spent, "
                             "56 credits left). Spends that fit in what is left still go through until it resets.")
    assert alert.data == {"period": "day", "cap": 97, "used": 41, "resetsAt": "2026-11-27T00:00:00.000Z"}


def test_a_spend_refused_by_a_cap_lowered_below_the_spending_says_it_is_reached(db: Database) -> None:
    post(db, 1000, "start")
    spend(db, 61, "a")
    with db.transaction() as conn:
        spend_controls.update_controls(conn, USER, {"caps.day": 53})
    with pytest.raises(SpendCapReached):
        spend(db, 1, "b")
    (alert,) = found(db)
    assert alert.kind == "cap_100"
    assert alert.message == ("You have reached your daily cap: 61 of 53 credits spent, and a spend was refused. "
                             "Further spends are refused until it resets.")


# -- purchases ----------------------------------------------------------------------------------------------

ORDER = Order(
    id="ord_41", user_id=USER, pack_id="odd", pack_name="Odd", credits=1013, amount=997, currency="eur",
    provider="stripe", session_id="cs_test_41", checkout_url="https://checkout.stripe.com/c/pay/x", return_url=None,
    state=None, status=PENDING, payment_intent=None, amount_refunded=0, credits_clawed_back=0,
    created_at="2026-11-26T12:00:00.000Z", updated_at="2026-11-26T12:00:00.000Z",
)
CONFIRMED = "Your purchase of the Odd pack went through: 1,013 credits added."
FAILED_ = "Your payment for the Odd pack failed; nothing was charged and no credits were added."
EXPIRED_ = "Your checkout for the Odd pack expired before it was paid; nothing was charged."
# Every move of an order the state machine makes from a status before payment, and the first moves after it:
# (old, new) -> the purchase alert made, if any.
PURCHASE_ALERTS = {
    (PENDING, PAID): ("purchase_confirmed", CONFIRMED),
    (CANCELLED, PAID): ("purchase_confirmed", CONFIRMED),
    (EXPIRED, PAID): ("purchase_confirmed", CONFIRMED),  # money wins: paid after all
    (FAILED, PAID): ("purchase_confirmed", CONFIRMED),
    (PENDING, FAILED): ("purchase_failed", FAILED_),
    (CANCELLED, FAILED): ("purchase_failed", FAILED_),
    (PENDING, EXPIRED): ("purchase_expired", EXPIRED_),
    (CANCELLED, EXPIRED): None,  # the customer cancelled: they know
    (PENDING, CANCELLED): None,  # they did it themselves
    (PAID, REFUNDED): None,  # clawbacks have alerts of their own, from the ledger
    (PAID, DISPUTED): None,
    (PAID, CHARGED_BACK): None,
}


def test_the_purchase_alerts_cover_every_move_before_payment() -> None:
    before_payment = {(old, new) for (old, _), new in TRANSITIONS.items() if old not in AFTER_PAYMENT}
    assert before_payment <= set(PURCHASE_ALERTS)


@pytest.mark.parametrize(("old", "new"), list(PURCHASE_ALERTS), ids=lambda v: str(v))
def test_an_order_that_moves_makes_its_purchase_alert(db: Database, old: str, new: str) -> None:
    moved = replace(ORDER, status=new)
    with db.transaction() as conn:
        alerts.on_order_status(conn, moved, old, new)
    expected = PURCHASE_ALERTS[(old, new)]
    assert [(a.kind, a.message) for a in found(db)] == ([] if expected is None else [expected])
    for alert in found(db):
        assert alert.data == {"orderId": "ord_41", "sessionId": "cs_test_41", "packId": "odd", "packName": "Odd",
                              "credits": 1013, "amount": 997, "currency": "eur"}


@pytest.mark.parametrize("moves", [
    [(PENDING, PAID), (PAID, REFUNDED), (REFUNDED, PAID), (PAID, DISPUTED), (DISPUTED, PAID)],
    [(PENDING, FAILED), (FAILED, FAILED), (PENDING, FAILED)],  # a failure told twice (two replicas, a retry)
    [(PENDING, EXPIRED), (PENDING, EXPIRED), (EXPIRED, PAID), (PENDING, PAID)],
], ids=["paid", "failed", "expired-then-paid"])
def test_an_order_alerts_once_per_outcome(db: Database, moves: list[tuple[str, str]]) -> None:
    for old, new in moves:
        with db.transaction() as conn:
            alerts.on_order_status(conn, replace(ORDER, status=new), old, new)
    made = [a.kind for a in found(db)]
    assert made == list(dict.fromkeys(PURCHASE_ALERTS[move][0] for move in moves  # type: ignore[index]
                                      if PURCHASE_ALERTS.get(move)))
    # Another order's outcome is news of its own.
    with db.transaction() as conn:
        alerts.on_order_status(conn, replace(ORDER, id="ord_97", status=PAID), PENDING, PAID)
    assert [a.kind for a in found(db)] == [*made, "purchase_confirmed"]
