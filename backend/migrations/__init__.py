"""Schema versions, applied with Alembic to SQLite or PostgreSQL.

``upgrade`` brings a database to the newest version in one transaction (on SQLite the write lock is
held throughout, so two processes starting at once migrate one after the other). A database made by
Creditdesk 0.1.0, before the schema had versions, is recognised by its tables (read with
sqlite-utils) and stamped as the first version before the later ones run, so it keeps every row.

Alembic and sqlite-utils load only when there is something to migrate: ``serve`` on a database already at the
newest version (every PostgreSQL replica, which never migrates by itself) reads its version with one query
(:func:`prepare`), and starts sooner (Alembic and its scripts are a third of a start's CPU) and smaller.
"""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING, cast

from sqlalchemy import Connection, inspect, text
from sqlalchemy.exc import SQLAlchemyError

from backend.db import Database, one_line

log = logging.getLogger("creditdesk")

BASELINE = "0001"

# The tables and columns that Creditdesk 0.1.0 created (with sqlite-utils), before versions.
UNVERSIONED_0_1_0 = {
    "users": {"id", "email", "password_hash", "created_at"},
    "tokens": {"token_hash", "user_id", "created_at", "expires_at"},
    "balances": {"user_id", "balance"},
    "ledger_entries": {"id", "user_id", "type", "amount", "balance_after", "reference", "description",
                       "created_at", "fingerprint"},
    "orders": {"id", "user_id", "pack_id", "pack_name", "credits", "amount", "currency", "provider", "session_id",
               "checkout_url", "return_url", "state", "status", "payment_intent", "amount_refunded",
               "credits_clawed_back", "created_at", "updated_at"},
    "payment_refunds": {"payment_intent", "charge_id", "amount_refunded", "updated_at"},
    "webhook_events": {"id", "type", "outcome", "received_at"},
    "stub_sessions": {"id", "data"},
}


if TYPE_CHECKING:
    from alembic.config import Config

VERSIONS = Path(__file__).parent / "versions"


class MigrationError(Exception):
    """The database cannot be brought to this version; the message says why and what to do."""


def _config(conn: Connection) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(Path(__file__).parent))
    config.attributes["connection"] = conn
    return config


def head() -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(_config(None)).get_current_head()  # type: ignore[arg-type]
    assert head is not None
    return head


def current(conn: Connection) -> str | None:
    """The version a database is at; ``None`` when it has none (new, or made before versions)."""
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(conn).get_current_revision()


def upgrade(db: Database) -> tuple[str | None, str]:
    """Bring the database to the newest version; returns (version before, version after)."""
    from alembic import command

    try:
        with db.transaction() as conn:
            before = current(conn)
            if before is None and _is_unversioned_0_1_0(conn):
                command.stamp(_config(conn), BASELINE)
                before = "0.1.0"
            command.upgrade(_config(conn), "head")
            return before, current(conn) or ""
    except SQLAlchemyError as exc:
        raise MigrationError(f"cannot migrate the database: {one_line(exc)}") from exc


def prepare(db: Database) -> None:
    """What ``serve`` does before it answers: migrate SQLite by itself (the desktop app's bundled backend
    must upgrade without anyone), but refuse a PostgreSQL database that is not at the newest version, so
    that replicas never race to migrate it."""
    if db.is_sqlite:
        if _stored_version(db) == newest():
            return
        before, after = upgrade(db)
        if before != after:
            log.info("migrated the database from schema version %s to %s", before or "none", after)
        return
    try:
        at = _stored_version(db)
    except SQLAlchemyError as exc:
        raise MigrationError(f"cannot read the database's schema version: {one_line(exc)}") from exc
    if at != newest():
        raise MigrationError(
            f"the database is at schema version {at or 'none'} and this backend needs {newest()}: "
            "run `creditdesk-backend migrate` once, then start the replicas"
        )


def newest() -> str:
    """The newest version, from the versions' file names (``0007_usage_rollups.py``), without loading Alembic
    (a test holds it to Alembic's head)."""
    return max(p.name[:4] for p in VERSIONS.glob("[0-9][0-9][0-9][0-9]_*.py"))


def _stored_version(db: Database) -> str | None:
    with db.read() as conn:
        return stored_version(conn)


def stored_version(conn: Connection) -> str | None:
    """The version in ``alembic_version`` read with one plain query, without loading Alembic; None where there is
    none (a new or a 0.1.0 database: :func:`upgrade` finds out which)."""
    if not inspect(conn).has_table("alembic_version"):
        return None
    return cast(str | None, conn.execute(text("SELECT version_num FROM alembic_version")).scalar())


def _is_unversioned_0_1_0(conn: Connection) -> bool:
    if conn.dialect.name == "sqlite":
        import sqlite_utils

        db = sqlite_utils.Database(cast(sqlite3.Connection, conn.connection.driver_connection))
        found = {t.name: set(t.columns_dict) for t in db.tables}
    else:
        inspector = inspect(conn)
        found = {name: {c["name"] for c in inspector.get_columns(name)} for name in inspector.get_table_names()}
    if not found:
        return False
    if found == UNVERSIONED_0_1_0:
        return True
    raise MigrationError(
        "the database has tables but no schema version, and they are not those of Creditdesk 0.1.0 "
        f"(found: {', '.join(sorted(found))}); point the backend at a Creditdesk database or an empty one"
    )
