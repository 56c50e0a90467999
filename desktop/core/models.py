"""What the backend's HTTP API speaks of, as plain data, and the errors of calling it.

Kept apart from :mod:`desktop.core.api` (which needs ``requests``) so that the window can be built without
loading the HTTP stack: the app paints its window first and talks to the backend after.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # loaded with the first packs (desktop.core.api), not before the window's first paint
    from decimal import Decimal


class ApiClientError(Exception):
    """Base of the errors :class:`ApiClient` raises; ``str(error)`` is a sentence for the user."""

    message: str


class ApiError(ApiClientError):
    """The backend answered with an error (the contract's ``{"error": {"code", "message", "details"?}}``).

    ``details`` holds the facts some errors carry for the client (a cap and when it resets, a confirmation token).
    """

    def __init__(self, status: int, code: str, message: str, retry_after: int | None = None,
                 details: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.retry_after = retry_after
        self.details: Mapping[str, Any] | None = details

    def __repr__(self) -> str:
        return f"ApiError(status={self.status}, code={self.code!r}, message={self.message!r})"


class BackendUnreachable(ApiClientError):
    """No answer: connection refused, DNS failure, TLS failure or timeout."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __repr__(self) -> str:
        return f"BackendUnreachable({self.message!r})"


@dataclass(frozen=True)
class ServerHealth:
    status: str
    payments: str  # "stripe" or "stub"
    version: str
    latency_ms: float
    # Whether the backend can reach its payment provider now (``paymentProvider.state``: "available",
    # "unavailable" while its breaker is open, "recovering"); an older backend does not say: "available".
    provider_state: str = "available"
    provider_retry_after: int | None = None  # seconds, while unavailable

    @property
    def payments_available(self) -> bool:
        return self.provider_state != "unavailable"


@dataclass(frozen=True)
class User:
    id: int
    email: str


@dataclass(frozen=True)
class ResetCodeSent:
    """The server's answer to "forgot password" (the same whether or not the account exists)."""

    message: str
    expires_in_seconds: int | None = None  # how long the mailed code works, where the server says


@dataclass(frozen=True)
class AuthResult:
    token: str = field(repr=False)
    user: User


@dataclass(frozen=True)
class Pack:
    id: str
    name: str
    credits: int
    amount: int  # minor units (cents)
    currency: str
    price_per_credit: Decimal | None = None  # minor units, as the backend works it out (``pricePerCredit``)
    tax: str | None = None  # exclusive (checkout adds tax on top), inclusive (held in the price), None (no tax added)

    @property
    def per_credit(self) -> Decimal:
        """The price of one credit in minor units: the backend's, or worked out alike from an older backend's pack."""
        if self.price_per_credit is not None:
            return self.price_per_credit
        from decimal import Decimal

        return Decimal(self.amount) / Decimal(self.credits)


@dataclass(frozen=True)
class Receipt:
    """A paid purchase's receipt (``GET /api/billing/receipts``): ``url`` opens it in a browser."""

    order_id: str
    session_id: str
    credits: int
    amount: int  # what was paid, minor units
    currency: str
    paid_at: str
    url: str


@dataclass(frozen=True)
class SentSupportReport:
    """A problem report the backend kept (``POST /api/support/reports``): its id, for the user to quote."""

    report_id: str
    received_at: str


@dataclass(frozen=True)
class BillingDetails:
    """The buyer's billing details, printed on receipts (``GET/PUT /api/billing/details``); blank fields are ""."""

    name: str = ""
    line1: str = ""
    line2: str = ""
    city: str = ""
    postal_code: str = ""
    state: str = ""
    country: str = ""  # ISO 3166-1 alpha-2
    tax_id_type: str = ""  # Stripe's type, such as eu_vat; "" with the value: none
    tax_id_value: str = ""

    def as_json(self) -> dict[str, object]:
        """The body of ``PUT /api/billing/details``."""
        tax_id = {"type": self.tax_id_type, "value": self.tax_id_value} if self.tax_id_type else None
        return {"name": self.name, "address": {"line1": self.line1, "line2": self.line2, "city": self.city,
                                               "postalCode": self.postal_code, "state": self.state,
                                               "country": self.country},
                "taxId": tax_id}


@dataclass(frozen=True)
class Price:
    amount: int  # minor units (cents)
    currency: str


@dataclass(frozen=True)
class Transaction:
    id: int
    type: str  # purchase, spend, refund, adjustment, dispute, dispute_reversal (more may be added)
    amount: int
    balance_after: int
    created_at: str
    reference: str | None
    description: str | None
    order_id: str | None = None  # purchases: the order behind them
    payment: Price | None = None  # purchases: what was paid for these credits
    auto_topup: bool = False  # a purchase auto top-up made (its own alert announced it, with Undo)


@dataclass(frozen=True)
class GrantSummary:
    """What the balance says of its grants (``GET /api/credits/balance``, from a backend with grants): how many of
    the credits are promotional (spent first), and the next credits to expire and when."""

    promotional: int
    next_expiry_at: str | None  # ISO 8601 UTC
    next_expiry_credits: int

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> GrantSummary | None:
        """None from a backend older than grants (its answer is only ``{"balance"}``)."""
        if "promotional" not in body:
            return None
        upcoming = body.get("nextExpiry") or {}
        return cls(promotional=int(body["promotional"]), next_expiry_at=upcoming.get("at"),
                   next_expiry_credits=int(upcoming.get("credits") or 0))

    def words(self, when: Callable[[str], str], number: Callable[[int], str] = str) -> str:
        """``12 promotional · 9 expire at the end of 13 Dec`` (``when`` writes the instant as words that follow
        "expire": ``at the end of 13 Dec``, ``at 12/13/2026 4:00 PM PST``); empty when there is nothing to say."""
        parts = [f"{number(self.promotional)} promotional"] if self.promotional > 0 else []
        if self.next_expiry_at and self.next_expiry_credits > 0:
            verb = "expires" if self.next_expiry_credits == 1 else "expire"
            parts.append(f"{number(self.next_expiry_credits)} {verb} {when(self.next_expiry_at)}")
        return " · ".join(parts)


@dataclass(frozen=True)
class HeldCredits:
    """What the user's open holds reserve (``GET /api/credits/holds``): credits a feature of the host application
    has set aside for an operation still running, not spendable until it is settled or released."""

    reserved: int
    available: int  # the balance less what is reserved
    open: int  # how many holds are open

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> HeldCredits:
        return cls(reserved=int(body["reserved"]), available=int(body["available"]),
                   open=sum(1 for hold in body["holds"] if hold["status"] == "open"))


@dataclass(frozen=True)
class TransactionPage:
    items: tuple[Transaction, ...]
    next_cursor: str | None  # pass as ``before=`` for the next (older) page; None on the last page


@dataclass(frozen=True)
class CheckoutSession:
    session_id: str
    url: str
    order_id: str | None = None


@dataclass(frozen=True)
class CancelResult:
    session_id: str
    status: str  # cancelled (can no longer be paid), or where it stands if it was settled first (paid, ...)


@dataclass(frozen=True)
class PaymentVerification:
    session_id: str
    status: str  # pending, paid, failed, expired, cancelled, refunded, disputed, charged_back
    credits_granted: int
    balance: int
    payment: Price | None = None  # what was paid, once paid (a backend before it: None)


@dataclass(frozen=True)
class SpendResult:
    transaction_id: int
    balance: int


class CancelledDownload(ApiClientError):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class FileNotSaved(ApiClientError):
    """A download could not be written to disk (full, read-only, gone); nothing is left half-written."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def new_idempotency_key() -> str:
    """A fresh key for one spend: a spend repeated with the same key is made once."""
    import uuid  # at the first spend, not at the app's start

    return f"spend-{uuid.uuid4().hex}"



@dataclass(frozen=True)
class CallbackResult:
    """What the backend's page handed to the app's loopback listener."""

    session_id: str
    status: str  # what the backend's page said (paid, pending, cancelled, ...): a hint, checked before use
    state_ok: bool = True
