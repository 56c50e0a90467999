"""Auto top-up (issue 19): the user's consent and limits, and one row per top-up. Two new tables: every existing
row stays as it was.

* ``auto_topups``: one row per user who ever opted in; ``enabled`` is set only by the user (``PUT
  /api/credits/auto-topup``) and cleared by the user or by a declined or authentication-required payment.
* ``topups``: one row per threshold crossing acted on (a charge or, in notify-only mode, a notice). The database
  holds the rules two replicas could otherwise break together: one row per crossing (``crossing`` unique per user)
  and at most one charge in flight per user (a partial unique index).

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from backend.schema import Amount, Id

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

IN_FLIGHT = sa.text("status = 'in_flight'")


def upgrade() -> None:
    op.create_table(
        "auto_topups",
        sa.Column("user_id", Id, primary_key=True),
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.Column("notify_only", sa.Boolean, nullable=False),
        sa.Column("threshold", Amount, nullable=False),
        sa.Column("pack_id", sa.Text, nullable=False),
        sa.Column("monthly_limit", Amount, nullable=False),
        sa.Column("currency", sa.Text, nullable=False),
        sa.Column("max_per_day", sa.Integer, nullable=False),
        sa.Column("card_session", sa.Text),
        sa.Column("card_payment_intent", sa.Text),
        sa.Column("payment_method", sa.Text),
        sa.Column("disabled_reason", sa.Text),
        sa.Column("disabled_topup", sa.Text),
        sa.Column("updated_at", sa.Text, nullable=False),
    )
    op.create_table(
        "topups",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("user_id", Id, nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("crossing", sa.Text, nullable=False),
        sa.Column("pack_id", sa.Text, nullable=False),
        sa.Column("pack_name", sa.Text, nullable=False),
        sa.Column("credits", Amount, nullable=False),
        sa.Column("amount", Amount, nullable=False),
        sa.Column("currency", sa.Text, nullable=False),
        sa.Column("order_id", sa.Text),
        sa.Column("payment_intent", sa.Text),
        sa.Column("failure", sa.Text),
        sa.Column("created_at", sa.Text, nullable=False),
        sa.Column("succeeded_at", sa.Text),
        sa.Column("refund_amount", Amount),
        sa.Column("refund_id", sa.Text),
        sa.Column("undone_at", sa.Text),
    )
    op.create_index("idx_topups_user_id_crossing", "topups", ["user_id", "crossing"], unique=True)
    op.create_index("idx_topups_one_in_flight", "topups", ["user_id"], unique=True,
                    sqlite_where=IN_FLIGHT, postgresql_where=IN_FLIGHT)
    op.create_index("idx_topups_user_id_created_at", "topups", ["user_id", "created_at"])
    op.create_index("idx_topups_payment_intent", "topups", ["payment_intent"])


def downgrade() -> None:
    op.drop_table("topups")
    op.drop_table("auto_topups")
