"""Stripe's invoices of paid checkouts: where each opens (its hosted page and PDF), kept on the order.

Checkout makes an invoice for a payment when the session asks for one (``invoice_creation``); the session names it
once complete, and fulfilment keeps that id on the order in the transaction that grants the credits. Its links are
read from Stripe afterwards, never inside fulfilment: a paid order must not wait on, or fail with, a second call to
Stripe. They are read

* just after the webhook that paid the order has been answered (:func:`fill_order`, a background task of the route);
* by every reconcile, for the orders paid in its window that still lack them (:func:`fill_missing`): a read that
  failed, or an invoice still a draft then, is filled later.

Reading the invoice by its id (``GET /v1/invoices/{id}``) rather than listening to ``invoice.paid`` or
``invoice.finalized``: the webhook endpoint's events stay those it has (an endpoint made by ``stripe-setup`` needs
no change), the order already names its invoice (so an invoice event arriving before the session's has no order to
go to), and the answer is at the pinned API version. Links are written once: the first read wins and a second one
(a duplicated event, reconcile at the same time) changes nothing. Until then the receipt is the backend's own page.

The receipt's names for a discount and a tax (the promotion code the buyer entered, the tax rate's name and
percentage) are read the same way, just after the webhook's answer (:func:`fill_names`): Stripe's event names a
promotion code by its id only and carries no tax breakdown, and the session read with them expanded
(StripeProvider.retrieve_session) gives both. A name already kept is never changed; a read that fails leaves the
receipt saying "Discount" and "Tax" without them (the amounts are the payment's either way).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import sqlalchemy as sa
from anyio import to_thread
from sqlalchemy import Connection

from backend.db import Database
from backend.errors import PaymentProviderError
from backend.order_status import AFTER_PAYMENT
from backend.payments.base import InvoiceLinks, SessionState
from backend.schema import orders
from backend.services import Services

log = logging.getLogger("creditdesk.payments")

# At most this many invoices are read in one reconcile (one Stripe call each); the next run goes on.
FILL_LIMIT = 200

InvoiceLookup = Callable[[str], "InvoiceLinks | None"]


def pending(conn: Connection, *, order_id: str | None = None, paid_since: str | None = None,
            limit: int = FILL_LIMIT) -> list[tuple[str, str]]:
    """(order id, invoice id) of paid orders whose invoice's links are not known yet, newest change first."""
    o = orders.c
    query = sa.select(o.id, o.invoice_id).where(o.invoice_id.is_not(None), o.invoice_url.is_(None),
                                                o.status.in_(sorted(AFTER_PAYMENT)))
    if order_id is not None:
        query = query.where(o.id == order_id)
    if paid_since is not None:
        query = query.where(o.updated_at >= paid_since)
    return [(row[0], row[1]) for row in conn.execute(query.order_by(o.updated_at.desc()).limit(limit))]


def record(conn: Connection, order_id: str, invoice_id: str, links: InvoiceLinks) -> bool:
    """Keep an invoice's links on its order, once: False when they were kept already (or the order names another)."""
    o = orders.c
    done = conn.execute(sa.update(orders).where(o.id == order_id, o.invoice_id == invoice_id, o.invoice_url.is_(None))
                        .values(invoice_url=links.hosted_url, invoice_pdf=links.pdf))
    return bool(done.rowcount)


def fill_missing(db: Database, lookup: InvoiceLookup, *, paid_since: str) -> tuple[int, list[str]]:
    """Read the links of the invoices still without them (reconcile); returns how many were kept, and the errors."""
    with db.read() as conn:
        todo = pending(conn, paid_since=paid_since)
    filled, errors = 0, []
    for order_id, invoice_id in todo:
        try:
            links = lookup(invoice_id)
        except PaymentProviderError as exc:
            errors.append(f"invoice {invoice_id} of order {order_id}: {exc}")
            continue
        if links is not None:
            with db.transaction() as conn:
                filled += record(conn, order_id, invoice_id, links)
    return filled, errors


async def fill_order(services: Services, order_id: str) -> bool:
    """Read one paid order's invoice links, if it has an invoice without them (after its webhook is answered).
    A failure is logged and left to reconcile: the receipt opens the backend's own page meanwhile."""
    todo = await to_thread.run_sync(_pending_one, services.db, order_id)
    if todo is None:
        return False
    invoice_id = todo[1]
    try:
        links = await services.gateway.invoice_links(invoice_id)
    except PaymentProviderError as exc:
        log.warning("payment order=%s invoice=%s outcome=invoice_not_read reason=%s", order_id, invoice_id, exc)
        return False
    if links is None:
        log.info("payment order=%s invoice=%s outcome=invoice_not_final", order_id, invoice_id)
        return False
    kept = await to_thread.run_sync(_record, services.db, order_id, invoice_id, links)
    if kept:
        log.info("payment order=%s invoice=%s outcome=invoice_kept", order_id, invoice_id)
    return kept


def _pending_one(db: Database, order_id: str) -> tuple[str, str] | None:
    with db.read() as conn:
        found = pending(conn, order_id=order_id, limit=1)
    return found[0] if found else None


def _record(db: Database, order_id: str, invoice_id: str, links: InvoiceLinks) -> bool:
    with db.transaction() as conn:
        return record(conn, order_id, invoice_id, links)


def names_pending(conn: Connection, order_id: str) -> str | None:
    """The session id of a paid order whose discount or tax has no name kept yet, or None."""
    o = orders.c
    return conn.execute(sa.select(o.session_id).where(
        o.id == order_id, o.status.in_(sorted(AFTER_PAYMENT)),
        sa.or_(sa.and_(o.amount_discount > 0, o.promotion_code.is_(None)),
               sa.and_(o.amount_tax > 0, o.tax_rate.is_(None))))).scalar()


def record_names(conn: Connection, order_id: str, session: SessionState) -> bool:
    """Keep the promotion code and the tax rate the session names where the order has none yet: False when there
    was nothing to keep."""
    o = orders.c
    kept = False
    if session.promotion_code is not None:
        kept |= bool(conn.execute(sa.update(orders).where(o.id == order_id, o.promotion_code.is_(None))
                                  .values(promotion_code=session.promotion_code)).rowcount)
    if session.tax_rate is not None:
        kept |= bool(conn.execute(sa.update(orders).where(o.id == order_id, o.tax_rate.is_(None))
                                  .values(tax_rate=session.tax_rate, tax_name=session.tax_name)).rowcount)
    return kept


async def fill_names(services: Services, order_id: str) -> bool:
    """Read a paid order's session for the names of its discount and tax, when it lacks them (after its webhook is
    answered). A failure is logged: the receipt says "Discount" and "Tax" without them."""
    session_id = await to_thread.run_sync(_names_pending, services.db, order_id)
    if session_id is None:
        return False
    services.gateway.forget(session_id)  # a session read before it was paid has neither
    try:
        session = await services.gateway.retrieve_session(session_id)
    except PaymentProviderError as exc:
        log.warning("payment order=%s outcome=receipt_names_not_read reason=%s", order_id, exc)
        return False
    kept = await to_thread.run_sync(_record_names, services.db, order_id, session)
    if kept:
        log.info("payment order=%s outcome=receipt_names_kept", order_id)
    return kept


def _names_pending(db: Database, order_id: str) -> str | None:
    with db.read() as conn:
        return names_pending(conn, order_id)


def _record_names(db: Database, order_id: str, session: SessionState) -> bool:
    with db.transaction() as conn:
        return record_names(conn, order_id, session)
