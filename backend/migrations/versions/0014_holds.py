"""Holds: credits reserved, then settled, voided or expired, each once (issue 19). A new table: every existing row
stays as it was.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from backend.schema import Amount, Id

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "holds",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("user_id", Id, nullable=False),
        sa.Column("amount", Amount, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("idempotency_key", sa.Text, nullable=False),
        sa.Column("fingerprint", sa.Text, nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("feature", sa.Text),
        sa.Column("created_at", sa.Text, nullable=False),
        sa.Column("expires_at", sa.Text, nullable=False),
        sa.Column("closed_at", sa.Text),
        sa.Column("settled_amount", Amount),
        sa.Column("transaction_id", Id),
        sa.Column("available_after", Amount, nullable=False),
    )
    op.create_index("idx_holds_user_id_idempotency_key", "holds", ["user_id", "idempotency_key"], unique=True)
    op.create_index("idx_holds_user_id_status_expires_at", "holds", ["user_id", "status", "expires_at"])
    op.create_index("idx_holds_status_expires_at", "holds", ["status", "expires_at"])
    op.create_index("idx_holds_user_id_created_at", "holds", ["user_id", "created_at"])


def downgrade() -> None:
    op.drop_table("holds")
