"""Migrated SQLite databases for tests, copied from a template, as PostgreSQL's come from ``TEMPLATE``.

Bringing a new SQLite file to the newest schema runs every migration (Alembic and its scripts: about 0.1 s in a
warm process, 0.4 s of a starting backend's CPU). Each test process migrates one template with the backend's own
:func:`backend.migrations.upgrade` and copies it for every test that wants a database at the newest schema; the
tests about migrating a new file (and the desktop's bundled backend, as users start it) still make theirs.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

from backend import migrations
from backend.db import Database

_template: Path | None = None


def _made_template() -> Path:
    global _template
    if _template is None:
        folder = Path(tempfile.mkdtemp(prefix="creditdesk-template-"))
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        path = folder / "template.sqlite3"
        db = Database(path)
        try:
            migrations.upgrade(db)
        finally:
            db.close()
        assert not path.with_name(path.name + "-wal").exists(), "the template's last connection left its WAL"
        _template = path
    return _template


def migrated_copy(path: Path) -> Path:
    """``path``, a new SQLite file at the newest schema (copied from this process's template)."""
    assert not path.exists(), f"{path} exists: a template copy would replace it"
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(_made_template(), path)  # with its mode: the backend makes its files private
    return path
