"""In-process payments for fast tests: a migrated database, paid orders, and Stripe-shaped events.

The events are built from Stripe's own example objects (the fixtures the test Stripe server uses) with
the fields fulfilment reads set, and go through the backend's real webhook path
(:func:`backend.webhooks.process_event`) without HTTP: each test runs in milliseconds.
"""

from __future__ import annotations

import itertools
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from backend import ledger, orders, webhooks
from backend.db import Database, utcnow
from backend.order_status import PENDING
from backend.orders import Order
from backend.schema import users
from tests.helpers.sqlite_template import migrated_copy
from tests.helpers.stripe_server import fixture, new_id

_clock = itertools.count(1_800_000_000)
_users = itertools.count(1)


def database(path: Path) -> Database:
    return Database(migrated_copy(path))


@dataclass
class Purchase:
    """An order and the Stripe ids of its payment."""

    db: Database
    order_id: str
    session_id: str
    user_id: int
    payment_intent: str
    charge_id: str
    credits: int
    amount: int
    currency: str

    def order(self) -> Order:
        with self.db.read() as conn:
            found = orders.by_id(conn, self.order_id)
        assert found is not None
        return found

    def balance(self) -> int:
        with self.db.read() as conn:
            return ledger.balance(conn, self.user_id)

    def entries(self) -> list[tuple[str, int, str]]:
        """(type, amount, reference) of the user's entries, oldest first."""
        with self.db.read() as conn:
            found = ledger.history(conn, self.user_id, limit=10_000)[0]
        return [(e.type, e.amount, e.reference) for e in reversed(found)]

    def apply(self, event: dict[str, Any], *, livemode: bool = False) -> str:
        return webhooks.process_event(self.db, event, livemode=livemode).outcome


def new_order(db: Database, *, credits: int = 333, amount: int = 1000, currency: str = "usd") -> Purchase:
    """A pending order for a new user, as start_checkout leaves it."""
    with db.transaction() as conn:
        user_id = conn.execute(users.insert().values(
            email=f"user{next(_users)}-{secrets.token_hex(4)}@example.com", password_hash="-", created_at=utcnow(),
        ).returning(users.c.id)).scalar_one()
        now = utcnow()
        order = Order(
            id="ord_" + secrets.token_hex(12), user_id=user_id, pack_id="odd", pack_name="Odd", credits=credits,
            amount=amount, currency=currency, provider="stripe", session_id=new_id("cs_test_"),
            checkout_url="https://checkout.stripe.com/c/pay/x", return_url=None, state=None, status=PENDING,
            payment_intent=None, amount_refunded=0, credits_clawed_back=0, created_at=now, updated_at=now,
        )
        orders.insert(conn, order)
    return Purchase(db, order.id, order.session_id, user_id, new_id("pi_"), new_id("ch_"), credits, amount,
                    currency)


def paid_order(db: Database, **kwargs: Any) -> Purchase:
    purchase = new_order(db, **kwargs)
    assert purchase.apply(session_event(purchase)) == "granted"
    return purchase


def event(type: str, obj: dict[str, Any], *, livemode: bool = False, created: int | None = None) -> dict[str, Any]:
    shape = fixture("event")
    shape.update(id=new_id("evt_"), type=type, livemode=livemode, created=created or next(_clock),
                 data={"object": obj})
    return shape


def session_event(p: Purchase, type: str = "checkout.session.completed", *, paid: bool = True,
                  status: str = "complete", **kwargs: Any) -> dict[str, Any]:
    session = fixture("checkout.session")
    session.update(
        id=p.session_id, status=status, payment_status="paid" if paid else "unpaid", amount_total=p.amount,
        amount_subtotal=p.amount, total_details={"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0},
        currency=p.currency, client_reference_id=str(p.user_id), payment_intent=p.payment_intent if paid else None,
        metadata={"userId": str(p.user_id), "packId": "odd", "credits": str(p.credits), "orderId": p.order_id,
                  "type": "credit_purchase"},
    )
    return event(type, session, **kwargs)


def refund_event(p: Purchase, refund_id: str, amount: int, status: str, type: str = "refund.updated", *,
                 currency: str | None = None, **kwargs: Any) -> dict[str, Any]:
    refund = fixture("refund")
    refund.update(id=refund_id, amount=amount, status=status, currency=currency or p.currency,
                  payment_intent=p.payment_intent, charge=p.charge_id)
    return event(type, refund, **kwargs)


def charge_refunded_event(p: Purchase, amount_refunded: int, **kwargs: Any) -> dict[str, Any]:
    charge = fixture("charge")
    charge.update(id=p.charge_id, amount=p.amount, amount_refunded=amount_refunded, currency=p.currency,
                  payment_intent=p.payment_intent, refunded=amount_refunded >= p.amount)
    charge.pop("refunds", None)  # not expanded since API version 2022-11-15
    return event("charge.refunded", charge, **kwargs)


def dispute_event(p: Purchase, dispute_id: str, amount: int, status: str, type: str = "charge.dispute.updated", *,
                  currency: str | None = None, **kwargs: Any) -> dict[str, Any]:
    dispute = fixture("dispute")
    dispute.update(id=dispute_id, amount=amount, status=status, currency=currency or p.currency,
                   payment_intent=p.payment_intent, charge=p.charge_id)
    return event(type, dispute, **kwargs)
