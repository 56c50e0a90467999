"""Orders: one per Checkout Session, holding what was sold, to whom, and where the payment stands."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection, RowMapping

from backend import billing_details, prepared
from backend.db import utcnow
from backend.order_status import AFTER_PAYMENT, CANCELLED, PENDING
from backend.schema import billing_details as billing_details_table
from backend.schema import orders as orders_table


@dataclass(frozen=True)
class Order:
    id: str
    user_id: int
    pack_id: str
    pack_name: str
    credits: int
    amount: int
    currency: str
    provider: str
    session_id: str
    checkout_url: str
    return_url: str | None
    state: str | None
    status: str
    payment_intent: str | None
    amount_refunded: int
    credits_clawed_back: int
    created_at: str
    updated_at: str
    amount_disputed: int = 0
    amount_paid: int | None = None  # the total paid (None until paid, and for orders paid before migration 0005)
    amount_discount: int = 0
    amount_tax: int = 0
    refusal: str | None = None  # why a payment of this order was refused
    invoice_id: str | None = None  # Stripe mode: the invoice Checkout made for the payment
    invoice_url: str | None = None  # its hosted page and PDF, once read from Stripe (backend/invoices.py)
    invoice_pdf: str | None = None
    billing_details: str | None = None  # the buyer's billing details when paid (backend/billing_details.py)
    promotion_code: str | None = None  # the code entered at checkout, where known
    tax_rate: str | None = None  # the tax's rate in percent ("19", "8.875"), where checkout said one
    tax_name: str | None = None  # the tax's name ("VAT"), where known

    @property
    def amount_charged(self) -> int:
        """What the payment took, which refunds and disputes are measured against: the total paid where we
        know it, else the list price (what orders paid before totals were kept were charged)."""
        return self.amount if self.amount_paid is None else self.amount_paid

    def payment_json(self) -> dict[str, object]:
        """What was paid, as the API gives it (``payment`` of a purchase's entry and of verify-payment)."""
        return {"amount": self.amount_charged, "currency": self.currency, "listPrice": self.amount,
                "discount": self.amount_discount, "tax": self.amount_tax}

    @property
    def credits_granted(self) -> int:
        """The credits the purchase granted (clawbacks are entries of their own, see credits_clawed_back)."""
        return self.credits if self.status in AFTER_PAYMENT else 0

    @classmethod
    def from_row(cls, row: Mapping[str, Any] | RowMapping) -> Order:
        # Each field from the row, without the frozen __init__'s setattr per field (two orders a webhook).
        order = cls.__new__(cls)
        order.__dict__.update({name: row[name] for name in _FIELDS})
        return order


_FIELDS = tuple(Order.__dataclass_fields__)


def insert(conn: Connection, order: Order) -> None:
    conn.execute(sa.insert(orders_table).values(asdict(order)))


def _one(conn: Connection, column: str, value: str, *, lock: bool) -> Order | None:
    row = prepared.run(conn, _select_by(column, lock), {"value": value}).first()
    return Order.from_row(row) if row else None


@functools.cache
def _select_by(column: str, lock: bool) -> sa.Select[Any]:
    """Built once: fulfilment runs these for every webhook, and building a statement costs more than running it."""
    query = sa.select(orders_table).where(orders_table.c[column] == sa.bindparam("value"))
    if lock:  # PostgreSQL: hold the row until the transaction ends (SQLite's write lock already does)
        query = query.with_for_update()
    return query


for _column in ("id", "session_id", "payment_intent"):
    prepared.hot(f"an order by {_column}", _select_by(_column, False))
    prepared.hot(f"an order by {_column}, locked", _select_by(_column, True))


def by_session(conn: Connection, session_id: str, *, lock: bool = False) -> Order | None:
    return _one(conn, "session_id", session_id, lock=lock)


def by_id(conn: Connection, order_id: str, *, lock: bool = False) -> Order | None:
    return _one(conn, "id", order_id, lock=lock)


def by_payment_intent(conn: Connection, payment_intent: str, *, lock: bool = False) -> Order | None:
    return _one(conn, "payment_intent", payment_intent, lock=lock)


def to_pay(conn: Connection, session_id: str) -> tuple[Order, str | None] | None:
    """The order of a Checkout Session, locked as ``by_session(lock=True)`` locks it, with its buyer's billing
    details as the order keeps them once paid (:func:`backend.billing_details.snapshot`), in one statement."""
    row = prepared.run(conn, _TO_PAY, {"value": session_id}).first()
    return None if row is None else (Order.from_row(row), billing_details.snapshot_from(row))


_TO_PAY = prepared.hot("an order to pay, locked, with its buyer's billing details", sa.select(
    orders_table, *billing_details.SNAPSHOT_COLUMNS,
).select_from(orders_table.outerjoin(billing_details_table, billing_details_table.c.user_id == orders_table.c.user_id))
    .where(orders_table.c.session_id == sa.bindparam("value")).with_for_update(of=orders_table))


def update(conn: Connection, order_id: str, **changes: object) -> Order:
    """Change an order's fields; returns the order as it now is (one statement: UPDATE ... RETURNING)."""
    return Order.from_row(_update(conn, _UPDATE, order_id, {}, changes))


def updating(*answers: sa.ColumnElement[Any]) -> sa.Update:
    """An order's UPDATE answering the order as it now is (without ``answers``), or only ``answers`` (read after it,
    in the same statement) for :func:`update_answering`; the changed columns come as parameters (SQLAlchemy sets
    those it is given)."""
    update = sa.update(orders_table).where(orders_table.c.id == sa.bindparam("order_id"))
    return update.returning(*answers) if answers else update.returning(orders_table)


def update_answering(conn: Connection, statement: sa.Update, order: Order, params: Mapping[str, object],
                     **changes: object) -> tuple[Order, dict[str, Any]]:
    """Change ``order``, read in this transaction (and locked: ``lock=True``, or SQLite's write lock), with a
    registered statement of :func:`updating` answering ``answers`` only; the order as it now is and those answers.
    The order is the one read with the changes, as the row now holds it: no whole row is answered (a wide row
    answered costs SQLite a copy of it, and Python the dict)."""
    answered = _update(conn, statement, order.id, params, changes)
    return Order.from_row({**order.__dict__, **changes}), answered


def _update(conn: Connection, statement: sa.Update, order_id: str, params: Mapping[str, object],
            changes: dict[str, object]) -> dict[str, Any]:
    """Run the order's UPDATE with ``changes``, stamped with ``updated_at`` (so the caller's ``changes`` hold what the
    row now holds); its one answered row."""
    unknown = changes.keys() - _CHANGEABLE
    if unknown:
        raise ValueError(f"cannot update {sorted(unknown)}")
    changes["updated_at"] = utcnow()
    return prepared.run(conn, statement, {**changes, **params, "order_id": order_id}).one()


# Built once.
_UPDATE = prepared.hot("an order updated", updating())
_CHANGEABLE = frozenset(Order.__dataclass_fields__) - {"id", "user_id", "created_at"}


def by_user(conn: Connection, user_id: int) -> list[Order]:
    """All of a user's orders, newest first."""
    query = sa.select(orders_table).where(orders_table.c.user_id == user_id)
    rows = conn.execute(query.order_by(orders_table.c.created_at.desc(), orders_table.c.id)).mappings()
    return [Order.from_row(row) for row in rows]


def count_open(conn: Connection, *, created_since: str) -> int:
    """How many checkouts made since ``created_since`` are still waiting to be paid."""
    o = orders_table.c
    query = sa.select(sa.func.count()).where(o.status == PENDING, o.created_at >= created_since)
    return int(conn.execute(query).scalar_one())


def unsettled(conn: Connection, *, created_since: str) -> list[Order]:
    """Orders whose payment may still change without a refund or dispute: pending ones of any age, and
    cancelled ones made since ``created_since`` (their session may not have been expired at the provider)."""
    o = orders_table.c
    query = sa.select(orders_table).where(
        (o.status == PENDING) | ((o.status == CANCELLED) & (o.created_at >= created_since))
    )
    return [Order.from_row(row) for row in conn.execute(query.order_by(o.created_at)).mappings()]


def paid_changed_since(conn: Connection, updated_since: str, limit: int) -> list[Order]:
    """Orders paid (or clawed back since) whose row changed since ``updated_since``, oldest change first."""
    o = orders_table.c
    query = sa.select(orders_table).where(o.status.in_(sorted(AFTER_PAYMENT)), o.updated_at >= updated_since,
                                          o.payment_intent.is_not(None))
    return [Order.from_row(row) for row in conn.execute(query.order_by(o.updated_at).limit(limit)).mappings()]
