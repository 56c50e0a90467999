"""What processing a Stripe event did, and why a delivery was not processed: the one vocabulary of both.

These are the strings stored in ``webhook_events.outcome`` and ``failed_deliveries.outcome``, shown and
filtered by support (``creditdesk-backend events``), counted in the metrics and answered to Stripe. StrEnum:
a member is its string, so rows stored before these names existed compare equal to them. An event that only
moved an order's status (expired, failed, cancelled) has the order's new status as its outcome: the statuses'
one vocabulary is :mod:`backend.order_status`, not spelt again here.
"""

from __future__ import annotations

from enum import StrEnum


class Outcome(StrEnum):
    """An event's outcome (``webhook_events.outcome``)."""

    PROCESSING = "processing"  # claimed by a transaction that has not committed yet
    GRANTED = "granted"  # the purchase's credits were granted
    ALREADY_GRANTED = "already_granted"  # they had been (another path got there first)
    NOT_PAID = "not_paid"  # the news came before the payment: kept, and applied when it is paid
    REFUSED = "refused"  # money taken, no credits: the session does not match its order (support looks)
    UNKNOWN_ORDER = "unknown_order"  # no order of ours has this session
    NO_CHANGE = "no_change"  # applied, and it changed nothing
    CLAWED_BACK = "clawed_back"  # credits taken back for a refund or dispute
    GIVEN_BACK = "given_back"  # credits given back (a refund failed, a dispute won)
    RECORDED = "recorded"  # kept for later: the payment's order is not known or not paid yet
    IGNORED = "ignored"  # not an event Creditdesk acts on, or one that names nothing it can act on
    DUPLICATE = "duplicate"  # processed before (answered, never stored: the first delivery's row stands)


class DeliveryOutcome(StrEnum):
    """Why a delivery was not processed (``failed_deliveries.outcome``)."""

    REJECTED_SIGNATURE = "rejected_signature"
    MALFORMED = "malformed"
    ERROR = "error"
