"""Orders: one per Checkout Session, holding what was sold, to whom, and where the payment stands."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection

from backend.db import utcnow
from backend.schema import orders as orders_table

PENDING, PAID, FAILED, EXPIRED, CANCELLED, REFUNDED = (
    "pending", "paid", "failed", "expired", "cancelled", "refunded",
)
# Statuses after which the provider has nothing more to tell us about the session.
SETTLED = frozenset({PAID, REFUNDED, FAILED, EXPIRED})


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

    @property
    def credits_granted(self) -> int:
        return self.credits if self.status in (PAID, REFUNDED) else 0

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Order:
        return cls(**{name: row[name] for name in cls.__dataclass_fields__})


def insert(conn: Connection, order: Order) -> None:
    conn.execute(sa.insert(orders_table).values(asdict(order)))


def _one(conn: Connection, where: Any, *, lock: bool) -> Order | None:
    query = sa.select(orders_table).where(where)
    if lock:  # PostgreSQL: hold the row until the transaction ends (SQLite's write lock already does)
        query = query.with_for_update()
    row = conn.execute(query).mappings().first()
    return Order.from_row(row) if row else None


def by_session(conn: Connection, session_id: str, *, lock: bool = False) -> Order | None:
    return _one(conn, orders_table.c.session_id == session_id, lock=lock)


def by_id(conn: Connection, order_id: str, *, lock: bool = False) -> Order | None:
    return _one(conn, orders_table.c.id == order_id, lock=lock)


def by_payment_intent(conn: Connection, payment_intent: str, *, lock: bool = False) -> Order | None:
    return _one(conn, orders_table.c.payment_intent == payment_intent, lock=lock)


def update(conn: Connection, order_id: str, **changes: object) -> None:
    allowed = set(Order.__dataclass_fields__) - {"id", "user_id", "created_at"}
    unknown = set(changes) - allowed
    if unknown:
        raise ValueError(f"cannot update {sorted(unknown)}")
    changes["updated_at"] = utcnow()
    conn.execute(sa.update(orders_table).where(orders_table.c.id == order_id).values(changes))


def set_status_if(conn: Connection, order: Order, status: str, *, when: set[str]) -> bool:
    """Move the order to ``status`` only from one of the ``when`` statuses; returns whether it moved."""
    if order.status not in when:
        return False
    update(conn, order.id, status=status)
    return True
