"""A payment's grant and its refunds and disputes handled at the same moment, on both engines, in one process
and over two replicas: each finds what the other committed, so the credits are clawed back exactly once.

On PostgreSQL the grant finds its order by the Checkout Session and only then writes the payment intent
on it, while a refund finds the order by the payment intent: before the payment's lock, a refund handled
while the grant was not yet committed was only kept, and nothing clawed the credits back.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from backend import fulfilment
from backend.db import Database
from backend.payments.base import SessionState
from tests.helpers.concurrency import all_at_once
from tests.helpers.payments import (
    Purchase,
    charge_refunded_event,
    dispute_event,
    new_order,
    refund_event,
    session_event,
)

ROUNDS = 12


def _verify(db: Database, p: Purchase) -> str:
    """The grant as verify-payment and the success page make it: from the session Stripe answers."""
    session = SessionState.from_stripe(session_event(p)["data"]["object"])
    with db.transaction() as conn:
        return fulfilment.apply_session(conn, session, source="verify").outcome


NEWS: dict[str, Callable[[Purchase], dict[str, Any]]] = {
    "refund": lambda p: refund_event(p, "re_" + p.order_id, p.amount, "succeeded", "refund.created"),
    "charge_refunded": lambda p: charge_refunded_event(p, p.amount),
    "dispute": lambda p: dispute_event(p, "dp_" + p.order_id, p.amount, "needs_response", "charge.dispute.created"),
}
FINAL_STATUS = {"refund": "refunded", "charge_refunded": "refunded", "dispute": "disputed"}


@pytest.mark.parametrize("news", NEWS)
@pytest.mark.parametrize("grant", ["webhook", "verify"])
@pytest.mark.parametrize("replicas", [1, 2])
def test_a_full_refund_or_dispute_racing_the_grant_takes_every_credit_back(
    db: Database, replica: Database, news: str, grant: str, replicas: int
) -> None:
    granting = db
    clawing = replica if replicas == 2 else db
    kept = []
    for _ in range(ROUNDS):
        p = new_order(db, credits=333, amount=1000)
        paid = session_event(p)
        taken = NEWS[news](p)

        def run(i: int, p: Purchase = p, paid: dict[str, Any] = paid, taken: dict[str, Any] = taken) -> str:
            if i == 1:
                return Purchase.apply(_on(p, clawing), taken)
            if grant == "verify":
                return _verify(granting, p)
            return Purchase.apply(_on(p, granting), paid)

        outcomes = all_at_once(2, run)
        assert not [o for o in outcomes if isinstance(o, BaseException)], outcomes
        if p.balance() != 0 or p.order().status != FINAL_STATUS[news]:
            kept.append((p.order_id, outcomes, p.balance(), p.order().status))
        assert p.entries()[0] == ("purchase", 333, p.session_id)  # granted once, taken back once
        assert sum(amount for _, amount, _ in p.entries()) == p.balance()
    assert kept == [], f"credits kept in {len(kept)} of {ROUNDS} purchases: {kept[:3]}"


def _on(p: Purchase, db: Database) -> Purchase:
    """The same purchase seen through another replica's database."""
    return Purchase(db, p.order_id, p.session_id, p.user_id, p.payment_intent, p.charge_id, p.credits, p.amount,
                    p.currency)
