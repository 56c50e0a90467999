"""Stub payments: Checkout Sessions simulated in our own database, paid on our own page.

Used when no Stripe key is configured, so that the whole purchase flow works on a fresh machine.
Sessions have Stripe's shape and go through the same fulfilment as real ones; the stub checkout
page (``/stub/checkout/{id}``) plays Stripe Checkout's part.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Collection, Iterator
from typing import Any

from sqlalchemy import insert, select, update

from backend.billing_details import BillingDetails
from backend.db import Database
from backend.errors import SessionNotFound
from backend.payments.base import (
    PROMOTION_PREFIX,
    SAVE_CARD_KEY,
    STUB_CUSTOMER_PREFIX,
    CheckoutRequest,
    CreatedSession,
    InvoiceLinks,
    OffSessionCharge,
    PaymentIntentState,
    SessionState,
    session_params,
)
from backend.schema import stub_sessions

SESSION_LIFETIME_SECONDS = 24 * 3600

# The cards the stub checkout page can save for auto top-up (chosen on the page): what an off-session charge of each
# answers, as Stripe's test cards would (4242..., 4000 0000 0000 0341 declined, 4000 0027 6000 3184 authentication).
STUB_CARDS = {
    "succeeds": "pm_stub_card_succeeds",
    "declined": "pm_stub_card_declined",
    "authentication": "pm_stub_card_authentication_required",
}


class StubProvider:
    name = "stub"

    def __init__(self, db: Database, public_url: str, *, tax_percent: int = 0) -> None:
        self._db = db
        self._tax_percent = tax_percent  # charged where the checkout collects tax (the catalogue's stub_tax_percent)
        self._public_url = public_url.rstrip("/")

    def create_checkout(self, request: CheckoutRequest) -> CreatedSession:
        params = session_params(request)
        session_id = "cs_stub_" + secrets.token_urlsafe(24)
        now = int(time.time())
        session: dict[str, Any] = {
            "id": session_id,
            "object": "checkout.session",
            "mode": params["mode"],
            "status": "open",
            "payment_status": "unpaid",
            "amount_subtotal": request.pack.amount,
            "amount_total": request.pack.amount,
            "total_details": {"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0},
            "automatic_tax": {"enabled": request.automatic_tax, "liability": None, "provider": None,
                              "status": "complete" if request.automatic_tax else None},
            "currency": request.pack.currency,
            "client_reference_id": params["client_reference_id"],
            "customer": params.get("customer"),
            "customer_email": params.get("customer_email"),
            "metadata": params["metadata"],
            "line_items": params["line_items"],
            "payment_intent": None,
            "success_url": params["success_url"],
            "cancel_url": params["cancel_url"],
            "created": now,
            "expires_at": now + SESSION_LIFETIME_SECONDS,
            "livemode": False,
            "url": f"{self._public_url}/stub/checkout/{session_id}",
        }
        session.update(self._totals(session, discount=0))
        with self._db.transaction() as conn:
            conn.execute(insert(stub_sessions).values(id=session_id, data=json.dumps(session)))
        return CreatedSession(id=session_id, url=session["url"])

    def _totals(self, session: dict[str, Any], *, discount: int) -> dict[str, Any]:
        """The session's total and its details for ``discount``, with tax where the session collects it: on top of
        the discounted price (exclusive) or held in it (inclusive), rounded half up to the minor unit."""
        subtotal = int(session["amount_subtotal"])
        discount = min(discount, subtotal)
        taxed = session.get("automatic_tax", {}).get("enabled") and self._tax_percent
        price = subtotal - discount
        tax = 0
        total = price
        behavior = session["line_items"][0]["price_data"].get("tax_behavior", "exclusive")
        if taxed:
            if behavior == "inclusive":
                tax = price - (price * 100 + (100 + self._tax_percent) // 2) // (100 + self._tax_percent)
            else:
                tax = (price * self._tax_percent + 50) // 100
                total = price + tax
        # As Stripe's session read with total_details.breakdown expanded: the one tax rate charged.
        taxes = [{"amount": tax, "rate": {"object": "tax_rate", "percentage": self._tax_percent, "display_name": "Tax",
                                          "inclusive": behavior == "inclusive"}}] if tax else []
        return {"amount_total": total,
                "total_details": {**session["total_details"], "amount_discount": discount, "amount_tax": tax,
                                  "breakdown": {"discounts": [], "taxes": taxes}}}

    def session_object(self, session_id: str) -> dict[str, Any]:
        """The Stripe-shaped session, expired on read once its time is up, as Stripe would."""
        with self._db.read() as conn:
            data = conn.execute(select(stub_sessions.c.data).where(stub_sessions.c.id == session_id)).scalar()
        if data is None:
            raise SessionNotFound(session_id)
        session: dict[str, Any] = json.loads(data)
        if session["status"] == "open" and session["expires_at"] <= time.time():
            session = self._update(session_id, status="expired")
        return session

    def knows_customer(self, known: str | None) -> bool:
        return bool(known and known.startswith(STUB_CUSTOMER_PREFIX))

    def ensure_customer(self, user_id: int, email: str, known: str | None) -> str:
        """The stub's customer: an id of the same shape as Stripe's, kept for the user like Stripe's would be."""
        if known is not None and self.knows_customer(known):
            return known
        return STUB_CUSTOMER_PREFIX + secrets.token_urlsafe(12)

    def retrieve_session(self, session_id: str) -> SessionState:
        return SessionState.from_stripe(self.session_object(session_id))

    def invoice_links(self, invoice_id: str) -> InvoiceLinks | None:
        """None: the stub makes no invoices; its receipts are the backend's own page."""
        return None

    def update_customer(self, customer_id: str, details: BillingDetails) -> None:
        """Nothing to give: the stub's receipts read the billing details from the database."""

    def expire_session(self, session_id: str) -> SessionState:
        session = self.session_object(session_id)
        if session["status"] == "open":
            session = self._update(session_id, status="expired")
        return SessionState.from_stripe(session)

    def list_events(self, types: Collection[str], created_since: int) -> Iterator[dict[str, Any]]:
        """None: the stub checkout applies its one event as it happens."""
        return iter(())

    def list_refunds(self, payment_intent: str) -> list[dict[str, Any]]:
        """None: the stub takes no money, so it gives none back."""
        return []

    def list_disputes(self, payment_intent: str) -> list[dict[str, Any]]:
        return []

    def payment_of_charge(self, charge_id: str) -> str | None:
        return None

    def pay(self, session_id: str, card: str = "succeeds") -> dict[str, Any]:
        """Complete an open session as paid; returns the session (unchanged if it was not open). A session that
        saves the card (auto top-up's first Checkout) keeps ``card`` (a key of :data:`STUB_CARDS`): what later
        off-session charges of it answer."""
        session = self.session_object(session_id)
        if session["status"] != "open":
            return session
        saving = session.get("metadata", {}).get(SAVE_CARD_KEY) == "save"
        return self._update(
            session_id, status="complete", payment_status="paid",
            payment_intent="pi_stub_" + secrets.token_urlsafe(18),
            **({"saved_payment_method": STUB_CARDS.get(card, STUB_CARDS["succeeds"])} if saving else {}),
        )

    def saved_payment_method(self, session_id: str, payment_intent: str | None) -> str | None:
        try:
            found = self.session_object(session_id).get("saved_payment_method")
        except SessionNotFound:
            return None
        return found if isinstance(found, str) else None

    def charge_off_session(self, charge: OffSessionCharge) -> PaymentIntentState:
        """The saved stub card's answer: paid, declined (``card_declined``), or the bank asking for the user
        (``requires_action``). Its id is the top-up's, so a retry answers the same payment."""
        payment_intent = "pi_stub_" + charge.topup_id
        metadata = dict(charge.metadata)
        if charge.payment_method == STUB_CARDS["declined"]:
            return PaymentIntentState(payment_intent, "failed", charge.amount, charge.currency, metadata,
                                      error_code="card_declined", decline_code="generic_decline")
        if charge.payment_method == STUB_CARDS["authentication"]:
            return PaymentIntentState(payment_intent, "requires_action", charge.amount, charge.currency, metadata,
                                      error_code="authentication_required")
        if not charge.payment_method.startswith("pm_stub_"):
            return PaymentIntentState(payment_intent, "failed", charge.amount, charge.currency, metadata,
                                      error_code="card_declined", decline_code="unknown_card")
        return PaymentIntentState(payment_intent, "succeeded", charge.amount, charge.currency, metadata)

    def refund(self, payment_intent: str, amount: int, idempotency_key: str) -> dict[str, Any]:
        """A stub refund (no money moves), in Stripe's shape; its id is the key's, so a retry answers the same."""
        return {"id": "re_stub_" + idempotency_key, "object": "refund", "amount": amount, "currency": None,
                "payment_intent": payment_intent, "charge": None, "status": "succeeded",
                "created": int(time.time())}

    def apply_promotion(self, session_id: str, code: str, discount: int) -> dict[str, Any]:
        """A promotion code entered on an open session: ``discount`` (minor units) off its subtotal, as Stripe's
        session then says it (``total_details.amount_discount``, ``amount_total``, ``discounts``). The credits
        stay the pack's: fulfilment grants on the subtotal. A second code replaces the first."""
        session = self.session_object(session_id)
        return self._update(
            session_id, **self._totals(session, discount=discount),
            discounts=[{"coupon": None, "promotion_code": f"{PROMOTION_PREFIX}{code.upper()}"}],
        )

    def remove_promotion(self, session_id: str) -> dict[str, Any]:
        """The open session without its promotion code: its total as before the code."""
        session = self.session_object(session_id)
        return self._update(session_id, **self._totals(session, discount=0), discounts=[])

    def _update(self, session_id: str, **changes: Any) -> dict[str, Any]:
        with self._db.transaction() as conn:
            query = select(stub_sessions.c.data).where(stub_sessions.c.id == session_id).with_for_update()
            session: dict[str, Any] = json.loads(conn.execute(query).scalar_one())
            if session["status"] == "open":  # only an open session changes, as at Stripe
                session.update(changes)
                conn.execute(
                    update(stub_sessions).where(stub_sessions.c.id == session_id).values(data=json.dumps(session))
                )
        return session
