"""Support's note on an adjustment is kept apart from what the user sees.

``adjust --reason`` is support's note (shown in ``user``); the entry's description, which the user's history
shows, is "Adjustment by support" unless ``--public-note`` says otherwise. Adjustments made before keep their
description: their reason was public then.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from backend.schema import Id

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "adjustment_notes",
        sa.Column("entry_id", Id, sa.ForeignKey("ledger_entries.id"), primary_key=True),
        sa.Column("note", sa.Text, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("adjustment_notes")
