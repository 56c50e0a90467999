"""Versioned schema: a database made by the previous version opens, migrates and keeps every row."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from backend import migrations
from backend.db import Database
from backend.schema import metadata
from tests.conftest import Databases
from tests.helpers.api import Api
from tests.helpers.backend import BackendProcess
from tests.helpers.commands import CommandResult, run_command

FIXTURES = Path(__file__).parent.parent / "fixtures"


def made_by_0_1_0(path: Path) -> Path:
    conn = sqlite3.connect(path)
    conn.executescript((FIXTURES / "db-0.1.0.sql").read_text())
    conn.close()
    return path


def rows(path: Path) -> dict[str, list[tuple[object, ...]]]:
    """Every row of every table of 0.1.0, in the columns 0.1.0 had."""
    conn = sqlite3.connect(path)
    try:
        return {
            table: conn.execute(f"SELECT {', '.join(sorted(columns))} FROM {table} ORDER BY 1, 2").fetchall()  # noqa: S608
            for table, columns in migrations.UNVERSIONED_0_1_0.items()
        }
    finally:
        conn.close()


def cli(*args: str, db: Path) -> CommandResult:
    """``creditdesk-backend ARGS`` on the SQLite file ``db`` and nothing else of this machine's settings."""
    return run_command(list(args), {"PATH": "/usr/bin:/bin", "CREDITDESK_DB": str(db)})


def test_a_database_made_by_0_1_0_migrates_and_keeps_every_row(tmp_path: Path) -> None:
    db_path = made_by_0_1_0(tmp_path / "old.sqlite3")
    before = rows(db_path)
    assert sum(len(r) for r in before.values()) > 20 and all(before[t] for t in ("orders", "ledger_entries"))

    r = cli("migrate", db=db_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"migrated the database from schema version 0.1.0 to {migrations.head()}"
    assert rows(db_path) == before
    r = cli("check", db=db_path)
    assert r.returncode == 0 and "the ledger adds up" in r.stdout, r.stdout + r.stderr
    again = cli("migrate", db=db_path).stdout.strip()
    assert again == f"the database is up to date (schema version {migrations.head()})"


@pytest.mark.subprocess
def test_serve_upgrades_an_old_database_by_itself_and_its_users_carry_on(tmp_path: Path) -> None:
    made_by_0_1_0(tmp_path / "backend.sqlite3")
    with BackendProcess(tmp_path) as backend:
        r = requests.post(f"{backend.url}/api/auth/login",
                          json={"email": "alice@example.com", "password": "correct horse battery"}, timeout=10)
        assert r.status_code == 200, r.text
        api = Api(backend.url, r.json()["token"])
        # 1200 + 100 bought, 1200 * 1337 // 5000 = 320 clawed back by the partial refund, 77 spent.
        assert api.balance() == 1200 + 100 - 320 - 77
        assert [t["type"] for t in api.transactions()] == ["spend", "refund", "purchase", "purchase"]
        api.checkout("starter")  # and new rows go in beside the old ones
    assert backend.ledger_problems() == []


def test_the_migrations_make_exactly_the_schema_the_code_describes(tmp_path: Path, databases: Databases) -> None:
    db = Database(databases.new(migrated=False) or tmp_path / "new.sqlite3")
    try:
        assert migrations.upgrade(db) == (None, migrations.head())
        with db.read() as conn:
            assert compare_metadata(MigrationContext.configure(conn), metadata) == []
    finally:
        db.close()


def test_an_unknown_database_is_refused_in_one_line_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "other.sqlite3"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
    conn.execute("INSERT INTO notes (body) VALUES ('keep me')")
    conn.commit()
    conn.close()
    r = cli("migrate", db=path)
    assert r.returncode == 1
    assert r.stderr.count("\n") == 1 and "not those of Creditdesk 0.1.0" in r.stderr and "Traceback" not in r.stderr
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall() == [("notes",)]


@pytest.mark.parametrize("make", ["directory", "not_a_database"])
@pytest.mark.subprocess
def test_serve_on_a_database_it_cannot_open_says_so_in_one_line(tmp_path: Path, make: str) -> None:
    path = tmp_path / "backend.sqlite3"
    if make == "directory":
        path.mkdir()
    else:
        path.write_bytes(b"this is not a database" * 100)
    env = {"PATH": "/usr/bin:/bin", "CREDITDESK_DB": str(path)}
    r = subprocess.run([sys.executable, "-m", "backend", "serve", "--port", "0"], env=env, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode != 0
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("creditdesk-backend: ") and "database" in last and "Traceback" not in r.stderr


def test_a_database_at_the_last_landed_version_keeps_every_row(tmp_path: Path, databases: Databases) -> None:
    """0003 (the version before this one's refunds' creation time, orders' totals and support's notes): its rows
    come through whole, and the new columns say "not known" rather than inventing a value."""
    from alembic import command
    from sqlalchemy import text

    db = Database(databases.new(migrated=False) or tmp_path / "at-0003.sqlite3")
    try:
        with db.transaction() as conn:
            command.upgrade(migrations._config(conn), "0003")
            conn.execute(text(
                "INSERT INTO users (id, email, password_hash, created_at) VALUES (7, 'old@example.com', '-', 't')"))
            conn.execute(text(
                "INSERT INTO orders (id, user_id, pack_id, pack_name, credits, amount, currency, provider, session_id, "
                "status, payment_intent, amount_refunded, credits_clawed_back, created_at, amount_disputed) VALUES "
                "('ord_old', 7, 'pro', 'Pro', 1200, 5000, 'usd', 'stripe', 'cs_old', 'paid', 'pi_old', 1337, 320, "
                "'t', 0)"))
            conn.execute(text(
                "INSERT INTO refunds (id, payment_intent, charge_id, amount, currency, status, as_of, updated_at) "
                "VALUES ('re_old', 'pi_old', 'ch_old', 1337, 'usd', 'succeeded', 5, 't')"))
            conn.execute(text(
                "INSERT INTO ledger_entries (user_id, type, amount, balance_after, reference, description, created_at) "
                "VALUES (7, 'adjustment', 50, 50, 'adj:old', 'Goodwill, as the user saw it', 't')"))
        before, after = migrations.upgrade(db)
        assert (before, after) == ("0003", migrations.head())
        with db.read() as conn:
            order = conn.execute(text("SELECT credits, amount, status, amount_refunded, credits_clawed_back, "
                                      "amount_paid, amount_discount, amount_tax, refusal FROM orders")).one()
            assert tuple(order) == (1200, 5000, "paid", 1337, 320, None, 0, 0, None)
            assert tuple(conn.execute(text("SELECT id, amount, status, created FROM refunds")).one()) == (
                "re_old", 1337, "succeeded", None)
            assert conn.execute(text("SELECT description FROM ledger_entries")).scalar_one() == \
                "Goodwill, as the user saw it"
            assert conn.execute(text("SELECT COUNT(*) FROM adjustment_notes")).scalar_one() == 0
    finally:
        db.close()


def test_a_database_at_0006_gets_the_usage_sums_of_every_entry_it_holds(tmp_path: Path, databases: Databases) -> None:
    """0007 computes the usage dashboard's sums from the entries already there; the ledger keeps them after."""
    from alembic import command
    from sqlalchemy import text

    from backend import ledger, rollups

    db = Database(databases.new(migrated=False) or tmp_path / "at-0006.sqlite3")
    try:
        with db.transaction() as conn:
            command.upgrade(migrations._config(conn), "0006")
            for user, kind, amount, after, ref, feature, at in [
                (7, "purchase", 1200, 1200, "cs_1", None, "2026-11-30T23:59:59.999Z"),
                (7, "spend", -333, 867, "k1", "ocr", "2026-12-01T00:00:00.000Z"),
                (7, "spend", -7, 860, "k2", None, "2026-12-01T00:14:00.000Z"),
                (8, "adjustment", 25, 25, "adj:1", None, "2026-12-01T09:31:00.000Z"),
            ]:
                conn.execute(text(
                    "INSERT INTO ledger_entries (user_id, type, amount, balance_after, reference, description, "
                    "feature, created_at) VALUES (:u, :k, :a, :b, :r, 'Scan', :f, :t)"),
                    {"u": user, "k": kind, "a": amount, "b": after, "r": ref, "f": feature, "t": at})
            conn.execute(text("INSERT INTO balances (user_id, balance) VALUES (7, 860), (8, 25)"))
        assert migrations.upgrade(db) == ("0006", migrations.head())
        with db.transaction() as conn:
            assert sorted(tuple(r) for r in conn.execute(text(
                "SELECT user_id, quarter, type, amount FROM usage_quarters"))) == [
                (7, "2026-11-30T23:45:00.000Z", "purchase", 1200), (7, "2026-12-01T00:00:00.000Z", "spend", -340),
                (8, "2026-12-01T09:30:00.000Z", "adjustment", 25)]
            labels = conn.execute(text("SELECT user_id, day, label, amount FROM usage_labels"))
            assert sorted(tuple(r) for r in labels) == [(7, "2026-12-01", "Scan", -7), (7, "2026-12-01", "ocr", -333)]
            ledger.post(conn, user_id=7, type="spend", amount=-11, reference="k3",
                        created_at="2026-12-01T00:14:30.000Z")
            assert ledger.check_invariants(conn) == [] and rollups.problems(conn) == []
    finally:
        db.close()


def test_the_newest_version_is_read_from_the_file_names_as_alembic_reads_it() -> None:
    assert migrations.newest() == migrations.head()


@pytest.mark.subprocess
def test_an_idle_backend_loads_neither_alembic_nor_the_stripe_sdk_nor_redis(tmp_path: Path) -> None:
    """An idle stub-mode backend (the desktop app's) keeps what it does not use out of memory: Alembic, the Stripe
    SDK, sqlite-utils, Jinja, the circuit breaker's library with the redis-py it imports (no Redis is set),
    SQLAlchemy's PostgreSQL dialect, Prometheus' client (no metrics port is set) and the rate limits' library
    (until a request a limit applies to)."""
    path = tmp_path / "backend.sqlite3"
    migrations.upgrade(Database(path))
    probe = ("import sys\n"
             "from backend import cli, migrations\n"
             "from backend.config import Settings\n"
             "from backend.db import Database\n"
             "migrations.prepare(Database(Settings.from_env().database))\n"
             "from backend.api.app import create_app\n"
             "from backend.services import Services\n"
             "create_app(Services.build(Settings.from_env(), 'http://127.0.0.1:1'))\n"
             "print(sorted(m for m in ('alembic', 'stripe', 'sqlite_utils', 'jinja2', 'purgatory', 'redis', "
             "'sqlalchemy.dialects.postgresql', 'prometheus_client', 'limits') "
             "if m in sys.modules))\n")
    r = subprocess.run([sys.executable, "-c", probe], env={**os.environ, "CREDITDESK_DB": str(path)},
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


def test_a_database_at_0015_keeps_every_balance_as_one_paid_grant(tmp_path: Path, databases: Databases) -> None:
    """0016 (grants): each balance, positive, zero or below zero after a clawback, becomes one paid grant without
    expiry holding exactly it; the entries before are left as they were, the ones after are allocated, and check
    proves the grants, the allocations and the balances agree."""
    import csv
    import io
    from datetime import UTC, date, datetime

    from alembic import command
    from sqlalchemy import text

    from backend import expiry, grants, ledger, spend_controls, spending, usage
    from backend.periods import Window

    db = Database(databases.new(migrated=False) or tmp_path / "at-0015.sqlite3")
    try:
        with db.transaction() as conn:
            command.upgrade(migrations._config(conn), "0015")
            for user, kind, amount, after, ref in [
                (7, "purchase", 1200, 1200, "cs_1"), (7, "spend", -333, 867, "k1"),
                (8, "purchase", 25, 25, "cs_2"), (8, "spend", -25, 0, "k2"),
                (9, "purchase", 10, 10, "cs_3"), (9, "spend", -10, 0, "k3"), (9, "refund", -7, -7, "re_1"),
            ]:
                conn.execute(text(
                    "INSERT INTO ledger_entries (user_id, type, amount, balance_after, reference, description, "
                    "created_at) VALUES (:u, :k, :a, :b, :r, 'old', '2026-12-01T00:00:00.000Z')"),
                    {"u": user, "k": kind, "a": amount, "b": after, "r": ref})
            conn.execute(text("INSERT INTO balances (user_id, balance) VALUES (7, 867), (8, 0), (9, -7)"))
        assert migrations.upgrade(db) == ("0015", migrations.head())
        with db.read() as conn:
            assert sorted(tuple(r) for r in conn.execute(text(
                "SELECT user_id, kind, source, amount, remaining, expires_at FROM grants"))) == [
                (7, "paid", "migration", 867, 867, None), (8, "paid", "migration", 0, 0, None),
                (9, "paid", "migration", -7, -7, None)]
            assert conn.execute(text("SELECT COUNT(*) FROM ledger_entries")).scalar_one() == 7
            assert grants.problems(conn, datetime.now(UTC)) == []
        spending.spend(db, 7, spending.SpendRequest(101, "after"))
        with db.transaction() as conn:  # a purchase after the migration repays user 9's debt first
            ledger.post(conn, user_id=9, type="purchase", amount=19, reference="cs_new")
        with db.read() as conn:
            assert [g.remaining for g in expiry.view(conn, 7, datetime.now(UTC)).grants] == [766]
            assert sorted(g.remaining for g in grants.live(conn, 9)) == [12]
            assert [p for p in ledger.check_invariants(conn) if "usage" not in p] == []  # (rows put in by hand)
            assert grants.problems(conn, datetime.now(UTC)) == []
            # The spends from before grants spent paid credits (there were no others): usage and the CSV say so.
            window = Window(date(2026, 11, 30), date(2100, 1, 1), datetime(2026, 11, 30, tzinfo=UTC),
                            datetime(2100, 1, 1, tzinfo=UTC))
            assert usage.spent_by_kind(conn, 7, window) == {"spentPaid": 333 + 101, "spentPromotional": 0,
                                                             "expired": 0}
        chunks = usage.csv_chunks(db, 7, spend_controls.Controls(time_zone="UTC"), window)
        rows = list(csv.reader(io.StringIO(b"".join(chunks).decode("utf-8-sig"))))
        assert {(r[3], r[4]): (r[-2], r[-1]) for r in rows[1:]} == {
            ("purchase", "1200"): ("1200", "0"), ("spend", "-333"): ("-333", "0"), ("spend", "-101"): ("-101", "0")}
    finally:
        db.close()
