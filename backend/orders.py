"""Orders: one per Checkout Session, holding what was sold, to whom, and where the payment stands."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from backend.db import utcnow

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
    def from_row(cls, row: sqlite3.Row) -> Order:
        return cls(**{name: row[name] for name in cls.__dataclass_fields__})


def insert(conn: sqlite3.Connection, order: Order) -> None:
    fields = list(Order.__dataclass_fields__)
    conn.execute(
        f"INSERT INTO orders ({', '.join(fields)}) VALUES ({', '.join('?' for _ in fields)})",  # noqa: S608
        [getattr(order, name) for name in fields],
    )


def by_session(conn: sqlite3.Connection, session_id: str) -> Order | None:
    row = conn.execute("SELECT * FROM orders WHERE session_id = ?", (session_id,)).fetchone()
    return Order.from_row(row) if row else None


def by_id(conn: sqlite3.Connection, order_id: str) -> Order | None:
    row = conn.execute("SELECT * FROM orders WHERE id = ?", (order_id,)).fetchone()
    return Order.from_row(row) if row else None


def by_payment_intent(conn: sqlite3.Connection, payment_intent: str) -> Order | None:
    row = conn.execute("SELECT * FROM orders WHERE payment_intent = ?", (payment_intent,)).fetchone()
    return Order.from_row(row) if row else None


def update(conn: sqlite3.Connection, order_id: str, **changes: object) -> None:
    allowed = set(Order.__dataclass_fields__) - {"id", "user_id", "created_at"}
    unknown = set(changes) - allowed
    if unknown:
        raise ValueError(f"cannot update {sorted(unknown)}")
    changes["updated_at"] = utcnow()
    assignments = ", ".join(f"{name} = ?" for name in changes)
    conn.execute(f"UPDATE orders SET {assignments} WHERE id = ?", [*changes.values(), order_id])  # noqa: S608


def set_status_if(conn: sqlite3.Connection, order: Order, status: str, *, when: set[str]) -> bool:
    """Move the order to ``status`` only from one of the ``when`` statuses; returns whether it moved."""
    if order.status not in when:
        return False
    update(conn, order.id, status=status)
    return True
