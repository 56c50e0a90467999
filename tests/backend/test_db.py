"""The data layer beyond one process: a leader lock for work one replica at a time should do, and a
database that goes away answered with 503 and Retry-After, never a 500, until it is back."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from backend.db import Database
from backend.errors import StorageUnavailable
from tests.conftest import SHARED_ENV
from tests.helpers.api import Api
from tests.helpers.backend import BackendProcess
from tests.helpers.servers import PostgresServer


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
