"""In-process fixtures for the backend's logic: a migrated database of its own per test, on each engine."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from backend import expiry, grants, ledger
from backend.db import Database
from tests.conftest import Databases
from tests.helpers.sqlite_template import migrated_copy


@pytest.fixture
def db(tmp_path: Path, databases: Databases) -> Iterator[Database]:
    """A database at the newest schema (a SQLite file, or a PostgreSQL database); the ledger must add up
    when the test ends."""
    database = Database(databases.new() or migrated_copy(tmp_path / "backend.sqlite3"))
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
