"""The tables, as SQLAlchemy Core objects: one description of the schema for both engines.

Queries are built from these objects, so the same code runs on SQLite and PostgreSQL; the
migrations under ``backend/migrations`` are what create and change them in a real database.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
)

# An id that is a 64-bit integer on PostgreSQL and SQLite's INTEGER PRIMARY KEY (the rowid) on SQLite.
Id = BigInteger().with_variant(Integer(), "sqlite")
# Amounts and credits: 64-bit on both engines (SQLite's INTEGER already is).
Amount = BigInteger().with_variant(Integer(), "sqlite")

metadata = MetaData()

users = Table(
    "users", metadata,
    Column("id", Id, primary_key=True),
    Column("email", Text, nullable=False),
    Column("password_hash", Text, nullable=False),
    Column("created_at", Text, nullable=False),
    Index("idx_users_email", "email", unique=True),
)

tokens = Table(
    "tokens", metadata,
    Column("token_hash", Text, primary_key=True),
    Column("user_id", Id, ForeignKey("users.id"), nullable=False),
    Column("created_at", Text, nullable=False),
    Column("expires_at", Float, nullable=False),
    Index("idx_tokens_user_id", "user_id"),
)

# The ledger: append-only entries and a cached balance per user, updated together.
balances = Table(
    "balances", metadata,
    Column("user_id", Id, primary_key=True, autoincrement=False),
    Column("balance", Amount, nullable=False),
)

ledger_entries = Table(
    "ledger_entries", metadata,
    Column("id", Id, primary_key=True),
    Column("user_id", Id, nullable=False),
    Column("type", Text, nullable=False),
    Column("amount", Amount, nullable=False),
    Column("balance_after", Amount, nullable=False),
    Column("reference", Text, nullable=False),
    Column("description", Text),
    Column("created_at", Text, nullable=False),
    Column("fingerprint", Text),
    # What the host application's feature that spent the credits calls itself (spends only; optional).
    Column("feature", Text),
    Index("idx_ledger_entries_user_id_type_reference", "user_id", "type", "reference", unique=True),
    Index("idx_ledger_entries_user_id_id", "user_id", "id"),
    # Ranges of time per user: caps, the usage dashboard and the CSV export.
    Index("idx_ledger_entries_user_id_created_at", "user_id", "created_at"),
)

orders = Table(
    "orders", metadata,
    Column("id", Text, primary_key=True),
    Column("user_id", Id, nullable=False),
    Column("pack_id", Text, nullable=False),
    Column("pack_name", Text),
    Column("credits", Amount, nullable=False),
    Column("amount", Amount, nullable=False),
    Column("currency", Text, nullable=False),
    Column("provider", Text),
    Column("session_id", Text),
    Column("checkout_url", Text),
    Column("return_url", Text),
    Column("state", Text),
    Column("status", Text, nullable=False),
    Column("payment_intent", Text),
    Column("amount_refunded", Amount, server_default="0"),
    Column("credits_clawed_back", Amount, server_default="0"),
    Column("created_at", Text, nullable=False),
    Column("updated_at", Text),
    Index("idx_orders_session_id", "session_id", unique=True),
    Index("idx_orders_payment_intent", "payment_intent"),
    Index("idx_orders_user_id_created_at", "user_id", "created_at"),
)

# The highest cumulative refund Stripe has told us of, per payment; kept even when the payment's
# order is not known yet, because events arrive in any order.
payment_refunds = Table(
    "payment_refunds", metadata,
    Column("payment_intent", Text, primary_key=True),
    Column("charge_id", Text),
    Column("amount_refunded", Amount, nullable=False),
    Column("updated_at", Text),
)

webhook_events = Table(
    "webhook_events", metadata,
    Column("id", Text, primary_key=True),
    Column("type", Text, nullable=False),
    Column("outcome", Text, nullable=False),
    Column("received_at", Text, nullable=False),
)

stub_sessions = Table(
    "stub_sessions", metadata,
    Column("id", Text, primary_key=True),
    Column("data", Text, nullable=False),
)

# A user's spend controls; no row means none are set (and the time zone is UTC).
spend_controls = Table(
    "spend_controls", metadata,
    Column("user_id", Id, primary_key=True, autoincrement=False),
    Column("time_zone", Text, nullable=False),
    Column("cap_day", Amount),
    Column("cap_week", Amount),
    Column("cap_month", Amount),
    Column("confirm_above", Amount),
    Column("updated_at", Text, nullable=False),
)

# Every change of a spend control: the field, its old and new value (as JSON), and when.
spend_control_changes = Table(
    "spend_control_changes", metadata,
    Column("id", Id, primary_key=True),
    Column("user_id", Id, nullable=False),
    Column("field", Text, nullable=False),
    Column("old_value", Text),
    Column("new_value", Text),
    Column("changed_at", Text, nullable=False),
    Index("idx_spend_control_changes_user_id_id", "user_id", "id"),
)

# Low-balance thresholds; ``armed`` until the balance goes below, then again once it has risen above.
low_balance_thresholds = Table(
    "low_balance_thresholds", metadata,
    Column("user_id", Id, primary_key=True, autoincrement=False),
    Column("threshold", Amount, primary_key=True, autoincrement=False),
    Column("armed", Boolean, nullable=False),
)

# Confirmation tokens of spends above the "confirm above" threshold (digests only): good once, for
# one amount and idempotency key, until ``expires_at``.
spend_confirmations = Table(
    "spend_confirmations", metadata,
    Column("token_hash", Text, primary_key=True),
    Column("user_id", Id, nullable=False),
    Column("idempotency_key", Text, nullable=False),
    Column("amount", Amount, nullable=False),
    Column("created_at", Text, nullable=False),
    Column("expires_at", Text, nullable=False),
    Column("used_at", Text),
    Index("idx_spend_confirmations_user_id", "user_id"),
)

# The user's alerts. ``dedupe_key`` names the crossing an alert is about (a cap in one period, an
# order's outcome), so that it is made once however many transactions reach it.
alerts = Table(
    "alerts", metadata,
    Column("id", Id, primary_key=True),
    Column("user_id", Id, nullable=False),
    Column("kind", Text, nullable=False),
    Column("message", Text, nullable=False),
    Column("data", Text, nullable=False),
    Column("created_at", Text, nullable=False),
    Column("read_at", Text),
    Column("dedupe_key", Text),
    Index("idx_alerts_user_id_id", "user_id", "id"),
    Index("idx_alerts_user_id_dedupe_key", "user_id", "dedupe_key", unique=True),
)
