"""Orders keep what was paid, discounted and taxed, and why a payment was refused.

A Checkout Session with a promotion code or exclusive tax has a total that is not the pack's list price:
it is granted when its subtotal is the pack's, and the order keeps the total, the discount and the tax.
A payment still refused (money taken, no credits) says why on its order, for support.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from backend.schema import Amount

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Null for the orders paid before this version: they were paid at their list price.
    op.add_column("orders", sa.Column("amount_paid", Amount))
    op.add_column("orders", sa.Column("amount_discount", Amount, nullable=False, server_default="0"))
    op.add_column("orders", sa.Column("amount_tax", Amount, nullable=False, server_default="0"))
    op.add_column("orders", sa.Column("refusal", sa.Text))


def downgrade() -> None:
    with op.batch_alter_table("orders") as batch:
        for column in ("refusal", "amount_tax", "amount_discount", "amount_paid"):
            batch.drop_column(column)
