"""Support reports: what a user sends from the app's Help → Report a problem (their words and the app's
diagnostics report), kept for support, who reads them with ``creditdesk-backend user``. A new table: no row of
an older database changes.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from backend.schema import Id

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "support_reports",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("user_id", Id, sa.ForeignKey("users.id"), nullable=False),
        sa.Column("created_at", sa.Text, nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("report", sa.Text, nullable=False),
    )
    op.create_index("idx_support_reports_user_id_created_at", "support_reports", ["user_id", "created_at"])


def downgrade() -> None:
    op.drop_index("idx_support_reports_user_id_created_at", table_name="support_reports")
    op.drop_table("support_reports")
