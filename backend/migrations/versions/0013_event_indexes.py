"""Partial indexes where the webhook writes: fewer index pages per Stripe event, every query served as before.

- ``webhook_events``: an event about an order is found by its ``order_id``; one not (yet) matched to an order (an
  unknown session, news of a payment not known yet, a type Creditdesk ignores) by its ``object_id``. Each index now
  holds only its own half (``order_id IS NOT NULL``, and ``order_id IS NULL`` for ``object_id``), so a granted
  event is written into one of them rather than both; support's "events of an order" asks for
  ``order_id = the order OR (order_id IS NULL AND object_id = its session)``, the same rows as before (a session's
  events name its order whenever they name one).
- ``orders.payment_intent``: only the orders that have one (a pending order has none), so paying an order adds its
  entry without first taking a NULL one out.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def _partial(name: str, table: str, column: str, where: str) -> None:
    op.create_index(name, table, [column], sqlite_where=sa.text(where), postgresql_where=sa.text(where))


def upgrade() -> None:
    op.drop_index("idx_webhook_events_order_id", "webhook_events")
    op.drop_index("idx_webhook_events_object_id", "webhook_events")
    _partial("idx_webhook_events_order_id", "webhook_events", "order_id", "order_id IS NOT NULL")
    _partial("idx_webhook_events_unmatched_object_id", "webhook_events", "object_id", "order_id IS NULL")
    op.drop_index("idx_orders_payment_intent", "orders")
    _partial("idx_orders_payment_intent", "orders", "payment_intent", "payment_intent IS NOT NULL")


def downgrade() -> None:
    op.drop_index("idx_orders_payment_intent", "orders")
    op.create_index("idx_orders_payment_intent", "orders", ["payment_intent"])
    op.drop_index("idx_webhook_events_unmatched_object_id", "webhook_events")
    op.drop_index("idx_webhook_events_order_id", "webhook_events")
    op.create_index("idx_webhook_events_object_id", "webhook_events", ["object_id"])
    op.create_index("idx_webhook_events_order_id", "webhook_events", ["order_id"])
