"""Refunds keep when Stripe created them; refunds and disputes are found by their charge.

A charge's ``amount_refunded`` snapshot counts only the refunds created before it: a refund that fails
later is taken out of the snapshot only when the snapshot had counted it, which needs the refund's own
creation time. Refunds and disputes that name only their charge are matched to their payment through
the charge, hence the indexes.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Null for the refunds kept before this version: they are judged by the rule they were judged by then.
    op.add_column("refunds", sa.Column("created", sa.BigInteger))
    op.create_index("idx_refunds_charge_id", "refunds", ["charge_id"])
    op.create_index("idx_disputes_charge_id", "disputes", ["charge_id"])
    op.create_index("idx_payment_refunds_charge_id", "payment_refunds", ["charge_id"])


def downgrade() -> None:
    op.drop_index("idx_payment_refunds_charge_id", "payment_refunds")
    op.drop_index("idx_disputes_charge_id", "disputes")
    op.drop_index("idx_refunds_charge_id", "refunds")
    with op.batch_alter_table("refunds") as batch:
        batch.drop_column("created")
