"""The life of an order: its statuses and every transition between them, in one table.

An order's status is the payment's status as the API shows it. What can happen to an order is a
:class:`Happening`; :data:`TRANSITIONS` says where each (status, happening) pair leads, and a pair
that is not in the table changes nothing. The webhook, verify-payment, the success and cancel
pages, reconcile and the admin commands all move orders through :func:`next_status` only.

Two rules shape the table. Nothing goes backwards: once money was taken (``paid`` and the statuses
after it) an order never becomes ``pending``, ``cancelled``, ``expired`` or ``failed``; and money
wins: a session found paid is granted whatever the order's unpaid status said (a late grant beats a
lost payment). After payment the status follows the money facts (:func:`after_payment`).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal, get_args

PENDING = "pending"  # not paid yet
PAID = "paid"  # credits granted
FAILED = "failed"  # a delayed payment method failed
EXPIRED = "expired"  # the Checkout Session lapsed or was expired
CANCELLED = "cancelled"  # the customer left Checkout (or cancelled in the app)
REFUNDED = "refunded"  # refunds cover the whole amount
DISPUTED = "disputed"  # a dispute is open
CHARGED_BACK = "charged_back"  # a dispute was lost

# The statuses as one type, which the API's answers declare (and check) an order's status against.
Status = Literal["pending", "paid", "failed", "expired", "cancelled", "refunded", "disputed", "charged_back"]
STATUSES: tuple[Status, ...] = get_args(Status)
# Money was taken: the credits were granted, whatever was clawed back since.
AFTER_PAYMENT = frozenset({PAID, REFUNDED, DISPUTED, CHARGED_BACK})
# Statuses about which the provider has nothing more to say before payment: verify-payment does not
# ask it again, and the app stops watching. (Stripe's webhooks and reconcile still apply to them.)
SETTLED = AFTER_PAYMENT | {FAILED, EXPIRED, CANCELLED}


class Happening(StrEnum):
    SESSION_PAID = "session_paid"  # the Checkout Session is complete and paid
    SESSION_EXPIRED = "session_expired"  # the provider expired the session
    PAYMENT_FAILED = "payment_failed"  # a delayed payment method failed
    CUSTOMER_CANCELLED = "customer_cancelled"  # the cancel page, or the app's cancel
    # After payment, the money facts (refunds and disputes) say one of these:
    MONEY_KEPT = "money_kept"  # no open or lost dispute, refunds below the amount
    FULLY_REFUNDED = "fully_refunded"
    DISPUTE_OPEN = "dispute_open"
    DISPUTE_LOST = "dispute_lost"


H = Happening
_AFTER_PAYMENT_STATUS = {H.MONEY_KEPT: PAID, H.FULLY_REFUNDED: REFUNDED, H.DISPUTE_OPEN: DISPUTED,
                         H.DISPUTE_LOST: CHARGED_BACK}

TRANSITIONS: dict[tuple[str, Happening], str] = {
    (PENDING, H.SESSION_PAID): PAID,
    (PENDING, H.SESSION_EXPIRED): EXPIRED,
    (PENDING, H.PAYMENT_FAILED): FAILED,
    (PENDING, H.CUSTOMER_CANCELLED): CANCELLED,
    (CANCELLED, H.SESSION_PAID): PAID,
    (CANCELLED, H.SESSION_EXPIRED): EXPIRED,
    (CANCELLED, H.PAYMENT_FAILED): FAILED,
    (EXPIRED, H.SESSION_PAID): PAID,
    (FAILED, H.SESSION_PAID): PAID,
    **{
        (status, happening): target
        for status in AFTER_PAYMENT
        for happening, target in _AFTER_PAYMENT_STATUS.items()
        if status != target
    },
}


def next_status(status: str, happening: Happening) -> str | None:
    """Where ``happening`` takes an order in ``status``; ``None`` when it changes nothing."""
    if status not in STATUSES:
        raise ValueError(f"unknown order status {status!r}")
    return TRANSITIONS.get((status, happening))


def after_payment(*, amount: int, refunded: int, disputes_open: bool, disputes_lost: bool) -> Happening:
    """What the money facts of a paid order say, strongest first: an open dispute, a lost one, a full refund."""
    if disputes_open:
        return H.DISPUTE_OPEN
    if disputes_lost:
        return H.DISPUTE_LOST
    if refunded >= amount:
        return H.FULLY_REFUNDED
    return H.MONEY_KEPT

