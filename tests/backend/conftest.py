"""In-process fixtures for the backend's logic: a migrated database of its own per test, on each engine."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import make_url

from backend import expiry, grants, ledger
from backend.db import Database
from tests.conftest import Databases
from tests.helpers.sqlite_template import migrated_copy


@pytest.fixture
def db_template() -> str | None:
    """What a test's ``db`` starts as: ``None``, empty at the newest schema; or the URL of a database to copy
    (a SQLite file's or one of the test server's PostgreSQL databases), which a module's own fixture of this name
    made once for its tests (tests/backend/test_usage.py: a history of 700 entries)."""
    return None


@pytest.fixture
def db(tmp_path: Path, databases: Databases, db_template: str | None) -> Iterator[Database]:
    """A database at the newest schema (a SQLite file, or a PostgreSQL database); the ledger must add up
    when the test ends."""
    path = tmp_path / "backend.sqlite3"
    if databases.engine == "sqlite" and db_template is not None:
        shutil.copy(make_url(db_template).database or "", path)
    database = Database(databases.new(copy_of=db_template) or (path if path.exists() else migrated_copy(path)))
    yield database
    now = datetime.now(UTC)
    expiry.sweep(database.transaction, now, limit=None)  # a test's grants that expired by now, written down
    with database.read() as conn:
        assert ledger.check_invariants(conn) == []
        assert grants.problems(conn, now) == []
    database.close()



@pytest.fixture
def replica(db: Database) -> Iterator[Database]:
    """A second process's view of ``db``: its own connections (on SQLite, its own write lock), as another replica."""
    other = Database(db.url.render_as_string(hide_password=False))
    yield other
    other.close()
