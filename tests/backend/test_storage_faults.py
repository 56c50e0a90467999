"""The disk fails: full, read-only, the database gone, an I/O error at COMMIT. Every request that needs
the storage answers 503 with Retry-After (never a 500), nothing is half written, and once the storage is
back the next writes work without a restart. ``serve`` on a database it cannot open says so in one line.

The full and read-only disks are real: a small tmpfs mounted for the test (this needs root, as in CI).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sqlite3
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from backend import ledger, migrations
from backend.api.app import create_app
from backend.config import Settings
from backend.db import Database
from backend.errors import StorageUnavailable
from backend.schema import ledger_entries
from backend.services import Services
from tests.conftest import SHARED_ENV
from tests.helpers.api import Api
from tests.helpers.backend import BackendProcess, InProcessServer
from tests.helpers.commands import run_command

TABLES = ("users", "tokens", "ledger_entries", "balances", "orders")


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs of our own, so that it can be filled up and made read-only."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m,mode=0755", "tmpfs", str(mount_point)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        if os.environ.get("CI") == "true":
            pytest.fail(f"cannot mount a tmpfs for the disk-fault tests: {r.stderr.strip()}")
        pytest.skip(f"cannot mount a tmpfs here (root is needed): {r.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def backend_on(folder: Path, log_folder: Path) -> BackendProcess:
    """A stub-mode backend with its database in ``folder`` and its log elsewhere (a full disk must not
    stop the log)."""
    backend = BackendProcess(log_folder, {**SHARED_ENV, "CREDITDESK_DB": str(folder / "db.sqlite3")})
    backend.db_path = folder / "db.sqlite3"
    return backend.start()


def counts(backend: BackendProcess) -> dict[str, int]:
    return {t: backend.query(f"SELECT COUNT(*) AS n FROM {t}")[0]["n"] for t in TABLES}  # noqa: S608


def buy(api: Api, pack: str = "starter") -> None:
    session_id = api.checkout(pack)["sessionId"]
    r = api.post(f"/stub/checkout/{session_id}/pay")
    assert r.status_code == 303, r.text


def assert_storage_503(r: requests.Response) -> None:
    assert r.status_code == 503, (r.status_code, r.text)
    assert r.json()["error"]["code"] == "temporarily_unavailable"
    assert 1 <= int(r.headers["Retry-After"]) <= 60


def storage_health(backend: BackendProcess) -> str:
    return requests.get(f"{backend.url}/api/health", timeout=10).json()["storage"]


def fill(disk: Path) -> Path:
    filler = disk / "filler"
    # Outermost: closing the file flushes what its buffer kept of the last write, which fails too.
    with contextlib.suppress(OSError), filler.open("wb") as f:
        while True:
            f.write(b"\0" * 65536)
            f.flush()
    return filler


@pytest.mark.subprocess
def test_a_full_disk_is_503_and_writes_work_again_once_there_is_room(small_disk: Path, tmp_path: Path) -> None:
    backend = backend_on(small_disk, tmp_path)
    try:
        api = Api(backend.url).register("full@example.com")
        buy(api)
        before = counts(backend)
        filler = fill(small_disk)

        stranger = Api(backend.url)
        assert_storage_503(stranger.post("/api/auth/register", json={"email": "late@example.com",
                                                                     "password": "correct horse battery"}))
        assert_storage_503(stranger.post("/api/auth/login", json={"email": "full@example.com",
                                                                  "password": "correct horse battery"}))
        assert_storage_503(api.post("/api/credits/spend", json={"amount": 7, "idempotencyKey": "k-full"}))
        assert_storage_503(api.post("/api/billing/checkout", json={"packId": "starter"}))
        assert api.balance() == 100  # reading still works
        assert storage_health(backend) == "unavailable"
        assert counts(backend) == before

        filler.unlink()  # room again: no restart needed
        r = api.post("/api/credits/spend", json={"amount": 7, "idempotencyKey": "k-full"})
        assert r.status_code == 200 and r.json()["balance"] == 93
        assert stranger.post("/api/auth/login", json={"email": "full@example.com",
                                                      "password": "correct horse battery"}).status_code == 200
        Api(backend.url).register("late@example.com")
        assert storage_health(backend) == "available"
        assert backend.ledger_problems() == []
        assert "Traceback" not in backend.log() and "internal_error" not in backend.log()
    finally:
        backend.stop()


@pytest.mark.subprocess
def test_a_vanished_database_is_503_not_written_into_the_void(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    backend = backend_on(data, tmp_path)
    try:
        api = Api(backend.url).register("gone@example.com")
        buy(api)
        aside = tmp_path / "aside"
        data.rename(aside)  # the folder, file and its WAL, gone from where the server looks
        try:
            assert_storage_503(api.post("/api/credits/spend", json={"amount": 7, "idempotencyKey": "k-gone"}))
            assert_storage_503(Api(backend.url).post("/api/auth/register", json={
                "email": "void@example.com", "password": "correct horse battery"}))
        finally:
            aside.rename(data)
        r = api.post("/api/credits/spend", json={"amount": 7, "idempotencyKey": "k-gone"})
        assert r.status_code == 200 and r.json()["balance"] == 93
        assert [row["email"] for row in backend.query("SELECT email FROM users")] == ["gone@example.com"]
    finally:
        backend.stop()


@pytest.mark.parametrize("fault", [
    "disk I/O error",  # SQLITE_IOERR
    "attempt to write a readonly database",  # SQLITE_READONLY: the disk went read-only under the server
    "database or disk is full",  # SQLITE_FULL
])
def test_a_failed_commit_rolls_back_and_the_next_writes_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fault: str
) -> None:
    """The fault is injected where SQLite reports it, in the driver's COMMIT, so that the transaction is
    still open in SQLite when it fails: the one case where a connection could stay stuck in it."""
    services = Services.build(Settings(db_path=tmp_path / "db.sqlite3"), "http://127.0.0.1:9")
    engine: Engine = services.db.engine
    real_commit = engine.dialect.do_commit
    failures = [True]

    def commit_with_a_fault(dbapi_connection: sqlite3.Connection) -> None:
        if failures and failures.pop():
            raise sqlite3.OperationalError(fault)
        real_commit(dbapi_connection)

    try:
        with InProcessServer(create_app(services)) as server:
            api = Api(server.url).register("io@example.com")
            buy(api)
            monkeypatch.setattr(engine.dialect, "do_commit", commit_with_a_fault)
            assert_storage_503(api.post("/api/credits/spend", json={"amount": 7, "idempotencyKey": "k-io"}))
            assert requests.get(f"{server.url}/api/health", timeout=10).json()["storage"] == "unavailable"
            for n in range(30):  # more writes than the pool has connections: none is left in a transaction
                r = api.post("/api/credits/spend", json={"amount": 1, "idempotencyKey": f"k-{n}"})
                assert r.status_code == 200, r.text
            r = api.post("/api/credits/spend", json={"amount": 7, "idempotencyKey": "k-io"})
            assert r.status_code == 200 and r.json()["balance"] == 100 - 30 - 7  # the failed spend took nothing
            assert requests.get(f"{server.url}/api/health", timeout=10).json()["storage"] == "available"
    finally:
        services.db.close()


def serve_on(target: Path) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "CREDITDESK_DB": str(target)}
    return subprocess.run([sys.executable, "-m", "backend", "serve", "--port", "0"], env=env, capture_output=True,
                          text=True, timeout=60)


def assert_one_line_refusal(r: subprocess.CompletedProcess[str], target: Path) -> None:
    assert r.returncode != 0 and "Traceback" not in r.stderr, r.stderr
    lines = [line for line in r.stderr.splitlines() if line.startswith("creditdesk-backend:")]
    assert len(lines) == 1 and "cannot open the database" in lines[0] and str(target) in lines[0], r.stderr
    assert "listening on" not in r.stdout


@pytest.mark.parametrize("case", ["a folder", "not a database", "cannot be made"])
@pytest.mark.subprocess
def test_serve_on_a_database_it_cannot_open_says_so_in_one_line(tmp_path: Path, case: str) -> None:
    if case == "a folder":
        target = tmp_path
    elif case == "not a database":
        target = tmp_path / "garbage.sqlite3"
        target.write_bytes(os.urandom(8192))
    else:
        blocker = tmp_path / "a-file"
        blocker.write_text("")
        target = blocker / "db.sqlite3"  # its folder would have to be inside a file
    assert_one_line_refusal(serve_on(target), target)


@pytest.mark.subprocess
def test_serve_on_a_read_only_disk_says_so_in_one_line(small_disk: Path) -> None:
    target = small_disk / "db.sqlite3"
    migrate = run_command(["migrate"], {"PATH": "/usr/bin:/bin", "CREDITDESK_DB": str(target)})
    assert migrate.returncode == 0, migrate.stderr
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    assert_one_line_refusal(serve_on(target), target)


def test_a_database_restored_from_a_copy_gets_the_writes_that_follow(tmp_path: Path) -> None:
    """The file goes, and a copy of it comes back at its path (a restore from a backup): the writes after
    that land in the copy, which the server and everyone else now open, not in the file that went."""
    path = tmp_path / "data" / "backend.sqlite3"
    db = Database(path)
    migrations.upgrade(db)
    try:
        with db.transaction() as conn:
            ledger.post(conn, user_id=1, type="purchase", amount=337, reference="cs_1")
        with sqlite3.connect(path) as raw:
            raw.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        (tmp_path / "data").rename(tmp_path / "aside")
        with pytest.raises(StorageUnavailable, match="is gone"), db.transaction():
            pass
        (tmp_path / "data").mkdir()
        path.write_bytes((tmp_path / "aside" / "backend.sqlite3").read_bytes())  # a new file, a new inode
        with db.transaction() as conn:
            ledger.post(conn, user_id=1, type="spend", amount=-113, reference="k1")
    finally:
        db.close()
    restored = Database(path)
    try:
        with restored.read() as conn:
            assert ledger.balance(conn, 1) == 224
            assert ledger.check_invariants(conn) == []
    finally:
        restored.close()


def test_a_file_replaced_while_nothing_was_written_is_read_and_written_anew(tmp_path: Path) -> None:
    """A backup restored at the path, the server none the wiser: the next read shows the restored figures and
    the next write lands in the restored file, with no request in between that found the file gone."""
    path = tmp_path / "backend.sqlite3"
    db = Database(path)
    migrations.upgrade(db)
    try:
        with db.transaction() as conn:
            ledger.post(conn, user_id=1, type="purchase", amount=337, reference="cs_1")
        backup = tmp_path / "backup.sqlite3"
        with sqlite3.connect(path) as live, sqlite3.connect(backup) as copy:
            live.backup(copy)  # a backup as an operator takes it: 337 credits
        with db.transaction() as conn:
            ledger.post(conn, user_id=1, type="spend", amount=-100, reference="k-after-backup")
        with db.read() as conn:
            assert ledger.balance(conn, 1) == 237
        for file in tmp_path.glob("backend.sqlite3*"):
            file.unlink()
        path.write_bytes(backup.read_bytes())  # restored: the spend after the backup is not in it
        assert db.peek(sa.select(sa.func.count()).select_from(ledger_entries), {}) == 1
        with db.read() as conn:
            assert ledger.balance(conn, 1) == 337
        with db.transaction() as conn:
            ledger.post(conn, user_id=1, type="spend", amount=-113, reference="k-after-restore")
    finally:
        db.close()
    with sqlite3.connect(path) as raw:
        assert raw.execute("SELECT balance FROM balances WHERE user_id = 1").fetchone() == (224,)


def test_the_database_and_its_wal_and_shm_are_this_users_only(tmp_path: Path) -> None:
    old_umask = os.umask(0o022)
    try:
        path = tmp_path / "new folder" / "backend.sqlite3"
        db = Database(path)
        migrations.upgrade(db)
        with db.transaction() as conn:
            ledger.post(conn, user_id=1, type="purchase", amount=7, reference="cs_1")
        files = {p.name: stat.S_IMODE(p.stat().st_mode) for p in path.parent.iterdir()}
        assert files == {"backend.sqlite3": 0o600, "backend.sqlite3-wal": 0o600, "backend.sqlite3-shm": 0o600}
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        db.close()
        # A database an older version made readable by everyone is made this user's only when opened.
        for file in path.parent.iterdir():
            file.chmod(0o644)
        again = Database(path)
        with again.read() as conn:
            assert ledger.balance(conn, 1) == 7
        again.close()
        assert {p.name: stat.S_IMODE(p.stat().st_mode) for p in path.parent.iterdir()}["backend.sqlite3"] == 0o600
    finally:
        os.umask(old_umask)


@pytest.mark.subprocess
def test_serve_and_migrate_make_private_files(tmp_path: Path) -> None:
    old_umask = os.umask(0o022)
    try:
        target = tmp_path / "made-by-migrate" / "backend.sqlite3"
        migrate = run_command(["migrate"], {"PATH": "/usr/bin:/bin", "CREDITDESK_DB": str(target)})
        assert migrate.returncode == 0, migrate.stderr
        assert stat.S_IMODE(target.stat().st_mode) == 0o600
        (tmp_path / "served").mkdir()
        with BackendProcess(tmp_path / "served") as backend:
            Api(backend.url).register()
            modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in backend.db_path.parent.glob("backend.sqlite3*")}
        assert modes and set(modes.values()) == {0o600}, modes
    finally:
        os.umask(old_umask)


def back_up(database: Path, to: Path) -> Path:
    """A copy as an operator takes one (SQLite's backup API), whole in its one file once closed."""
    live, copy = sqlite3.connect(database), sqlite3.connect(to)
    try:
        live.backup(copy)
    finally:
        copy.close()
        live.close()
    return to


@pytest.mark.subprocess
def test_a_database_deleted_and_restored_is_picked_up_by_the_server_and_the_commands(tmp_path: Path) -> None:
    """Someone deletes the database by mistake and restores last night's backup, the server running all along:
    while the file is gone writes are 503 and a command refuses it; once it is back the server reads and writes the
    restored file without a restart, and the commands see the same figures."""
    data = tmp_path / "data"
    data.mkdir()
    backend = backend_on(data, tmp_path)
    try:
        api = Api(backend.url).register("restored@example.com")
        buy(api)  # 100 credits
        backup = back_up(backend.db_path, tmp_path / "backup.sqlite3")
        spend = api.post("/api/credits/spend", json={"amount": 7, "idempotencyKey": "k-before-delete"})
        assert spend.status_code == 200 and spend.json()["balance"] == 93
        for file in data.glob("db.sqlite3*"):
            file.unlink()
        assert_storage_503(api.post("/api/credits/spend", json={"amount": 5, "idempotencyKey": "k-while-gone"}))
        gone = backend.admin("user", "restored@example.com")
        assert gone.returncode == 2 and gone.stderr.startswith(f"creditdesk-backend: there is no database at {data}")

        shutil.copyfile(backup, backend.db_path)  # restored: the spend after the backup is not in it
        assert api.balance() == 100
        spend = api.post("/api/credits/spend", json={"amount": 13, "idempotencyKey": "k-after-restore"})
        assert spend.status_code == 200 and spend.json()["balance"] == 87
        report = json.loads(backend.admin("user", "restored@example.com", "--json").stdout)
        assert report["balance"] == 87 and [e["amount"] for e in report["ledger"]] == [-13, 100]
        assert backend.admin("check").returncode == 0

        # Again, with nothing asked of the server while the file was gone: the next read finds the new file.
        backup = back_up(backend.db_path, tmp_path / "backup-2.sqlite3")  # 87
        assert api.post("/api/credits/spend", json={"amount": 1, "idempotencyKey": "k-before-2"}).status_code == 200
        for file in data.glob("db.sqlite3*"):
            file.unlink()
        shutil.copyfile(backup, backend.db_path)
        assert api.balance() == 87
        spend = api.post("/api/credits/spend", json={"amount": 2, "idempotencyKey": "k-after-2"})
        assert spend.status_code == 200 and spend.json()["balance"] == 85
        assert json.loads(backend.admin("user", "restored@example.com", "--json").stdout)["balance"] == 85
        assert "Traceback" not in backend.log()
    finally:
        backend.stop()
