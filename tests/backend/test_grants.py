"""Grants in process, on both engines: the burn order pinned with amounts that do not divide evenly, the grant state
machine (every state x happening), expiry written once at its instant (reads see it before any sweep; open holds
spare what they reserve, until they close: then what they spared expires), clawbacks from the purchase's own grant
and reversals back to the right grant, debts, the credits_expiring alerts, races (a spend racing an expiry, two
sweepers, a void racing the sweeper, on one process and on two replicas) and a property test of random sequences
against ``check``."""

from __future__ import annotations

import contextlib
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, text

from backend import autotopup, expiry, grants, holds, ledger, spending
from backend.db import Database, iso_utc
from backend.errors import HoldClosed, InsufficientCredits
from backend.schema import alerts, grant_allocations, ledger_entries
from tests.helpers.concurrency import all_at_once

USER = 21
T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def at(days: float) -> datetime:
    return T0 + timedelta(days=days)


def give(db: Database, amount: int, reference: str, *, kind: grants.Kind = grants.PAID, expires: float | None = None,
         type: Any = "adjustment", now: datetime = T0, user: int = USER) -> int:
    """Credits given at ``now`` (as a promotional adjustment, a purchase ...); returns the new grant's id."""
    with db.transaction() as conn:
        ledger.locked_balance(conn, user)
        expiry.sweep_user(conn, user, now)
        entry = ledger.post(conn, user_id=user, type=type, amount=amount, reference=reference,
                            description=reference, created_at=iso_utc(now), allocation=grants.NewGrant(
                                kind=kind, expires_at=None if expires is None else iso_utc(at(expires))))
        assert entry is not None
        return int(conn.execute(select(grants.grants.c.id).where(grants.grants.c.entry_id == entry.id)).scalar_one())


def spend(db: Database, amount: int, key: str, *, now: datetime = T0, user: int = USER) -> int:
    return spending.spend(db, user, spending.SpendRequest(amount, key), now=now).id


def remaining(db: Database, user: int = USER) -> dict[str, int]:
    """Each grant's remaining, by its reference."""
    with db.read() as conn:
        return {row.reference: row.remaining for row in conn.execute(
            select(grants.grants.c.reference, grants.grants.c.remaining).where(grants.grants.c.user_id == user))}


def allocations(db: Database, entry_id: int) -> dict[str, int]:
    a, g = grant_allocations.c, grants.grants.c
    with db.read() as conn:
        return {row.reference: row.amount for row in conn.execute(
            select(g.reference, a.amount).join_from(grant_allocations, grants.grants, a.grant_id == g.id)
            .where(a.entry_id == entry_id))}


def expiries(db: Database, user: int = USER) -> list[tuple[str, int, str]]:
    e = ledger_entries.c
    with db.read() as conn:
        return [tuple(row) for row in conn.execute(select(e.reference, e.amount, e.created_at).where(
            e.user_id == user, e.type == "expiry").order_by(e.id))]  # type: ignore[misc]


def sweep(db: Database, now: datetime) -> int:
    return expiry.sweep(db.transaction, now)


def view(db: Database, now: datetime, user: int = USER) -> expiry.View:
    with db.read() as conn:
        return expiry.view(conn, user, now)


def check(db: Database, now: datetime) -> list[str]:
    """What ``creditdesk-backend check`` says at ``now`` once the holds past expiry are written down."""
    with db.transaction() as conn:
        holds.sweep(conn, now)
    with db.read() as conn:
        return ledger.check_invariants(conn) + grants.problems(conn, now) + holds.problems(conn, now)


# -- the burn order ----------------------------------------------------------------------------------------------


def test_a_spend_burns_promotional_first_then_earliest_expiry_then_oldest(db: Database) -> None:
    give(db, 37, "paid-forever")
    give(db, 11, "promo-day10", kind=grants.PROMOTIONAL, expires=10)
    give(db, 7, "promo-day5", kind=grants.PROMOTIONAL, expires=5)
    give(db, 13, "paid-day3", expires=3)
    give(db, 5, "promo-forever", kind=grants.PROMOTIONAL)
    give(db, 3, "promo-day5-younger", kind=grants.PROMOTIONAL, expires=5, now=T0 + timedelta(seconds=1))
    # 29 = promo-day5 7 + promo-day5-younger 3 + promo-day10 11 + promo-forever 5 + 3 of paid-day3
    entry = spend(db, 29, "s1", now=at(1))
    assert allocations(db, entry) == {"promo-day5": -7, "promo-day5-younger": -3, "promo-day10": -11,
                                      "promo-forever": -5, "paid-day3": -3}
    # then paid with the earliest expiry, then paid without one
    entry = spend(db, 17, "s2", now=at(1))
    assert allocations(db, entry) == {"paid-day3": -10, "paid-forever": -7}
    assert remaining(db) == {"paid-forever": 30, "promo-day10": 0, "promo-day5": 0, "paid-day3": 0,
                             "promo-forever": 0, "promo-day5-younger": 0}
    assert check(db, at(1)) == []


def test_the_earlier_expiry_burns_first_whichever_grant_is_older(db: Database) -> None:
    give(db, 11, "promo-day9", kind=grants.PROMOTIONAL, expires=9)
    give(db, 7, "promo-day4", kind=grants.PROMOTIONAL, expires=4, now=T0 + timedelta(seconds=1))
    give(db, 13, "paid-day8", expires=8)
    give(db, 5, "paid-day6", expires=6, now=T0 + timedelta(seconds=1))
    entry = spend(db, 29, "s1")  # 7 + 11 promotional, then 5 + 6 paid by expiry
    assert allocations(db, entry) == {"promo-day4": -7, "promo-day9": -11, "paid-day6": -5, "paid-day8": -6}
    assert check(db, T0) == []


def test_a_settle_burns_in_the_same_order(db: Database) -> None:
    give(db, 19, "paid")
    give(db, 4, "promo", kind=grants.PROMOTIONAL, expires=2)
    placed = spending.hold(db, USER, spending.HoldRequest(9, "h1"), now=T0)
    with db.transaction() as conn:
        settled = holds.settle(conn, USER, placed.id, 7, T0 + timedelta(minutes=1))
    assert settled.transaction_id is not None
    assert allocations(db, settled.transaction_id) == {"promo": -4, "paid": -3}
    assert remaining(db) == {"paid": 16, "promo": 0}


def test_a_settle_that_lets_spared_credits_expire_says_the_balance_it_started_from(db: Database) -> None:
    """Auto top-up's crossing is from the balance the settle found to the balance it left, the spared credits that
    expire at the settle included: 34 to 23 crosses a threshold of 30 (34 - 4 - 7), where balance + spent (27) did
    not."""
    give(db, 23, "paid")
    give(db, 17, "promo", kind=grants.PROMOTIONAL, expires=5)
    placed = spending.hold(db, USER, spending.HoldRequest(11, "h1", expires_in=timedelta(hours=24)),
                           now=at(5) - timedelta(hours=1))
    sweep(db, at(5) + timedelta(minutes=1))  # 6 of the 17 expire; the 11 the hold reserves are spared
    with db.transaction() as conn:
        done = holds.settle(conn, USER, placed.id, 4, at(5) + timedelta(hours=2))
    assert (done.before, done.spent, done.balance) == (34, 4, 23)  # the other 7 spared expired at the settle
    assert autotopup.crossed(done.before, done.balance, 30)
    assert not autotopup.crossed(done.balance + done.spent, done.balance, 30)  # what was asked before: missed


# -- the state machine: every state of a grant x every happening ---------------------------------------------------

# A promotional grant of 17 expiring on day 5 beside a paid one of 23 without expiry, brought into a state, then a
# happening; what each then holds, and what the ledger says expired.
STATES: dict[str, list[tuple[str, int]]] = {
    "fresh": [],
    "partly consumed": [("spend", 6)],
    "used up": [("spend", 17)],
    "expired": [("expire", 0)],
    "expired, spared by a hold": [("hold", 10), ("expire", 0)],
    # A hold of 11 over the 17 at their expiry (6 expire), then the hold closes: what it spared expires then.
    "spared, then voided": [("hold", 11), ("expire", 0), ("void", 0)],
    "spared, then settled for less": [("hold", 11), ("expire", 0), ("settle", 4)],
    "spared, then the hold expired": [("hold", 11), ("expire", 0), ("later", 0)],
    "in debt": [("spend", 40), ("clawback", 9)],
}
HAPPENINGS: dict[str, tuple[str, int]] = {
    "consume": ("spend", 5),
    "partial consume": ("spend", 20),
    "expire": ("expire", 0),
    "clawback": ("clawback", 11),
    "reversal": ("reversal", 11),
}
# (promo, paid, expired in the ledger) after each state x happening.
EXPECTED: dict[tuple[str, str], tuple[int, int, int]] = {
    ("fresh", "consume"): (12, 23, 0),
    ("fresh", "partial consume"): (0, 20, 0),
    ("fresh", "expire"): (0, 23, 17),
    ("fresh", "clawback"): (17, 12, 0),  # the purchase's own grant first
    ("fresh", "reversal"): (17, 34, 0),  # nothing was clawed back: the purchase's own grant
    ("partly consumed", "consume"): (6, 23, 0),
    ("partly consumed", "partial consume"): (0, 14, 0),
    ("partly consumed", "expire"): (0, 23, 11),
    ("partly consumed", "clawback"): (11, 12, 0),
    ("partly consumed", "reversal"): (11, 34, 0),
    ("used up", "consume"): (0, 18, 0),
    ("used up", "partial consume"): (0, 3, 0),
    ("used up", "expire"): (0, 23, 0),
    ("used up", "clawback"): (0, 12, 0),
    ("used up", "reversal"): (0, 34, 0),
    ("expired", "consume"): (0, 18, 17),
    ("expired", "partial consume"): (0, 3, 17),
    ("expired", "expire"): (0, 23, 17),
    ("expired", "clawback"): (0, 12, 17),
    ("expired", "reversal"): (0, 34, 17),
    # A hold of 10 open at the expiry (and still open) spares 10 of the 17 (they burn first: its settle finds them).
    ("expired, spared by a hold", "consume"): (5, 23, 7),
    ("expired, spared by a hold", "partial consume"): (0, 13, 7),
    ("expired, spared by a hold", "expire"): (10, 23, 7),
    ("expired, spared by a hold", "clawback"): (10, 12, 7),
    ("expired, spared by a hold", "reversal"): (10, 34, 7),
    # Voided: the 11 it spared expire at the void (6 + 11).
    ("spared, then voided", "consume"): (0, 18, 17),
    ("spared, then voided", "partial consume"): (0, 3, 17),
    ("spared, then voided", "expire"): (0, 23, 17),
    ("spared, then voided", "clawback"): (0, 12, 17),
    ("spared, then voided", "reversal"): (0, 34, 17),
    # Settled for 4: they come from the spared 11, the other 7 expire at the settle (6 + 7).
    ("spared, then settled for less", "consume"): (0, 18, 13),
    ("spared, then settled for less", "partial consume"): (0, 3, 13),
    ("spared, then settled for less", "expire"): (0, 23, 13),
    ("spared, then settled for less", "clawback"): (0, 12, 13),
    ("spared, then settled for less", "reversal"): (0, 34, 13),
    # The hold expired (a day after it was placed): the 11 expire at its expiry, written by whatever comes next.
    ("spared, then the hold expired", "consume"): (0, 18, 17),
    ("spared, then the hold expired", "partial consume"): (0, 3, 17),
    ("spared, then the hold expired", "expire"): (0, 23, 17),
    ("spared, then the hold expired", "clawback"): (0, 12, 17),
    ("spared, then the hold expired", "reversal"): (0, 34, 17),
    # 40 spent (17 promo, 23 paid), then 9 clawed back with nothing left: a debt of 9 on the purchase's own grant.
    ("in debt", "consume"): (0, -9, 0),  # refused: nothing is available
    ("in debt", "partial consume"): (0, -9, 0),
    ("in debt", "expire"): (0, -9, 0),
    ("in debt", "clawback"): (0, -20, 0),
    ("in debt", "reversal"): (0, 2, 0),  # repays the debt, then back to the grant the clawbacks took from
}


def _happen(db: Database, step: str, amount: int, n: int, now: datetime) -> None:
    with db.transaction() as conn:
        ledger.locked_balance(conn, USER)
        found = expiry.sweep_user(conn, USER, now)
        own = next(s for s in [*found, grants.of_purchase(conn, USER, "cs_paid")] if s and s.reference == "cs_paid")
        if step == "clawback":
            ledger.post(conn, user_id=USER, type="refund", amount=-amount, reference=f"re_{n}",
                        created_at=iso_utc(now), allocation=grants.Consume(found, first=own))
        elif step == "reversal":
            taken = grants.taken_by(conn, [r.id for r in conn.execute(select(ledger_entries.c.id).where(
                ledger_entries.c.type.in_(["refund", "refund_reversal"])))])
            ledger.post(conn, user_id=USER, type="refund_reversal", amount=amount, reference=f"re_{n}",
                        created_at=iso_utc(now), allocation=grants.GiveBack(taken, own))


def _do(db: Database, step: str, amount: int, n: int, now: datetime, placed: list[str]) -> None:
    if step == "spend":
        with contextlib.suppress(InsufficientCredits):
            spend(db, amount, f"s{n}", now=now)
    elif step == "hold":  # for a day, from an hour before the promotional grant expires
        placed.append(spending.hold(db, USER, spending.HoldRequest(amount, f"h{n}", expires_in=timedelta(hours=24)),
                                    now=at(5) - timedelta(hours=1)).id)
    elif step == "expire":
        sweep(db, max(now, at(5) + timedelta(minutes=1)))
    elif step in ("void", "settle"):
        with db.transaction() as conn:
            if step == "void":
                holds.void(conn, USER, placed[-1], now)
            else:
                holds.settle(conn, USER, placed[-1], amount, now)
    else:
        _happen(db, step, amount, n, now)


@pytest.mark.parametrize(("state", "happening"), list(EXPECTED), ids=[f"{s}-{h}" for s, h in EXPECTED])
def test_the_grant_state_machine(db: Database, state: str, happening: str) -> None:
    assert set(EXPECTED) == {(s, h) for s in STATES for h in HAPPENINGS}
    give(db, 23, "cs_paid", type="purchase")
    give(db, 17, "promo", kind=grants.PROMOTIONAL, expires=5)
    now = at(1)
    placed: list[str] = []
    for n, (step, amount) in enumerate(STATES[state]):
        if step == "later":  # past the hold's expiry
            now = at(6)
            continue
        _do(db, step, amount, n, at(5) + timedelta(minutes=1) if step == "expire" else now, placed)
        if step == "expire":
            now = at(5) + timedelta(hours=2)  # past the grant's expiry, before the hold's
    step, amount = HAPPENINGS[happening]
    _do(db, step, amount, 100, now, placed)
    held = remaining(db)
    expired = -sum(amount for _, amount, _ in expiries(db))
    assert (held["promo"], held["cs_paid"], expired) == EXPECTED[state, happening]
    assert check(db, now) == []


# -- expiry ---------------------------------------------------------------------------------------------------------


def test_expiry_is_one_entry_at_the_instant_and_reads_see_it_before_any_sweep(db: Database) -> None:
    give(db, 31, "paid")
    promo = give(db, 13, "promo", kind=grants.PROMOTIONAL, expires=7)
    spend(db, 4, "s1", now=at(1))
    before = view(db, at(7) - timedelta(seconds=1))
    assert (before.balance, before.expiring) == (40, 0)
    assert grants.summary(before.grants) == {"paid": 31, "promotional": 9,
                                             "nextExpiry": {"at": iso_utc(at(7)), "credits": 9}}
    after = view(db, at(7))  # at the instant: expired, though nothing is written yet
    assert (after.balance, after.expiring) == (31, 9)
    assert expiries(db) == []
    assert sweep(db, at(8)) == 1
    assert sweep(db, at(9)) == 0
    assert expiries(db) == [(f"grant:{promo}", -9, iso_utc(at(7)))]
    assert view(db, at(9)).balance == 31
    assert check(db, at(9)) == []


def test_a_spend_after_the_instant_writes_the_expiry_first_and_cannot_use_expired_credits(db: Database) -> None:
    give(db, 5, "paid")
    give(db, 13, "promo", kind=grants.PROMOTIONAL, expires=2)
    with pytest.raises(InsufficientCredits):
        spend(db, 6, "s1", now=at(3))
    assert expiries(db) == []  # the refused spend rolled back with its sweep; reads still see the expiry
    entry = spend(db, 5, "s2", now=at(3))
    assert allocations(db, entry) == {"paid": -5}
    assert [amount for _, amount, _ in expiries(db)] == [-13]


def test_credits_an_open_hold_reserves_do_not_expire_and_its_settle_finds_them(db: Database) -> None:
    give(db, 2, "paid")
    give(db, 17, "promo", kind=grants.PROMOTIONAL, expires=3)
    placed = spending.hold(db, USER, spending.HoldRequest(11, "h1", expires_in=timedelta(hours=24)),
                           now=at(3) - timedelta(hours=2))
    seen = view(db, at(3) + timedelta(hours=1))
    assert (seen.balance, seen.expiring) == (13, 6)  # 17 less the 11 held expire: 6
    sweep(db, at(3) + timedelta(hours=1))
    with db.read() as conn:
        assert ledger.balance(conn, USER) - holds.reserved(conn, USER, at(3) + timedelta(hours=1)) == 2
    with db.transaction() as conn:
        settled = holds.settle(conn, USER, placed.id, 11, at(3) + timedelta(hours=2))
    assert settled.transaction_id is not None
    assert allocations(db, settled.transaction_id) == {"promo": -11}
    assert remaining(db) == {"paid": 2, "promo": 0}
    assert check(db, at(4)) == []


# A hold of 11 placed an hour before 17 promotional credits expire on day 3, beside 2 paid: 6 expire at day 3, 11
# are spared; how the hold closes, when, and what expires then (the entry of the spared credits: grant:<id>:2).
CLOSES: dict[str, tuple[int, datetime, int]] = {
    "voided": (0, at(3) + timedelta(hours=2), 11),
    "settled for less": (4, at(3) + timedelta(hours=2), 7),  # the 4 are spared ones: the other 7 expire
    "settled for all": (11, at(3) + timedelta(hours=2), 0),
    "expired": (0, at(3) + timedelta(hours=23), 11),  # at the hold's own expiry, whenever that is written down
}


@pytest.mark.parametrize("close", list(CLOSES))
def test_spared_credits_expire_when_the_hold_that_spared_them_closes(db: Database, close: str) -> None:
    give(db, 2, "paid")
    promo = give(db, 17, "promo", kind=grants.PROMOTIONAL, expires=3)
    placed = spending.hold(db, USER, spending.HoldRequest(11, "h1", expires_in=timedelta(hours=24)),
                           now=at(3) - timedelta(hours=1))
    settle_for, instant, released = CLOSES[close]
    sweep(db, at(3) + timedelta(hours=1))
    assert expiries(db) == [(f"grant:{promo}", -6, iso_utc(at(3)))]
    if close == "expired":
        seen = view(db, at(4))  # reads see it before any write
        assert (seen.balance, seen.expiring) == (2, 11)
        assert sweep(db, at(4)) == 1
        assert sweep(db, at(5)) == 0
    else:
        with db.transaction() as conn:
            if close == "voided":
                done: Any = holds.void(conn, USER, placed.id, instant)
            else:
                done = holds.settle(conn, USER, placed.id, settle_for, instant)
        assert done.balance == 2  # the answer's balance is after the expiry
        if done.__class__ is holds.SettledHold:
            assert allocations(db, done.transaction_id) == {"promo": -settle_for}
    assert expiries(db) == [(f"grant:{promo}", -6, iso_utc(at(3)))] + (
        [(f"grant:{promo}:2", -released, iso_utc(instant))] if released else [])
    assert remaining(db) == {"paid": 2, "promo": 0}
    assert view(db, at(5)).balance == 2
    with db.read() as conn:
        assert [row.description for row in conn.execute(select(ledger_entries.c.description).where(
            ledger_entries.c.type == "expiry"))] == ["promo expired"] * (2 if released else 1)
    assert sweep(db, at(6)) == 0  # once
    assert check(db, at(6)) == []


def test_a_hold_placed_after_the_expiry_keeps_no_spared_credits(db: Database) -> None:
    """The loophole closed: a second hold placed once the credits were spared, the first voided, the second later
    voided too; the spared credits expire at the first void, not at the second."""
    give(db, 13, "paid")
    promo = give(db, 17, "promo", kind=grants.PROMOTIONAL, expires=3)
    first = spending.hold(db, USER, spending.HoldRequest(11, "h1", expires_in=timedelta(hours=24)),
                          now=at(3) - timedelta(hours=1))
    second = spending.hold(db, USER, spending.HoldRequest(13, "h2", expires_in=timedelta(hours=24)),
                           now=at(3) + timedelta(hours=1))  # 13 available then: 2 + the 11 spared
    with db.transaction() as conn:
        holds.void(conn, USER, first.id, at(3) + timedelta(hours=2))
    assert expiries(db) == [(f"grant:{promo}", -6, iso_utc(at(3))),
                            (f"grant:{promo}:2", -11, iso_utc(at(3) + timedelta(hours=2)))]
    with db.read() as conn:  # the second hold is backed by the 13 paid
        assert ledger.balance(conn, USER) - holds.reserved(conn, USER, at(3) + timedelta(hours=2)) == 0
    with db.transaction() as conn:
        holds.void(conn, USER, second.id, at(3) + timedelta(hours=3))
    assert len(expiries(db)) == 2
    assert view(db, at(4)).balance == 13
    assert check(db, at(4)) == []


def test_check_says_when_spared_credits_exceed_what_open_holds_reserve(db: Database) -> None:
    give(db, 17, "promo", kind=grants.PROMOTIONAL, expires=3)
    spending.hold(db, USER, spending.HoldRequest(11, "h1", expires_in=timedelta(hours=24)),
                  now=at(3) - timedelta(hours=1))
    sweep(db, at(3) + timedelta(hours=1))
    with db.read() as conn:
        assert grants.problems(conn, at(3) + timedelta(hours=1)) == []
        # a day later the hold has expired and nothing has written down what it spared
        assert grants.problems(conn, at(4)) == [
            f"user {USER}: 11 spared credits of grants expired by {iso_utc(at(3))} that no open hold placed by "
            "then reserves"]


def test_a_hold_that_expired_before_the_grant_spares_nothing(db: Database) -> None:
    give(db, 17, "promo", kind=grants.PROMOTIONAL, expires=3)
    spending.hold(db, USER, spending.HoldRequest(11, "h1", expires_in=timedelta(hours=1)), now=at(2))
    with db.transaction() as conn:
        holds.sweep(conn, at(4))  # the hold marked expired before the grant is swept
    sweep(db, at(4))
    assert [amount for _, amount, _ in expiries(db)] == [-17]


def test_expiry_warnings_come_once_per_grant_and_lead(db: Database) -> None:
    give(db, 29, "promo", kind=grants.PROMOTIONAL, expires=10)
    give(db, 3, "soon", kind=grants.PROMOTIONAL, expires=0.5)

    def warn(now: datetime) -> int:
        with db.transaction() as conn:
            return grants.warn(conn, now)

    assert warn(T0) == 1  # "soon": its 1-day warning (the 7-day one is past its point)
    assert warn(T0) == 0
    assert warn(at(3)) == 1  # promo: 7 days before
    assert warn(at(3.5)) == 0
    assert warn(at(9.5)) == 1  # promo: 1 day before
    assert warn(at(9.6)) == 0
    with db.read() as conn:
        rows = conn.execute(select(alerts.c.kind, alerts.c.message, alerts.c.data).order_by(alerts.c.id)).all()
    assert [kind for kind, _, _ in rows] == ["credits_expiring"] * 3
    # The instant, not a date that reads as the day it ends on or the day after (at(10) is 12:00 UTC).
    assert rows[1].message == "29 credits (promo) expire at 2026-12-06 12:00 UTC"
    data = json.loads(rows[1].data) if isinstance(rows[1].data, str) else rows[1].data
    assert (data["expiresAt"], data["description"], data["credits"]) == (iso_utc(at(10)), "promo", 29)


@pytest.mark.parametrize(("expires_at", "words"), [
    # adjust --expires 2026-12-13: the end of the 13th, not "2026-12-14"
    ("2026-12-14T00:00:00.000Z", "at the end of 2026-12-13 (24:00 UTC)"),
    ("2027-01-01T00:00:00.000Z", "at the end of 2026-12-31 (24:00 UTC)"),
    ("2026-12-14T15:30:00.000Z", "at 2026-12-14 15:30 UTC"),
    ("2026-12-14T00:00:01.000Z", "at 2026-12-14 00:00:01 UTC"),
    ("2026-12-13T23:59:59.500Z", "at 2026-12-13 23:59:59 UTC"),
])
def test_an_expiry_is_said_as_an_instant_that_cannot_be_misread(expires_at: str, words: str,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    assert grants.expiry_words(expires_at) == words
    # in UTC whatever the server's own zone
    monkeypatch.setenv("TZ", "America/Los_Angeles")
    time.tzset()
    try:
        assert grants.expiry_words(expires_at) == words
    finally:
        monkeypatch.undo()
        time.tzset()


def test_one_expiring_credit_expires(db: Database) -> None:
    give(db, 1, "last", kind=grants.PROMOTIONAL, expires=0.5)
    with db.transaction() as conn:
        assert grants.warn(conn, T0) == 1
    with db.read() as conn:
        [message] = conn.execute(select(alerts.c.message)).scalars().all()
    assert message == "1 credit (last) expires at the end of 2026-11-26 (24:00 UTC)"


# -- clawbacks, reversals and debts ----------------------------------------------------------------------------------


# When the reversal comes, and what each grant then holds: a grant whose expiry has come (at its very instant, too)
# gets nothing back, as its credits would expire at once; its share goes to the purchase's own grant.
REVERSALS: dict[str, tuple[datetime, dict[str, int]]] = {
    "after promo's expiry": (at(7), {"cs_paid": 12, "promo": 0, "promo-later": 8}),
    "at promo's expiry": (at(5), {"cs_paid": 12, "promo": 0, "promo-later": 8}),
    "a second before it": (at(5) - timedelta(seconds=1), {"cs_paid": 10, "promo": 2, "promo-later": 8}),
}


@pytest.mark.parametrize("when", list(REVERSALS))
def test_a_reversal_gives_back_to_the_grants_the_clawback_took_from_unless_expired(db: Database, when: str) -> None:
    instant, after = REVERSALS[when]
    give(db, 10, "cs_paid", type="purchase")
    give(db, 9, "promo", kind=grants.PROMOTIONAL, expires=5)
    give(db, 8, "promo-later", kind=grants.PROMOTIONAL, expires=50)
    spend(db, 7, "s1", now=at(1))  # promo 7
    _happen(db, "clawback", 13, 1, at(2))  # own 10, then promo's 2 left, then promo-later 1
    assert remaining(db) == {"cs_paid": 0, "promo": 0, "promo-later": 7}
    sweep(db, instant)  # promo is empty: nothing to write
    _happen(db, "reversal", 13, 1, instant)  # promo-later 1, promo 2 unless its expiry has come, own 10 (+ 2)
    assert remaining(db) == after
    assert check(db, instant) == []


def test_a_partial_reversal_gives_back_what_was_taken_last_first(db: Database) -> None:
    give(db, 10, "cs_paid", type="purchase")
    spend(db, 8, "s1")
    give(db, 7, "promo", kind=grants.PROMOTIONAL, expires=50)
    _happen(db, "clawback", 2, 1, at(1))  # the own grant's 2
    _happen(db, "clawback", 3, 2, at(2))  # the own grant is empty: 3 of promo
    assert remaining(db) == {"cs_paid": 0, "promo": 4}
    _happen(db, "reversal", 4, 3, at(3))  # promo's 3 (taken last), then 1 of the own grant's 2
    assert remaining(db) == {"cs_paid": 1, "promo": 7}
    assert check(db, at(3)) == []


def _refund(db: Database, purchase: str, amount: int, n: int, now: datetime = T0) -> None:
    """A refund of ``purchase``: from its own grant first."""
    with db.transaction() as conn:
        ledger.locked_balance(conn, USER)
        found = expiry.sweep_user(conn, USER, now)
        ledger.post(conn, user_id=USER, type="refund", amount=-amount, reference=f"re_{n}",
                    created_at=iso_utc(now), allocation=grants.Consume(found, first=grants.of_purchase(
                        conn, USER, purchase)))


def _reverse(db: Database, purchase: str, refunds: list[int], amount: int, n: int, now: datetime = T0) -> None:
    """A reversal of ``purchase``'s refunds (their references' numbers)."""
    with db.transaction() as conn:
        ledger.locked_balance(conn, USER)
        expiry.sweep_user(conn, USER, now)
        e = ledger_entries.c
        taken = grants.taken_by(conn, [r.id for r in conn.execute(select(e.id).where(
            e.reference.in_([f"re_{k}" for k in refunds])))])
        own = grants.of_purchase(conn, USER, purchase)
        ledger.post(conn, user_id=USER, type="refund_reversal", amount=amount, reference=f"rr_{n}",
                    created_at=iso_utc(now), allocation=grants.GiveBack(taken, own))


def _two_purchases_spent_then_refunded(db: Database, refund_a: int, refund_b: int) -> None:
    """Purchases of 10 (cs_a) and 11 (cs_b), all 21 spent, then refunds of ``refund_a`` and ``refund_b``: debts."""
    give(db, 10, "cs_a", type="purchase")
    give(db, 11, "cs_b", type="purchase")
    spend(db, 21, "s1")
    _refund(db, "cs_a", refund_a, 1)
    _refund(db, "cs_b", refund_b, 2)
    assert remaining(db) == {"cs_a": -refund_a, "cs_b": -refund_b}


def test_a_reversal_repays_every_debt_first_oldest_first(db: Database) -> None:
    _two_purchases_spent_then_refunded(db, 10, 4)
    _reverse(db, "cs_b", [2], 4, 1)  # b's refund reversed: its 4 repay a's debt, the older
    assert remaining(db) == {"cs_a": -6, "cs_b": -4}
    assert check(db, T0) == []


def test_a_reversal_gives_a_grant_that_was_in_debt_only_what_it_lost(db: Database) -> None:
    """The purchase's own grant lost 15 (10 it held, 5 of debt) and the promotional one 3: a reversal of all 18 repays
    the debt, gives the own grant its 10 and the promotional one its 3 (not 13 to the own grant)."""
    give(db, 10, "cs_paid", type="purchase")
    give(db, 7, "promo", kind=grants.PROMOTIONAL, expires=50)
    _refund(db, "cs_paid", 13, 1)  # own 10, promo 3
    spend(db, 4, "s1")  # promo's 4 left
    _refund(db, "cs_paid", 5, 2)  # nothing left: a debt of 5 on the own grant
    assert remaining(db) == {"cs_paid": -5, "promo": 0}
    _reverse(db, "cs_paid", [1, 2], 18, 1)
    assert remaining(db) == {"cs_paid": 10, "promo": 3}
    with db.read() as conn:
        assert grants.summary(expiry.view(conn, USER, T0).grants) == {
            "paid": 10, "promotional": 3, "nextExpiry": {"at": iso_utc(at(50)), "credits": 3}}
    assert check(db, T0) == []


def test_a_purchase_without_a_grant_of_its_own_owes_on_a_debt_grant_and_its_reversal_makes_a_paid_grant(
        db: Database) -> None:
    """A purchase from before grants (migration 0016 made one grant of the balance): its refund takes in the burn
    order, what no grant holds owed on a debt grant of its own; its reversal repays the debt, gives back to what the
    refund took unless expired since, and the rest in a paid grant of its own."""
    give(db, 4, "balance")
    give(db, 7, "promo", kind=grants.PROMOTIONAL, expires=5)
    _refund(db, "cs_old", 13, 1, at(1))  # promo 7, balance 4, 2 owed
    e, g = ledger_entries.c, grants.grants.c
    with db.read() as conn:
        refund = int(conn.execute(select(e.id).where(e.reference == "re_1")).scalar_one())
    assert remaining(db) == {"balance": 0, "promo": 0, f"refund:{refund}": -2}
    with db.transaction() as conn:
        ledger.locked_balance(conn, USER)
        expiry.sweep_user(conn, USER, at(6))
        entry = ledger.post(conn, user_id=USER, type="refund_reversal", amount=13, reference="rr_1",
                            description="Refund reversed for cs_old", created_at=iso_utc(at(6)),
                            allocation=grants.GiveBack(grants.taken_by(conn, [refund]), None))
    assert entry is not None
    assert remaining(db) == {"balance": 4, "promo": 0, f"refund:{refund}": 0, f"refund_reversal:{entry.id}": 7}
    with db.read() as conn:
        made = {row.reference: (row.kind, row.source, row.description, row.amount, row.opening, row.expires_at)
                for row in conn.execute(select(grants.grants).where(g.source.in_(["debt", "reversal"])))}
    assert made == {f"refund:{refund}": ("paid", "debt", "Credits owed", 0, 0, None),
                    f"refund_reversal:{entry.id}": ("paid", "reversal", "Refund reversed for cs_old", 0, 0, None)}
    assert view(db, at(6)).balance == 11
    assert check(db, at(6)) == []


def test_a_grant_with_one_credit_left_is_taken_from_in_its_turn(db: Database) -> None:
    give(db, 10, "cs_paid", type="purchase")
    spend(db, 9, "s1")
    give(db, 5, "promo", kind=grants.PROMOTIONAL, expires=50)
    _refund(db, "cs_paid", 3, 1)  # the own grant's last credit first, then promo
    assert remaining(db) == {"cs_paid": 0, "promo": 3}
    give(db, 29, "paid")
    give(db, 1, "promo-one", kind=grants.PROMOTIONAL, expires=3)
    entry = spend(db, 1, "s2")  # a spend of one credit: the promotional grant expiring first
    assert allocations(db, entry) == {"promo-one": -1}
    entry = spend(db, 7, "s3")
    assert allocations(db, entry) == {"promo": -3, "paid": -4}
    assert check(db, T0) == []


def test_a_clawback_beyond_what_is_left_owes_the_rest_on_the_own_grant(db: Database) -> None:
    give(db, 10, "cs_paid", type="purchase")
    spend(db, 8, "s1")
    _refund(db, "cs_paid", 9, 1)  # its 2 left, then 7 owed
    assert remaining(db) == {"cs_paid": -7}
    assert view(db, T0).balance == -7
    assert check(db, T0) == []


def test_an_entry_posted_without_an_allocation_makes_a_paid_grant_takes_in_the_burn_order_or_gives_back(
        db: Database) -> None:
    """``ledger.post``'s default: credits make a paid grant (a purchase's of source purchase), a debit takes in the burn
    order, a reversal (nothing known of what its clawbacks took) gives back in a grant of its own."""
    give(db, 7, "promo", kind=grants.PROMOTIONAL, expires=50)
    with db.transaction() as conn:
        ledger.locked_balance(conn, USER)
        bought = ledger.post(conn, user_id=USER, type="purchase", amount=11, reference="cs_new",
                             description="Starter pack", created_at=iso_utc(T0))
        taken = ledger.post(conn, user_id=USER, type="refund", amount=-9, reference="re_1", created_at=iso_utc(T0))
        assert bought is not None and taken is not None
        back = ledger.post(conn, user_id=USER, type="refund_reversal", amount=9, reference="rr_1",
                           created_at=iso_utc(T0))
        assert back is not None
        own = grants.of_purchase(conn, USER, "cs_new")
        one = ledger.post(conn, user_id=USER, type="bonus", amount=1, reference="b_1", created_at=iso_utc(T0))
        assert one is not None
        made = conn.execute(select(grants.grants).where(grants.grants.c.entry_id == one.id)).mappings().one()
    # a type of its own has no source of its own: an adjustment's; no description: "Credits"
    assert (made["kind"], made["source"], made["description"], made["remaining"]) == (
        "paid", "adjustment", "Credits", 1)
    assert own is not None and (own.kind, own.source, own.description, own.amount) == (
        "paid", "purchase", "Starter pack", 11)
    assert allocations(db, taken.id) == {"promo": -7, "cs_new": -2}
    assert allocations(db, back.id) == {f"refund_reversal:{back.id}": 9}
    assert remaining(db) == {"promo": 0, "cs_new": 9, f"refund_reversal:{back.id}": 9, "b_1": 1}
    assert check(db, T0) == []


def test_a_grant_with_one_credit_left_expires(db: Database) -> None:
    give(db, 5, "paid")
    promo = give(db, 1, "promo", kind=grants.PROMOTIONAL, expires=2)
    assert view(db, at(3)).balance == 5
    assert sweep(db, at(3)) == 1
    assert expiries(db) == [(f"grant:{promo}", -1, iso_utc(at(2)))]
    assert check(db, at(3)) == []


def test_debts_are_repaid_oldest_first(db: Database) -> None:
    _two_purchases_spent_then_refunded(db, 10, 11)
    give(db, 13, "bonus", kind=grants.PROMOTIONAL)
    assert remaining(db) == {"cs_a": 0, "cs_b": -8, "bonus": 0}
    assert view(db, T0).balance == -8
    assert check(db, T0) == []


def test_a_debt_is_repaid_first_by_new_credits(db: Database) -> None:
    give(db, 10, "cs_paid", type="purchase")
    spend(db, 10, "s1")
    _happen(db, "clawback", 7, 1, T0)
    assert remaining(db) == {"cs_paid": -7}
    give(db, 25, "promo", kind=grants.PROMOTIONAL, expires=3)
    assert remaining(db) == {"cs_paid": 0, "promo": 18}
    assert view(db, at(1)).balance == 18
    assert check(db, at(1)) == []


# -- races: on one process and on two replicas ------------------------------------------------------------------------


@pytest.mark.parametrize("replicas", [1, 2])
def test_sweepers_racing_write_each_expiry_once(db: Database, replica: Database, replicas: int) -> None:
    for user in range(5):
        give(db, 7 + user, f"promo-{user}", kind=grants.PROMOTIONAL, expires=1, user=100 + user)
    results = all_at_once(4, lambda i: sweep(replica if replicas == 2 and i % 2 else db, at(2)))
    assert sum(r for r in results if isinstance(r, int)) == 5, results
    assert all(isinstance(r, int) for r in results), results
    for user in range(5):
        assert [amount for _, amount, _ in expiries(db, 100 + user)] == [-(7 + user)]
    assert check(db, at(2)) == []


@pytest.mark.parametrize("replicas", [1, 2])
def test_spends_racing_an_expiry_never_spend_expired_credits(db: Database, replica: Database, replicas: int) -> None:
    give(db, 6, "paid")
    give(db, 19, "promo", kind=grants.PROMOTIONAL, expires=1)

    def act(i: int) -> object:
        on = replica if replicas == 2 and i % 2 else db
        if i % 3 == 0:
            return sweep(on, at(2))
        return spending.spend(on, USER, spending.SpendRequest(4, f"s{i}"), now=at(2)).id

    results = all_at_once(6, act)
    spent = [r for i, r in enumerate(results) if i % 3 and not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, InsufficientCredits)]
    assert len(spent) == 1 and len(refused) == 3, results  # 6 paid credits: one spend of 4
    assert [amount for _, amount, _ in expiries(db)] == [-19]
    assert view(db, at(2)).balance == 2
    assert check(db, at(2)) == []


@pytest.mark.parametrize("replicas", [1, 2])
def test_a_void_racing_the_sweeper_expires_the_spared_credits_once(db: Database, replica: Database,
                                                                   replicas: int) -> None:
    """Whichever comes first (the grant's expiry written by the sweeper, or the void, which writes it itself), the
    6 expire at the grant's expiry and the 11 spared at the void, once."""
    give(db, 2, "paid")
    promo = give(db, 17, "promo", kind=grants.PROMOTIONAL, expires=1)
    placed = spending.hold(db, USER, spending.HoldRequest(11, "h1", expires_in=timedelta(hours=24)),
                           now=at(1) - timedelta(hours=1))
    moment = at(1) + timedelta(hours=3)

    def act(i: int) -> object:
        on = replica if replicas == 2 and i % 2 else db
        if i == 0:
            with on.transaction() as conn:
                return holds.void(conn, USER, placed.id, moment)
        return sweep(on, moment)

    results = all_at_once(4, act)
    assert not [r for r in results if isinstance(r, BaseException)], results
    assert expiries(db) == [(f"grant:{promo}", -6, iso_utc(at(1))), (f"grant:{promo}:2", -11, iso_utc(moment))]
    assert view(db, moment).balance == 2
    assert check(db, moment) == []


# -- a property: random sequences keep check passing ---------------------------------------------------------------

STEPS = st.lists(st.tuples(
    st.sampled_from(["paid", "promo", "spend", "hold", "settle", "void", "expire", "refund", "reverse", "later"]),
    st.integers(1, 37)), min_size=1, max_size=14)


_EXAMPLES = iter(range(1000, 10**6))


@pytest.mark.engines("sqlite")
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=STEPS)
def test_random_sequences_keep_check_passing_and_available_never_negative_but_by_clawback(
    db: Database, steps: list[tuple[str, int]]
) -> None:
    user = next(_EXAMPLES)  # one database for every example, a user of its own each
    now = T0
    open_holds: list[str] = []
    clawed = False
    for n, (step, amount) in enumerate(steps):
        if step == "later":
            now += timedelta(hours=amount)
        elif step == "paid":
            give(db, amount, f"cs_{user}_{n}", type="purchase", now=now, user=user)
        elif step == "promo":
            give(db, amount, f"promo_{n}", kind=grants.PROMOTIONAL, now=now, user=user,
                 expires=(now - T0).total_seconds() / 86400 + amount % 8 / 24)  # within hours: holds span it
        elif step == "spend":
            with contextlib.suppress(InsufficientCredits):
                spend(db, amount, f"s{n}", now=now, user=user)
        elif step == "hold":
            with contextlib.suppress(InsufficientCredits):
                open_holds.append(spending.hold(db, user, spending.HoldRequest(
                    amount, f"h{n}", expires_in=timedelta(hours=1 + amount % 23)), now=now).id)
        elif step in ("settle", "void") and open_holds:
            hold_id = open_holds.pop(amount % len(open_holds))
            with db.transaction() as conn:
                try:
                    if step == "settle":
                        held = holds.get(conn, user, hold_id)
                        holds.settle(conn, user, hold_id, min(amount, held.amount), now)
                    else:
                        holds.void(conn, user, hold_id, now)
                except HoldClosed:
                    pass
                except InsufficientCredits:
                    assert clawed  # only a clawback can take what a hold reserved
        elif step == "expire":
            sweep(db, now)
        elif step in ("refund", "reverse"):
            with db.read() as conn:
                own = grants.of_purchase(conn, user, next((f"cs_{user}_{i}" for i, (s, _) in enumerate(steps[:n])
                                                           if s == "paid"), ""))
            if own is None:
                continue
            clawed = clawed or step == "refund"
            _clawback(db, own, step, amount, n, now, user)
        seen = view(db, now, user)
        with db.read() as conn:
            reserved = holds.reserved(conn, user, now)
        assert clawed or seen.balance - reserved >= 0, (steps[: n + 1], seen, reserved)
        assert sum(s.remaining for s in seen.grants) == seen.balance
        # check agrees at every step, but for what only a sweep writes down (a grant's expiry, what a hold that
        # expired spared); after a sweep, in full
        assert [p for p in check(db, now) if "past its expiry" not in p and "no open hold" not in p] == []
    sweep(db, now)
    assert check(db, now) == []
    seen = view(db, now, user)
    with db.read() as conn:
        assert seen.balance == ledger.balance(conn, user)
        assert clawed or seen.balance - holds.reserved(conn, user, now) >= 0


def _clawback(db: Database, own: grants.Grant, step: str, amount: int, n: int, now: datetime, user: int) -> None:
    with db.transaction() as conn:
        ledger.locked_balance(conn, user)
        found = expiry.sweep_user(conn, user, now)
        if step == "refund":
            ledger.post(conn, user_id=user, type="refund", amount=-amount, reference=f"re_{n}",
                        created_at=iso_utc(now), allocation=grants.Consume(found, first=own))
            return
        e = ledger_entries.c
        ids = [r.id for r in conn.execute(select(e.id).where(
            e.user_id == user, e.type.in_(["refund", "refund_reversal"])))]
        taken = grants.taken_by(conn, ids)
        owed = sum(credits for _, credits in taken)
        if owed:
            ledger.post(conn, user_id=user, type="refund_reversal", amount=min(amount, owed), reference=f"re_{n}",
                        created_at=iso_utc(now), allocation=grants.GiveBack(taken, own))


# -- support's adjustments --------------------------------------------------------------------------------------------


def test_adjust_gives_promotional_credits_that_expire_and_refuses_what_cannot_be(db: Database) -> None:
    from backend import accounts, support
    from backend.errors import InvalidAdjustment

    user = accounts.register(db, "ann@example.com", "long enough pw")
    entry, new = support.adjust(db, "ann@example.com", 23, "sorry", "k1", promotional=True, expires_at=at(30), now=T0)
    assert new and entry.amount == 23
    with db.read() as conn:
        (grant,) = grants.live(conn, user.id)
    assert (grant.kind, grant.remaining, grant.expires_at) == ("promotional", 23, iso_utc(at(30)))
    for bad in ({"promotional": True}, {"expires_at": at(1)}):
        with pytest.raises(InvalidAdjustment, match="only credits given"):
            support.adjust(db, "ann@example.com", -5, "oops", "k2", now=T0, **bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidAdjustment, match="in the future"):
        support.adjust(db, "ann@example.com", 5, "late", "k3", expires_at=T0 - timedelta(seconds=1), now=T0)
    entry, _ = support.adjust(db, "ann@example.com", -7, "taken back", "k4", now=T0)
    assert allocations(db, entry.id) == {"adj:k1": -7}
    assert view(db, at(31), user.id).balance == 0  # the 16 left expired


# -- what the balance answer says of the grants (pure) -----------------------------------------------------------------


def _grant(id: int, kind: str, remaining: int, expires: float | None = None, *, expired: float | None = None,
           created: float = 0, source: str = "adjustment") -> grants.Grant:
    return grants.Grant(
        id=id, user_id=USER, kind=kind, source=source, reference=f"r{id}", description=f"d{id}", amount=remaining + 3,
        opening=remaining + 3, remaining=remaining, created_at=iso_utc(at(created)),
        expires_at=None if expires is None else iso_utc(at(expires)),
        expired_at=None if expired is None else iso_utc(at(expired)), entry_id=100 + id)


# (grants, paid, promotional, nextExpiry): the next expiry is the earliest of the grants with credits not yet
# expired, with the credits of every grant expiring at that instant.
SUMMARIES: list[tuple[list[grants.Grant], int, int, tuple[float, int] | None]] = [
    ([], 0, 0, None),
    ([_grant(1, "paid", 29)], 29, 0, None),
    ([_grant(1, "paid", 29, 4), _grant(2, "promotional", 7, 4), _grant(3, "promotional", 11, 6)], 29, 18, (4, 36)),
    ([_grant(1, "promotional", 13, 9), _grant(2, "paid", 7, 2)], 7, 13, (2, 7)),
    # one credit left still expires; an empty grant and a spared one (expired already) do not count
    ([_grant(1, "promotional", 1, 5), _grant(2, "promotional", 0, 3), _grant(3, "promotional", 11, 2, expired=2)],
     0, 12, (5, 1)),
    # a debt: paid credits below zero
    ([_grant(1, "paid", -13), _grant(2, "paid", 0, 3)], -13, 0, None),
]


@pytest.mark.parametrize(("found", "paid", "promotional", "next_expiry"), SUMMARIES)
def test_the_balance_answer_sums_paid_and_promotional_and_says_the_next_expiry(
        found: list[grants.Grant], paid: int, promotional: int, next_expiry: tuple[float, int] | None) -> None:
    assert grants.summary(found) == {
        "paid": paid, "promotional": promotional,
        "nextExpiry": None if next_expiry is None else {"at": iso_utc(at(next_expiry[0])), "credits": next_expiry[1]}}


def test_a_grant_as_the_balance_answer_lists_it() -> None:
    assert _grant(4, "promotional", 11, 6, created=1, source="signup").as_json() == {
        "id": 4, "kind": "promotional", "source": "signup", "description": "d4", "amount": 14, "remaining": 11,
        "createdAt": iso_utc(at(1)), "expiresAt": iso_utc(at(6)), "expiredAt": None}
    # spared by a hold: it has no expiry to come, and says when it expired
    assert _grant(5, "promotional", 7, 2, expired=2).as_json() | {"id": 0} == {
        "id": 0, "kind": "promotional", "source": "adjustment", "description": "d5", "amount": 10, "remaining": 7,
        "createdAt": iso_utc(T0), "expiresAt": None, "expiredAt": iso_utc(at(2))}


@pytest.mark.parametrize(("lead", "words"), [
    (timedelta(days=7), "7 days"), (timedelta(days=1), "1 day"), (timedelta(days=2), "2 days"),
    (timedelta(hours=1), "1 hour"), (timedelta(hours=13), "13 hours"), (timedelta(days=1, hours=5), "29 hours"),
    (timedelta(minutes=90), "1 hour"),
])
def test_a_warnings_lead_is_said_in_days_or_hours(lead: timedelta, words: str) -> None:
    assert grants.lead_words(lead) == words


# -- what check says --------------------------------------------------------------------------------------------------


class _Undo(Exception):
    """Rolls back a test's damage once check has read it (the fixture's own check then finds the ledger whole)."""


def _problems_after(db: Database, damage: list[str], now: datetime) -> list[str]:
    found: list[str] = []
    with pytest.raises(_Undo), db.transaction() as conn:
        for statement in damage:
            conn.execute(text(statement))
        found = grants.problems(conn, now)
        raise _Undo
    return found


# A paid grant of 31 and a promotional one of 13 expiring on day 5; 29 spent on day 1 (13 promotional, 16 paid): 15
# paid left. Each damage (SQL, {paid}/{promo} the grants' ids, {spend} the spend's entry) and what check says of it.
DAMAGES: dict[str, tuple[list[str], list[str]]] = {
    "none": ([], []),
    "unknown kind": (["UPDATE grants SET kind = 'gift' WHERE id = {paid}"],
                     ["grant {paid}: unknown kind 'gift' or source 'adjustment'"]),
    "unknown source": (["UPDATE grants SET source = 'gift' WHERE id = {promo}"],
                       ["grant {promo}: unknown kind 'promotional' or source 'gift'"]),
    "remaining off": (["UPDATE grants SET remaining = 17 WHERE id = {paid}"],
                      ["grant {paid}: remaining 17 != opening 31 + allocations -16",
                       "user 21: grants hold 17 but the balance is 15"]),
    "an allocation lost": (["DELETE FROM grant_allocations WHERE entry_id = {spend} AND grant_id = {promo}"],
                           ["grant {promo}: remaining 0 != opening 13 + allocations 0",
                            "entry {spend}: allocations -16 != its amount -29"]),
    # 7 owed on a grant of its own beside 22 paid: the sums agree, the debt should have been repaid
    "a debt beside credits": (["UPDATE grants SET remaining = 22, opening = 38 WHERE id = {paid}",
                               "INSERT INTO grants (user_id, kind, source, reference, description, amount, "
                               "opening, remaining, created_at, entry_id) SELECT 21, 'paid', 'debt', 'x', "
                               "'Credits owed', 0, -7, -7, created_at, entry_id FROM grants WHERE id = {paid}"],
                              ["user 21: a debt beside grants with credits"]),
    "an expiry naming no grant": (["UPDATE ledger_entries SET type = 'expiry' WHERE id = {spend}"],
                                  ["entry {spend}: an expiry that names no grant"]),
    "past its expiry": (["UPDATE grants SET expires_at = '{day1}' WHERE id = {paid}"],
                        ["grant {paid}: past its expiry at {day1} but not expired"]),
}


@pytest.mark.parametrize("damage", list(DAMAGES))
def test_check_says_each_way_the_grants_disagree_with_the_ledger(db: Database, damage: str) -> None:
    paid = give(db, 31, "paid")
    promo = give(db, 13, "promo", kind=grants.PROMOTIONAL, expires=5)
    entry = spend(db, 29, "s1", now=at(1))
    statements, sentences = DAMAGES[damage]
    names = {"paid": paid, "promo": promo, "spend": entry, "day1": iso_utc(at(1))}
    assert _problems_after(db, [s.format(**names) for s in statements], at(2)) == [
        s.format(**names) for s in sentences]


# -- the credits_expiring alerts: which lead, and what they say --------------------------------------------------------

# A promotional grant of 29 expiring this long after the warning round at at(2); with the default leads (7 days, 1 day)
# the lead its alert is for, or None: no alert.
LEADS: list[tuple[timedelta, timedelta | None]] = [
    (timedelta(days=7, seconds=1), None),
    (timedelta(days=7), timedelta(days=7)),  # at the lead's very point
    (timedelta(days=1, seconds=1), timedelta(days=7)),
    (timedelta(days=1), timedelta(days=1)),  # nearer than both: only the shortest that applies
    (timedelta(seconds=1), timedelta(days=1)),
    (timedelta(0), None),  # expiring now: nothing left to warn of
]


@pytest.mark.parametrize(("before", "lead"), LEADS, ids=[str(before) for before, _ in LEADS])
def test_a_credits_expiring_alert_is_for_the_shortest_lead_that_applies_and_says_it_all(
        db: Database, before: timedelta, lead: timedelta | None) -> None:
    now = at(2)
    expires = now + before
    promo = give(db, 29, "Spring promo", kind=grants.PROMOTIONAL, expires=(expires - T0) / timedelta(days=1))
    with db.transaction() as conn:
        assert grants.warn(conn, now) == (lead is not None)
    with db.read() as conn:
        rows = conn.execute(select(alerts.c.user_id, alerts.c.kind, alerts.c.data, alerts.c.dedupe_key)).all()
    if lead is None:
        assert rows == []
        return
    ((user, kind, data, key),) = rows
    words = {timedelta(days=7): "7 days", timedelta(days=1): "1 day"}[lead]
    assert (user, kind, key) == (USER, "credits_expiring", f"credits_expiring:{promo}:{int(lead.total_seconds())}")
    assert json.loads(data) == {"grantId": promo, "credits": 29, "kind": "promotional", "expiresAt": iso_utc(expires),
                                "description": "Spring promo", "leadSeconds": int(lead.total_seconds()),
                                "lead": words}


def test_no_alert_for_an_empty_or_spared_grant_or_without_leads(db: Database) -> None:
    give(db, 11, "paid")
    give(db, 7, "used", kind=grants.PROMOTIONAL, expires=3)
    spend(db, 7, "s1")  # the promotional 7 first: nothing left to expire
    give(db, 13, "promo", kind=grants.PROMOTIONAL, expires=1)
    spending.hold(db, USER, spending.HoldRequest(13, "h1", expires_in=timedelta(hours=24)),
                  now=at(1) - timedelta(hours=1))
    sweep(db, at(1))  # the 13 spared: expired already, so no alert
    with db.transaction() as conn:
        assert grants.warn(conn, at(1), ()) == 0
        assert grants.warn(conn, at(1)) == 0
    give(db, 5, "soon", kind=grants.PROMOTIONAL, expires=1.5, now=at(1))
    give(db, 3, "sooner", kind=grants.PROMOTIONAL, expires=1.25, now=at(1))
    with db.transaction() as conn:
        assert grants.warn(conn, at(1), ()) == 0
        assert grants.warn(conn, at(1), (timedelta(hours=13),)) == 2  # the count serve's log line says
        found = conn.execute(select(alerts.c.data)).scalars().all()
    assert sorted((json.loads(data)["credits"], json.loads(data)["lead"], json.loads(data)["leadSeconds"])
                  for data in found) == [(3, "13 hours", 13 * 3600), (5, "13 hours", 13 * 3600)]


# -- the expiry plan (pure): grants' expiries and holds' closes replayed in the order of their instants ---------------

# Promotional grants of 7 (id 1, expiring on day 1) and 11 (id 2, day 2), a paid one of 5 (id 3, day 3.25); holds as
# (credits, placed, ends); the plan at day 3.5: each expiry as (grant, credits expired, day, its own expiry or not).
PLANS: dict[str, tuple[list[tuple[int, float, float]], list[tuple[int, int, float, bool]]]] = {
    "no holds": ([], [(1, 7, 1, True), (2, 11, 2, True), (3, 5, 3.25, True)]),
    # 13 + 6 spare both; at day 3 only the 6 are held: of what expired by day 1 one is over, of what by day 2, 11
    "two holds, one closes": ([(13, 0.5, 3), (6, 0.5, 4)],
                              [(1, 0, 1, True), (2, 0, 2, True), (1, 1, 3, False), (1, 6, 3, False), (2, 5, 3, False),
                               (3, 5, 3.25, True)]),
    # the 8 still held cover what expired by day 1; of the 18 expired by day 2, 10 are over: the burn order's first
    "the first instant is covered": ([(13, 0.5, 3), (8, 0.5, 4)],
                                     [(1, 0, 1, True), (2, 0, 2, True), (1, 7, 3, False), (2, 3, 3, False),
                                      (3, 5, 3.25, True)]),  # the 8 held are grant 2's, spared
    "one hold, voided": ([(19, 0.5, 3)], [(1, 0, 1, True), (2, 0, 2, True), (1, 7, 3, False), (2, 11, 3, False),
                                          (3, 5, 3.25, True)]),
    # the second hold came after grant 1 expired: it keeps grant 2's 11, never grant 1's 7
    "a hold placed between the expiries": ([(7, 0.5, 3), (11, 1.5, 4)],
                                           [(1, 0, 1, True), (2, 0, 2, True), (1, 7, 3, False), (3, 5, 3.25, True)]),
    # a hold ending at the very instant a grant expires reserves nothing then
    "a hold ending at the expiry": ([(7, 0.5, 1)], [(1, 7, 1, True), (2, 11, 2, True), (3, 5, 3.25, True)]),
}


@pytest.mark.parametrize("case", list(PLANS))
def test_the_expiry_plan_spares_what_holds_reserve_and_releases_it_as_they_close(case: str) -> None:
    held, planned = PLANS[case]
    found = [_grant(1, "promotional", 7, 1), _grant(2, "promotional", 11, 2), _grant(3, "paid", 5, 3.25)]
    spans = [expiry.Span(amount, iso_utc(at(placed)), iso_utc(at(ends))) for amount, placed, ends in held]
    state, expiries = expiry.plan(found, iso_utc(at(3.5)), spans)
    assert [(e.grant.id, e.expired, e.at, e.first) for e in expiries] == [
        (grant, credits, iso_utc(at(day)), first) for grant, credits, day, first in planned]
    expired = {grant: sum(credits for g, credits, _, _ in planned if g == grant) for grant in (1, 2, 3)}
    assert {s.id: s.remaining for s in state} == {1: 7 - expired[1], 2: 11 - expired[2], 3: 5 - expired[3]}
    assert expiry.plan(found, iso_utc(at(0.5)), spans) == (found, [])  # nothing due yet


def test_a_spared_credit_ahead_in_the_burn_order_is_part_of_what_a_hold_reserves() -> None:
    """A hold of 6 spares grant 1's one credit at day 1; at day 2 it reserves 5 more, of grant 2's 11: 6 expire."""
    found = [_grant(1, "promotional", 1, 1), _grant(2, "promotional", 11, 2)]
    _, expiries = expiry.plan(found, iso_utc(at(2.5)), [expiry.Span(6, iso_utc(at(0.5)), iso_utc(at(4)))])
    assert [(e.grant.id, e.expired, e.spared) for e in expiries] == [(1, 0, 1), (2, 6, 5)]
