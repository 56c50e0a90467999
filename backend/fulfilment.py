"""Fulfilment: turning a paid Checkout Session into credits, exactly once, and keeping the order's
status true to what the provider says afterwards.

One path for every way we learn of a payment: the webhook, reconcile, ``verify-payment``, the
success and cancel pages and the stub checkout. Each call runs inside one write transaction that
holds the order's row, so concurrent calls for the same session queue up and all but the first find
the order already paid; the ledger's unique reference (the session id) is a second guard. Every
status change goes through :mod:`backend.order_status`; refunds and disputes through
:mod:`backend.clawbacks`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy import Connection

from backend import alerts, clawbacks, ledger, metrics, orders, prepared, topup_cards
from backend.order_status import AFTER_PAYMENT, PAID, Happening, next_status
from backend.orders import Order
from backend.outcomes import Outcome
from backend.payments.base import PURCHASE_TYPE, SessionState

log = logging.getLogger("creditdesk.payments")


@dataclass(frozen=True)
class Result:
    outcome: str  # an Outcome, or the order's new status where only its status moved
    order: Order | None
    detail: str = ""


def mismatches(order: Order, session: SessionState) -> list[str]:
    """Why this session cannot pay for this order (empty when it can).

    The money rule: the session's subtotal (its line items at their list price) is the pack's price, in the
    order's currency. Its total may differ, by a promotion code's discount or by exclusive tax: the credits
    granted are the pack's whatever was paid, and the order keeps the total, discount and tax. (A session
    without a subtotal, in an older shape, must total the pack's price.)"""
    meta = session.metadata
    price = ("amount_subtotal", session.amount_subtotal) if session.amount_subtotal is not None else (
        "amount_total", session.amount_total)
    expected = {
        "metadata.type": (meta.get("type"), PURCHASE_TYPE),
        "metadata.orderId": (meta.get("orderId"), order.id),
        "metadata.userId": (meta.get("userId"), str(order.user_id)),
        "metadata.packId": (meta.get("packId"), order.pack_id),
        "metadata.credits": (meta.get("credits"), str(order.credits)),
        "client_reference_id": (session.client_reference_id, str(order.user_id)),
        price[0]: (price[1], order.amount),
        "currency": (session.currency, order.currency),
    }
    return [name for name, (seen, wanted) in expected.items() if seen != wanted]


def _order_for(conn: Connection, session: SessionState, source: str) -> Result | tuple[Order, str | None]:
    """The session's order, locked, and its buyer's billing details as a payment keeps them; or why not."""
    found = orders.to_pay(conn, session.id)
    if found is None:
        log.warning("payment session=%s source=%s outcome=refused reason=unknown_order", session.id, source)
        return Result(Outcome.UNKNOWN_ORDER, None, "no order has this Checkout Session")
    order = found[0]
    problems = mismatches(order, session)
    if problems:
        log.warning(
            "payment order=%s session=%s user=%s source=%s outcome=refused reason=mismatch fields=%s",
            order.id, session.id, order.user_id, source, ",".join(problems),
        )
        detail = f"the session does not match the order: {', '.join(problems)}"
        refusal = f"paid but refused: {detail}"
        if session.is_paid and order.status not in AFTER_PAYMENT and order.refusal != refusal:
            # Money was taken and no credits given: the order says why, for support (`user`), and reconcile
            # keeps it as it is rather than letting it lapse.
            order = orders.update(conn, order.id, refusal=refusal)
        return Result(Outcome.REFUSED, order, detail)
    return found


def apply_session(conn: Connection, session: SessionState, *, source: str, logged_by_caller: bool = False) -> Result:
    """Bring the order up to date with the session: grant if paid, note expiry. Inside a transaction.

    A grant or a move of the status is logged here, one line, unless ``logged_by_caller`` (an event's own line,
    :func:`backend.webhooks.process_event`, says the outcome with the order, its user and credits); a refusal
    is logged here always."""
    found = _order_for(conn, session, source)
    if isinstance(found, Result):
        return found
    order, billing = found
    if session.is_paid:
        return _grant(conn, order, billing, session, source, logged_by_caller)
    if session.status == "expired":
        return move(conn, order, Happening.SESSION_EXPIRED, source=source, logged_by_caller=logged_by_caller)
    return Result(Outcome.NOT_PAID, order)


def mark_failed(conn: Connection, session: SessionState, *, source: str, logged_by_caller: bool = False) -> Result:
    """A delayed payment method failed: the order will not be paid."""
    found = _order_for(conn, session, source)
    if isinstance(found, Result):
        return found
    return move(conn, found[0], Happening.PAYMENT_FAILED, source=source, logged_by_caller=logged_by_caller)


def mark_cancelled(conn: Connection, order: Order, *, source: str) -> Result:
    """The customer left Checkout, or cancelled the purchase in the app."""
    return move(conn, order, Happening.CUSTOMER_CANCELLED, source=source)


def move(
    conn: Connection, order: Order, happening: Happening, *, source: str, logged_by_caller: bool = False
) -> Result:
    """Apply a happening that moves the status only (no money): the state machine decides."""
    status = next_status(order.status, happening)
    if status is None:
        return Result(Outcome.NO_CHANGE, order)
    updated = orders.update(conn, order.id, status=status)
    if not logged_by_caller:
        log.info("payment order=%s session=%s user=%s source=%s outcome=%s from=%s",
                 order.id, order.session_id, order.user_id, source, status, order.status)
    alerts.on_order_status(conn, updated, order.status, status)
    return Result(status, updated)


# The order paid, answering whether its payment has refunds or disputes to settle (most have none: then they are
# not read).
_PAY = prepared.hot("an order paid", orders.updating(clawbacks.news_of(sa.bindparam("news_of"))))


def _grant(conn: Connection, order: Order, billing: str | None, session: SessionState, source: str,
           logged_by_caller: bool) -> Result:
    if order.status in AFTER_PAYMENT:
        if session.invoice and order.invoice_id is None:  # the invoice was made after the event that paid it
            order = orders.update(conn, order.id, invoice_id=session.invoice)
        return Result(Outcome.ALREADY_GRANTED, order)
    assert next_status(order.status, Happening.SESSION_PAID) == PAID  # money wins from every unpaid status
    if session.payment_intent:
        # Before the refunds and disputes of this payment are read (below), and before the order names the
        # payment: a refund handled meanwhile on another connection either committed already or waits.
        clawbacks.lock_payment(conn, session.payment_intent)
    entry = ledger.post(
        conn, user_id=order.user_id, type="purchase", amount=order.credits, reference=session.id,
        # An auto top-up's credits say so in the history and the CSV: bought without the user at the keyboard.
        description=f"Auto top-up: {order.pack_name} pack" if order.provider == "auto_topup" else
        f"{order.pack_name} pack",
    )
    # The buyer's billing details as the order's row was read (locked) in this transaction: the receipt's copy.
    paid, answered = orders.update_answering(
        conn, _PAY, order, {"news_of": session.payment_intent}, status=PAID, payment_intent=session.payment_intent,
        amount_paid=session.amount_total, amount_discount=session.amount_discount, amount_tax=session.amount_tax,
        refusal=None, invoice_id=session.invoice, promotion_code=session.promotion_code, tax_rate=session.tax_rate,
        tax_name=session.tax_name, billing_details=billing)
    alerts.on_order_status(conn, paid, order.status, PAID)
    if topup_cards.saves_card(session):  # auto top-up's first Checkout: its card pays the top-ups that follow
        topup_cards.remember(conn, order.user_id, session)
    if entry is None:  # the ledger already had it: the order row had lagged behind
        return Result(Outcome.ALREADY_GRANTED, paid)
    if not logged_by_caller:
        log.info("payment order=%s session=%s user=%s source=%s outcome=granted credits=%d",
                 paid.id, session.id, paid.user_id, source, paid.credits)
    metrics.credits_moved(Outcome.GRANTED, paid.credits)
    # Refunds or disputes may have arrived before the payment's own event: apply them now.
    cause = clawbacks.latest_cause(conn, paid.payment_intent) if paid.payment_intent and answered[
        "clawback_news"] else None
    if cause is not None:
        paid = clawbacks.settle(conn, paid, cause).order
    return Result(Outcome.GRANTED, paid)
