"""Database access for both engines, SQLite (the embedded default) and PostgreSQL, through SQLAlchemy Core.

Every read-modify-write runs inside :meth:`Database.transaction`. On SQLite that transaction takes
the write lock up front (``BEGIN IMMEDIATE``), so concurrent writers queue instead of failing with
SQLITE_BUSY half-way through; writers in this process queue on an in-process lock first, whose wake-up
is quicker than SQLite's busy handler. On PostgreSQL a transaction is an ordinary one, and the code
that needs exclusion takes row locks (``SELECT ... FOR UPDATE``, which SQLAlchemy leaves out on
SQLite) or relies on unique constraints: nothing in this process is what keeps two replicas apart.

The schema is created and changed only by the migrations (:mod:`backend.migrations`).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, Table, create_engine, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, make_url
from sqlalchemy.pool import QueuePool

BUSY_TIMEOUT_SECONDS = 30


def utcnow() -> str:
    """An ISO 8601 UTC timestamp, as stored and as the API shows it."""
    return iso_utc(datetime.now(UTC))


def iso_utc(moment: datetime) -> str:
    """``moment`` (an aware datetime) in the one text form of stored times: ``2026-11-26T13:18:25.577Z``.

    Every stored time has this fixed width, so comparing the texts compares the times, on both engines.
    """
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def sqlite_url(path: Path | str) -> str:
    return f"sqlite:///{Path(path).expanduser()}"


class Database:
    """An engine and its transactions. ``target`` is a database URL or the path of a SQLite file."""

    def __init__(self, target: str | Path, *, pool_size: int = 10) -> None:
        url = make_url(target if isinstance(target, str) and "://" in target else sqlite_url(target))
        self.url: URL = url
        self.is_sqlite = url.get_backend_name() == "sqlite"
        if self.is_sqlite:
            self.path: Path | None = Path(url.database or "")
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.engine = _sqlite_engine(url)
        else:
            self.path = None
            if url.drivername == "postgresql":
                url = url.set(drivername="postgresql+psycopg")
            self.engine = create_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)
        # Writers in this process queue here rather than in SQLite's busy handler, whose sleeps (up to
        # 100 ms) overshoot the moment the lock frees; busy_timeout still covers other processes.
        self._write_lock = threading.RLock() if self.is_sqlite else None

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """A write transaction: committed when the block ends, rolled back if it raises."""
        with self._write_lock or nullcontext(), self.engine.connect() as conn:
            conn = conn.execution_options(creditdesk_write=True)
            with conn.begin():
                yield conn

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A read-only transaction: one consistent view for the queries inside it."""
        with self.engine.connect() as conn, conn.begin():
            yield conn

    def close(self) -> None:
        self.engine.dispose()


def _sqlite_engine(url: URL) -> Engine:
    # A pool that grows with the server's threads (each thread holds one connection while it works).
    engine = create_engine(
        url, poolclass=QueuePool, pool_size=20, max_overflow=-1,
        connect_args={"timeout": BUSY_TIMEOUT_SECONDS, "check_same_thread": False},
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # No implicit transactions from the driver: we open them ourselves (below), as SQLAlchemy's
        # documentation recommends for pysqlite, so that a writer can say BEGIN IMMEDIATE.
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_SECONDS * 1000)}")
        cursor.execute("PRAGMA journal_mode=WAL")
        # FULL: a commit that answered "granted" survives a power cut, not just a process crash.
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        write = conn.get_execution_options().get("creditdesk_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine


def insert_ignoring_duplicates(conn: Connection, table: Table, values: dict[str, Any]) -> bool:
    """Insert a row unless one with the same unique key exists; returns whether it was inserted.

    ``INSERT ... ON CONFLICT DO NOTHING`` on both engines. On PostgreSQL a concurrent insert of the
    same key waits for the other transaction and then finds the row: the database itself decides
    which of two replicas goes first.
    """
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(table).values(values).on_conflict_do_nothing()
    return conn.execute(statement).rowcount == 1
