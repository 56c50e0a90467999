"""Auto top-up in process, on both engines (issue 19): the rules as a table (a crossing, one in flight, the day's count,
the month's money, notify-only, a decline, authentication required, turned off, Undo within and after 24 hours and
after a partial spend), exactly once when the payment's answer comes twice, and races over two replicas (two
starts for one crossing, two crossings at once, a top-up racing spends).

The real stub provider (its saved cards, off-session charges and refunds), the real fulfilment and clawback paths;
the clock is the ``now`` every function takes. Money that does not divide: a 500-credit pack at 4.99."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from backend import alerts, autotopup, fulfilment, ledger, orders, spending
from backend.catalogue import Catalogue, Pack
from backend.db import Database, utcnow
from backend.errors import (
    InvalidAutoTopup,
    NothingToUndo,
    PaymentProviderUnavailable,
    TopupNotUndoable,
    UndoExpired,
    UnknownTopup,
)
from backend.order_status import PENDING
from backend.orders import Order
from backend.payments.base import CheckoutRequest, PaymentIntentState
from backend.payments.stub import StubProvider
from backend.schema import topups, users
from tests.helpers.concurrency import all_at_once

USER = 7
T0 = datetime(2026, 12, 5, 10, 0, tzinfo=UTC)
PACK = Pack("topup", "Top-up", 500, 499, "usd")
CATALOGUE = Catalogue([PACK, Pack("big", "Big", 5_000, 3_999, "usd")])


@dataclass
class Rig:
    db: Database
    stub: StubProvider
    spent: int = 0
    keys: Iterator[int] = field(default_factory=lambda: iter(range(1, 10**6)))

    def spend(self, amount: int, now: datetime = T0) -> autotopup.Topup | None:
        """A spend, then what its crossing does (as the route's background work does, here in line)."""
        entry = spending.spend(self.db, USER, spending.SpendRequest(amount, f"k{next(self.keys)}"), now=now)
        self.spent += amount
        return autotopup.after_change(self.db, self.stub, CATALOGUE, USER, crossing=str(entry.id),
                                      before=entry.balance_after - entry.amount, after=entry.balance_after, now=now)

    def add(self, credits: int, now: datetime) -> None:
        with self.db.transaction() as conn:
            ledger.post(conn, user_id=USER, type="adjustment", amount=credits, reference=f"a{next(self.keys)}")

    def opt_in(self, **changes: object) -> autotopup.AutoTopup:
        values: dict[str, object] = {"enabled": True, "threshold": 100, "pack_id": "topup", "monthly_limit": 5_000}
        values.update(changes)
        with self.db.transaction() as conn:
            return autotopup.update(conn, USER, autotopup.Changes(**values), CATALOGUE, T0)  # type: ignore[arg-type]

    def save_card(self, card: str = "succeeds") -> None:
        """The first top-up: the normal Checkout with the opt-in, paid on the stub page with ``card``."""
        request = CheckoutRequest(order_id="ord_first", user_id=USER, user_email="u@example.test", pack=PACK,
                                  success_url="http://x/s", cancel_url="http://x/c", customer_id="cus_stub_u7",
                                  save_card=True)
        created = self.stub.create_checkout(request)
        now = utcnow()
        with self.db.transaction() as conn:
            orders.insert(conn, Order(
                id="ord_first", user_id=USER, pack_id=PACK.id, pack_name=PACK.name, credits=PACK.credits,
                amount=PACK.amount, currency=PACK.currency, provider="stub", session_id=created.id, checkout_url="",
                return_url=None, state=None, status=PENDING, payment_intent=None, amount_refunded=0,
                credits_clawed_back=0, created_at=now, updated_at=now))
        self.stub.pay(created.id, card)
        with self.db.transaction() as conn:
            assert fulfilment.apply_session(conn, self.stub.retrieve_session(created.id), source="test").outcome \
                == "granted"

    def balance(self) -> int:
        with self.db.read() as conn:
            return ledger.balance(conn, USER)

    def settings(self) -> autotopup.AutoTopup:
        with self.db.read() as conn:
            found = autotopup.load(conn, USER)
        assert found is not None
        return found

    def rows(self) -> list[autotopup.Topup]:
        with self.db.read() as conn:
            return list(reversed(autotopup.recent(conn, USER, 100)))

    def kinds(self) -> list[str]:
        with self.db.read() as conn:
            found, _ = alerts.page(conn, USER, unread_only=False, limit=100)
        return [a.kind for a in reversed(found) if a.kind.startswith("topup")]

    def undo(self, topup_id: str, now: datetime) -> autotopup.Undone:
        return autotopup.undo(self.db, self.stub, USER, topup_id, now)


@pytest.fixture
def rig(db: Database) -> Rig:
    with db.transaction() as conn:
        conn.execute(sa.insert(users).values(id=USER, email="u@example.test", password_hash="x", created_at=utcnow(),
                                             customer_id="cus_stub_u7"))
    return Rig(db, StubProvider(db, "http://127.0.0.1:1"))


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


# --- the rules, as a table --------------------------------------------------------------------------------------
# Each case: the settings, the card saved, the spends (amount, hours after T0), and what must follow: the top-ups'
# statuses, the balance, the alerts, whether auto top-up is still on and why not.

CASES = {
    # The first top-up's Checkout bought 500; 100 more: 600. A spend of 501 leaves 99: crossed, one top-up of 500.
    "a crossing tops up once": dict(
        spends=[(501, 0), (10, 0)], statuses=["succeeded"], balance=589, alerts=["topup_succeeded"], enabled=True),
    "a spend that stays at the threshold does nothing": dict(
        spends=[(500, 0)], statuses=[], balance=100, alerts=[], enabled=True),
    "below already when turned on: a further spend is not a crossing": dict(
        settings=dict(enabled=False), spends=[(550, 0), "enable", (10, 0)], statuses=[], balance=40, alerts=[],
        enabled=True),
    # A negative amount is credits added (an adjustment): the balance back above the threshold.
    "the day's count holds (1 a day); the next day tops up again": dict(
        settings=dict(max_per_day=1), spends=[(501, 0), (500, 1), (-500, 23), (500, 24)],
        statuses=["succeeded", "succeeded"], balance=599,
        alerts=["topup_succeeded", "topup_limit", "topup_succeeded"], enabled=True),
    "the monthly money limit holds (9.98: two packs of 4.99, not three)": dict(
        settings=dict(monthly_limit=998), spends=[(501, 0), (500, 1), (500, 2)], statuses=["succeeded", "succeeded"],
        balance=99, alerts=["topup_succeeded", "topup_succeeded", "topup_limit"], enabled=True),
    "notify-only charges nothing and says so once per crossing": dict(
        settings=dict(notify_only=True), spends=[(501, 0), (10, 0)], statuses=["notified"], balance=89,
        alerts=["topup_threshold"], enabled=True),
    "no saved card yet: a notice, nothing charged": dict(
        card=None, spends=[(501, 0)], statuses=["notified"], balance=99, alerts=["topup_threshold"], enabled=True),
    "a declined card turns it off and never retries": dict(
        card="declined", spends=[(501, 0), (50, 0), (-500, 1), (500, 1)], statuses=["failed"], balance=49,
        alerts=["topup_failed"], enabled=False, reason="card_declined"),
    "authentication required turns it off and never retries": dict(
        card="authentication", spends=[(501, 0), (50, 0)], statuses=["failed"], balance=49,
        alerts=["topup_failed"], enabled=False, reason="authentication_required"),
    "turned off: a crossing does nothing": dict(
        spends=["disable", (501, 0)], statuses=[], balance=99, alerts=[], enabled=False),
}


@pytest.mark.parametrize("name", list(CASES))
def test_auto_topup_rules(rig: Rig, name: str) -> None:
    case: dict[str, Any] = CASES[name]
    card = case.get("card", "succeeds")
    rig.opt_in(**case.get("settings", {}))
    if card is not None:
        rig.save_card(card)
    else:
        with rig.db.transaction() as conn:
            ledger.post(conn, user_id=USER, type="purchase", amount=500, reference="cs_bought")
    rig.add(100, T0)
    for step in case["spends"]:
        if step == "enable":
            rig.opt_in()
        elif step == "disable":
            with rig.db.transaction() as conn:
                autotopup.update(conn, USER, autotopup.Changes(enabled=False), CATALOGUE, T0)
        elif step[0] < 0:
            rig.add(-step[0], at(step[1]))
        else:
            rig.spend(step[0], at(step[1]))
    assert [t.status for t in rig.rows()] == case["statuses"]
    assert rig.kinds() == case["alerts"]
    assert rig.settings().enabled is case["enabled"]
    assert rig.settings().disabled_reason == case.get("reason")
    assert rig.balance() == case["balance"]


def test_the_failure_alert_says_how_to_fix_it_and_turning_it_on_is_the_users(rig: Rig) -> None:
    rig.opt_in()
    rig.save_card("authentication")
    rig.spend(401)
    with rig.db.read() as conn:
        [alert] = [a for a in alerts.page(conn, USER, unread_only=False, limit=50)[0] if a.kind == "topup_failed"]
    assert alert.data["fix"] == {"action": "buy", "packId": "topup", "saveCard": True}
    assert "Nothing was charged" in alert.message and "auto top-up is now off" in alert.message
    # The fix names the app's button: a plain Buy would not save the card the next top-up charges.
    assert "buy the pack once with your card saved (Auto top-up, Buy and save card)" in alert.message
    rig.spend(1)  # nothing turns it on, nothing retries
    assert not rig.settings().enabled and len(rig.rows()) == 1
    rig.opt_in()  # the user does
    assert rig.settings().enabled and rig.settings().disabled_reason is None


def test_bad_settings_are_refused_and_change_nothing(rig: Rig) -> None:
    with pytest.raises(InvalidAutoTopup):
        rig.opt_in(monthly_limit=498)  # below one pack's 4.99
    with pytest.raises(InvalidAutoTopup):
        rig.opt_in(pack_id="nope")
    with pytest.raises(InvalidAutoTopup), rig.db.transaction() as conn:
        autotopup.update(conn, USER, autotopup.Changes(enabled=False), CATALOGUE, T0)
    with rig.db.read() as conn:
        assert autotopup.load(conn, USER) is None


# --- exactly once ------------------------------------------------------------------------------------------------


def test_the_payment_told_twice_in_either_order_grants_once(rig: Rig) -> None:
    rig.opt_in()
    rig.save_card()
    with rig.db.transaction() as conn:
        started = autotopup.start(conn, USER, crossing="x1", before=100, after=99, catalogue=CATALOGUE, now=T0)
    assert started is not None and started.topup.status == "in_flight"
    state = PaymentIntentState("pi_stub_" + started.topup.id, "succeeded", 499, "usd",
                               autotopup.charge_of(started, "cus_stub_u7", "pm_stub_card_succeeds").metadata)
    before = rig.balance()
    for source in ("webhook", "charge", "webhook", "webhook"):
        with rig.db.transaction() as conn:
            assert autotopup.record(conn, started.topup.id, state, T0, source=source).status == "succeeded"
    assert rig.balance() == before + 500
    assert rig.kinds() == ["topup_succeeded"]
    with rig.db.read() as conn:
        # One announcement (its own, with Undo; no purchase_confirmed), and a history line that says it was automatic.
        about = [a.kind for a in alerts.page(conn, USER, unread_only=False, limit=100)[0]
                 if a.data.get("orderId") == started.topup.order_id]
        assert about == ["topup_succeeded"]
        newest = ledger.history(conn, USER, limit=1)[0][0]
    assert (newest.type, newest.amount, newest.description) == ("purchase", 500, "Auto top-up: Top-up pack")
    # A late decline of a paid top-up changes nothing.
    with rig.db.transaction() as conn:
        autotopup.record(conn, started.topup.id, PaymentIntentState(state.id, "failed", 499, "usd", {}), T0,
                         source="webhook")
    assert rig.settings().enabled and rig.balance() == before + 500


# --- Undo --------------------------------------------------------------------------------------------------------


def paid_topup(rig: Rig) -> autotopup.Topup:
    """Bought 500 and added 100; 501 spent: the top-up, paid at T0. The balance is 599."""
    rig.opt_in()
    rig.save_card()
    rig.add(100, T0)
    topup = rig.spend(501)
    assert topup is not None and topup.status == "succeeded"
    return topup


@pytest.fixture
def funded(rig: Rig) -> Rig:
    return rig


UNDO_CASES = [
    # (spent after the top-up, hours after it was paid, refund in cents, credits taken back, or the refusal)
    (0, 0, 499, 500, None),
    (0, 23.99, 499, 500, None),
    # Spends take the 99 credits the user had before the top-up first (paid grants, oldest first), then its own.
    (37, 1, 499, 500, None),  # all 37 from the older credits: the whole top-up is unspent
    (99 + 37, 1, 463, 463, None),  # 463 of 500 left: floor(500 * 463 / 499) = 463; 464 cents would take 464
    (99 + 499, 2, 1, 1, None),  # 1 credit left: 1 cent gives floor(500 * 1 / 499) = 1 back
    (99 + 500, 2, 0, 0, NothingToUndo),  # every credit of it spent
    (0, 24, 0, 0, UndoExpired),
    (0, 30, 0, 0, UndoExpired),
]


@pytest.mark.parametrize(("spent", "hours", "refund", "taken", "refusal"), UNDO_CASES)
def test_undo(funded: Rig, spent: int, hours: float, refund: int, taken: int, refusal: type[Exception] | None) -> None:
    rig = funded
    topup = paid_topup(rig)
    if spent:
        entry = spending.spend(rig.db, USER, spending.SpendRequest(spent, "after"), now=at(0.5))
        assert entry.balance_after == 599 - spent
    before = rig.balance()
    if refusal is not None:
        with pytest.raises(refusal):
            rig.undo(topup.id, at(hours))
        assert rig.balance() == before and rig.rows()[-1].status == "succeeded"
        return
    done = rig.undo(topup.id, at(hours))
    assert (done.refunded, done.credits, done.balance) == (refund, taken, before - taken)
    assert rig.rows()[-1].status == "undone"
    with rig.db.read() as conn:
        order = orders.by_id(conn, topup.order_id or "")
    assert order is not None and (order.amount_refunded, order.credits_clawed_back) == (refund, taken)
    # Once: a second Undo is refused and moves nothing.
    with pytest.raises(TopupNotUndoable):
        rig.undo(topup.id, at(hours))
    assert rig.balance() == before - taken
    assert rig.kinds()[-1] == "topup_undone"
    # The alert says the refund as money, as the user's card statement will: 463 cents is 4.63 USD.
    with rig.db.read() as conn:
        found, _ = alerts.page(conn, USER, unread_only=False, limit=1)
    assert f"{refund // 100}.{refund % 100:02d} USD refunded to your card" in found[0].message


def test_undo_of_someone_elses_or_unknown_topup_is_refused(funded: Rig) -> None:
    topup = paid_topup(funded)
    with pytest.raises(UnknownTopup):
        autotopup.undo(funded.db, funded.stub, USER + 1, topup.id, T0)
    with pytest.raises(UnknownTopup):
        funded.undo("tu_nope", T0)


@pytest.mark.parametrize(("credits", "amount", "left", "refund"), [
    (500, 499, 500, 499), (500, 499, 463, 463), (500, 499, 1, 1), (100, 499, 33, 169), (100, 499, 99, 498),
    (1_000, 499, 3, 1), (7, 1_000, 5, 857),
])
def test_the_refund_never_takes_back_more_than_is_left(credits: int, amount: int, left: int, refund: int) -> None:
    assert autotopup.refund_for(credits=credits, amount=amount, unspent_credits=left) == refund
    assert credits * refund // amount <= left
    if refund < amount:  # one cent more would take too much
        assert credits * (refund + 1) // amount > left


# --- races, over two replicas ------------------------------------------------------------------------------------


@pytest.mark.parametrize("replicas", [1, 2])
def test_racing_starts_make_one_topup_per_crossing_and_one_in_flight(rig: Rig, replica: Database,
                                                                     replicas: int) -> None:
    rig.opt_in()
    rig.save_card()

    def start(i: int) -> autotopup.Started | None:
        on = replica if replicas == 2 and i % 2 else rig.db
        with on.transaction() as conn:  # the same crossing, and crossings of their own
            return autotopup.start(conn, USER, crossing="same" if i < 4 else f"c{i}", before=100, after=99,
                                   catalogue=CATALOGUE, now=T0)

    started = [s for s in all_at_once(8, start) if s is not None]
    assert len(started) == 1, started
    assert [t.status for t in rig.rows()] == ["in_flight"]


@pytest.mark.parametrize("replicas", [1, 2])
def test_two_spends_crossing_at_once_start_one_topup(rig: Rig, replica: Database, replicas: int) -> None:
    rig.opt_in()
    rig.save_card()  # 500

    def spend(i: int) -> autotopup.Topup | None:
        on = replica if replicas == 2 and i % 2 else rig.db
        entry = spending.spend(on, USER, spending.SpendRequest(201, f"r{i}"), now=T0)
        return autotopup.after_change(on, rig.stub, CATALOGUE, USER, crossing=str(entry.id),
                                      before=entry.balance_after - entry.amount, after=entry.balance_after, now=T0)

    results = all_at_once(2, spend)
    assert [t.status for t in rig.rows()] == ["succeeded"], results
    assert rig.balance() == 500 - 402 + 500


@pytest.mark.parametrize("replicas", [1, 2])
def test_a_topup_racing_spends_keeps_the_ledger_exact(rig: Rig, replica: Database, replicas: int) -> None:
    rig.opt_in()
    rig.save_card()
    with rig.db.transaction() as conn:
        started = autotopup.start(conn, USER, crossing="x", before=100, after=99, catalogue=CATALOGUE, now=T0)
    assert started is not None

    def act(i: int) -> object:
        on = replica if replicas == 2 and i % 2 else rig.db
        if i % 4 == 0:
            return autotopup.charge(on, rig.stub, started, T0).status
        return spending.spend(on, USER, spending.SpendRequest(13, f"s{i}"), now=T0).balance_after

    outcomes = all_at_once(12, act)
    assert outcomes.count("succeeded") == 3, outcomes
    spends = sum(1 for o in outcomes if isinstance(o, int))
    assert rig.balance() == 500 + 500 - 13 * spends
    with rig.db.read() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(topups)).scalar_one() == 1
        assert ledger.check_invariants(conn) == []


def test_a_charge_left_in_flight_is_asked_about_again_once_stale_never_twice(rig: Rig) -> None:
    """The provider could not be reached (or the process stopped) after the row was written: reconcile asks again
    with the same key once the charge is two minutes old, and a fresh one is left to its own thread."""
    rig.opt_in()
    rig.save_card()
    with rig.db.transaction() as conn:
        started = autotopup.start(conn, USER, crossing="lost", before=100, after=99, catalogue=CATALOGUE, now=T0)
    assert started is not None
    assert autotopup.resume_stale(rig.db, rig.stub, at(1 / 60)) == 0
    assert [t.status for t in rig.rows()] == ["in_flight"]
    before = rig.balance()
    assert autotopup.resume_stale(rig.db, rig.stub, at(3 / 60)) == 1
    assert [t.status for t in rig.rows()] == ["succeeded"] and rig.balance() == before + 500
    assert autotopup.resume_stale(rig.db, rig.stub, at(1)) == 0


class Unreachable(StubProvider):
    """The stub, with its refunds out of reach until told otherwise (a real provider's outage, not a mock of ours)."""

    down = True

    def refund(self, payment_intent: str, amount: int, idempotency_key: str) -> dict[str, Any]:
        if self.down:
            raise PaymentProviderUnavailable("no answer")
        return super().refund(payment_intent, amount, idempotency_key)


def test_an_undo_whose_refund_did_not_get_through_is_asked_again_with_the_same_refund(db: Database,
                                                                                      funded: Rig) -> None:
    topup = paid_topup(funded)
    spending.spend(funded.db, USER, spending.SpendRequest(99 + 37, "after"), now=at(0.5))  # 37 of the top-up's
    provider = Unreachable(funded.db, "http://127.0.0.1:1")
    with pytest.raises(PaymentProviderUnavailable):
        autotopup.undo(funded.db, provider, USER, topup.id, at(1))
    assert funded.rows()[-1].status == "undoing" and funded.balance() == 463  # nothing taken yet
    with funded.db.read() as conn:
        assert autotopup.status(conn, USER, at(30))["topups"][0]["undoable"]  # still offered, past 24 h too
    spending.spend(funded.db, USER, spending.SpendRequest(100, "more"), now=at(2))  # spent meanwhile
    provider.down = False
    done = autotopup.undo(funded.db, provider, USER, topup.id, at(30))
    # The refund is the one first asked for (Stripe holds the key to its amount): what was spent meanwhile is clawed
    # back by the refund rule, below zero if need be, as for any refund.
    assert (done.refunded, done.credits, done.balance) == (463, 463, 463 - 100 - 463)
