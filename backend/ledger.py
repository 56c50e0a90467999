"""The credit ledger: append-only entries and a cached balance per user.

Plain functions over a connection that the caller has put in a write transaction
(:meth:`backend.db.Database.transaction`). The ledger knows users only by id and knows nothing of
HTTP or payment providers. Every change of a balance first locks that user's balance row (on
PostgreSQL; SQLite's write lock already covers the whole database), so two replicas never post
from the same stale balance.

Invariants (see :func:`check_invariants`): a user's cached balance equals the sum of their
entries; every entry's ``balance_after`` is the running sum; a reference is posted at most once
per user and type (a purchase's reference, its Checkout Session, at most once at all); a spend
never takes a balance below zero.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection, and_, bindparam, func, literal_column, select, update
from sqlalchemy.sql.expression import Executable

from backend import alerts, grants, prepared, rollups
from backend.db import hot_insert_ignoring, insert_for, insert_ignoring_duplicates, utcnow
from backend.entries import ENTRY_TYPES, Entry, EntryType
from backend.errors import IdempotencyConflict, InsufficientCredits
from backend.schema import balances, ledger_entries

# Statements of the paths every purchase and spend takes, built once: building a statement costs more than
# running it. The values come as parameters.
_BALANCE = prepared.hot("a balance", select(balances.c.balance).where(balances.c.user_id == bindparam("user_id")))
_LOCK_BALANCE = prepared.hot("a balance, locked", _BALANCE.with_for_update())
_SET_BALANCE = prepared.hot("a balance set", update(balances).where(balances.c.user_id == bindparam("of_user"))
                            .values(balance=bindparam("to")))
# An entry's move of the balance, which locks the row (PostgreSQL) and answers the balance after it.
_MOVE = update(balances).where(balances.c.user_id == bindparam("of_user")).values(
    balance=balances.c.balance + bindparam("by"))
_MOVE_BALANCE = _MOVE.returning(balances.c.balance)
# On SQLite the same statement also answers how many of the user's low-balance thresholds that balance crosses or
# re-arms: alerts reads them only when there are some. Not on PostgreSQL: an UPDATE that waited for another
# transaction's lock on the row reads the balance that transaction left, but other tables (the thresholds it may
# have disarmed, or set) as they were when the UPDATE began; the thresholds are read by a statement of their own
# once the lock is held. (SQLite's write lock lets no other writer in during the transaction.)
_MOVE_BALANCE_SQLITE = prepared.hot("a balance moved", _MOVE.returning(balances.c.balance, alerts.thresholds_moved(
    literal_column("balances.balance", balances.c.balance.type), bindparam("of_user"))))
_ENTRY = prepared.hot("an entry", select(ledger_entries).where(
    ledger_entries.c.user_id == bindparam("user_id"), ledger_entries.c.type == bindparam("type"),
    ledger_entries.c.reference == bindparam("reference"),
))
hot_insert_ignoring("a balance made", balances)
# On SQLite a spend reads its balance and any entry of its idempotency key in one statement (the entry joined to the
# balance row). Not on PostgreSQL: there the balance row is locked first (FOR UPDATE), and only a statement begun
# once that lock is held sees an entry that the transaction it waited for committed with the same key.
_BALANCE_AND_SPEND = prepared.hot("a balance with a spend by key", select(
    balances.c.balance.label("current_balance"), *ledger_entries.c,
).select_from(balances.outerjoin(ledger_entries, and_(
    ledger_entries.c.user_id == balances.c.user_id, ledger_entries.c.type == "spend",
    ledger_entries.c.reference == bindparam("reference"),
))).where(balances.c.user_id == bindparam("user_id")))


def balance(conn: Connection, user_id: int) -> int:
    value = prepared.run(conn, _BALANCE, {"user_id": user_id}).scalar()
    return value or 0


def locked_balance(conn: Connection, user_id: int) -> int:
    """The balance, with the user's balance row locked until the transaction ends (made if missing).

    Everything that changes a user's ledger or depends on their balance staying put (spend controls, alert
    thresholds) takes this lock first, so that it happens one at a time per user on every engine."""
    value = prepared.run(conn, _LOCK_BALANCE, {"user_id": user_id}).scalar()
    if value is None:
        insert_ignoring_duplicates(conn, balances, {"user_id": user_id, "balance": 0})
        value = prepared.run(conn, _LOCK_BALANCE, {"user_id": user_id}).scalar_one()
    return int(value)


def find(conn: Connection, user_id: int, type: str, reference: str) -> Entry | None:
    row = _entry_row(conn, user_id, type, reference)
    return Entry.from_row(row) if row else None


def _entry_row(conn: Connection, user_id: int, type: str, reference: str) -> dict[str, Any] | None:
    return prepared.run(conn, _ENTRY, {"user_id": user_id, "type": type, "reference": reference}).first()


def post(
    conn: Connection,
    *,
    user_id: int,
    type: EntryType,
    amount: int,
    reference: str,
    description: str = "",
    fingerprint: str | None = None,
    feature: str | None = None,
    created_at: str | None = None,
    allocation: grants.Allocation | None = None,
) -> Entry | None:
    """Append an entry and move the cached balance with it; ``None`` if the reference is already posted.

    Must run inside a write transaction. Does not refuse negative balances: spending checks
    that itself (:func:`spend`), while refunds may claw back credits that are already spent.
    The alerts the entry causes (:func:`backend.alerts.on_ledger_entry`) are made in the same transaction.
    ``created_at`` is now unless given (the spend path gives the instant its caps were counted at).
    The entry is allocated to the user's grants in the same transaction (:func:`backend.grants.allocate`): by
    ``allocation``, else a crediting entry makes a paid grant and a debiting one takes in the burn order.
    """
    if type not in ENTRY_TYPES:
        raise ValueError(f"unknown entry type {type!r}")
    if amount == 0:
        raise ValueError("a ledger entry moves a non-zero amount")
    # The balance moves first, in one statement that locks its row and answers the balance after (two reads and a
    # write before); the user's first entry makes the row.
    move = _MOVE_BALANCE_SQLITE if conn.dialect.name == "sqlite" else _MOVE_BALANCE
    moved = prepared.run(conn, move, {"of_user": user_id, "by": amount}).first()
    if moved is None:
        insert_ignoring_duplicates(conn, balances, {"user_id": user_id, "balance": 0})
        moved = prepared.run(conn, move, {"of_user": user_id, "by": amount}).one()
    balance_after = int(moved["balance"])
    thresholds_moved = moved.get("thresholds_moved", 1) > 0  # (PostgreSQL: read them)
    # The unique (user, type, reference) index finds a reference posted before: nothing is inserted then, and the
    # balance is put back as it was.
    values = {
        "user_id": user_id, "type": type, "amount": amount, "balance_after": balance_after, "reference": reference,
        "description": description, "created_at": created_at or utcnow(), "fingerprint": fingerprint,
        "feature": feature,
    }
    row = prepared.run(conn, _insert_entry(conn.dialect.name), values).first()
    if row is None:
        prepared.run(conn, _SET_BALANCE, {"of_user": user_id, "to": balance_after - amount})
        return None
    # The entry is what was inserted: only its id comes back (a whole row answered costs SQLite a copy of it).
    entry = Entry.from_row({**values, "id": row["id"]})
    grants.allocate(conn, entry, allocation)
    rollups.add(conn, entry)
    alerts.on_ledger_entry(conn, entry, thresholds_moved=thresholds_moved)
    return entry


def spend(
    conn: Connection,
    *,
    user_id: int,
    amount: int,
    idempotency_key: str,
    description: str,
    fingerprint: str,
    feature: str | None = None,
    check: Callable[[int], None] | None = None,
    created_at: str | None = None,
    reserved: int = 0,
    allocation: grants.Allocation | None = None,
) -> tuple[Entry, bool]:
    """Spend ``amount`` credits once per idempotency key; returns the entry and whether it is new.

    A key seen before with the same ``fingerprint`` (a digest of the request) answers with the
    first spend and takes nothing more; with another fingerprint it raises IdempotencyConflict.
    A spend takes only what is available: the locked balance less ``reserved``, the credits that open
    holds keep for themselves (:func:`backend.holds.reserved`, counted by the caller under the same lock).
    ``check`` (the user's spend controls) is called with that available balance once the key is known to
    be new and the available balance to cover the spend, before anything is written; it refuses by raising.
    """
    if amount <= 0:
        raise ValueError("a spend takes a positive number of credits")
    both = prepared.run(conn, _BALANCE_AND_SPEND, {"user_id": user_id, "reference": idempotency_key}).first() \
        if conn.dialect.name == "sqlite" else None
    if both is None:  # PostgreSQL, or a user without a balance row yet (made here)
        current = locked_balance(conn, user_id)
        existing = _entry_row(conn, user_id, "spend", idempotency_key)
    else:
        current = int(both["current_balance"])
        existing = both if both["id"] is not None else None
    if existing is not None:
        if existing["fingerprint"] != fingerprint:
            raise IdempotencyConflict(idempotency_key)
        return Entry.from_row(existing), False
    if amount > current - reserved:
        raise InsufficientCredits(current, amount, reserved)
    if check is not None:
        check(current - reserved)
    entry = post(
        conn, user_id=user_id, type="spend", amount=-amount, reference=idempotency_key,
        description=description, fingerprint=fingerprint, feature=feature, created_at=created_at,
        allocation=allocation,
    )
    assert entry is not None  # the reference was checked above, inside the same transaction
    return entry, True


@functools.cache
def _insert_entry(dialect_name: str) -> Executable:
    return insert_for(dialect_name, ledger_entries).on_conflict_do_nothing().returning(ledger_entries.c.id)


prepared.hot("an entry posted", _insert_entry("sqlite"))


def history(
    conn: Connection, user_id: int, *, limit: int, before: int | None = None
) -> tuple[list[Entry], int | None]:
    """A page of entries, newest first, and the cursor for the next (older) page, if any."""
    query = select(ledger_entries).where(ledger_entries.c.user_id == user_id)
    if before is not None:
        query = query.where(ledger_entries.c.id < before)
    rows = conn.execute(query.order_by(ledger_entries.c.id.desc()).limit(limit + 1)).mappings().all()
    entries = [Entry.from_row(row) for row in rows[:limit]]
    next_cursor = entries[-1].id if len(rows) > limit else None
    return entries, next_cursor


def check_invariants(conn: Connection) -> list[str]:
    """Every way the ledger fails to add up, as sentences; an empty list when it is sound.

    One pass over the entries in the order they were written (a sequential scan, streamed, so memory
    stays flat), keeping each user's running sum; then the cached balances and the purchases' references
    are compared with it (the purchases' references through an index-free GROUP BY, a sort of the
    purchases alone). About linear in the size of the ledger: ``bench/check.py`` measures it.
    """
    problems: list[str] = []
    running: dict[int, int] = {}
    e = ledger_entries
    # Options of this statement only: Connection.execution_options() would set them on the caller's
    # connection for good, and on PostgreSQL every later statement (an UPDATE too) would go through a
    # server-side cursor, which only a SELECT can.
    rows = conn.execute(
        select(e.c.id, e.c.user_id, e.c.type, e.c.amount, e.c.balance_after).order_by(e.c.id)
        .execution_options(stream_results=True, yield_per=20_000)
    )
    for entry_id, user_id, entry_type, amount, balance_after in rows:
        total = running.get(user_id, 0) + amount
        running[user_id] = total
        if balance_after != total:
            problems.append(f"entry {entry_id}: balance_after {balance_after} != running sum {total}")
        if entry_type == "spend" and (balance_after < 0 or amount >= 0):
            problems.append(f"entry {entry_id}: a spend left balance {balance_after}")
    cached: dict[int, int] = {user_id: balance for user_id, balance in conn.execute(
        select(balances.c.user_id, balances.c.balance))}
    for user_id, total in sorted(running.items()):
        if cached.get(user_id, 0) != total:
            problems.append(f"user {user_id}: cached balance {cached.get(user_id, 0)} != sum of entries {total}")
    for user_id in sorted(set(cached) - set(running)):
        if cached[user_id] != 0:
            problems.append(f"user {user_id}: balance {cached[user_id]} with no entries")
    for reference, count in conn.execute(
        select(e.c.reference, func.count()).where(e.c.type == "purchase")
        .group_by(e.c.reference).having(func.count() > 1).order_by(e.c.reference)
    ):
        problems.append(f"purchase {reference} granted {count} times")
    problems.extend(rollups.problems(conn))
    return problems
