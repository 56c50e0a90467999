"""Fulfilment: turning a paid Checkout Session into credits, exactly once.

One path for every way we learn of a payment: the webhook, ``verify-payment`` and the success
page. Each call runs inside one ``BEGIN IMMEDIATE`` transaction, so concurrent calls for the same
session queue up and all but the first find the order already paid. The ledger's unique
reference (the session id) is a second guard.

Refunds claw back credits in proportion to the share of the amount refunded, computed from the
cumulative refunded amount, so partial refunds add up and a repeated event claws back nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import Connection, case, select

from backend import alerts, ledger, orders
from backend.db import insert_ignoring_duplicates, utcnow
from backend.orders import CANCELLED, EXPIRED, FAILED, PAID, PENDING, REFUNDED, Order
from backend.payments.base import PURCHASE_TYPE, SessionState
from backend.schema import payment_refunds

log = logging.getLogger("creditdesk.payments")

GRANTED = "granted"
ALREADY_GRANTED = "already_granted"
NOT_PAID = "not_paid"
REFUSED = "refused"
UNKNOWN_ORDER = "unknown_order"


@dataclass(frozen=True)
class Result:
    outcome: str
    order: Order | None


def mismatches(order: Order, session: SessionState) -> list[str]:
    """Why this session cannot pay for this order (empty when it can)."""
    meta = session.metadata
    expected = {
        "metadata.type": (meta.get("type"), PURCHASE_TYPE),
        "metadata.orderId": (meta.get("orderId"), order.id),
        "metadata.userId": (meta.get("userId"), str(order.user_id)),
        "metadata.packId": (meta.get("packId"), order.pack_id),
        "metadata.credits": (meta.get("credits"), str(order.credits)),
        "client_reference_id": (session.client_reference_id, str(order.user_id)),
        "amount_total": (session.amount_total, order.amount),
        "currency": (session.currency, order.currency),
    }
    return [name for name, (seen, wanted) in expected.items() if seen != wanted]


def apply_session(conn: Connection, session: SessionState, *, source: str) -> Result:
    """Bring the order up to date with the session: grant if paid, note expiry. Inside a transaction."""
    order = orders.by_session(conn, session.id, lock=True)
    if order is None:
        log.warning("payment session=%s source=%s outcome=refused reason=unknown_order", session.id, source)
        return Result(UNKNOWN_ORDER, None)
    problems = mismatches(order, session)
    if problems:
        log.warning(
            "payment order=%s session=%s user=%s source=%s outcome=refused reason=mismatch fields=%s",
            order.id, session.id, order.user_id, source, ",".join(problems),
        )
        return Result(REFUSED, order)
    if session.is_paid:
        if order.status in (PAID, REFUNDED):
            return Result(ALREADY_GRANTED, order)
        entry = ledger.post(
            conn, user_id=order.user_id, type="purchase", amount=order.credits, reference=session.id,
            description=f"{order.pack_name} pack",
        )
        orders.update(conn, order.id, status=PAID, payment_intent=session.payment_intent)
        old_status = order.status
        order = orders.by_id(conn, order.id)
        assert order is not None
        alerts.on_order_status(conn, order, old_status, PAID)
        if entry is None:  # the ledger already had it: the order row had lagged behind
            return Result(ALREADY_GRANTED, order)
        log.info(
            "payment order=%s session=%s user=%s source=%s outcome=granted credits=%d",
            order.id, session.id, order.user_id, source, order.credits,
        )
        _apply_refunds(conn, order)
        return Result(GRANTED, orders.by_id(conn, order.id))
    if session.status == "expired" and orders.set_status_if(conn, order, EXPIRED, when={PENDING}):
        alerts.on_order_status(conn, order, order.status, EXPIRED)
        log.info("payment order=%s session=%s user=%s source=%s outcome=expired",
                 order.id, session.id, order.user_id, source)
        return Result(EXPIRED, orders.by_id(conn, order.id))
    return Result(NOT_PAID, order)


def mark_failed(conn: Connection, session: SessionState, *, source: str) -> Result:
    """A delayed payment method failed: the order will not be paid."""
    order = orders.by_session(conn, session.id, lock=True)
    if order is None or mismatches(order, session):
        return Result(UNKNOWN_ORDER if order is None else REFUSED, order)
    if orders.set_status_if(conn, order, FAILED, when={PENDING, CANCELLED}):
        alerts.on_order_status(conn, order, order.status, FAILED)
        log.info("payment order=%s session=%s user=%s source=%s outcome=failed",
                 order.id, session.id, order.user_id, source)
        return Result(FAILED, orders.by_id(conn, order.id))
    return Result(NOT_PAID, order)


def mark_cancelled(conn: Connection, order: Order) -> Order:
    """The customer left Checkout without paying."""
    orders.set_status_if(conn, order, CANCELLED, when={PENDING})
    updated = orders.by_id(conn, order.id)
    assert updated is not None
    return updated


def record_refund(conn: Connection, *, payment_intent: str, charge_id: str, amount_refunded: int) -> str:
    """Note Stripe's cumulative refunded amount for a payment and claw back what it newly covers."""
    now = utcnow()
    if not insert_ignoring_duplicates(conn, payment_refunds, {
        "payment_intent": payment_intent, "charge_id": charge_id, "amount_refunded": amount_refunded, "updated_at": now,
    }):
        r = payment_refunds.c
        conn.execute(
            payment_refunds.update().where(r.payment_intent == payment_intent).values(
                amount_refunded=case((r.amount_refunded < amount_refunded, amount_refunded), else_=r.amount_refunded),
                updated_at=now,
            )
        )
    order = orders.by_payment_intent(conn, payment_intent, lock=True)
    if order is None:
        # The refund may come before the payment's own event: kept above, applied on fulfilment.
        log.info("payment payment_intent=%s outcome=refund_recorded_without_order", payment_intent)
        return "refund_unmatched"
    return _apply_refunds(conn, order)


def _apply_refunds(conn: Connection, order: Order) -> str:
    if not order.payment_intent or order.status not in (PAID, REFUNDED):
        return "no_refund"
    recorded = conn.execute(
        select(payment_refunds.c.amount_refunded).where(payment_refunds.c.payment_intent == order.payment_intent)
    ).scalar()
    refunded = min(recorded, order.amount) if recorded is not None else 0
    target = order.credits * refunded // order.amount
    delta = target - order.credits_clawed_back
    if delta <= 0:
        return "refund_already_applied" if refunded else "no_refund"
    ledger.post(
        conn, user_id=order.user_id, type="refund", amount=-delta,
        reference=f"{order.payment_intent}:{refunded}",
        description=f"Refund of {order.pack_name} pack ({refunded} of {order.amount} {order.currency.upper()})",
    )
    orders.update(
        conn, order.id, amount_refunded=refunded, credits_clawed_back=target,
        status=REFUNDED if refunded >= order.amount else order.status,
    )
    log.info(
        "payment order=%s session=%s user=%s outcome=clawed_back credits=%d refunded=%d",
        order.id, order.session_id, order.user_id, delta, refunded,
    )
    return "clawed_back"
