"""Database access for both engines, SQLite (the embedded default) and PostgreSQL, through SQLAlchemy Core.

Every read-modify-write runs inside :meth:`Database.transaction`. On SQLite that transaction takes
the write lock up front (``BEGIN IMMEDIATE``), so concurrent writers queue instead of failing with
SQLITE_BUSY half-way through; writers in this process queue on an in-process lock first, whose wake-up
is quicker than SQLite's busy handler. On PostgreSQL a transaction is an ordinary one, and the code
that needs exclusion takes row locks (``SELECT ... FOR UPDATE``, which SQLAlchemy leaves out on
SQLite) or relies on unique constraints: nothing in this process is what keeps two replicas apart.

When the storage fails (PostgreSQL down or restarting, a lock held too long, a deadlock, SQLite locked,
full, read-only or gone) a transaction raises :class:`backend.errors.StorageUnavailable`, which says when
to retry; nothing of it was committed.

The schema is created and changed only by the migrations (:mod:`backend.migrations`).
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import hashlib
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from sqlalchemy import Connection, Engine, Select, Table, create_engine, event, exc, text
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import URL, make_url
from sqlalchemy.pool import QueuePool
from sqlalchemy.sql.expression import Executable

from backend import prepared
from backend.errors import ServerBusy, StorageUnavailable

if TYPE_CHECKING:
    from sqlalchemy.dialects import postgresql

log = logging.getLogger("creditdesk")

BUSY_TIMEOUT_SECONDS = 30
# How long a client is told to wait when the storage fails: a lock, a full disk or a lost connection.
STORAGE_RETRY_AFTER_SECONDS = 5
# PostgreSQL: how long to wait for a connection, and for a row lock another transaction holds, before
# answering "try again" rather than holding the request; a session idle inside a transaction this long
# (a replica that froze half-way) is ended by the server, so that it releases its locks.
CONNECT_TIMEOUT_SECONDS = 5
POOL_TIMEOUT_SECONDS = 10
LOCK_TIMEOUT_SECONDS = 15
IDLE_IN_TRANSACTION_SECONDS = 60
# PostgreSQL's SQLSTATEs after which the same request may well succeed at once: a serialization failure,
# a deadlock, a lock wait that timed out, a statement cancelled.
RETRY_SOON = {"40001": 1, "40P01": 1, "55P03": 2, "57014": 2}
# SQLite: at most this many writers' work in one group commit (:meth:`Database.grouped`).
GROUP_MAX = 32

T = TypeVar("T")


def utcnow() -> str:
    """An ISO 8601 UTC timestamp, as stored and as the API shows it: ``iso_utc(datetime.now(UTC))``, written once per
    millisecond (a webhook's grant stamps five rows within a millisecond or two; writing the text is most of it)."""
    global _last_now
    ms = time.time_ns() // 1_000_000
    last = _last_now
    if last[0] == ms:
        return last[1]
    seconds, millis = divmod(ms, 1000)
    text = iso_utc(datetime.fromtimestamp(seconds, UTC).replace(microsecond=millis * 1000))
    _last_now = (ms, text)
    return text


_last_now: tuple[int, str] = (-1, "")


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
        self.url_text = str(url)  # rendered once (its password hidden): a key for what is kept per database
        self.is_sqlite = url.get_backend_name() == "sqlite"
        if self.is_sqlite:
            self.path: Path | None = Path(url.database or "")
            _private_file(self.path)
            self.engine = _sqlite_engine(url)
        else:
            self.path = None
            self.engine = _postgresql_engine(url, pool_size)
        # Writers in this process queue here rather than in SQLite's busy handler, whose sleeps (up to
        # 100 ms) overshoot the moment the lock frees; busy_timeout still covers other processes.
        self._write_lock = threading.RLock() if self.is_sqlite else None
        self._group: deque[_Work[Any]] = deque()  # work waiting for a group commit (grouped)
        self._group_mutex = threading.Lock()
        self._group_led = False  # whether a writer is leading a group now (the others wait to be woken)
        self._sqlite_writer: Connection | None = None
        self._sqlite_reader: Connection | None = None  # for peek(), used outside any transaction
        self._reader_lock = threading.Lock()
        self.failing_since: float | None = None
        self._file_made = False  # the SQLite file exists once a write has committed
        self._file_id = _file_id(self.path) if self.path is not None else None  # which file is open

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """A write transaction: committed when the block ends, rolled back if it raises.

        A storage that fails (locked, full, read-only, gone, an I/O error, even at COMMIT) raises
        StorageUnavailable, and nothing of the transaction stays: the connection goes back to the pool
        rolled back, so one failure does not block the writes after it.
        """
        if self._write_lock is None:  # PostgreSQL: any connection of the pool, transactions side by side
            with self._storage_faults(), self.engine.connect() as conn:
                conn = conn.execution_options(creditdesk_write=True)
                with conn.begin():
                    yield conn
        else:
            with self._storage_faults(), self._write_lock:
                self._check_file()
                conn = self._writer()
                try:
                    with conn.begin():
                        yield conn
                except BaseException:
                    # Whatever failed, even a COMMIT that left SQLite inside the transaction, this connection
                    # goes back to the pool (which rolls it back) and the next write starts on a fresh one.
                    self._sqlite_writer = None
                    _as_reader(conn)
                    conn.close()
                    raise
        self.failing_since = None
        self._file_made = True

    def grouped(self, work: Callable[[Connection], T]) -> T:
        """``work(conn)`` in a write transaction, maybe committed together with other writers' work; its result.

        For the write paths that take bursts (Stripe's webhooks). On SQLite a commit costs more than the work it
        ends (its pages written to the WAL and synced: about 200 us of CPU for a webhook event's, against 330 us
        for the event's own statements), and writers take turns anyway: so whoever holds the write lock runs the
        work of every writer queued behind it (and of those that queue while it runs), each in a savepoint of one
        transaction, and commits once (group commit; ``bench/webhooks.py`` measures it). What a caller sees is what
        :meth:`transaction` gives:

        - ``work`` raising rolls back its own writes only (to its savepoint) and raises in its caller;
        - a storage fault (in any work, or at COMMIT) commits nothing of the group and raises StorageUnavailable
          in every caller, each of which may retry, as with its own transaction;
        - work runs in its caller's context (its request id in the log lines), on the leader's thread.

        ``work`` must not open a transaction of its own, nor do what cannot be undone (it may be rolled back
        with the group): do that once this returns. On PostgreSQL it is simply :meth:`transaction`, since
        transactions there run side by side.
        """
        if self._write_lock is None:
            with self.transaction() as conn:
                return work(conn)
        item: _Work[T] = _Work(work, contextvars.copy_context())
        with self._group_mutex:
            self._group.append(item)
            leads = not self._group_led
            self._group_led = True
        if not leads:
            item.woken.wait()  # its group committed, or it is asked to lead the next one
        if not item.finished:
            self._lead_group()
        if item.error is not None:
            raise item.error
        return item.result  # type: ignore[return-value]  # set whenever error is not

    def _lead_group(self) -> None:
        """Commit the queued work as one group, then hand the lead to the first writer still queued (if any)."""
        assert self._write_lock is not None  # SQLite's
        group: list[_Work[Any]] = []
        try:
            with self._write_lock:
                self._take_queued(group)  # before BEGIN: a BEGIN that fails is every one of their faults
                self._commit_group(group)
        finally:
            with self._group_mutex:
                if self._group:
                    self._group[0].woken.open()  # the next leader
                else:
                    self._group_led = False
            for done in group:
                done.finished = True
                done.woken.open()

    def _take_queued(self, group: list[_Work[Any]]) -> bool:
        """Move the work queued now into ``group`` (up to GROUP_MAX in all); whether any was."""
        with self._group_mutex:
            taken = bool(self._group) and len(group) < GROUP_MAX
            while self._group and len(group) < GROUP_MAX:
                group.append(self._group.popleft())
        return taken

    def _commit_group(self, group: list[_Work[Any]]) -> None:
        """Under the write lock: run the group's work in one transaction, a savepoint each, and commit once; what came
        of each. Work queued while the group runs joins it before the COMMIT (up to GROUP_MAX): it would only wait
        for this commit to queue for the next, and each commit costs its fsync and page writes."""
        try:
            with self.transaction() as conn:
                done = 0
                if len(group) == 1:  # alone, its error rolls back the whole transaction: no savepoint needed
                    group[0].result = group[0].context.run(group[0].work, conn)
                    done = 1
                driver = conn.connection.driver_connection
                assert driver is not None  # an open connection's
                while done < len(group) or self._take_queued(group):
                    item = group[done]
                    done += 1
                    driver.execute("SAVEPOINT grouped")
                    try:
                        item.result = item.context.run(item.work, conn)
                    except Exception as error:
                        if _is_group_fault(error):
                            raise
                        driver.execute("ROLLBACK TO grouped")
                        item.error = error
                    driver.execute("RELEASE grouped")
        except BaseException as error:
            if len(group) == 1 and isinstance(error, Exception) and not _is_group_fault(error):
                group[0].error = error  # its own refusal, rolled back with its transaction
                return
            # Nothing of the group was committed: every writer in it hears so, as a fault of its own.
            if isinstance(error, Exception) and not isinstance(error, StorageUnavailable | ServerBusy):
                self._failed(error)  # a savepoint's own statement failed: the storage, not a writer
            for item in group:
                item.result = None
                item.error = _storage_error(error)
            if not isinstance(error, Exception):
                raise

    def _writer(self) -> Connection:
        """SQLite: the one connection this process writes on, since its writers take turns anyway.

        One connection keeps its page cache warm from write to write; a pool of them would each find the
        pages the others changed stale and read them again (``bench/webhooks.py`` measured that cost)."""
        if self._sqlite_writer is None:
            writer = self.engine.connect().execution_options(creditdesk_write=True)
            # A group commit's savepoints (grouped) keep each page they change first in a sub-journal, to roll one
            # writer back; past 64 KB SQLite spills it to a temporary file unless temporary storage is in memory.
            # A group of webhook events changes hundreds of KB: on file, about 50 writes (and a temporary file
            # made and deleted) an event, as many as its commit's own (bench/webhooks.py). Only the writer's: a
            # reader's temporary tables stay on disk, however big.
            writer.connection.dbapi_connection.execute("PRAGMA temp_store=MEMORY")  # type: ignore[union-attr]
            self._sqlite_writer = writer
        return self._sqlite_writer

    def peek(self, statement: Executable, params: Mapping[str, Any]) -> Any:
        """The first column of the first row of one read-only statement built once, or None.

        For a point lookup on the hot path (has this event been processed?). On SQLite it runs on a connection
        kept for these lookups, outside any transaction: a single statement reads one consistent snapshot,
        and a transaction on a pooled connection costs several times what the lookup does. On PostgreSQL it
        is a read transaction, and so it is when :mod:`backend.prepared` is turned off. Only a SELECT is
        taken: a write outside a transaction would commit on its own."""
        if not isinstance(statement, Select):
            raise ValueError("peek reads: only a SELECT")
        if not (self.is_sqlite and prepared.enabled() and prepared.is_hot(statement)):
            with self.read() as conn:
                return conn.execute(statement, dict(params)).scalar()
        self._check_replaced()
        with self._storage_faults(), self._reader_lock:
            try:
                if self._sqlite_reader is None:
                    self._sqlite_reader = self.engine.connect()  # never begun: each statement reads on its own
                return prepared.run_outside_transaction(
                    self._sqlite_reader.connection.driver_connection, self.engine.dialect, statement, params
                ).scalar()
            except BaseException:
                self._drop_reader()
                raise

    def _drop_reader(self) -> None:
        if self._sqlite_reader is not None:
            self._sqlite_reader.close()
            self._sqlite_reader = None

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A read-only transaction: one consistent view for the queries inside it."""
        self._check_replaced()
        with self._storage_faults(), self.engine.connect() as conn, conn.begin():
            yield conn

    @contextmanager
    def leader_lock(self, name: str) -> Iterator[bool]:
        """Whether this process is the one doing ``name`` now: yields True to at most one process at a
        time among all that share the database (and False to the others) until the block ends.

        On PostgreSQL a session-level advisory lock, held on a connection of its own for the block: the
        server releases it when the block ends or the process dies. On SQLite, one machine, one process
        in practice: always True.
        """
        if self.is_sqlite:
            yield True
            return
        key = _lock_key(name)
        with self._storage_faults(), self.engine.connect() as conn:
            held = bool(conn.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": key}).scalar())
            conn.commit()
            try:
                yield held
            finally:
                if held:
                    conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
                    conn.commit()

    @contextmanager
    def _storage_faults(self) -> Iterator[None]:
        try:
            yield
        except StorageUnavailable as error:
            self._failed(error)
            raise
        except exc.TimeoutError as error:  # no free connection in the pool within POOL_TIMEOUT_SECONDS
            raise ServerBusy("every database connection is in use", retry_after=2) from error
        except STORAGE_ERRORS as error:
            if isinstance(error, exc.DBAPIError) and not _is_storage_fault(error):
                raise
            self._failed(error)
            retry_after = RETRY_SOON.get(getattr(getattr(error, "orig", None), "sqlstate", None) or "",
                                         STORAGE_RETRY_AFTER_SECONDS)
            raise StorageUnavailable(one_line(error), retry_after) from error

    def _failed(self, error: BaseException) -> None:
        if self.failing_since is None:
            self.failing_since = time.time()
        log.error("storage outcome=unavailable reason=%s", one_line(error))

    def _check_file(self) -> None:
        """A SQLite file deleted under a running server would take writes into a file no one can open
        again: refuse them instead, until it is back. (One stat() for this and :meth:`_check_replaced`.)"""
        if self.path is None:
            return
        now = _file_id(self.path)
        if self._file_made and now is None:
            # Let go of the file that was there: whatever comes back at this path (the folder moved back, a
            # copy restored) is opened anew, not written past through a connection to the old one.
            self._let_go()
            raise StorageUnavailable(f"the database file {self.path} is gone", STORAGE_RETRY_AFTER_SECONDS)
        self._replaced(now)

    def _check_replaced(self) -> None:
        """A SQLite file replaced at its path (deleted, and a backup restored in its place) is a new file: let go
        of the connections to the old one, so that reads and writes go to the file that is there now, without a
        restart. One stat() of the path, a microsecond or two."""
        if self.path is not None:
            self._replaced(_file_id(self.path))

    def _replaced(self, now: tuple[int, int] | None) -> None:
        if now is not None and now != self._file_id:
            if self._file_id is not None:
                log.warning("storage outcome=file_replaced path=%s: opening the new file", self.path)
                self._let_go()
            self._file_id = now

    @property
    def healthy(self) -> bool:
        """False from a storage failure until the next write that commits (for /api/health; no I/O)."""
        return self.failing_since is None

    def close(self) -> None:
        self._let_go()

    def _let_go(self) -> None:
        """Close every connection: the SQLite writer and reader, and the pool's."""
        if self._write_lock is not None:
            with self._write_lock:  # (re-entered when the writer itself finds the file gone)
                if self._sqlite_writer is not None:
                    self._sqlite_writer.close()
                    self._sqlite_writer = None
            with self._reader_lock:
                self._drop_reader()
        self.engine.dispose()


class _Latch:
    """Opened once, by another thread, and waited on at most once: a lock taken when made and released to let its
    waiter through. threading.Event does the same with a Condition in Python (locks of its own, a waiter list),
    several times the cost, and each webhook of a burst makes one (grouped). A writer's latch is opened exactly
    once: when its group has committed, or when it is handed the lead of the next."""

    __slots__ = ("_lock",)

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._lock.acquire()

    def open(self) -> None:
        self._lock.release()

    def wait(self) -> None:
        self._lock.acquire()


@dataclass(eq=False)
class _Work(Generic[T]):
    """One writer's work waiting for a group commit, and then what came of it."""

    work: Callable[[Connection], T]
    context: contextvars.Context
    result: T | None = None
    error: BaseException | None = None
    finished: bool = False
    woken: _Latch = field(default_factory=_Latch)


def _is_group_fault(error: Exception) -> bool:
    """Whether a writer's error ends the whole group: the storage failing (or SQLite may have rolled back the
    transaction itself), as opposed to the writer's own refusal, which its savepoint undoes."""
    if isinstance(error, StorageUnavailable | ServerBusy):
        return True
    if isinstance(error, exc.DBAPIError):
        return _is_storage_fault(error)
    return isinstance(error, STORAGE_ERRORS)


def _storage_error(error: BaseException) -> StorageUnavailable:
    """A fresh error for each writer of a failed group (one exception raised in several threads would share
    its traceback)."""
    if isinstance(error, StorageUnavailable | ServerBusy):
        return StorageUnavailable(str(error), error.retry_after)
    return StorageUnavailable(one_line(error), STORAGE_RETRY_AFTER_SECONDS)


def _lock_key(name: str) -> int:
    """A name as the 64-bit key of a PostgreSQL advisory lock (two names sharing a key only queue together)."""
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big", signed=True)


_XACT_LOCK = text("SELECT pg_advisory_xact_lock(:key)")


def lock_until_commit(conn: Connection, name: str) -> None:
    """Hold the lock called ``name`` until the write transaction on ``conn`` ends.

    For facts that live in rows not yet written, so that no row lock can guard them: a payment's grant
    and its refunds and disputes are kept apart by the payment's name (see :mod:`backend.fulfilment`).
    On PostgreSQL a transaction-level advisory lock, which the server releases at COMMIT or ROLLBACK (or
    when the replica dies); transactions of every replica that take it queue in turn. On SQLite every
    write transaction already holds the database's one write lock, so there is nothing more to take.
    """
    if conn.dialect.name == "postgresql":
        conn.execute(_XACT_LOCK, {"key": _lock_key(name)})


def _file_id(path: Path) -> tuple[int, int] | None:
    try:
        found = path.stat()
    except OSError:
        return None
    return found.st_dev, found.st_ino


def _private_file(path: Path) -> None:
    """Make the SQLite file (and its folder, when new) readable by this user only, before SQLite opens it.

    The database holds emails and password hashes. SQLite creates a missing file 0644 less the umask, and its
    ``-wal`` and ``-shm`` files with the database file's own permissions: so the file is created here first,
    empty (an empty file is an empty database), 0600, and so are they then; a file made by an older version
    is made 0600 too. The folder, when it is made here, is 0700."""
    if str(path) in ("", ":memory:"):
        return
    if not path.parent.exists():
        path.parent.mkdir(parents=True, mode=0o700)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass
    except OSError:
        return  # a folder that cannot be written: SQLite's own error says so when it opens it
    for file in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        with contextlib.suppress(OSError):  # another user's file, or none: leave it
            if file.exists() and file.stat().st_mode & 0o077 and file.stat().st_uid == os.getuid():
                file.chmod(0o600)


def _postgresql_engine(url: URL, pool_size: int) -> Engine:
    if url.drivername == "postgresql":
        url = url.set(drivername="postgresql+psycopg")
    options = " ".join(filter(None, [
        url.query.get("options"),  # type: ignore[list-item]
        f"-c lock_timeout={LOCK_TIMEOUT_SECONDS * 1000}",
        f"-c idle_in_transaction_session_timeout={IDLE_IN_TRANSACTION_SECONDS * 1000}",
    ]))
    connect_args: dict[str, Any] = {"options": options}
    if "connect_timeout" not in url.query:
        connect_args["connect_timeout"] = CONNECT_TIMEOUT_SECONDS
    # pool_size connections per process, as many again in a burst; pre-ping: a connection the server
    # dropped (a restart, a failover) is replaced before use instead of failing a request.
    return create_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_timeout=POOL_TIMEOUT_SECONDS,
                         pool_pre_ping=True, connect_args=connect_args)


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
        statement = "BEGIN IMMEDIATE" if conn.get_execution_options().get("creditdesk_write", False) else "BEGIN"
        # On the driver, as backend.prepared runs the hot path's statements: SQLAlchemy's execution of a BEGIN
        # cost as much Python as two of a webhook's statements. Its failure (the database locked past the busy
        # timeout, a file gone) is wrapped as SQLAlchemy's would be, so the storage faults are seen alike.
        if not prepared.enabled():  # CREDITDESK_PREPARED_STATEMENTS=off: everything through SQLAlchemy
            conn.exec_driver_sql(statement)
            return
        driver = conn.connection.driver_connection
        try:
            driver.execute(statement)  # type: ignore[union-attr]
        except engine.dialect.loaded_dbapi.Error as error:
            raise exc.DBAPIError.instance(statement, (), error, engine.dialect.loaded_dbapi.Error,
                                          dialect=engine.dialect) from error

    return engine


def _as_reader(writer: Connection) -> None:
    """A writer going back to the pool, as any pooled connection is (temporary storage on disk); a connection that
    cannot take the pragma is past using, and the pool finds so itself (an invalidated one is not reopened for it)."""
    if writer.invalidated:
        return
    with contextlib.suppress(Exception):
        writer.connection.dbapi_connection.execute("PRAGMA temp_store=DEFAULT")  # type: ignore[union-attr]


def insert_ignoring_duplicates(conn: Connection, table: Table, values: dict[str, Any]) -> dict[str, Any] | None:
    """Insert a row unless one with the same unique key exists; returns the new row's primary key, or
    None when there was one already.

    ``INSERT ... ON CONFLICT DO NOTHING`` on both engines. On PostgreSQL a concurrent insert of the
    same key waits for the other transaction and then finds the row: the database itself decides
    which of two replicas goes first.
    """
    return prepared.run(conn, _insert_ignoring(conn.dialect.name, table), values).first()


@functools.cache
def _insert_ignoring(dialect_name: str, table: Table) -> Executable:
    """The statement, built once per table: the values come as parameters, so it compiles once per set of
    columns given and its cache key is worked out once (building a statement per call costs more than
    running it)."""
    # RETURNING, not rowcount: the cursor's rowcount of an INSERT is not kept by every driver (psycopg's
    # is -1 once SQLAlchemy has closed the cursor), while a returned row is there on both engines.
    return insert_for(dialect_name, table).on_conflict_do_nothing().returning(*table.primary_key)


def insert_for(dialect_name: str, table: Table) -> sqlite.Insert | postgresql.Insert:
    """The engine's own INSERT, which has ON CONFLICT (both engines spell it alike). PostgreSQL's dialect is
    imported when a PostgreSQL database is used (by its engine first): a SQLite backend leaves its 2 MB out."""
    if dialect_name == "postgresql":
        from sqlalchemy.dialects import postgresql

        return postgresql.insert(table)
    return sqlite.insert(table)


def hot_insert_ignoring(name: str, table: Table) -> None:
    """Register the duplicate-ignoring insert into ``table`` as one of the hot path's (:mod:`backend.prepared`)."""
    prepared.hot(name, _insert_ignoring("sqlite", table))


# What the storage raises when it, not our code, fails: the DBAPI's operational errors (locked, full,
# read-only, cannot open, I/O error, connection lost), a file that is not a database, and the OS's.
STORAGE_ERRORS = (exc.OperationalError, exc.InterfaceError, exc.InternalError, exc.DatabaseError, OSError)


def _is_storage_fault(error: exc.DBAPIError) -> bool:
    # IntegrityError, ProgrammingError and DataError are DatabaseErrors too, but they are our mistakes.
    return not isinstance(error, exc.IntegrityError | exc.ProgrammingError | exc.DataError | exc.NotSupportedError)


def one_line(error: BaseException) -> str:
    """The first line of an error's own message (the driver's, without SQLAlchemy's additions)."""
    original = getattr(error, "orig", None) or error
    return (str(original).splitlines() or [type(original).__name__])[0][:200]
