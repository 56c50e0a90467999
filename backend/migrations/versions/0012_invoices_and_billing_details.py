"""Invoices and billing details (issue 18).

* ``orders.invoice_id``, ``invoice_url``, ``invoice_pdf``: in Stripe mode Checkout makes an invoice for the payment
  (``invoice_creation``); the order keeps its id from the paid session, then its hosted page and PDF once read from
  Stripe (they may come later than the payment: the receipt falls back to the backend's own page meanwhile).
* ``orders.billing_details``: the buyer's billing details as they were when the order was paid (JSON), which its
  receipt prints: an accountant expects a receipt to say what it said when it was issued.
* ``billing_details``: each user's billing name, address and tax id, set once and used for every purchase after.

Orders paid before have none of these (NULL): their receipts carry no billing details and open the backend's page.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("orders") as batch:
        batch.add_column(sa.Column("invoice_id", sa.Text, nullable=True))
        batch.add_column(sa.Column("invoice_url", sa.Text, nullable=True))
        batch.add_column(sa.Column("invoice_pdf", sa.Text, nullable=True))
        batch.add_column(sa.Column("billing_details", sa.Text, nullable=True))
    op.create_table(
        "billing_details",
        sa.Column("user_id", Id, primary_key=True, autoincrement=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("line1", sa.Text, nullable=False),
        sa.Column("line2", sa.Text, nullable=False),
        sa.Column("city", sa.Text, nullable=False),
        sa.Column("postal_code", sa.Text, nullable=False),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("country", sa.Text, nullable=False),
        sa.Column("tax_id_type", sa.Text, nullable=True),
        sa.Column("tax_id_value", sa.Text, nullable=True),
        sa.Column("updated_at", sa.Text, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("billing_details")
    with op.batch_alter_table("orders") as batch:
        for column in ("billing_details", "invoice_pdf", "invoice_url", "invoice_id"):
            batch.drop_column(column)
