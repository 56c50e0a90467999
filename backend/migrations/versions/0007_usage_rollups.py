"""The usage dashboard's running sums of the ledger: per quarter hour and type, and per day and label.

Computed here from every entry there is (:func:`backend.rollups.rebuild`, one user at a time), then kept by
the ledger with each new entry.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from backend import rollups
from backend.schema import Amount, Id

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "usage_quarters",
        sa.Column("user_id", Id, primary_key=True, autoincrement=False),
        sa.Column("quarter", sa.Text, primary_key=True),
        sa.Column("type", sa.Text, primary_key=True),
        sa.Column("amount", Amount, nullable=False),
    )
    op.create_table(
        "usage_labels",
        sa.Column("user_id", Id, primary_key=True, autoincrement=False),
        sa.Column("day", sa.Text, primary_key=True),
        sa.Column("label", sa.Text, primary_key=True),
        sa.Column("amount", Amount, nullable=False),
    )
    rollups.rebuild(op.get_bind())


def downgrade() -> None:
    op.drop_table("usage_labels")
    op.drop_table("usage_quarters")
