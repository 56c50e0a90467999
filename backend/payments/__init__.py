"""Payment providers: one interface (:class:`PaymentProvider`), a Stripe and a stub implementation."""

from backend.payments.base import (
    CheckoutRequest,
    CreatedSession,
    PaymentProvider,
    SessionState,
)

__all__ = [
    "CheckoutRequest",
    "CreatedSession",
    "PaymentProvider",
    "SessionState",
]
