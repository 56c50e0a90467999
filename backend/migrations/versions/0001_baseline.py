"""The schema of Creditdesk 0.1.0, the first version with migrations.

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from backend.schema import Amount, Id

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", Id, primary_key=True),
        sa.Column("email", sa.Text, nullable=False),
        sa.Column("password_hash", sa.Text, nullable=False),
        sa.Column("created_at", sa.Text, nullable=False),
    )
    op.create_index("idx_users_email", "users", ["email"], unique=True)
    op.create_table(
        "tokens",
        sa.Column("token_hash", sa.Text, primary_key=True),
        sa.Column("user_id", Id, sa.ForeignKey("users.id"), nullable=False),
        sa.Column("created_at", sa.Text, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
    )
    op.create_index("idx_tokens_user_id", "tokens", ["user_id"])
    op.create_table(
        "balances",
        sa.Column("user_id", Id, primary_key=True, autoincrement=False),
        sa.Column("balance", Amount, nullable=False),
    )
    op.create_table(
        "ledger_entries",
        sa.Column("id", Id, primary_key=True),
        sa.Column("user_id", Id, nullable=False),
        sa.Column("type", sa.Text, nullable=False),
        sa.Column("amount", Amount, nullable=False),
        sa.Column("balance_after", Amount, nullable=False),
        sa.Column("reference", sa.Text, nullable=False),
        sa.Column("description", sa.Text),
        sa.Column("created_at", sa.Text, nullable=False),
        sa.Column("fingerprint", sa.Text),
    )
    op.create_index("idx_ledger_entries_user_id_type_reference", "ledger_entries", ["user_id", "type", "reference"],
                    unique=True)
    op.create_index("idx_ledger_entries_user_id_id", "ledger_entries", ["user_id", "id"])
    op.create_table(
        "orders",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("user_id", Id, nullable=False),
        sa.Column("pack_id", sa.Text, nullable=False),
        sa.Column("pack_name", sa.Text),
        sa.Column("credits", Amount, nullable=False),
        sa.Column("amount", Amount, nullable=False),
        sa.Column("currency", sa.Text, nullable=False),
        sa.Column("provider", sa.Text),
        sa.Column("session_id", sa.Text),
        sa.Column("checkout_url", sa.Text),
        sa.Column("return_url", sa.Text),
        sa.Column("state", sa.Text),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("payment_intent", sa.Text),
        sa.Column("amount_refunded", Amount, server_default="0"),
        sa.Column("credits_clawed_back", Amount, server_default="0"),
        sa.Column("created_at", sa.Text, nullable=False),
        sa.Column("updated_at", sa.Text),
    )
    op.create_index("idx_orders_session_id", "orders", ["session_id"], unique=True)
    op.create_index("idx_orders_payment_intent", "orders", ["payment_intent"])
    op.create_index("idx_orders_user_id_created_at", "orders", ["user_id", "created_at"])
    op.create_table(
        "payment_refunds",
        sa.Column("payment_intent", sa.Text, primary_key=True),
        sa.Column("charge_id", sa.Text),
        sa.Column("amount_refunded", Amount, nullable=False),
        sa.Column("updated_at", sa.Text),
    )
    op.create_table(
        "webhook_events",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("type", sa.Text, nullable=False),
        sa.Column("outcome", sa.Text, nullable=False),
        sa.Column("received_at", sa.Text, nullable=False),
    )
    op.create_table(
        "stub_sessions",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("data", sa.Text, nullable=False),
    )


def downgrade() -> None:
    for table in ("stub_sessions", "webhook_events", "payment_refunds", "orders", "ledger_entries", "balances",
                  "tokens", "users"):
        op.drop_table(table)
