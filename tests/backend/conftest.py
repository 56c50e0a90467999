"""In-process fixtures for the backend's logic: a migrated database of its own per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from backend import ledger, migrations
from backend.db import Database


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    """A database at the newest schema; the ledger must add up when the test ends."""
    database = Database(tmp_path / "backend.sqlite3")
    migrations.upgrade(database)
    yield database
    with database.read() as conn:
        assert ledger.check_invariants(conn) == []
    database.close()
