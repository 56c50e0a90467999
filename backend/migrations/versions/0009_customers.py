"""One payment customer per user: the Stripe customer (``cus_...``) made at the user's first checkout and given to
every Checkout Session after it, so that the buyer's details and receipts stay together (the stub's, in stub mode).
Users made before have none until their next checkout.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("customer_id", sa.Text, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.drop_column("customer_id")
