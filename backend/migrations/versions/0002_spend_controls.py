"""Spend controls, alerts and usage: the tables of issue 10 and the ledger's ``feature`` column.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from backend.schema import Amount, Id

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A nullable column: SQLite adds it in place (ALTER TABLE ADD COLUMN), every existing row kept.
    op.add_column("ledger_entries", sa.Column("feature", sa.Text))
    op.create_index("idx_ledger_entries_user_id_created_at", "ledger_entries", ["user_id", "created_at"])
    op.create_table(
        "spend_controls",
        sa.Column("user_id", Id, primary_key=True, autoincrement=False),
        sa.Column("time_zone", sa.Text, nullable=False),
        sa.Column("cap_day", Amount),
        sa.Column("cap_week", Amount),
        sa.Column("cap_month", Amount),
        sa.Column("confirm_above", Amount),
        sa.Column("updated_at", sa.Text, nullable=False),
    )
    op.create_table(
        "spend_control_changes",
        sa.Column("id", Id, primary_key=True),
        sa.Column("user_id", Id, nullable=False),
        sa.Column("field", sa.Text, nullable=False),
        sa.Column("old_value", sa.Text),
        sa.Column("new_value", sa.Text),
        sa.Column("changed_at", sa.Text, nullable=False),
    )
    op.create_index("idx_spend_control_changes_user_id_id", "spend_control_changes", ["user_id", "id"])
    op.create_table(
        "low_balance_thresholds",
        sa.Column("user_id", Id, primary_key=True, autoincrement=False),
        sa.Column("threshold", Amount, primary_key=True, autoincrement=False),
        sa.Column("armed", sa.Boolean, nullable=False),
    )
    op.create_table(
        "spend_confirmations",
        sa.Column("token_hash", sa.Text, primary_key=True),
        sa.Column("user_id", Id, nullable=False),
        sa.Column("idempotency_key", sa.Text, nullable=False),
        sa.Column("amount", Amount, nullable=False),
        sa.Column("created_at", sa.Text, nullable=False),
        sa.Column("expires_at", sa.Text, nullable=False),
        sa.Column("used_at", sa.Text),
    )
    op.create_index("idx_spend_confirmations_user_id", "spend_confirmations", ["user_id"])
    op.create_table(
        "alerts",
        sa.Column("id", Id, primary_key=True),
        sa.Column("user_id", Id, nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("data", sa.Text, nullable=False),
        sa.Column("created_at", sa.Text, nullable=False),
        sa.Column("read_at", sa.Text),
        sa.Column("dedupe_key", sa.Text),
    )
    op.create_index("idx_alerts_user_id_id", "alerts", ["user_id", "id"])
    op.create_index("idx_alerts_user_id_dedupe_key", "alerts", ["user_id", "dedupe_key"], unique=True)


def downgrade() -> None:
    for table in ("alerts", "spend_confirmations", "low_balance_thresholds", "spend_control_changes",
                  "spend_controls"):
        op.drop_table(table)
    op.drop_index("idx_ledger_entries_user_id_created_at", "ledger_entries")
    with op.batch_alter_table("ledger_entries") as batch:
        batch.drop_column("feature")
