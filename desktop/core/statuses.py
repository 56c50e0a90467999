"""The order statuses the backend answers (the contract's, as ``backend/order_status.py`` has them): the one
list the desktop reads them from, for the purchase flow, the purchases kept on disk and the words shown."""

from __future__ import annotations

from enum import StrEnum


class OrderStatus(StrEnum):
    PENDING = "pending"  # not paid yet
    PAID = "paid"
    FAILED = "failed"
    EXPIRED = "expired"
    CANCELLED = "cancelled"
    REFUNDED = "refunded"
    DISPUTED = "disputed"
    CHARGED_BACK = "charged_back"


ORDER_STATUSES = frozenset(OrderStatus)
# Every status but pending: the backend has nothing more to say before payment, or the payment was taken.
FINISHED_STATUSES = ORDER_STATUSES - {OrderStatus.PENDING}
