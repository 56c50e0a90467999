"""Grants with expiry and a burn order (issue 19): the ``grants`` and ``grant_allocations`` tables.

Every balance is kept: each user with a balance row gets one paid grant without expiry holding exactly their
balance (``source`` ``migration``; a balance below zero after a clawback is kept as that grant's debt, a zero
balance as an empty grant), and its ``entry_id`` is the user's last ledger entry then: entries after it carry
allocations, entries up to it are from before grants. No other row changes.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-05
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from backend.schema import Amount, Id

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    grants = op.create_table(
        "grants",
        sa.Column("id", Id, primary_key=True),
        sa.Column("user_id", Id, nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("reference", sa.Text, nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("amount", Amount, nullable=False),
        sa.Column("opening", Amount, nullable=False),
        sa.Column("remaining", Amount, nullable=False),
        sa.Column("created_at", sa.Text, nullable=False),
        sa.Column("expires_at", sa.Text),
        sa.Column("expired_at", sa.Text),
        sa.Column("entry_id", Id),
    )
    op.create_index("idx_grants_user_id_source_reference", "grants", ["user_id", "source", "reference"], unique=True)
    op.create_index("idx_grants_user_id_remaining", "grants", ["user_id", "remaining"])
    op.create_index("idx_grants_expired_at_expires_at", "grants", ["expired_at", "expires_at"])
    op.create_index("idx_grants_entry_id", "grants", ["entry_id"])
    op.create_table(
        "grant_allocations",
        sa.Column("entry_id", Id, primary_key=True, autoincrement=False),
        sa.Column("grant_id", Id, primary_key=True, autoincrement=False),
        sa.Column("amount", Amount, nullable=False),
    )
    op.create_index("idx_grant_allocations_grant_id", "grant_allocations", ["grant_id"])
    conn = op.get_bind()
    balances = sa.table("balances", sa.column("user_id"), sa.column("balance"))
    entries = sa.table("ledger_entries", sa.column("id"), sa.column("user_id"))
    last = sa.select(sa.func.max(entries.c.id)).where(entries.c.user_id == balances.c.user_id).scalar_subquery()
    now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    rows = conn.execute(sa.select(balances.c.user_id, balances.c.balance, last.label("last"))).all()
    if rows:
        conn.execute(grants.insert(), [
            {"user_id": user_id, "kind": "paid", "source": "migration", "reference": "migration",
             "description": "Credits held before grants", "amount": balance, "opening": balance,
             "remaining": balance, "created_at": now, "expires_at": None, "expired_at": None, "entry_id": last}
            for user_id, balance, last in rows
        ])


def downgrade() -> None:
    op.drop_table("grant_allocations")
    op.drop_table("grants")
