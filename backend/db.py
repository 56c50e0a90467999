"""SQLite storage: one connection per thread, WAL mode, and ``BEGIN IMMEDIATE`` transactions.

Every read-modify-write runs inside :meth:`Database.transaction`, which takes SQLite's write lock
up front (``BEGIN IMMEDIATE``), so concurrent requests queue on the busy timeout instead of failing
with SQLITE_BUSY half-way through.  The schema is created with sqlite-utils.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import sqlite_utils

BUSY_TIMEOUT_SECONDS = 30


def utcnow() -> str:
    """An ISO 8601 UTC timestamp, as stored and as the API shows it."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Database:
    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        # Writers in this process queue here rather than in SQLite's busy handler, whose sleeps (up to
        # 100 ms) overshoot the moment the lock frees; busy_timeout still covers other processes.
        self._write_lock = threading.RLock()
        create_schema(self.connection())

    def connection(self) -> sqlite3.Connection:
        """This thread's connection (sqlite3 connections are bound to their thread)."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = connect(self.path)
            self._local.conn = conn
            with self._lock:
                self._connections.append(conn)
        return conn

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        conn = self.connection()
        with self._write_lock:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()
        self._local = threading.local()


def connect(path: Path) -> sqlite3.Connection:
    # isolation_level=None: no implicit transactions; we open them ourselves. Each thread has its own
    # connection (see Database.connection); check_same_thread=False only lets close() run from any thread.
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    # FULL: a commit that answered "granted" survives a power cut, not just a process crash.
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


def create_schema(conn: sqlite3.Connection) -> None:
    db = sqlite_utils.Database(conn)
    db["users"].create(
        {"id": int, "email": str, "password_hash": str, "created_at": str},
        pk="id", not_null={"email", "password_hash", "created_at"}, if_not_exists=True,
    )
    db["users"].create_index(["email"], unique=True, if_not_exists=True)
    db["tokens"].create(
        {"token_hash": str, "user_id": int, "created_at": str, "expires_at": float},
        pk="token_hash", foreign_keys=[("user_id", "users", "id")],
        not_null={"user_id", "created_at", "expires_at"}, if_not_exists=True,
    )
    db["tokens"].create_index(["user_id"], if_not_exists=True)
    # The ledger: append-only entries and a cached balance per user, updated together.
    db["balances"].create(
        {"user_id": int, "balance": int}, pk="user_id", not_null={"balance"}, if_not_exists=True,
    )
    db["ledger_entries"].create(
        {
            "id": int, "user_id": int, "type": str, "amount": int, "balance_after": int,
            "reference": str, "description": str, "created_at": str, "fingerprint": str,
        },
        pk="id", not_null={"user_id", "type", "amount", "balance_after", "reference", "created_at"},
        if_not_exists=True,
    )
    db["ledger_entries"].create_index(["user_id", "type", "reference"], unique=True, if_not_exists=True)
    db["ledger_entries"].create_index(["user_id", "id"], if_not_exists=True)
    db["orders"].create(
        {
            "id": str, "user_id": int, "pack_id": str, "pack_name": str, "credits": int, "amount": int,
            "currency": str, "provider": str, "session_id": str, "checkout_url": str, "return_url": str,
            "state": str, "status": str, "payment_intent": str, "amount_refunded": int,
            "credits_clawed_back": int, "created_at": str, "updated_at": str,
        },
        pk="id", not_null={"user_id", "pack_id", "credits", "amount", "currency", "status", "created_at"},
        defaults={"amount_refunded": 0, "credits_clawed_back": 0},
        if_not_exists=True,
    )
    db["orders"].create_index(["session_id"], unique=True, if_not_exists=True)
    db["orders"].create_index(["payment_intent"], if_not_exists=True)
    db["orders"].create_index(["user_id", "created_at"], if_not_exists=True)
    # The highest cumulative refund Stripe has told us of, per payment; kept even when the payment's
    # order is not known yet, because events arrive in any order.
    db["payment_refunds"].create(
        {"payment_intent": str, "charge_id": str, "amount_refunded": int, "updated_at": str},
        pk="payment_intent", not_null={"amount_refunded"}, if_not_exists=True,
    )
    db["webhook_events"].create(
        {"id": str, "type": str, "outcome": str, "received_at": str},
        pk="id", not_null={"type", "outcome", "received_at"}, if_not_exists=True,
    )
    db["stub_sessions"].create({"id": str, "data": str}, pk="id", not_null={"data"}, if_not_exists=True)
