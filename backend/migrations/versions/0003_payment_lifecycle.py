"""The life of a payment after checkout: refunds and disputes, events kept whole, deliveries, reconcile runs.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from backend.schema import Amount, Id

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("orders", sa.Column("amount_disputed", Amount, nullable=False, server_default="0"))
    op.create_index("idx_orders_status_created_at", "orders", ["status", "created_at"])
    op.add_column("payment_refunds", sa.Column("currency", sa.Text))
    op.add_column("payment_refunds", sa.Column("as_of", sa.BigInteger, nullable=False, server_default="0"))
    op.create_table(
        "refunds",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("payment_intent", sa.Text),
        sa.Column("charge_id", sa.Text),
        sa.Column("amount", Amount, nullable=False),
        sa.Column("currency", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("as_of", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.Text, nullable=False),
    )
    op.create_index("idx_refunds_payment_intent", "refunds", ["payment_intent"])
    op.create_table(
        "disputes",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("payment_intent", sa.Text),
        sa.Column("charge_id", sa.Text),
        sa.Column("amount", Amount, nullable=False),
        sa.Column("currency", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("reason", sa.Text),
        sa.Column("as_of", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.Text, nullable=False),
    )
    op.create_index("idx_disputes_payment_intent", "disputes", ["payment_intent"])
    for column in (
        sa.Column("body", sa.Text),
        sa.Column("livemode", sa.Boolean),
        sa.Column("created", sa.BigInteger),
        sa.Column("source", sa.Text),
        sa.Column("object_id", sa.Text),
        sa.Column("order_id", sa.Text),
        sa.Column("detail", sa.Text),
        sa.Column("processed_at", sa.Text),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="1"),
    ):
        op.add_column("webhook_events", column)
    op.create_index("idx_webhook_events_order_id", "webhook_events", ["order_id"])
    op.create_index("idx_webhook_events_object_id", "webhook_events", ["object_id"])
    op.create_index("idx_webhook_events_received_at", "webhook_events", ["received_at"])
    op.create_table(
        "failed_deliveries",
        sa.Column("id", Id, primary_key=True),
        sa.Column("received_at", sa.Text, nullable=False),
        sa.Column("signature_valid", sa.Boolean, nullable=False),
        sa.Column("event_id", sa.Text),
        sa.Column("event_type", sa.Text),
        sa.Column("outcome", sa.Text, nullable=False),
        sa.Column("error", sa.Text),
        sa.Column("body", sa.Text),
    )
    op.create_index("idx_failed_deliveries_event_id", "failed_deliveries", ["event_id"])
    op.create_index("idx_failed_deliveries_received_at", "failed_deliveries", ["received_at"])
    op.create_table(
        "reconcile_runs",
        sa.Column("id", Id, primary_key=True),
        sa.Column("started_at", sa.Text, nullable=False),
        sa.Column("finished_at", sa.Text),
        sa.Column("since", sa.Text, nullable=False),
        sa.Column("trigger", sa.Text, nullable=False),
        sa.Column("events_seen", sa.Integer, nullable=False, server_default="0"),
        sa.Column("events_applied", sa.Integer, nullable=False, server_default="0"),
        sa.Column("orders_checked", sa.Integer, nullable=False, server_default="0"),
        sa.Column("orders_changed", sa.Integer, nullable=False, server_default="0"),
        sa.Column("error", sa.Text),
    )
    # Refunds 0.1.0 knew of only as the charge's cumulative amount: their events' time is unknown (0).


def downgrade() -> None:
    op.drop_table("reconcile_runs")
    op.drop_table("failed_deliveries")
    for index in ("idx_webhook_events_received_at", "idx_webhook_events_object_id", "idx_webhook_events_order_id"):
        op.drop_index(index, "webhook_events")
    with op.batch_alter_table("webhook_events") as batch:
        for name in ("attempts", "processed_at", "detail", "order_id", "object_id", "source", "created", "livemode",
                     "body"):
            batch.drop_column(name)
    op.drop_table("disputes")
    op.drop_table("refunds")
    with op.batch_alter_table("payment_refunds") as batch:
        batch.drop_column("as_of")
        batch.drop_column("currency")
    op.drop_index("idx_orders_status_created_at", "orders")
    with op.batch_alter_table("orders") as batch:
        batch.drop_column("amount_disputed")
