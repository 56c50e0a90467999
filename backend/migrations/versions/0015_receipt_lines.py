"""What a receipt needs to be a tax document (issue 18): the promotion code and the tax rate of a paid order.

* ``orders.promotion_code``: the code the buyer entered at checkout, where it is known (the stub's codes; in Stripe
  mode a session whose discount names an expanded promotion code), which the receipt's discount line names.
* ``orders.tax_rate``: the tax's rate in percent as a decimal string ("19", "8.875"), where checkout said it (the
  stub's stub_tax_percent; a Stripe session's tax breakdown, when it is given one rate); the receipt says
  "Tax (19 %)", or only "Tax" without it.
* ``orders.tax_name``: the tax's name as the rate names it ("VAT"), where known.

Orders paid before have none of these (NULL): their receipts show the discount and tax without them.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

COLUMNS = ("promotion_code", "tax_rate", "tax_name")


def upgrade() -> None:
    with op.batch_alter_table("orders") as batch:
        for column in COLUMNS:
            batch.add_column(sa.Column(column, sa.Text, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("orders") as batch:
        for column in reversed(COLUMNS):
            batch.drop_column(column)
