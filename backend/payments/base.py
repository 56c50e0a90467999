"""What the rest of the backend knows of a payment provider.

Both providers speak in Stripe's terms: a Checkout Session created with the same parameters
(:func:`session_params`) and read back as a :class:`SessionState`, so fulfilment has one path
whichever provider took the money.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from backend.billing_details import BillingDetails
from backend.catalogue import Pack
from backend.errors import MalformedSession

PURCHASE_TYPE = "credit_purchase"
SAVE_CARD_KEY = "autoTopup"  # metadata of a Checkout whose card auto top-up keeps ("save")
TOPUP_KEY = "topupId"  # metadata of an off-session top-up's PaymentIntent: the top-up it pays

# The Stripe API version every call is made at and every object is read at (stripe-python 16.1 pins it).
# The webhook endpoint must use it too (`creditdesk-backend stripe-setup` makes it so): an event rendered at
# another version (the endpoint's, or the account's for the Events API) may carry other shapes, such as a
# Checkout Session's amount in the customer's currency under Adaptive Pricing before 2025; fulfilment then
# reads the session as Stripe renders it at this version (backend/webhooks.py).
STRIPE_API_VERSION = "2026-10-28.endive"


@dataclass(frozen=True)
class CheckoutRequest:
    order_id: str
    user_id: int
    user_email: str
    pack: Pack
    success_url: str
    cancel_url: str
    promotion_codes: bool = False  # the buyer may enter one (CREDITDESK_PROMOTION_CODES)
    customer_id: str | None = None  # the user's customer at the provider; none: the email is given instead
    automatic_tax: bool = False  # tax is collected (CREDITDESK_AUTOMATIC_TAX), as the pack's tax_behavior says
    save_card: bool = False  # auto top-up's first Checkout: the card is kept for off-session top-ups


@dataclass(frozen=True)
class CreatedSession:
    id: str
    url: str


@dataclass(frozen=True)
class SessionState:
    """The facts of a Checkout Session that fulfilment decides on."""

    id: str
    status: str  # open | complete | expired
    payment_status: str  # paid | unpaid | no_payment_required
    amount_total: int | None  # what the customer paid: the subtotal less discounts plus exclusive tax
    currency: str | None
    client_reference_id: str | None
    payment_intent: str | None
    metadata: Mapping[str, str] = field(default_factory=dict)
    amount_subtotal: int | None = None  # the line items' total: the pack's list price
    amount_discount: int = 0  # total_details.amount_discount (promotion codes, coupons)
    amount_tax: int = 0  # total_details.amount_tax (Stripe Tax: exclusive tax is added to the total)
    invoice: str | None = None  # the invoice Checkout made for the payment (invoice_creation), once complete
    promotion_code: str | None = None  # the code the buyer entered, where the session says it (not only its id)
    tax_rate: str | None = None  # the tax's one rate in percent ("19"), where the session's breakdown gives it
    tax_name: str | None = None  # that rate's name ("VAT")

    @property
    def is_paid(self) -> bool:
        """Complete and paid; or complete with nothing to pay (a discount of the whole price), which Stripe
        reports as ``no_payment_required`` and makes no payment intent for.

        Stripe documents ``no_payment_required`` as "the payment is delayed to a future date, or the session is
        in setup mode": in payment mode only a total of zero owes nothing now, so a session that says so with
        a total above zero (or none) is not paid: it would be credits for money never taken."""
        if self.status != "complete":
            return False
        return self.payment_status == "paid" or (self.payment_status == "no_payment_required"
                                                 and self.amount_total == 0)

    @classmethod
    def from_stripe(cls, obj: Any) -> SessionState:
        """Read a ``checkout.session`` object (a dict, as in a webhook event or the API's answer)."""
        if not isinstance(obj, Mapping) or obj.get("object") != "checkout.session":
            raise MalformedSession("not a checkout.session object")
        session_id = obj.get("id")
        if not isinstance(session_id, str) or not session_id:
            raise MalformedSession("checkout.session without an id")
        metadata = obj.get("metadata") or {}
        if not isinstance(metadata, Mapping):
            raise MalformedSession("metadata is not an object")
        amount = obj.get("amount_total")
        details = obj.get("total_details")
        details = details if isinstance(details, Mapping) else {}
        payment_intent = obj.get("payment_intent")
        if isinstance(payment_intent, Mapping):  # expanded
            payment_intent = payment_intent.get("id")
        invoice = obj.get("invoice")
        if isinstance(invoice, Mapping):  # expanded
            invoice = invoice.get("id")
        return cls(
            id=session_id,
            status=str(obj.get("status") or ""),
            payment_status=str(obj.get("payment_status") or ""),
            amount_total=_amount(amount),
            currency=str(obj["currency"]).lower() if obj.get("currency") else None,
            client_reference_id=str(obj["client_reference_id"]) if obj.get("client_reference_id") else None,
            payment_intent=payment_intent if isinstance(payment_intent, str) else None,
            metadata={str(k): str(v) for k, v in metadata.items()},
            amount_subtotal=_amount(obj.get("amount_subtotal")),
            amount_discount=_amount(details.get("amount_discount")) or 0,
            amount_tax=_amount(details.get("amount_tax")) or 0,
            invoice=invoice if isinstance(invoice, str) and invoice.startswith("in_") else None,
            promotion_code=_promotion_code(obj.get("discounts")),
            **_tax_rate(details.get("breakdown")),
        )


@dataclass(frozen=True)
class InvoiceLinks:
    """Where a paid invoice opens: Stripe's hosted page, and its PDF."""

    hosted_url: str
    pdf: str | None


PROMOTION_PREFIX = "promo_stub_"  # the stub's promotion code ids: the code itself follows


def _promotion_code(discounts: Any) -> str | None:
    """The code the buyer entered, from a session's ``discounts``: an expanded promotion code's ``code``, or the
    stub's id (which holds it). Stripe's bare id (``promo_...``) is not the code the buyer knows: None."""
    if not isinstance(discounts, list):
        return None
    for discount in discounts:
        promotion = discount.get("promotion_code") if isinstance(discount, Mapping) else None
        if isinstance(promotion, Mapping) and isinstance(promotion.get("code"), str):
            return str(promotion["code"])[:100]
        if isinstance(promotion, str) and promotion.startswith(PROMOTION_PREFIX):
            return promotion.removeprefix(PROMOTION_PREFIX)[:100]
    return None


def _tax_rate(breakdown: Any) -> dict[str, str | None]:
    """``tax_rate`` and ``tax_name`` from ``total_details.breakdown.taxes`` (Stripe gives it when the session is
    read with it expanded, as StripeProvider.retrieve_session does; the stub always): the rate's percentage and
    display name when the taxes charged have one rate, else neither (several rates, or none known: a receipt then
    says only "Tax")."""
    taxes = breakdown.get("taxes") if isinstance(breakdown, Mapping) else None
    rates = {(_percentage(rate), rate.get("display_name"))
             for tax in (taxes if isinstance(taxes, list) else []) if isinstance(tax, Mapping)
             and isinstance(rate := tax.get("rate"), Mapping) and tax.get("amount")}
    if len(rates) != 1:
        return {"tax_rate": None, "tax_name": None}
    [(percentage, name)] = rates
    known = isinstance(percentage, int | float) and not isinstance(percentage, bool) and 0 < percentage <= 100
    return {"tax_rate": f"{percentage:g}" if known else None,
            "tax_name": (name.strip()[:100] or None) if isinstance(name, str) else None}


def _percentage(rate: Mapping[str, Any]) -> Any:
    """A tax rate's percentage as charged: Stripe Tax's ``effective_percentage`` where it gives one (its
    ``percentage`` may hold a jurisdiction's rate that was not charged), else ``percentage``."""
    effective = rate.get("effective_percentage")
    return effective if effective is not None else rate.get("percentage")


def _amount(value: Any) -> int | None:
    """A money amount in minor units as Stripe gives it, or None for anything else."""
    return value if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**62 else None


def session_params(request: CheckoutRequest) -> dict[str, Any]:
    """The Checkout Session parameters of the contract: one line item for the pack, the user, the order."""
    pack = request.pack
    metadata = {
        "userId": str(request.user_id),
        "packId": pack.id,
        "credits": str(pack.credits),
        "orderId": request.order_id,
        "type": PURCHASE_TYPE,
    }
    params: dict[str, Any] = {
        "mode": "payment",
        "line_items": [
            {
                "quantity": 1,
                "price_data": {
                    "currency": pack.currency,
                    "unit_amount": pack.amount,
                    "product_data": {"name": f"{pack.name} pack", "description": f"{pack.credits} credits"},
                },
            }
        ],
        "client_reference_id": str(request.user_id),
        # The user's one customer, whose details and receipts stay together (Stripe takes it or an email, not both).
        **({"customer": request.customer_id} if request.customer_id else {"customer_email": request.user_email}),
        "metadata": metadata,
        "payment_intent_data": {"metadata": metadata},
        "success_url": request.success_url,
        "cancel_url": request.cancel_url,
    }
    # A receipt for the one-time payment: Stripe makes an invoice of it, with the customer's billing details and
    # tax id (which Checkout also collects, and saves on the customer: Stripe requires customer_update for that
    # when the session names a customer; it also lets automatic tax keep the address it is given).
    params["invoice_creation"] = {"enabled": True, "invoice_data": {
        "description": f"{pack.name} pack: {pack.credits} credits", "metadata": {"orderId": request.order_id}}}
    params["tax_id_collection"] = {"enabled": True}
    if request.customer_id:
        params["customer_update"] = {"name": "auto", "address": "auto"}
    if request.save_card and request.customer_id:
        # Auto top-up's consent: the card is kept on the user's customer for the top-ups that follow, off session.
        metadata[SAVE_CARD_KEY] = "save"
        params["payment_intent_data"]["setup_future_usage"] = "off_session"
    if request.promotion_codes:
        params["allow_promotion_codes"] = True  # the credits granted stay the pack's; the order keeps the discount
    if request.automatic_tax:
        params["automatic_tax"] = {"enabled": True}
        params["line_items"][0]["price_data"]["tax_behavior"] = pack.tax_behavior
    return params


@dataclass(frozen=True)
class OffSessionCharge:
    """An auto top-up's payment: the saved card charged without the user (``off_session``, confirmed at once)."""

    topup_id: str
    customer_id: str
    payment_method: str
    amount: int
    currency: str
    metadata: Mapping[str, str]

    @property
    def idempotency_key(self) -> str:
        return f"topup-{self.topup_id}"


@dataclass(frozen=True)
class PaymentIntentState:
    """What a PaymentIntent says of a top-up's payment: ``succeeded``, ``requires_action`` (the bank wants the user),
    ``failed`` (declined: ``decline_code``/``error_code``), or ``processing``."""

    id: str | None
    status: str
    amount: int
    currency: str
    metadata: Mapping[str, str]
    error_code: str | None = None  # card_declined, authentication_required, ...
    decline_code: str | None = None  # insufficient_funds, generic_decline, ...

    @classmethod
    def from_stripe(cls, obj: Any) -> PaymentIntentState:
        if not isinstance(obj, Mapping) or obj.get("object") != "payment_intent" or not isinstance(obj.get("id"), str):
            raise MalformedSession("not a payment_intent object")
        metadata = obj.get("metadata") or {}
        error = obj.get("last_payment_error")
        error = error if isinstance(error, Mapping) else {}
        status = str(obj.get("status") or "")
        if status == "requires_payment_method" and error:
            status = "failed"  # Stripe's state after a decline: the payment needs another card
        return cls(id=str(obj["id"]), status=status, amount=_amount(obj.get("amount")) or 0,
                   currency=str(obj.get("currency") or "").lower(),
                   metadata={str(k): str(v) for k, v in metadata.items()} if isinstance(metadata, Mapping) else {},
                   error_code=str(error["code"]) if error.get("code") else None,
                   decline_code=str(error["decline_code"]) if error.get("decline_code") else None)


STUB_CUSTOMER_PREFIX = "cus_stub_"  # the stub's customers, which Stripe would not know


class PaymentProvider(Protocol):
    name: str  # "stripe" or "stub", as /api/health shows it

    def create_checkout(self, request: CheckoutRequest) -> CreatedSession: ...

    def knows_customer(self, known: str | None) -> bool:
        """Whether ``known`` is a customer of this provider (no call: a stub's is not Stripe's)."""
        ...

    def ensure_customer(self, user_id: int, email: str, known: str | None) -> str:
        """The user's customer at this provider: ``known`` when it is one of this provider's, else a new one
        (made once per user, however often this is retried)."""
        ...

    def retrieve_session(self, session_id: str) -> SessionState: ...

    def invoice_links(self, invoice_id: str) -> InvoiceLinks | None:
        """Where a session's invoice opens; None while it has no hosted page yet (a draft) or is not known."""
        ...

    def update_customer(self, customer_id: str, details: BillingDetails) -> None:
        """Give the customer these billing details (name, address, the one tax id), so that its invoices carry them;
        the same details twice change nothing. InvalidTaxId when the provider refuses the tax id."""
        ...

    def expire_session(self, session_id: str) -> SessionState: ...

    def list_events(self, types: Collection[str], created_since: int) -> Iterator[dict[str, Any]]:
        """The provider's events of these types since a Unix time, newest first (reconcile reads them)."""
        ...

    def list_refunds(self, payment_intent: str) -> list[dict[str, Any]]:
        """Every refund of a payment, as Stripe's refund objects (reconcile re-reads them)."""
        ...

    def list_disputes(self, payment_intent: str) -> list[dict[str, Any]]:
        """Every dispute of a payment, as Stripe's dispute objects."""
        ...

    def payment_of_charge(self, charge_id: str) -> str | None:
        """The payment intent a charge belongs to (``None`` when it has none or the provider does not know it)."""
        ...

    def saved_payment_method(self, session_id: str, payment_intent: str | None) -> str | None:
        """The card a Checkout saved for later (``setup_future_usage``), or None when it saved none."""
        ...

    def charge_off_session(self, charge: OffSessionCharge) -> PaymentIntentState:
        """Charge a saved card without the user, once per ``charge.idempotency_key``: a decline or a bank asking
        for the user is an answer (``failed``, ``requires_action``), not an error; PaymentProviderUnavailable
        when the provider cannot be reached (the same key may be tried again)."""
        ...

    def refund(self, payment_intent: str, amount: int, idempotency_key: str) -> dict[str, Any]:
        """Refund ``amount`` of a payment once per key; the refund, as Stripe's refund object."""
        ...
