"""The hot path's statements run on SQLite's cursor answer exactly what SQLAlchemy's execution answers, fail
with SQLAlchemy's exceptions, and fall back to it where its execution is needed; ``Database.peek``."""

from __future__ import annotations

import importlib
import pkgutil
import re
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import Connection, exc

import backend
from backend import accounts, alerts, event_store, ledger, prepared, spend_controls, spending
from backend.db import Database, insert_ignoring_duplicates, utcnow
from backend.errors import StorageUnavailable
from backend.schema import usage_labels, usage_quarters, webhook_events
from tests.helpers.payments import charge_refunded_event, database, paid_order, refund_event

WHEN = "2026-11-26T12:00:00.000Z"
QUARTER = "2026-11-26T12:00:00.000Z"


def _cases(p: Any) -> dict[str, tuple[str, dict[str, Any]]]:
    """Per case, a statement of the hot path by its registered name (``prepared.HOT``) and parameters for a paid
    order ``p``. Every registered statement has a case at least (a test checks)."""
    return {
        "an order by session, locked": ("an order by session_id, locked", {"value": p.session_id}),
        "an order by session": ("an order by session_id", {"value": p.session_id}),
        "an order by payment intent": ("an order by payment_intent", {"value": p.payment_intent}),
        "an order by payment intent, locked": ("an order by payment_intent, locked", {"value": p.payment_intent}),
        "an order by id, locked": ("an order by id, locked", {"value": p.order_id}),
        "no order": ("an order by id", {"value": "ord_none"}),
        "an order updated": ("an order updated", {"order_id": p.order_id, "status": "paid", "updated_at": WHEN,
                                                  "payment_intent": p.payment_intent}),
        "an order to pay": ("an order to pay, locked, with its buyer's billing details", {"value": p.session_id}),
        "no order to pay": ("an order to pay, locked, with its buyer's billing details", {"value": "cs_none"}),
        "an order paid, with news": ("an order paid", {"order_id": p.order_id, "status": "paid", "updated_at": WHEN,
                                                       "payment_intent": p.payment_intent,
                                                       "news_of": p.payment_intent}),
        "an order paid, without news": ("an order paid", {"order_id": p.order_id, "status": "paid",
                                                          "updated_at": WHEN, "news_of": "pi_none"}),
        "a balance": ("a balance", {"user_id": p.user_id}),
        "a balance, locked": ("a balance, locked", {"user_id": p.user_id}),
        "a balance set": ("a balance set", {"of_user": p.user_id, "to": 1001}),
        "a balance moved": ("a balance moved", {"of_user": p.user_id, "by": -7}),
        "a balance moved across thresholds": ("a balance moved", {"of_user": p.user_id, "by": 4999}),
        "no balance to move": ("a balance moved", {"of_user": 90210, "by": 7}),
        "a balance made": ("a balance made", {"user_id": 90210, "balance": 0}),
        "a balance made twice": ("a balance made", {"user_id": p.user_id, "balance": 0}),
        "an entry": ("an entry", {"user_id": p.user_id, "type": "purchase", "reference": p.session_id}),
        "a balance with no spend by key": ("a balance with a spend by key", {"user_id": p.user_id,
                                                                             "reference": "k-none"}),
        "a balance with its spend by key": ("a balance with a spend by key", {"user_id": p.user_id,
                                                                              "reference": "k-spent"}),
        "no balance with a spend by key": ("a balance with a spend by key", {"user_id": 90210, "reference": "k-1"}),
        "an entry posted": ("an entry posted", {
            "user_id": p.user_id, "type": "adjustment", "amount": -7, "balance_after": 326, "reference": "r-1",
            "description": "", "created_at": WHEN, "fingerprint": None, "feature": "export"}),
        "an entry posted twice": ("an entry posted", {
            "user_id": p.user_id, "type": "purchase", "amount": 333, "balance_after": 666,
            "reference": p.session_id, "description": "", "created_at": WHEN, "fingerprint": None, "feature": None}),
        "thresholds (booleans)": ("thresholds", {"user_id": p.user_id}),
        "auto top-up's threshold (none)": ("auto top-up's threshold", {"user_id": p.user_id}),
        "an alert made": ("an alert made", {"user_id": p.user_id, "kind": "low_balance", "message": "m",
                                            "data": "{}", "created_at": WHEN, "dedupe_key": "k-1"}),
        "the latest refund": ("the latest refund or dispute", {"payment_intent": p.payment_intent}),
        "a refund kept": ("a refund kept", {"id": "re_9", "payment_intent": p.payment_intent, "charge_id": "ch_9",
                                            "amount": 77, "currency": "eur", "status": "pending", "as_of": 3,
                                            "updated_at": WHEN, "created": 3}),
        "a dispute kept": ("a dispute kept", {"id": "du_9", "payment_intent": p.payment_intent, "charge_id": "ch_9",
                                              "amount": 1000, "currency": "eur", "status": "needs_response",
                                              "reason": "fraudulent", "as_of": 3, "updated_at": WHEN}),
        "a charge's refunds kept twice": ("a charge's refunds kept", {
            "payment_intent": p.payment_intent, "charge_id": "ch_9", "amount_refunded": 1, "updated_at": WHEN,
            "currency": "eur", "as_of": 3}),
        "a quarter's sum made": ("a quarter's sum added", {"user_id": p.user_id, "quarter": "2026-11-26T12:15:00.000Z",
                                                           "type": "spend", "amount": -7}),
        "a quarter's sum added to": ("a quarter's sum added", {"user_id": p.user_id, "quarter": QUARTER,
                                                               "type": "spend", "amount": -7}),
        "a label's sum made": ("a label's sum added", {"user_id": p.user_id, "day": "2026-11-27", "label": "ocr",
                                                       "amount": -7}),
        "a label's sum added to": ("a label's sum added", {"user_id": p.user_id, "day": QUARTER[:10],
                                                           "label": "export", "amount": -7}),
        "spend controls": ("spend controls", {"user_id": p.user_id}),
        "reserved and spend controls": ("credits reserved and spend controls", {"user_id": p.user_id, "open": "open",
                                                                               "now": WHEN}),
        "no balance for reserved and controls": ("credits reserved and spend controls", {
            "user_id": 90210, "open": "open", "now": WHEN}),
        "no billing details": ("billing details by user", {"user_id": p.user_id}),
        "nothing reserved": ("credits reserved by open holds", {"user_id": p.user_id, "open": "open", "now": WHEN}),
        "no hold by key": ("a hold by key", {"user_id": p.user_id, "key": "k-1"}),
        "no hold": ("a hold", {"user_id": p.user_id, "hold_id": "hold_1"}),
        "a hold placed": ("a hold placed", {
            "id": "hold_1", "user_id": p.user_id, "amount": 7, "status": "open", "idempotency_key": "k-1",
            "fingerprint": "f", "description": "Render", "feature": None, "created_at": WHEN, "expires_at": WHEN,
            "closed_at": None, "settled_amount": None, "transaction_id": None, "available_after": 326}),
        "no hold closed": ("a hold closed", {"hold_id": "hold_1", "now": WHEN, "to": "settled", "settled": 3,
                                             "entry": None}),
        "no hold swept": ("a user's expired holds written down", {"of_user": p.user_id, "now": WHEN}),
        "thresholds, highest first": ("thresholds, highest first", {"user_id": p.user_id}),
        "no user for a token": ("a user by token", {"token_hash": "0" * 64, "now": 1.5}),
        "an event claimed": ("an event claimed", {"id": "evt_9", "type": "refund.updated", "outcome": "processing",
                                                  "received_at": WHEN, "body": "{}", "livemode": False, "created": 1,
                                                  "source": "webhook", "object_id": "re_9"}),
        "an event claimed twice": ("an event claimed", {"id": "evt_seen", "type": "refund.updated",
                                                        "outcome": "processing", "received_at": WHEN, "body": "{}",
                                                        "livemode": False, "created": 1, "source": "webhook",
                                                        "object_id": "re_9"}),
        "an event kept": ("an event kept", {"id": "evt_10", "type": "refund.updated", "outcome": "recorded",
                                            "received_at": WHEN, "body": "{}", "livemode": True, "created": 1,
                                            "source": "webhook", "object_id": "re_9", "detail": "d",
                                            "order_id": p.order_id, "processed_at": WHEN}),
        "an event noted": ("an event noted", {"event_id": "evt_seen", "outcome": "granted", "detail": None,
                                              "order_id": p.order_id, "processed_at": WHEN}),
        "an event noted again": ("an event noted again", {"event_id": "evt_seen", "outcome": "no_change",
                                                          "detail": "x", "order_id": None, "processed_at": WHEN}),
        "an event's outcome": ("an event's outcome", {"event_id": "evt_seen"}),
        "a user's grants": ("a user's grants with credits", {"user_id": p.user_id}),
        "a grant made": ("a grant made", {
            "user_id": p.user_id, "kind": "promotional", "source": "adjustment", "reference": "adj:1",
            "description": "Bonus", "amount": 7, "opening": 7, "remaining": 7, "created_at": WHEN,
            "expires_at": WHEN, "expired_at": None, "entry_id": 1}),
        "a grant's remaining set": ("a grant's remaining set", {"grant_id": 1, "to": 5}),
        "an allocation": ("an allocation", {"entry_id": 90210, "grant_id": 1, "amount": -3}),
        "no grant expired": ("a grant expired", {"grant_id": 90210, "to": 0, "at": WHEN}),
    }


def _statements(p: Any) -> list[tuple[str, Any, dict[str, Any]]]:
    _import_every_module()  # the registry fills in at import: a worker of pytest-xdist may not have them all yet
    return [(case, prepared.HOT[name], params) for case, (name, params) in _cases(p).items()]


def _import_every_module() -> None:
    for module in pkgutil.walk_packages(backend.__path__, "backend."):
        if not module.name.startswith(("backend.__main__", "backend.migrations.")):  # alembic's scripts
            importlib.import_module(module.name)


@pytest.fixture
def paid(tmp_path: Path) -> Any:
    db = database(tmp_path / "backend.sqlite3")
    p = paid_order(db)
    p.apply(refund_event(p, "re_1", 100, "succeeded"))
    p.apply(charge_refunded_event(p, 100))
    with db.transaction() as conn:
        spend_controls.update_controls(conn, p.user_id, {"lowBalanceAlerts": [50, 5000]})
        insert_ignoring_duplicates(conn, webhook_events, {
            "id": "evt_seen", "type": "checkout.session.completed", "outcome": "granted", "received_at": WHEN,
            "body": "{}", "livemode": False, "created": 1, "source": "webhook", "object_id": p.session_id})
        conn.execute(sa.insert(usage_quarters).values(user_id=p.user_id, quarter=QUARTER, type="spend", amount=-3))
        conn.execute(sa.insert(usage_labels).values(user_id=p.user_id, day=QUARTER[:10], label="export", amount=-3))
        ledger.post(conn, user_id=p.user_id, type="spend", amount=-7, reference="k-spent", description="Export",
                    fingerprint="f-7", feature="export", created_at=WHEN)
    yield p
    db.close()


@pytest.fixture
def register() -> Iterator[Callable[[str, Any], Any]]:
    """``prepared.hot`` for statements of one test: the registry is as it was afterwards."""
    before, ids = dict(prepared.HOT), set(prepared._HOT_IDS)
    yield prepared.hot
    prepared.HOT.clear()
    prepared.HOT.update(before)
    prepared._HOT_IDS.clear()
    prepared._HOT_IDS.update(ids)


def _both_ways(db: Database, statement: Any, params: dict[str, Any]) -> tuple[Any, Any]:
    """What SQLAlchemy's execution and the driver's cursor answer, each in a transaction then rolled back."""

    def answer(run: Callable[[Connection], Any]) -> Any:
        with db.engine.connect() as conn, conn.begin() as transaction:
            found = run(conn)
            transaction.rollback()
            return found

    def by_sqlalchemy(conn: Connection) -> Any:
        result = conn.execute(statement, params)
        if result.returns_rows:
            return [dict(row) for row in result.mappings()]
        return result.rowcount  # (of a RETURNING statement, SQLAlchemy's is 0 once the rows are read)

    def by_cursor(conn: Connection) -> Any:
        assert prepared._compile(statement, conn.dialect, tuple(sorted(params))) is not None, "falls back"
        rows = prepared.run(conn, statement, params)
        return rows.rows if list(statement.exported_columns) else rows.rowcount

    return answer(by_sqlalchemy), answer(by_cursor)


_NO_ORDER = SimpleNamespace(session_id="", payment_intent="", order_id="", user_id=0)
_NAMES = list(_cases(_NO_ORDER))


def test_every_registered_statement_has_a_case_and_every_module_that_registers_is_imported() -> None:
    _import_every_module()  # the registry fills in at import
    assert set(prepared.HOT) == {name for name, _ in _cases(_NO_ORDER).values()}


@pytest.mark.parametrize("index", range(len(_NAMES)), ids=_NAMES)
def test_each_statement_of_the_grant_answers_as_sqlalchemy_does(paid: Any, index: int) -> None:
    _, statement, params = _statements(paid)[index]
    expected, found = _both_ways(paid.db, statement, params)
    assert found == expected
    if isinstance(found, list):
        types = [[type(value) for value in row.values()] for row in expected]
        assert [[type(value) for value in row.values()] for row in found] == types


def test_booleans_come_back_as_booleans(paid: Any) -> None:
    with paid.db.transaction() as conn:
        rows = prepared.run(conn, alerts._THRESHOLDS, {"user_id": paid.user_id}).rows
    assert sorted((row["threshold"], row["armed"]) for row in rows) == [(50, True), (5000, False)]


def test_a_refused_write_raises_sqlalchemys_integrity_error_and_writes_nothing(paid: Any) -> None:
    before = paid.balance()
    with pytest.raises(exc.IntegrityError) as info, paid.db.transaction() as conn:
        prepared.run(conn, ledger._SET_BALANCE, {"of_user": paid.user_id, "to": 5})
        prepared.run(conn, ledger._insert_entry("sqlite"), {
            "user_id": paid.user_id, "type": "adjustment", "amount": None, "balance_after": 5, "reference": "r",
            "description": "", "created_at": WHEN, "fingerprint": None, "feature": None})
    assert isinstance(info.value.orig, sqlite3.IntegrityError) and "INSERT INTO ledger_entries" in str(info.value)
    assert paid.user_id in info.value.params and "adjustment" in info.value.params  # for the log, as SQLAlchemy
    with paid.db.read() as conn:
        assert ledger.find(conn, paid.user_id, "adjustment", "r") is None
    assert paid.balance() == before != 5  # the balance set before the failure was rolled back with it


def test_a_peek_at_a_file_that_is_not_a_database_is_storage_unavailable_until_one_is_back(tmp_path: Path) -> None:
    path = tmp_path / "backend.sqlite3"
    path.write_bytes(b"not a database " * 512)
    db = Database(path)
    with pytest.raises(StorageUnavailable) as info:
        db.peek(event_store._OUTCOME, {"event_id": "evt_seen"})
    assert info.value.retry_after >= 1 and "not a database" in str(info.value)
    assert not db.healthy
    path.unlink()
    database(path).close()  # a good database back at the path: the failed connection was let go of
    assert db.peek(event_store._OUTCOME, {"event_id": "evt_seen"}) is None
    db.close()


def test_a_value_computed_in_python_or_missing_is_left_to_sqlalchemy(tmp_path: Path, register: Any) -> None:
    db = Database(tmp_path / "own.sqlite3")
    table = sa.Table("stamped", sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True),
                     sa.Column("at", sa.String, default=utcnow))
    table.create(db.engine)
    statement = register("stamped", sa.insert(table).returning(table.c.at))
    try:
        with db.transaction() as conn:
            assert prepared._compile(statement, conn.dialect, ("id",)) is None
            inserted = prepared.run(conn, statement, {"id": 1})
            assert inserted.scalar_one().endswith("Z") and inserted.rowcount == 1
            computed = register("computed", sa.select(sa.bindparam("at", callable_=lambda: "computed")))
            assert prepared._compile(computed, conn.dialect, ()) is None
            assert prepared.run(conn, computed, {}).scalar() == "computed"
            missing = register("missing", sa.select(table.c.at).where(table.c.id == sa.bindparam("id")))
            with pytest.raises(exc.StatementError, match="id"):  # as SQLAlchemy refuses it
                prepared.run(conn, missing, {})
        with pytest.raises(ValueError, match="cannot run on the driver's cursor"):  # peek takes built statements
            db.peek(computed, {})
    finally:
        db.close()


class Cents(sa.types.TypeDecorator[str]):
    """Stored as an integer of cents, read back as a text of euros: conversions both ways."""

    impl = sa.Integer
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Any) -> int | None:
        return None if value is None else round(float(value) * 100)

    def process_result_value(self, value: int | None, dialect: Any) -> str | None:
        return None if value is None else f"{value / 100:.2f}"


def test_values_are_converted_both_ways_as_sqlalchemy_converts_them(tmp_path: Path, register: Any) -> None:
    db = Database(tmp_path / "own.sqlite3")
    table = sa.Table("prices", sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True),
                     sa.Column("price", Cents), sa.Column("paid", sa.Boolean))
    table.create(db.engine)
    insert = register("prices", sa.insert(table).returning(table.c.price, table.c.paid))
    stored = sa.select(sa.literal_column("price"), sa.literal_column("paid")).select_from(table)
    try:
        with db.transaction() as conn:
            assert prepared.run(conn, insert, {"id": 1, "price": "12.34", "paid": True}).one() == {
                "price": "12.34", "paid": True}
            assert conn.execute(stored).one() == (1234, 1)  # what SQLite holds
    finally:
        db.close()


class _RollBack(Exception):
    pass


def test_the_grant_statements_bypass_sqlalchemys_execution_on_sqlite(paid: Any) -> None:
    """What the module is for: SQLAlchemy's execution runs none of the statements, nor the BEGIN (backend.db gives it
    to the driver too)."""
    executed = _executed(paid.db)
    with pytest.raises(_RollBack), paid.db.transaction() as conn:
        for _, statement, params in _statements(paid):
            prepared.run(conn, statement, params)
        raise _RollBack
    assert executed == []


def _traced(db: Database, work: Callable[[], Any]) -> list[str]:
    """What SQLite's write connection runs during ``work()``, each statement as its verb and first table."""
    seen: list[str] = []
    with db.transaction() as conn:  # the writer connection, made before tracing it
        driver = conn.connection.driver_connection
    assert driver is not None
    driver.set_trace_callback(seen.append)
    try:
        work()
    finally:
        driver.set_trace_callback(None)
    named = []
    for sql in seen:
        verb = sql.split()[0]
        tables = re.findall(r"\b(?:FROM|INTO)\s+(\w+)", sql)  # a SELECT's own FROM comes after its subqueries'
        table = sql.split()[1] if verb == "UPDATE" else ""
        if tables and verb != "UPDATE":
            table = tables[0] if verb == "INSERT" else tables[-1]
        named.append(f"{verb} {table}".strip())
    return named


def test_a_spend_from_one_grant_runs_nine_statements_on_sqlite(paid: Any) -> None:
    """The load-independent figure behind bench/spends.py (13 when grants came, 10 before them): no read of the
    balance to lock it (BEGIN IMMEDIATE holds SQLite's write lock), what holds reserve read with the spend controls
    and without the low-balance thresholds (the balance's UPDATE counts those it crosses), the balance and the key's
    earlier spend in one read; a replay reads and writes nothing after that read. The answers are the same on
    PostgreSQL (tests/backend/test_credits.py and others)."""
    request = spending.SpendRequest(amount=7, idempotency_key="k-new", description="Export")
    first = _traced(paid.db, lambda: spending.spend(paid.db, paid.user_id, request))
    assert first == [
        "BEGIN", "SELECT balances", "SELECT grants", "SELECT balances", "UPDATE balances", "INSERT ledger_entries",
        "UPDATE grants", "INSERT grant_allocations", "INSERT usage_quarters", "INSERT usage_labels", "COMMIT"]
    again = _traced(paid.db, lambda: spending.spend(paid.db, paid.user_id, request))
    assert again == ["BEGIN", "SELECT balances", "SELECT grants", "SELECT balances", "COMMIT"]


def _executed(db: Database) -> list[str]:
    """The SQL that SQLAlchemy's execution runs on ``db`` from now on."""
    executed: list[str] = []
    sa.event.listen(db.engine, "before_cursor_execute", lambda *args: executed.append(args[2]))
    return executed


def test_a_statement_not_registered_is_sqlalchemys_execution(paid: Any) -> None:
    executed = _executed(paid.db)
    unregistered = sa.select(webhook_events.c.outcome).where(webhook_events.c.id == sa.bindparam("event_id"))
    with paid.db.transaction() as conn:
        assert prepared.run(conn, unregistered, {"event_id": "evt_seen"}).scalar() == "granted"
    assert len(executed) == 1 and "FROM webhook_events" in executed[0]
    assert paid.db.peek(unregistered, {"event_id": "evt_seen"}) == "granted"  # a peek takes it, in a transaction


def test_turned_off_everything_is_sqlalchemys_execution_and_answers_alike(paid: Any) -> None:
    expected = {case: _both_ways(paid.db, statement, params)[0] for case, statement, params in _statements(paid)}
    executed = _executed(paid.db)
    prepared.set_enabled(False)
    try:
        for case, statement, params in _statements(paid):
            with paid.db.engine.connect() as conn, conn.begin() as transaction:
                result = prepared.run(conn, statement, params)
                found = result.rows if list(statement.exported_columns) else result.rowcount
                transaction.rollback()
            assert found == expected[case], case
        assert paid.db.peek(event_store._OUTCOME, {"event_id": "evt_seen"}) == "granted"
    finally:
        prepared.set_enabled(True)
    assert len(executed) > 2 * len(expected)  # each statement, and a BEGIN for each


@pytest.mark.parametrize("setting", ["", "on", "ON", "off", "no"])
def test_the_setting_turns_the_cursor_path_on_or_off(setting: str) -> None:
    from backend.config import ConfigError, Settings

    env = {"CREDITDESK_PREPARED_STATEMENTS": setting}
    if setting.lower() not in ("", "on", "off"):
        with pytest.raises(ConfigError, match="CREDITDESK_PREPARED_STATEMENTS is on or off"):
            Settings.from_env(env)
    else:
        assert Settings.from_env(env).prepared_statements is (setting.lower() != "off")


def test_peek_takes_only_a_select_and_writes_nothing(db: Database) -> None:
    with db.transaction() as conn:
        insert_ignoring_duplicates(conn, webhook_events, {
            "id": "evt_1", "type": "refund.updated", "outcome": "recorded", "received_at": WHEN, "body": "{}",
            "livemode": True, "created": 2, "source": "webhook", "object_id": "re_2"})
    with pytest.raises(ValueError, match="only a SELECT"):
        db.peek(event_store._NOTE, {"event_id": "evt_1", "outcome": "forged"})
    assert db.peek(event_store._OUTCOME, {"event_id": "evt_1"}) == "recorded"


def test_outside_a_transaction_it_is_sqlalchemys_execution(paid: Any) -> None:
    with paid.db.engine.connect() as conn:
        assert not conn.in_transaction()
        assert prepared.run(conn, ledger._BALANCE, {"user_id": paid.user_id}).scalar() == paid.balance()


def test_peek_sees_every_commit_and_answers_none_for_nothing(paid: Any) -> None:
    db = paid.db
    assert db.peek(event_store._OUTCOME, {"event_id": "evt_new"}) is None
    with db.transaction() as conn:  # committed after the peeking connection was opened
        insert_ignoring_duplicates(conn, webhook_events, {
            "id": "evt_new", "type": "refund.updated", "outcome": "recorded", "received_at": WHEN, "body": "{}",
            "livemode": False, "created": 2, "source": "webhook", "object_id": "re_2"})
    assert db.peek(event_store._OUTCOME, {"event_id": "evt_new"}) == "recorded"


def test_peek_answers_alike_on_both_engines(db: Database) -> None:
    with db.transaction() as conn:
        insert_ignoring_duplicates(conn, webhook_events, {
            "id": "evt_1", "type": "refund.updated", "outcome": "recorded", "received_at": WHEN, "body": "{}",
            "livemode": True, "created": 2, "source": "webhook", "object_id": "re_2"})
    assert db.peek(event_store._OUTCOME, {"event_id": "evt_1"}) == "recorded"
    assert db.peek(event_store._OUTCOME, {"event_id": "evt_2"}) is None
    assert db.peek(sa.select(webhook_events.c.livemode).where(webhook_events.c.id == sa.bindparam("event_id")),
                   {"event_id": "evt_1"}) is True


def test_rows_answers_like_a_result() -> None:
    rows = prepared.Rows([{"a": 1, "b": 2}], 1)
    assert (rows.first(), rows.one(), rows.scalar(), rows.scalar_one()) == ({"a": 1, "b": 2},) * 2 + (1, 1)
    none = prepared.Rows([], 0)
    assert none.first() is None and none.scalar() is None
    with pytest.raises(exc.NoResultFound):
        none.one()
    with pytest.raises(exc.MultipleResultsFound):
        prepared.Rows([{"a": 1}, {"a": 2}], 2).one()


def test_a_token_finds_its_user_until_it_expires(db: Database) -> None:
    user = accounts.register(db, "token@example.com", "password-123")
    token = accounts.issue_token(db, user, 60)
    assert accounts.user_for_token(db, token) == user
    assert accounts.user_for_token(db, token + "x") is None
    with db.transaction() as conn:
        conn.execute(sa.text("UPDATE tokens SET expires_at = 1"))
    assert accounts.user_for_token(db, token) is None
