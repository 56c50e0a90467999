"""Holds in process, on both engines: the state machine (every state and every happening), the available balance
that spends and holds share, caps and confirmations, expiry on an injected clock, races on one process and over two
(a second Database on the same database, as another replica), and ``check``'s view of the holds."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text

from backend import alerts, holds, ledger, spend_controls, spending
from backend.db import Database, iso_utc
from backend.errors import (
    AmountAboveHold,
    ConfirmationRequired,
    HoldClosed,
    IdempotencyConflict,
    InsufficientCredits,
    SpendCapReached,
    UnknownHold,
)
from tests.helpers.concurrency import all_at_once

USER = 11
T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def grant(db: Database, amount: int, reference: str = "cs_1", user: int = USER) -> None:
    with db.transaction() as conn:
        ledger.post(conn, user_id=user, type="purchase", amount=amount, reference=reference)


def hold(db: Database, amount: int, key: str, *, now: datetime = T0, user: int = USER, description: str = "Render",
         feature: str | None = "render", lifetime: timedelta | None = None, token: str | None = None) -> holds.Hold:
    request = spending.HoldRequest(amount, key, description, feature, token, expires_in=lifetime)
    return spending.hold(db, user, request, now=now)


def spend(db: Database, amount: int, key: str, *, now: datetime = T0, user: int = USER) -> int:
    return spending.spend(db, user, spending.SpendRequest(amount, key), now=now).balance_after


def settle(db: Database, hold_id: str, amount: int, *, now: datetime = T0, user: int = USER) -> holds.SettledHold:
    with db.transaction() as conn:
        return holds.settle(conn, user, hold_id, amount, now)


def void(db: Database, hold_id: str, *, now: datetime = T0, user: int = USER) -> holds.ReleasedHold:
    with db.transaction() as conn:
        return holds.void(conn, user, hold_id, now)


def sweep(db: Database, now: datetime) -> int:
    with db.transaction() as conn:
        return holds.sweep(conn, now)


def figures(db: Database, now: datetime = T0, user: int = USER) -> tuple[int, int, int]:
    """(balance, reserved, available)."""
    with db.read() as conn:
        balance, reserved = ledger.balance(conn, user), holds.reserved(conn, user, now)
    return balance, reserved, balance - reserved


def stored(db: Database, hold_id: str, user: int = USER) -> holds.Hold:
    with db.read() as conn:
        return holds.get(conn, user, hold_id)


def spends(db: Database, user: int = USER) -> list[tuple[int, str, str, str | None]]:
    with db.read() as conn:
        return [(e.amount, e.reference, e.description, e.feature)
                for e in ledger.history(conn, user, limit=100)[0] if e.type == "spend"]


def problems(db: Database, now: datetime) -> list[str]:
    with db.read() as conn:
        return holds.problems(conn, now)


# -- the state machine ----------------------------------------------------------------------------------------------
# A hold of 40 (of a balance of 100, lifetime 15 min from T0) is brought to each state, then each happening is tried.
# What is expected: the status after, the balance after, and the error (HoldClosed carries the status it names).

STATES: dict[str, Callable[[Database, str], object]] = {
    "open": lambda db, hid: None,
    "settled": lambda db, hid: settle(db, hid, 13, now=at(1)),
    "settled_for_0": lambda db, hid: settle(db, hid, 0, now=at(1)),
    "voided": lambda db, hid: void(db, hid, now=at(1)),
    "expired": lambda db, hid: None,  # time passes: the happening comes after expires_at, no sweep
    "expired_swept": lambda db, hid: sweep(db, at(20)),
}
# The moment of the happening: after the expiry for the expired states, within the lifetime for the others.
WHEN = {"expired": at(15), "expired_swept": at(30)}
BALANCE_AFTER_STATE = {"settled": 87}
HAPPENINGS: dict[str, Callable[[Database, str, datetime], object]] = {
    "settle_part": lambda db, hid, now: settle(db, hid, 17, now=now),
    "settle_0": lambda db, hid, now: settle(db, hid, 0, now=now),
    "settle_all": lambda db, hid, now: settle(db, hid, 40, now=now),
    "void": lambda db, hid, now: void(db, hid, now=now),
    "sweep": lambda db, hid, now: sweep(db, now),
}
STATUS_NAMED = {"open": "open", "settled": "settled", "settled_for_0": "settled", "voided": "voided",
                "expired": "expired", "expired_swept": "expired"}
# From open: (status after, balance after, spend entries). Every happening on a closed hold: HoldClosed, no change
# (a sweep changes nothing but writes an expired hold down as expired).
FROM_OPEN = {
    "settle_part": ("settled", 83, [(-17, "Render", "render")]),
    "settle_0": ("settled", 100, []),
    "settle_all": ("settled", 60, [(-40, "Render", "render")]),
    "void": ("voided", 100, []),
    "sweep": ("open", 100, []),  # not yet expired: nothing to write down
}
CASES = [(state, happening) for state in STATES for happening in HAPPENINGS]


@pytest.mark.parametrize(("state", "happening"), CASES, ids=[f"{s}-{h}" for s, h in CASES])
def test_every_state_and_every_happening(db: Database, state: str, happening: str) -> None:
    grant(db, 100)
    placed = hold(db, 40, "op-1")
    assert placed.expires_at == iso_utc(at(15))
    STATES[state](db, placed.id)
    before = spends(db)
    now = WHEN.get(state, at(2))
    if state == "open":
        HAPPENINGS[happening](db, placed.id, now)
        status, balance, entries = FROM_OPEN[happening]
        assert stored(db, placed.id).status == status
        assert figures(db, now)[0] == balance
        assert [(amount, description, feature) for amount, _, description, feature in spends(db)] == entries
        assert all(reference == placed.id for _, reference, _, _ in spends(db))
        assert figures(db, now)[1] == (40 if status == "open" else 0)
    elif happening == "sweep":
        HAPPENINGS[happening](db, placed.id, now)
        assert stored(db, placed.id).status == STATUS_NAMED[state]
        assert spends(db) == before
    else:
        with pytest.raises(HoldClosed) as refused:
            HAPPENINGS[happening](db, placed.id, now)
        assert refused.value.status == STATUS_NAMED[state]
        assert refused.value.details() == {"holdId": placed.id, "status": STATUS_NAMED[state]}
        assert spends(db) == before
        assert figures(db, now) == (BALANCE_AFTER_STATE.get(state, 100), 0, BALANCE_AFTER_STATE.get(state, 100))
    assert problems(db, at(60) if state == "expired_swept" else now) == [] or state == "expired"


def test_a_settle_above_the_hold_is_refused_in_any_state_and_changes_nothing(db: Database) -> None:
    grant(db, 100)
    placed = hold(db, 40, "op-1")
    with pytest.raises(AmountAboveHold) as refused:
        settle(db, placed.id, 41)
    assert refused.value.details() == {"amount": 41, "held": 40}
    assert stored(db, placed.id).status == "open" and figures(db) == (100, 40, 60)


def test_an_unknown_hold_and_another_users_hold_are_unknown(db: Database) -> None:
    grant(db, 100)
    grant(db, 100, "cs_2", user=12)
    theirs = hold(db, 10, "op-1", user=12)
    for hold_id in (theirs.id, "hold_nope"):
        with pytest.raises(UnknownHold):
            settle(db, hold_id, 1)
        with pytest.raises(UnknownHold):
            void(db, hold_id)
    assert stored(db, theirs.id, user=12).status == "open"


def test_expiry_is_exact_to_the_millisecond_and_every_read_treats_an_expired_hold_as_released(db: Database) -> None:
    grant(db, 100)
    placed = hold(db, 40, "op-1", lifetime=timedelta(seconds=90))
    last_moment = T0 + timedelta(seconds=90) - timedelta(milliseconds=1)
    assert figures(db, last_moment) == (100, 40, 60)
    assert figures(db, T0 + timedelta(seconds=90)) == (100, 0, 100)  # released, with no sweep
    with pytest.raises(InsufficientCredits):
        spend(db, 61, "just-before", now=last_moment)
    assert spend(db, 100, "at-expiry", now=T0 + timedelta(seconds=90)) == 0  # the hold's credits are spendable
    with pytest.raises(HoldClosed):
        settle(db, placed.id, 40, now=T0 + timedelta(seconds=90))
    assert stored(db, placed.id).status_at(T0 + timedelta(seconds=90)) == "expired"


def test_the_sweep_writes_an_expiry_down_once_at_the_instant_it_expired(db: Database) -> None:
    grant(db, 100)
    first = hold(db, 10, "op-1")
    second = hold(db, 10, "op-2", lifetime=timedelta(hours=1))
    assert problems(db, at(16)) == [f"hold {first.id}: open past its expiry at {iso_utc(at(15))}"]
    assert sweep(db, at(16)) == 1
    assert sweep(db, at(16)) == 0  # once
    assert stored(db, first.id).closed_at == iso_utc(at(15))
    assert stored(db, second.id).status == "open"
    assert problems(db, at(16)) == []
    assert sweep(db, at(61)) == 1


def test_a_new_hold_writes_down_the_users_expired_holds_on_the_way(db: Database) -> None:
    grant(db, 100)
    old = hold(db, 10, "op-1")
    hold(db, 10, "op-2", now=at(20))
    assert stored(db, old.id).status == "expired"


def test_default_lifetime_is_fifteen_minutes_and_at_most_a_day(db: Database) -> None:
    grant(db, 100)
    assert hold(db, 1, "a").expires_at == iso_utc(at(15))
    assert hold(db, 1, "b", lifetime=timedelta(hours=24)).expires_at == iso_utc(T0 + timedelta(hours=24))
    with pytest.raises(ValueError, match="at most"):
        hold(db, 1, "c", lifetime=timedelta(hours=24, seconds=1))


# -- the available balance: a money rule, with numbers that do not divide evenly ------------------------------------


def test_spends_and_holds_take_only_the_available_balance(db: Database) -> None:
    grant(db, 100)
    a = hold(db, 33, "a")
    b = hold(db, 33, "b")
    assert figures(db) == (100, 66, 34)
    with pytest.raises(InsufficientCredits) as refused:
        spend(db, 35, "s1")
    assert (refused.value.balance, refused.value.reserved, refused.value.amount) == (100, 66, 35)
    assert refused.value.available == "34 are available (a balance of 100, of which 66 are reserved by open holds)"
    assert spend(db, 34, "s2") == 66
    with pytest.raises(InsufficientCredits):
        hold(db, 1, "c")
    assert settle(db, a.id, 17) == holds.SettledHold(settle_id(db, a.id), 17, 16, 49, 66)
    assert figures(db) == (49, 33, 16)
    with pytest.raises(InsufficientCredits):
        spend(db, 17, "s3")
    assert void(db, b.id) == holds.ReleasedHold(33, 49)
    assert figures(db) == (49, 0, 49)
    assert spend(db, 49, "s4") == 0
    assert [amount for amount, _, _, _ in spends(db)] == [-49, -17, -34]


def settle_id(db: Database, hold_id: str) -> int | None:
    return stored(db, hold_id).transaction_id


def test_a_repeated_key_answers_as_the_first_time_and_another_body_is_a_conflict(db: Database) -> None:
    grant(db, 100)
    first = hold(db, 33, "k")
    assert first.available_after == 67
    hold(db, 7, "other")
    again = hold(db, 33, "k")
    assert again == first  # the same hold, what was available then included; nothing more reserved
    assert figures(db)[1] == 40
    settle(db, first.id, 33)
    assert hold(db, 33, "k").id == first.id  # still answered as the first time, nothing reserved
    assert figures(db) == (67, 7, 60)
    for other in ({"amount": 34}, {"description": "Other"}, {"feature": None}, {"lifetime": timedelta(minutes=5)}):
        with pytest.raises(IdempotencyConflict):
            hold(db, **{"amount": 33, "key": "k", **other})  # type: ignore[arg-type]
    # Hold keys and spend keys are apart: the same key spends.
    assert spend(db, 1, "k") == 66


def test_a_hold_is_counted_against_the_caps_until_it_is_settled_voided_or_expired(db: Database) -> None:
    grant(db, 1_000)
    with db.transaction() as conn:
        spend_controls.update_controls(conn, USER, {"caps.day": 100})
    big = hold(db, 61, "h1")
    with pytest.raises(SpendCapReached) as refused:
        spend(db, 40, "s1")
    assert (refused.value.used, refused.value.cap) == (61, 100)
    with pytest.raises(SpendCapReached):
        hold(db, 40, "h2")
    assert spend(db, 39, "s2") == 961
    settle(db, big.id, 23)  # the hold counts as its settle now: 39 + 23 = 62
    assert spend(db, 38, "s3") == 900
    with pytest.raises(SpendCapReached):
        spend(db, 1, "s4")
    # Another day: an expired hold counts no more.
    hold(db, 100, "h3", now=at(24 * 60))
    with pytest.raises(SpendCapReached):
        spend(db, 1, "s5", now=at(24 * 60 + 1))
    assert spend(db, 100, "s6", now=at(24 * 60 + 15)) == 800


def test_a_hold_above_confirm_above_needs_the_confirmation_token(db: Database) -> None:
    grant(db, 500)
    with db.transaction() as conn:
        spend_controls.update_controls(conn, USER, {"confirmAbove": 50})
    hold(db, 50, "other")  # at the threshold: no confirmation
    with pytest.raises(ConfirmationRequired) as asked:
        hold(db, 60, "k")
    assert asked.value.details()["balanceAfter"] == 500 - 50 - 60  # of the available balance
    placed = hold(db, 60, "k", token=asked.value.token)
    assert placed.status == "open" and figures(db) == (500, 110, 390)


def test_a_settle_the_balance_no_longer_covers_is_refused_and_the_hold_stays_open(db: Database) -> None:
    grant(db, 100)
    placed = hold(db, 90, "k")
    with db.transaction() as conn:  # a clawback takes credits the hold reserved
        ledger.post(conn, user_id=USER, type="refund", amount=-50, reference="re_1")
    with pytest.raises(InsufficientCredits):
        settle(db, placed.id, 51)
    assert stored(db, placed.id).status == "open"
    assert settle(db, placed.id, 50).balance == 0


def test_a_spend_that_took_the_holds_id_as_its_key_makes_the_settle_a_conflict(db: Database) -> None:
    grant(db, 100)
    placed = hold(db, 10, "k")
    spend(db, 5, placed.id)
    with pytest.raises(IdempotencyConflict):
        settle(db, placed.id, 3)
    assert stored(db, placed.id).status == "open"
    assert void(db, placed.id).released == 10


# -- check -----------------------------------------------------------------------------------------------------------


def test_check_finds_a_settled_hold_whose_entry_disagrees(db: Database) -> None:
    grant(db, 100)
    settled = hold(db, 10, "a")
    settle(db, settled.id, 7)
    voided = hold(db, 10, "b")
    void(db, voided.id)
    assert problems(db, T0) == []
    with db.transaction() as conn:
        conn.execute(text("UPDATE holds SET settled_amount = 8 WHERE id = :id"), {"id": settled.id})
        conn.execute(text("UPDATE holds SET status = 'settled', settled_amount = 5 WHERE id = :id"),
                     {"id": voided.id})
    assert sorted(problems(db, T0)) == sorted([
        f"hold {settled.id}: settled for 8 as transaction {settle_id(db, settled.id)}, but spend entry "
        f"{settle_id(db, settled.id)} took 7",
        f"hold {voided.id}: settled for 5 without a spend entry",
    ])
    with db.transaction() as conn:  # put back, for the fixture's own check
        conn.execute(text("DELETE FROM holds"))


def test_check_finds_every_kind_of_disagreement(db: Database) -> None:
    grant(db, 100)
    made = {name: hold(db, 10, name) for name in ("strange", "no_amount", "too_much", "zero_with_entry", "voided")}
    for name in ("too_much", "zero_with_entry", "voided"):
        settle(db, made[name].id, 4)
    spend(db, 3, made["strange"].id)  # a spend whose own key is a hold's id is no settle of it: no problem
    assert problems(db, T0) == []
    assert problems(db, at(15)) == [f"hold {hold.id}: open past its expiry at {iso_utc(at(15))}"
                                    for hold in made.values() if stored(db, hold.id).status == "open"]
    tampered = {"strange": "status = 'lost'", "no_amount": "status = 'settled'", "too_much": "amount = 3",
                "zero_with_entry": "settled_amount = 0", "voided": "status = 'voided'"}
    with db.transaction() as conn:
        for name, change in tampered.items():
            conn.execute(text(f"UPDATE holds SET {change} WHERE id = :id"), {"id": made[name].id})  # noqa: S608
    entry = {name: settle_id(db, made[name].id) for name in made}
    assert sorted(problems(db, T0)) == sorted([
        f"hold {made['strange'].id}: unknown status 'lost'",
        f"hold {made['no_amount'].id}: settled without a settled amount",
        f"hold {made['too_much'].id}: settled for 4 of 3",
        f"hold {made['zero_with_entry'].id}: settled with nothing spent, yet spend entry {entry['zero_with_entry']} "
        "names it",
        f"hold {made['voided'].id}: voided with nothing spent, yet spend entry {entry['voided']} names it",
    ])
    with db.transaction() as conn:  # put back, for the fixture's own check
        conn.execute(text("DELETE FROM holds"))


def test_the_listing_says_each_holds_state_and_what_it_spent_and_released(db: Database) -> None:
    grant(db, 100)
    placed = {name: hold(db, 10 + n, name, now=at(n)) for n, name in enumerate(("open", "settled", "voided", "old"))}
    settle(db, placed["settled"].id, 4, now=at(5))
    void(db, placed["voided"].id, now=at(5))
    now = at(15.5)  # "open" (placed at 0) has expired, unswept; "old" (placed at 3) is open
    with db.read() as conn:
        listed = [h.as_json(now) for h in holds.recent(conn, USER, limit=10)]
        still_open = holds.open_holds(conn, USER, now)
        assert [h.id for h in holds.recent(conn, USER, limit=2)] == [placed["old"].id, placed["voided"].id]
    assert [(h["id"], h["status"], h["spent"], h["released"], h["closedAt"]) for h in listed] == [
        (placed["old"].id, "open", None, None, None),
        (placed["voided"].id, "voided", 0, 12, iso_utc(at(5))),
        (placed["settled"].id, "settled", 4, 7, iso_utc(at(5))),
        (placed["open"].id, "expired", 0, 10, iso_utc(at(15))),
    ]
    assert listed[2] == {
        "id": placed["settled"].id, "amount": 11, "status": "settled", "description": "Render", "feature": "render",
        "createdAt": iso_utc(at(1)), "expiresAt": iso_utc(at(16)), "closedAt": iso_utc(at(5)), "spent": 4,
        "released": 7, "transactionId": settle_id(db, placed["settled"].id)}
    assert [h.id for h in still_open] == [placed["old"].id]
    grant(db, 100, "cs_2", user=12)
    hold(db, 5, "theirs", user=12, now=at(3))
    with db.read() as conn:  # one user's, until the instant they expire
        assert [h.id for h in holds.open_holds(conn, USER, at(18) - timedelta(milliseconds=1))] == [placed["old"].id]
        assert holds.open_holds(conn, USER, at(18)) == []


def test_a_settle_is_one_spend_at_the_instant_of_the_settle(db: Database) -> None:
    grant(db, 100)
    placed = hold(db, 10, "k", description="Transcribe", feature="audio")
    done = settle(db, placed.id, 0, now=at(2))
    assert done == holds.SettledHold(None, 0, 10, 100, 100)
    other = hold(db, 10, "k2")
    done = settle(db, other.id, 9, now=at(3))
    with db.read() as conn:
        (entry,) = [e for e in ledger.history(conn, USER, limit=10)[0] if e.type == "spend"]
    assert (entry.id, entry.amount, entry.created_at, entry.reference) == (done.transaction_id, -9, iso_utc(at(3)),
                                                                           other.id)
    assert done == holds.SettledHold(entry.id, 9, 1, 91, 100)


def test_a_transition_that_finds_the_hold_closed_changes_nothing(db: Database) -> None:
    """The conditional UPDATE itself (what decides when a sweep or another replica closed the hold after it was
    read): a hold read open, then closed, is not closed again."""
    grant(db, 100)
    placed = hold(db, 10, "k")
    void(db, placed.id)
    with pytest.raises(HoldClosed) as refused, db.transaction() as conn:
        holds._close(conn, placed, "settled", T0, settled=10)
    assert (refused.value.hold_id, refused.value.status) == (placed.id, "voided")
    assert stored(db, placed.id).status == "voided" and stored(db, placed.id).settled_amount is None


def test_a_hold_of_exactly_the_available_balance_is_placed(db: Database) -> None:
    grant(db, 100)
    hold(db, 37, "a")
    with pytest.raises(InsufficientCredits) as refused:
        hold(db, 64, "b")
    assert (refused.value.balance, refused.value.amount, refused.value.reserved) == (100, 64, 37)
    assert hold(db, 63, "c").available_after == 0
    with pytest.raises(ValueError, match="positive"):
        hold(db, 0, "d")
    with pytest.raises(ValueError, match="at most"):
        hold(db, 1, "e", lifetime=timedelta(0))


def test_a_hold_that_brings_a_cap_to_80_percent_alerts_once(db: Database) -> None:
    grant(db, 1_000)
    with db.transaction() as conn:
        spend_controls.update_controls(conn, USER, {"caps.day": 100})
    hold(db, 80, "k")
    hold(db, 80, "k")  # the same hold again: no second alert
    with db.read() as conn:
        kinds = [a.kind for a in alerts.page(conn, USER, unread_only=False, limit=50)[0]]
    assert kinds.count("cap_80") == 1


# -- races -----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("replicas", [1, 2])
def test_settles_and_voids_racing_on_one_hold_close_it_once(db: Database, replica: Database, replicas: int) -> None:
    grant(db, 1_000)
    for round_ in range(5):
        placed = hold(db, 37, f"op-{round_}")

        def close(i: int, hold_id: str = placed.id) -> object:
            on = replica if replicas == 2 and i % 2 else db
            return settle(on, hold_id, 11 + i % 3, now=at(1)) if i % 4 < 3 else void(on, hold_id, now=at(1))

        outcomes = all_at_once(12, close)
        won = [o for o in outcomes if not isinstance(o, HoldClosed)]
        assert len(won) == 1, outcomes
        assert all(isinstance(o, HoldClosed) for o in outcomes if o is not won[0])
        after = stored(db, placed.id)
        spent = won[0].spent if isinstance(won[0], holds.SettledHold) else 0
        assert (after.status, after.settled_amount or 0) == ("settled" if spent else "voided", spent)
    balance, reserved, _ = figures(db, at(1))
    assert reserved == 0 and balance == 1_000 + sum(amount for amount, _, _, _ in spends(db))
    assert problems(db, at(1)) == []


@pytest.mark.parametrize("replicas", [1, 2])
def test_holds_and_spends_racing_never_take_the_available_balance_below_zero(
    db: Database, replica: Database, replicas: int
) -> None:
    grant(db, 100)

    def act(i: int) -> Any:
        on = replica if replicas == 2 and i % 2 else db
        if i % 3 == 0:
            return spending.spend(on, USER, spending.SpendRequest(7, f"s{i}"), now=T0).balance_after
        return spending.hold(on, USER, spending.HoldRequest(9, f"h{i}"), now=T0).amount

    outcomes = all_at_once(24, act)
    assert all(isinstance(o, int | InsufficientCredits) for o in outcomes), outcomes
    balance, reserved, available = figures(db)
    assert available >= 0
    spent = 7 * sum(1 for i, o in enumerate(outcomes) if i % 3 == 0 and isinstance(o, int))
    held = 9 * sum(1 for i, o in enumerate(outcomes) if i % 3 and isinstance(o, int))
    assert (balance, reserved) == (100 - spent, held)
    assert available < 7  # nothing more fits: the refused ones were refused for want of credits
    assert any(isinstance(o, InsufficientCredits) for o in outcomes)
