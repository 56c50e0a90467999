"""Secrets the backend keeps for itself, shared by every replica: the key that signs receipt links.

A receipt link (``/receipts/{order}?key=...``) opens in the buyer's browser, where there is no sign-in: its key
is an HMAC of the order id under this secret, made once here at random and never shown.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05
"""

from __future__ import annotations

import secrets

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    table = op.create_table(
        "server_secrets",
        sa.Column("name", sa.Text, primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )
    op.bulk_insert(table, [{"name": "receipt_links", "value": secrets.token_hex(32)}])


def downgrade() -> None:
    op.drop_table("server_secrets")
