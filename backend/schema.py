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
    text,
)

# An id that is a 64-bit integer on PostgreSQL and SQLite's INTEGER PRIMARY KEY (the rowid) on SQLite.
Id = BigInteger().with_variant(Integer(), "sqlite")
# Amounts and credits: 64-bit on both engines (SQLite's INTEGER already is).
Amount = BigInteger().with_variant(Integer(), "sqlite")

metadata = MetaData()

# Secrets the backend keeps for itself (made by the migrations, never shown): ``receipt_links`` signs receipt links.
server_secrets = Table(
    "server_secrets", metadata,
    Column("name", Text, primary_key=True),
    Column("value", Text, nullable=False),
)

users = Table(
    "users", metadata,
    Column("id", Id, primary_key=True),
    Column("email", Text, nullable=False),
    Column("password_hash", Text, nullable=False),
    Column("created_at", Text, nullable=False),
    # The payment provider's customer for this user (Stripe's cus_..., or the stub's), made at the first checkout.
    Column("customer_id", Text),
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

# Password reset codes (argon2 hashes only), one live code per user: good once, until ``expires_at``, for at
# most a few wrong attempts. Asking for a new code replaces the user's earlier ones.
password_resets = Table(
    "password_resets", metadata,
    Column("id", Id, primary_key=True),
    Column("user_id", Id, ForeignKey("users.id"), nullable=False),
    Column("code_hash", Text, nullable=False),
    Column("created_at", Text, nullable=False),
    Column("expires_at", Text, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("used_at", Text),
    Index("idx_password_resets_user_id", "user_id"),
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

# The usage dashboard's running sums of the ledger (backend/rollups.py), kept with each entry: per user,
# quarter hour (UTC) and entry type; and per user, UTC day and label, what spends took.
usage_quarters = Table(
    "usage_quarters", metadata,
    Column("user_id", Id, primary_key=True, autoincrement=False),
    Column("quarter", Text, primary_key=True),  # the quarter hour's start, written as created_at is
    Column("type", Text, primary_key=True),
    Column("amount", Amount, nullable=False),
)
usage_labels = Table(
    "usage_labels", metadata,
    Column("user_id", Id, primary_key=True, autoincrement=False),
    Column("day", Text, primary_key=True),  # YYYY-MM-DD, in UTC
    Column("label", Text, primary_key=True),  # the spend's feature, else its description
    Column("amount", Amount, nullable=False),
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
    # The disputed amount (disputes open or lost) that the clawback counts, beside amount_refunded.
    Column("amount_disputed", Amount, nullable=False, server_default="0"),
    # What Stripe took, once paid: the total (list price less discounts plus exclusive tax), and the two.
    Column("amount_paid", Amount),
    Column("amount_discount", Amount, nullable=False, server_default="0"),
    Column("amount_tax", Amount, nullable=False, server_default="0"),
    # Why a payment of this order was refused (money taken, no credits): for support, never silent.
    Column("refusal", Text),
    # Stripe mode: the invoice Checkout made for the payment, and its hosted page and PDF once read (migration 0012).
    Column("invoice_id", Text),
    Column("invoice_url", Text),
    Column("invoice_pdf", Text),
    # The buyer's billing details when the order was paid (JSON, backend/billing_details.py), which its receipt prints.
    Column("billing_details", Text),
    # What its receipt names (migration 0015): the promotion code entered, and the tax's rate (percent, a decimal
    # string) and name, where checkout said them.
    Column("promotion_code", Text),
    Column("tax_rate", Text),
    Column("tax_name", Text),
    Index("idx_orders_session_id", "session_id", unique=True),
    # Only orders that have one, a pending order has none (migration 0013; partial on PostgreSQL too, as above).
    Index("idx_orders_payment_intent", "payment_intent", sqlite_where=text("payment_intent IS NOT NULL")),
    Index("idx_orders_user_id_created_at", "user_id", "created_at"),
    Index("idx_orders_status_created_at", "status", "created_at"),
)

# A user's billing details for receipts and invoices, set once (``PUT /api/billing/details``); no row: none set.
# Empty text is a field left blank; the tax id is both or neither.
billing_details = Table(
    "billing_details", metadata,
    Column("user_id", Id, primary_key=True, autoincrement=False),
    Column("name", Text, nullable=False),
    Column("line1", Text, nullable=False),
    Column("line2", Text, nullable=False),
    Column("city", Text, nullable=False),
    Column("postal_code", Text, nullable=False),
    Column("state", Text, nullable=False),
    Column("country", Text, nullable=False),
    Column("tax_id_type", Text),
    Column("tax_id_value", Text),
    Column("updated_at", Text, nullable=False),
)

# The highest cumulative refund Stripe has told us of, per payment; kept even when the payment's
# order is not known yet, because events arrive in any order.
# ``as_of`` is the ``created`` time of the event that told us (Unix seconds): a later event wins.
payment_refunds = Table(
    "payment_refunds", metadata,
    Column("payment_intent", Text, primary_key=True),
    Column("charge_id", Text),
    Column("amount_refunded", Amount, nullable=False),
    Column("updated_at", Text),
    Column("currency", Text),
    Column("as_of", BigInteger, nullable=False, server_default="0"),
    Index("idx_payment_refunds_charge_id", "charge_id"),
)

# Stripe's refund objects, each with its latest known status (pending, succeeded, failed, canceled ...).
refunds = Table(
    "refunds", metadata,
    Column("id", Text, primary_key=True),
    Column("payment_intent", Text),
    Column("charge_id", Text),
    Column("amount", Amount, nullable=False),
    Column("currency", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("as_of", BigInteger, nullable=False),
    Column("updated_at", Text, nullable=False),
    Column("created", BigInteger),  # when Stripe created the refund (null for refunds kept before migration 0004)
    Index("idx_refunds_payment_intent", "payment_intent"),
    Index("idx_refunds_charge_id", "charge_id"),
)

# Stripe's dispute objects, each with its latest known status (needs_response, won, lost ...).
disputes = Table(
    "disputes", metadata,
    Column("id", Text, primary_key=True),
    Column("payment_intent", Text),
    Column("charge_id", Text),
    Column("amount", Amount, nullable=False),
    Column("currency", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("reason", Text),
    Column("as_of", BigInteger, nullable=False),
    Column("updated_at", Text, nullable=False),
    Index("idx_disputes_payment_intent", "payment_intent"),
    Index("idx_disputes_charge_id", "charge_id"),
)

# Every verified Stripe event, kept whole with what processing it did: one row per event id, which is
# also what makes a duplicate a no-op. ``body`` is dropped after the retention period; the row stays.
webhook_events = Table(
    "webhook_events", metadata,
    Column("id", Text, primary_key=True),
    Column("type", Text, nullable=False),
    Column("outcome", Text, nullable=False),
    Column("received_at", Text, nullable=False),
    Column("body", Text),
    Column("livemode", Boolean),
    Column("created", BigInteger),  # the event's own time at Stripe (Unix seconds)
    Column("source", Text),  # webhook, reconcile, replay, stub_checkout
    Column("object_id", Text),  # the session, refund, dispute or charge it is about
    Column("order_id", Text),
    Column("detail", Text),  # why it was refused or ignored, or what it changed
    Column("processed_at", Text),
    Column("attempts", Integer, nullable=False, server_default="1"),
    # An event about an order by its order; one not matched to an order by the object it is about (migration 0013):
    # each row is in one of the two, so an event's INSERT writes one of them. (Partial on PostgreSQL too: the
    # migration says so there; naming postgresql_where here would load that dialect in every SQLite backend.)
    Index("idx_webhook_events_order_id", "order_id", sqlite_where=text("order_id IS NOT NULL")),
    Index("idx_webhook_events_unmatched_object_id", "object_id", sqlite_where=text("order_id IS NULL")),
    Index("idx_webhook_events_received_at", "received_at"),
)

# Every request to the webhook endpoint that was not processed (a bad signature, a malformed event, an
# error), with its body and why, so that a wrong signing secret or a failing handler shows up for support.
# (A processed one is its row in webhook_events.) Deleted after the retention period.
failed_deliveries = Table(
    "failed_deliveries", metadata,
    Column("id", Id, primary_key=True),
    Column("received_at", Text, nullable=False),
    Column("signature_valid", Boolean, nullable=False),
    Column("event_id", Text),
    Column("event_type", Text),
    Column("outcome", Text, nullable=False),  # rejected_signature, malformed, error
    Column("error", Text),
    Column("body", Text),
    Index("idx_failed_deliveries_event_id", "event_id"),
    Index("idx_failed_deliveries_received_at", "received_at"),
)

# Each run of reconcile (by hand or on the interval) and what it found.
reconcile_runs = Table(
    "reconcile_runs", metadata,
    Column("id", Id, primary_key=True),
    Column("started_at", Text, nullable=False),
    Column("finished_at", Text),
    Column("since", Text, nullable=False),
    Column("trigger", Text, nullable=False),
    Column("events_seen", Integer, nullable=False, server_default="0"),
    Column("events_applied", Integer, nullable=False, server_default="0"),
    Column("orders_checked", Integer, nullable=False, server_default="0"),
    Column("orders_changed", Integer, nullable=False, server_default="0"),
    Column("error", Text),
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

# Support's note on an adjustment (`adjust --reason`): for support's eyes, apart from the entry's description,
# which the user sees in their history.
adjustment_notes = Table(
    "adjustment_notes", metadata,
    Column("entry_id", Id, ForeignKey("ledger_entries.id"), primary_key=True),
    Column("note", Text, nullable=False),
)

# What a user sent through the app's Help → Report a problem (POST /api/support/reports): their words and the
# app's diagnostics report (JSON), both redacted again here; shown to support by `creditdesk-backend user`.
support_reports = Table(
    "support_reports", metadata,
    Column("id", Text, primary_key=True),
    Column("user_id", Id, ForeignKey("users.id"), nullable=False),
    Column("created_at", Text, nullable=False),
    Column("message", Text, nullable=False),
    Column("report", Text, nullable=False),
    Index("idx_support_reports_user_id_created_at", "user_id", "created_at"),
)


# Holds: credits reserved for an operation whose cost is known once it has run (issue 19). ``open`` until settled
# (``settled_amount`` spent by the ``spend`` entry ``transaction_id``, whose reference is the hold's id), voided, or
# expired at ``expires_at``; a hold open past ``expires_at`` is released already, whether or not a sweep has marked it.
# ``available_after`` is what its first answer said was left, so that a repeated key answers as the first time.
holds = Table(
    "holds", metadata,
    Column("id", Text, primary_key=True),  # hold_...
    Column("user_id", Id, nullable=False),
    Column("amount", Amount, nullable=False),
    Column("status", Text, nullable=False),  # open, settled, voided, expired
    Column("idempotency_key", Text, nullable=False),
    Column("fingerprint", Text, nullable=False),
    Column("description", Text, nullable=False),
    Column("feature", Text),
    Column("created_at", Text, nullable=False),
    Column("expires_at", Text, nullable=False),
    Column("closed_at", Text),
    Column("settled_amount", Amount),
    Column("transaction_id", Id),
    Column("available_after", Amount, nullable=False),
    Index("idx_holds_user_id_idempotency_key", "user_id", "idempotency_key", unique=True),
    Index("idx_holds_user_id_status_expires_at", "user_id", "status", "expires_at"),
    Index("idx_holds_status_expires_at", "status", "expires_at"),
    Index("idx_holds_user_id_created_at", "user_id", "created_at"),
)


# Auto top-up (issue 19, migration 0017): the user's consent and limits (``enabled`` is turned on only by the user),
# the card a top-up's Checkout saved (the session and payment that saved it; the payment method once read), and why
# it was turned off (a declined or authentication-required payment).
auto_topups = Table(
    "auto_topups", metadata,
    Column("user_id", Id, primary_key=True),
    Column("enabled", Boolean, nullable=False),
    Column("notify_only", Boolean, nullable=False),
    Column("threshold", Amount, nullable=False),
    Column("pack_id", Text, nullable=False),
    Column("monthly_limit", Amount, nullable=False),  # minor units of ``currency``, the pack's
    Column("currency", Text, nullable=False),
    Column("max_per_day", Integer, nullable=False),
    Column("card_session", Text),
    Column("card_payment_intent", Text),
    Column("payment_method", Text),
    Column("disabled_reason", Text),  # card_declined, authentication_required, or None
    Column("disabled_topup", Text),  # the top-up whose payment turned it off
    Column("updated_at", Text, nullable=False),
)

# One row per threshold crossing acted on: ``kind`` charge (``status`` in_flight, then succeeded, failed or undone)
# or notify (notified). One per crossing (the ledger entry that crossed) and one charge in flight per user, held by
# the database whichever replica writes.
TOPUP_IN_FLIGHT = text("status = 'in_flight'")
topups = Table(
    "topups", metadata,
    Column("id", Text, primary_key=True),  # tu_...
    Column("user_id", Id, nullable=False),
    Column("kind", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("crossing", Text, nullable=False),
    Column("pack_id", Text, nullable=False),
    Column("pack_name", Text, nullable=False),
    Column("credits", Amount, nullable=False),
    Column("amount", Amount, nullable=False),
    Column("currency", Text, nullable=False),
    Column("order_id", Text),
    Column("payment_intent", Text),
    Column("failure", Text),
    Column("created_at", Text, nullable=False),
    Column("succeeded_at", Text),
    Column("refund_amount", Amount),  # what Undo refunds (kept before the refund is asked for: a retry asks the same)
    Column("refund_id", Text),
    Column("undone_at", Text),
    Index("idx_topups_user_id_crossing", "user_id", "crossing", unique=True),
    # (Partial on PostgreSQL too: migration 0017 says so there; postgresql_where here would load that dialect in every
    # SQLite backend.)
    Index("idx_topups_one_in_flight", "user_id", unique=True, sqlite_where=TOPUP_IN_FLIGHT),
    Index("idx_topups_user_id_created_at", "user_id", "created_at"),
    Index("idx_topups_payment_intent", "payment_intent"),
)


# Grants: the lots credits come in (issue 19), each paid or promotional, with an optional expiry. A purchase, an
# adjustment (`adjust`, `adjust --promotional`), a catalogue's sign-up bonus each make one; migration 0016 made one
# paid grant per user of the balance they had. ``opening`` is what it held when made (a purchase's credits less any
# debt they repaid; a migrated balance), ``remaining`` what is left: opening plus its allocations, and the user's
# grants' remaining sum to their balance (backend/grants.py). ``expired_at`` is set once, by the one ``expiry``
# entry (reference ``grant:<id>``); ``entry_id`` is the entry that made it (for a migrated grant: the user's last
# entry before grants, the entries after which all carry allocations).
grants = Table(
    "grants", metadata,
    Column("id", Id, primary_key=True),
    Column("user_id", Id, nullable=False),
    Column("kind", Text, nullable=False),  # paid, promotional
    Column("source", Text, nullable=False),  # purchase, adjustment, signup, migration, debt
    Column("reference", Text, nullable=False),  # the making entry's reference (a purchase: its Checkout Session)
    Column("description", Text, nullable=False),
    Column("amount", Amount, nullable=False),  # credits granted
    Column("opening", Amount, nullable=False),
    Column("remaining", Amount, nullable=False),
    Column("created_at", Text, nullable=False),
    Column("expires_at", Text),
    Column("expired_at", Text),
    Column("entry_id", Id),
    Index("idx_grants_user_id_source_reference", "user_id", "source", "reference", unique=True),
    Index("idx_grants_user_id_remaining", "user_id", "remaining"),
    Index("idx_grants_expired_at_expires_at", "expired_at", "expires_at"),
    Index("idx_grants_entry_id", "entry_id"),
)

# Which grant each ledger entry took credits from or gave them to (negative: taken). An entry's allocations, with
# the opening of a grant it made, sum to its amount; a grant's allocations and opening sum to its remaining.
grant_allocations = Table(
    "grant_allocations", metadata,
    Column("entry_id", Id, primary_key=True, autoincrement=False),
    Column("grant_id", Id, primary_key=True, autoincrement=False),
    Column("amount", Amount, nullable=False),
    Index("idx_grant_allocations_grant_id", "grant_id"),
)
