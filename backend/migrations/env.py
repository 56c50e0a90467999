"""Alembic's environment: migrations run on the connection that :mod:`backend.migrations` hands over."""

from __future__ import annotations

from alembic import context

from backend.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise SystemExit("Run migrations with `creditdesk-backend migrate`, which connects as the backend does.")

# render_as_batch: SQLite changes most of a table's shape only by copying it, which batch mode does.
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
