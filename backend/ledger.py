"""The credit ledger: append-only entries and a cached balance per user.

Plain functions over a SQLite connection that the caller has put in a ``BEGIN IMMEDIATE``
transaction (:meth:`backend.db.Database.transaction`). The ledger knows users only by id and
knows nothing of HTTP or payment providers.

Invariants (see :func:`check_invariants`): a user's cached balance equals the sum of their
entries; every entry's ``balance_after`` is the running sum; a reference is posted at most once
per user and type (a purchase's reference, its Checkout Session, at most once at all); a spend
never takes a balance below zero.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Literal

from backend.db import utcnow
from backend.errors import IdempotencyConflict, InsufficientCredits

EntryType = Literal["purchase", "spend", "refund", "adjustment"]
ENTRY_TYPES: tuple[str, ...] = ("purchase", "spend", "refund", "adjustment")


@dataclass(frozen=True)
class Entry:
    id: int
    user_id: int
    type: str
    amount: int
    balance_after: int
    reference: str
    description: str
    created_at: str

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Entry:
        return cls(
            id=row["id"], user_id=row["user_id"], type=row["type"], amount=row["amount"],
            balance_after=row["balance_after"], reference=row["reference"],
            description=row["description"] or "", created_at=row["created_at"],
        )


def balance(conn: sqlite3.Connection, user_id: int) -> int:
    row = conn.execute("SELECT balance FROM balances WHERE user_id = ?", (user_id,)).fetchone()
    return row["balance"] if row else 0


def find(conn: sqlite3.Connection, user_id: int, type: str, reference: str) -> Entry | None:
    row = conn.execute(
        "SELECT * FROM ledger_entries WHERE user_id = ? AND type = ? AND reference = ?",
        (user_id, type, reference),
    ).fetchone()
    return Entry.from_row(row) if row else None


def post(
    conn: sqlite3.Connection,
    *,
    user_id: int,
    type: EntryType,
    amount: int,
    reference: str,
    description: str = "",
    fingerprint: str | None = None,
) -> Entry | None:
    """Append an entry and move the cached balance with it; ``None`` if the reference is already posted.

    Must run inside a write transaction. Does not refuse negative balances: spending checks
    that itself (:func:`spend`), while refunds may claw back credits that are already spent.
    """
    if type not in ENTRY_TYPES:
        raise ValueError(f"unknown entry type {type!r}")
    if amount == 0:
        raise ValueError("a ledger entry moves a non-zero amount")
    if find(conn, user_id, type, reference) is not None:
        return None
    balance_after = balance(conn, user_id) + amount
    cursor = conn.execute(
        "INSERT INTO ledger_entries (user_id, type, amount, balance_after, reference, description,"
        " created_at, fingerprint) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (user_id, type, amount, balance_after, reference, description, utcnow(), fingerprint),
    )
    conn.execute(
        "INSERT INTO balances (user_id, balance) VALUES (?, ?)"
        " ON CONFLICT(user_id) DO UPDATE SET balance = excluded.balance",
        (user_id, balance_after),
    )
    row = conn.execute("SELECT * FROM ledger_entries WHERE id = ?", (cursor.lastrowid,)).fetchone()
    return Entry.from_row(row)


def spend(
    conn: sqlite3.Connection,
    *,
    user_id: int,
    amount: int,
    idempotency_key: str,
    description: str,
    fingerprint: str,
) -> tuple[Entry, bool]:
    """Spend ``amount`` credits once per idempotency key; returns the entry and whether it is new.

    A key seen before with the same ``fingerprint`` (a digest of the request) answers with the
    first spend and takes nothing more; with another fingerprint it raises IdempotencyConflict.
    """
    if amount <= 0:
        raise ValueError("a spend takes a positive number of credits")
    existing = conn.execute(
        "SELECT * FROM ledger_entries WHERE user_id = ? AND type = 'spend' AND reference = ?",
        (user_id, idempotency_key),
    ).fetchone()
    if existing is not None:
        if existing["fingerprint"] != fingerprint:
            raise IdempotencyConflict(idempotency_key)
        return Entry.from_row(existing), False
    current = balance(conn, user_id)
    if amount > current:
        raise InsufficientCredits(current, amount)
    entry = post(
        conn, user_id=user_id, type="spend", amount=-amount, reference=idempotency_key,
        description=description, fingerprint=fingerprint,
    )
    assert entry is not None  # the reference was checked above, inside the same transaction
    return entry, True


def history(
    conn: sqlite3.Connection, user_id: int, *, limit: int, before: int | None = None
) -> tuple[list[Entry], int | None]:
    """A page of entries, newest first, and the cursor for the next (older) page, if any."""
    if before is None:
        rows = conn.execute(
            "SELECT * FROM ledger_entries WHERE user_id = ? ORDER BY id DESC LIMIT ?", (user_id, limit + 1)
        ).fetchall()
    else:
        rows = conn.execute(
            "SELECT * FROM ledger_entries WHERE user_id = ? AND id < ? ORDER BY id DESC LIMIT ?",
            (user_id, before, limit + 1),
        ).fetchall()
    entries = [Entry.from_row(row) for row in rows[:limit]]
    next_cursor = entries[-1].id if len(rows) > limit else None
    return entries, next_cursor


def check_invariants(conn: sqlite3.Connection) -> list[str]:
    """Every way the ledger fails to add up, as sentences; an empty list when it is sound."""
    problems: list[str] = []
    for row in conn.execute(
        "SELECT u.user_id, COALESCE(b.balance, 0) AS cached, u.total FROM"
        " (SELECT user_id, SUM(amount) AS total FROM ledger_entries GROUP BY user_id) u"
        " LEFT JOIN balances b ON b.user_id = u.user_id WHERE COALESCE(b.balance, 0) != u.total"
    ):
        problems.append(f"user {row['user_id']}: cached balance {row['cached']} != sum of entries {row['total']}")
    for row in conn.execute(
        "SELECT b.user_id, b.balance FROM balances b WHERE b.balance != 0 AND NOT EXISTS"
        " (SELECT 1 FROM ledger_entries e WHERE e.user_id = b.user_id)"
    ):
        problems.append(f"user {row['user_id']}: balance {row['balance']} with no entries")
    running: dict[int, int] = {}
    for row in conn.execute("SELECT id, user_id, amount, balance_after, type FROM ledger_entries ORDER BY id"):
        total = running.get(row["user_id"], 0) + row["amount"]
        running[row["user_id"]] = total
        if row["balance_after"] != total:
            problems.append(f"entry {row['id']}: balance_after {row['balance_after']} != running sum {total}")
        if row["type"] == "spend" and (row["balance_after"] < 0 or row["amount"] >= 0):
            problems.append(f"entry {row['id']}: a spend left balance {row['balance_after']}")
    for row in conn.execute(
        "SELECT reference, COUNT(*) AS n FROM ledger_entries WHERE type = 'purchase'"
        " GROUP BY reference HAVING n > 1"
    ):
        problems.append(f"purchase {row['reference']} granted {row['n']} times")
    return problems
