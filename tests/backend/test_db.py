"""The data layer: writers' work committed together (group commit) with each writer's answer its own; and beyond
one process, a leader lock for work one replica at a time should do, and a database that goes away answered
with 503 and Retry-After, never a 500, until it is back."""

from __future__ import annotations

import contextvars
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import Connection, event

from backend import ledger
from backend.db import Database
from backend.errors import StorageUnavailable
from tests.conftest import SHARED_ENV
from tests.helpers.api import Api
from tests.helpers.backend import BackendProcess
from tests.helpers.servers import PostgresServer

# --- group commit -----------------------------------------------------------------------------------------

CALLER: contextvars.ContextVar[str] = contextvars.ContextVar("caller", default="none")


def grant(user_id: int, credits: int, reference: str) -> Callable[[Connection], int]:
    """A writer's work: one purchase entry; answers the balance after it."""
    def work(conn: Connection) -> int:
        entry = ledger.post(conn, user_id=user_id, type="purchase", amount=credits, reference=reference)
        assert entry is not None
        return entry.balance_after
    return work


def balance(db: Database, user_id: int) -> int:
    with db.read() as conn:
        return ledger.balance(conn, user_id)


def commits(db: Database) -> list[int]:
    """Counts the database's commits from now on (one item per COMMIT)."""
    seen: list[int] = []
    event.listen(db.engine, "commit", lambda conn: seen.append(1))
    return seen


def queued_together(db: Database, works: list[Callable[[Connection], Any]]) -> list[tuple[str, Any]]:
    """Run each work through ``db.grouped`` from a thread of its own, all queued while another writer holds
    SQLite's write lock, so that they commit as one group once it lets go; each thread's answer or error,
    in order. Each thread names itself in CALLER, which its work may read."""
    answers: list[tuple[str, Any]] = [("none", None)] * len(works)

    def writer(n: int) -> None:
        CALLER.set(f"writer {n}")
        try:
            answers[n] = ("answer", db.grouped(works[n]))
        except Exception as error:
            answers[n] = ("error", error)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(len(works))]
    with db.transaction():
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 10
        while len(db._group) < len(works):  # every writer queued behind the lock this test holds
            assert time.monotonic() < deadline, "the writers did not queue"
            time.sleep(0.005)
    for thread in threads:
        thread.join(10)
    return answers


@pytest.mark.engines("sqlite")
def test_writers_queued_for_the_lock_commit_once_together_each_with_its_own_answer(db: Database) -> None:
    done = commits(db)
    answers = queued_together(db, [grant(7, 333, f"cs_{n}") for n in range(5)])
    assert len(done) == 2  # the holder's (empty) and one for the five writers
    assert sorted(answer for kind, answer in answers if kind == "answer") == [333, 666, 999, 1332, 1665]
    assert balance(db, 7) == 1665


@pytest.mark.engines("sqlite")
def test_a_writer_that_queues_while_a_group_runs_joins_it_before_its_commit(db: Database) -> None:
    done = commits(db)
    late: list[tuple[str, Any]] = []

    def grant_and_let_another_queue(conn: Connection) -> int:
        thread = threading.Thread(target=lambda: late.append(("answer", db.grouped(grant(7, 17, "cs_late")))))
        thread.start()
        deadline = time.monotonic() + 10
        while not db._group:  # the late writer is queued behind this group
            assert time.monotonic() < deadline, "the late writer did not queue"
            time.sleep(0.005)
        threads.append(thread)
        return grant(7, 333, "cs_first")(conn)

    threads: list[threading.Thread] = []
    assert db.grouped(grant_and_let_another_queue) == 333
    threads[0].join(10)
    assert late == [("answer", 350)]
    assert len(done) == 1  # one COMMIT for both
    assert balance(db, 7) == 350


@pytest.mark.engines("sqlite")
def test_a_writer_that_fails_undoes_only_its_own_writes(db: Database) -> None:
    def grant_then_refuse(conn: Connection) -> int:
        grant(7, 101, "cs_refused")(conn)
        raise ValueError("refused after writing")

    answers = queued_together(db, [grant(7, 333, "cs_a"), grant_then_refuse, grant(7, 17, "cs_b")])
    assert answers[1][0] == "error" and str(answers[1][1]) == "refused after writing"
    assert [kind for kind, _ in answers] == ["answer", "error", "answer"]
    assert balance(db, 7) == 350  # 333 + 17: the refused writer's 101 is gone, and nothing else of it
    with db.read() as conn:
        assert ledger.find(conn, 7, "purchase", "cs_refused") is None


@pytest.mark.engines("sqlite")
@pytest.mark.parametrize("fault", ["disk I/O error", "database or disk is full"])
def test_a_failed_commit_fails_every_writer_of_its_group_and_keeps_nothing(
    db: Database, monkeypatch: pytest.MonkeyPatch, fault: str
) -> None:
    real_commit = db.engine.dialect.do_commit
    faults = iter([None, fault])  # the lock holder's commit goes through; the group's fails, where SQLite says so

    def commit_with_a_fault(dbapi_connection: sqlite3.Connection) -> None:
        if (this := next(faults, None)) is not None:
            raise sqlite3.OperationalError(this)
        real_commit(dbapi_connection)

    monkeypatch.setattr(db.engine.dialect, "do_commit", commit_with_a_fault)
    answers = queued_together(db, [grant(7, 333, f"cs_{n}") for n in range(4)])
    assert {kind for kind, _ in answers} == {"error"}
    errors = [error for _, error in answers]
    assert all(isinstance(error, StorageUnavailable) and error.retry_after >= 1 for error in errors)
    assert len({id(error) for error in errors}) == 4  # each writer's own, raised in its own thread
    assert fault in str(errors[0])
    assert balance(db, 7) == 0
    assert db.grouped(grant(7, 333, "cs_0")) == 333  # Stripe's retry: the next write works
    assert balance(db, 7) == 333


@pytest.mark.engines("sqlite")
def test_each_writers_work_runs_in_its_own_context(db: Database) -> None:
    """So that what it logs carries its own request's id, though another writer's thread runs it."""
    def who(conn: Connection) -> str:
        return CALLER.get()

    answers = queued_together(db, [who, who, who])
    assert [answer for _, answer in answers] == ["writer 0", "writer 1", "writer 2"]


@pytest.mark.engines("sqlite")
def test_a_group_s_savepoints_journal_in_memory_on_the_writer_only(db: Database) -> None:
    """Each savepoint of a group copies the pages it changes first to a sub-journal, which SQLite spills to a
    temporary file past 64 KB unless temporary storage is in memory (about 50 writes an event in
    bench/webhooks.py). The writer keeps it in memory; readers, and a writer given back to the pool after a
    failure, keep SQLite's default (on disk, however big a reader's temporary tables grow)."""
    answers = queued_together(db, [grant(7, 3, f"cs_{n}") for n in range(40)])  # some hundred KB of savepoints
    assert sorted(answer for _, answer in answers) == [3 * n for n in range(1, 41)]
    with db.transaction() as conn:
        assert conn.exec_driver_sql("PRAGMA temp_store").scalar() == 2  # MEMORY
        writer = conn.connection.dbapi_connection
    with db.read() as conn:
        assert conn.exec_driver_sql("PRAGMA temp_store").scalar() == 0  # the default
    with pytest.raises(ValueError), db.transaction():
        raise ValueError("refused")  # the writer goes back to the pool
    assert writer is not None and writer.execute("PRAGMA temp_store").fetchone() == (0,)
    with db.transaction() as conn:  # the next writer keeps its savepoints in memory again
        assert conn.exec_driver_sql("PRAGMA temp_store").scalar() == 2
    assert balance(db, 7) == 120


def test_a_writer_alone_gets_its_answer_or_its_error_with_nothing_kept(db: Database) -> None:
    """On both engines: on PostgreSQL grouped is a transaction of its own, as transactions there run side by side."""
    assert db.grouped(grant(7, 333, "cs_1")) == 333

    def grant_then_refuse(conn: Connection) -> int:
        grant(7, 101, "cs_2")(conn)
        raise ValueError("refused")

    with pytest.raises(ValueError, match="refused"):
        db.grouped(grant_then_refuse)
    assert balance(db, 7) == 333
    assert db.grouped(grant(7, 101, "cs_2")) == 434



def test_a_leader_lock_is_held_by_one_process_at_a_time(postgres: PostgresServer) -> None:
    url = postgres.create_database()
    first, second = Database(url), Database(url)
    try:
        with (first.leader_lock("reconcile") as first_leads, second.leader_lock("reconcile") as second_leads,
              second.leader_lock("other work") as other):
            assert first_leads and not second_leads and other
        with second.leader_lock("reconcile") as second_leads:
            assert second_leads  # released when the block ended
    finally:
        first.close()
        second.close()
        postgres.drop_database(url)


def test_a_leader_lock_goes_with_a_process_that_dies(postgres: PostgresServer) -> None:
    url = postgres.create_database()
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from backend.db import Database\n"
         "with Database(sys.argv[1]).leader_lock('reconcile') as leads:\n"
         "    print(leads, flush=True); time.sleep(120)", url],
        stdout=subprocess.PIPE, text=True,
    )
    db = Database(url)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "True"
        with db.leader_lock("reconcile") as leads:
            assert not leads
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
        for _ in range(50):  # the server ends the dead session's locks as soon as it sees the socket close
            with db.leader_lock("reconcile") as leads:
                if leads:
                    break
        assert leads
    finally:
        holder.kill()
        holder.wait()
        db.close()
        postgres.drop_database(url)


def test_on_sqlite_the_only_process_leads(tmp_path: Path) -> None:
    db = Database(tmp_path / "db.sqlite3")
    with db.leader_lock("reconcile") as leads:
        assert leads
    db.close()


@pytest.fixture
def own_postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL server of this test's own, to stop and start again."""
    with PostgresServer() as server:
        yield server


@pytest.mark.subprocess
def test_postgresql_down_is_503_with_retry_after_and_the_backend_recovers_when_it_is_back(
    own_postgres: PostgresServer, tmp_path: Path
) -> None:
    backend = BackendProcess(tmp_path, SHARED_ENV, database_url=own_postgres.create_database()).start()
    try:
        api = Api(backend.url).register("owner@example.com")
        checkout = api.checkout("starter")
        requests.post(checkout["url"] + "/pay", timeout=30)
        own_postgres.stop()

        answers = {
            "balance": api.get("/api/credits/balance"),
            "history": api.get("/api/credits/transactions"),
            "spend": api.post("/api/credits/spend", json={"amount": 5, "idempotencyKey": "while-down"}),
            "verify": api.verify(checkout["sessionId"]),
            "checkout": api.post("/api/billing/checkout", json={"packId": "starter"}),
            "login": Api(backend.url).post("/api/auth/login", json={"email": "owner@example.com",
                                                                    "password": "correct horse battery"}),
            "register": Api(backend.url).post("/api/auth/register", json={"email": "new@example.com",
                                                                          "password": "correct horse battery"}),
        }
        for name, r in answers.items():
            assert r.status_code == 503, (name, r.status_code, r.text)
            assert r.json()["error"]["code"] == "temporarily_unavailable" and int(r.headers["Retry-After"]) >= 1
        health = requests.get(f"{backend.url}/api/health", timeout=10)
        assert health.status_code == 200 and health.json()["storage"] == "unavailable"
        assert "Traceback" not in backend.log()

        own_postgres.start()
        assert api.balance() == 100  # the pool replaced the dead connections by itself
        assert api.post("/api/credits/spend", json={"amount": 5, "idempotencyKey": "after"}).json()["balance"] == 95
        assert requests.get(f"{backend.url}/api/health", timeout=10).json()["storage"] == "available"
    finally:
        backend.stop()
    assert backend.ledger_problems() == []


def test_a_database_that_does_not_answer_raises_storage_unavailable(tmp_path: Path) -> None:
    from tests.helpers.servers import free_port

    db = Database(f"postgresql://creditdesk@127.0.0.1:{free_port()}/creditdesk")
    with pytest.raises(StorageUnavailable) as info, db.read():
        pass
    assert info.value.retry_after >= 1 and "127.0.0.1" in str(info.value)
    db.close()
