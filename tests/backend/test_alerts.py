"""Alerts made in the transaction of their cause, exactly once per crossing."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from backend import alerts, ledger, spend_controls, spending
from backend.db import Database
from backend.errors import InsufficientCredits, SpendCapReached
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
