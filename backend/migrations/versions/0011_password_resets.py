"""Password resets: a one-time code sent by mail (its argon2 hash kept here), good once for 15 minutes and a few
wrong attempts. A new table: every existing row stays as it is.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from backend.schema import Id

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "password_resets",
        sa.Column("id", Id, primary_key=True),
        sa.Column("user_id", Id, sa.ForeignKey("users.id"), nullable=False),
        sa.Column("code_hash", sa.Text, nullable=False),
        sa.Column("created_at", sa.Text, nullable=False),
        sa.Column("expires_at", sa.Text, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("used_at", sa.Text),
    )
    op.create_index("idx_password_resets_user_id", "password_resets", ["user_id"])


def downgrade() -> None:
    op.drop_index("idx_password_resets_user_id", "password_resets")
    op.drop_table("password_resets")
