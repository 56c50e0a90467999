"""Stripe Checkout through the official SDK's StripeClient."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Collection, Iterator
from typing import Any

import stripe

from backend.billing_details import BillingDetails
from backend.errors import (
    InvalidTaxId,
    MalformedSession,
    PaymentProviderError,
    PaymentProviderRejected,
    PaymentProviderUnavailable,
    SessionNotFound,
)
from backend.payments.base import (
    STRIPE_API_VERSION,
    STUB_CUSTOMER_PREFIX,
    CheckoutRequest,
    CreatedSession,
    InvoiceLinks,
    OffSessionCharge,
    PaymentIntentState,
    SessionState,
    session_params,
)

log = logging.getLogger("creditdesk.payments")

# The budget of one call on a request's path: a hanging Stripe costs at most about
# READ + backoff + READ = 8.5 s, under the gateway's 10 s deadline (the SDK's own default is 80 s, three times).
CONNECT_TIMEOUT_SECONDS = 3.0
READ_TIMEOUT_SECONDS = 4.0
NETWORK_RETRIES = 1
# A Checkout Session is read with these expanded (SessionState.from_stripe reads them): within Stripe's four levels.
SESSION_EXPAND = ["discounts.promotion_code", "total_details.breakdown"]


class StripeProvider:
    name = "stripe"

    def __init__(self, secret_key: str, api_base: str | None = None) -> None:
        kwargs = {"base_addresses": {"api": api_base}} if api_base else {}
        self._client = stripe.StripeClient(
            secret_key,
            stripe_version=STRIPE_API_VERSION,
            http_client=stripe.RequestsClient(timeout=(CONNECT_TIMEOUT_SECONDS, READ_TIMEOUT_SECONDS)),
            max_network_retries=NETWORK_RETRIES,
            **kwargs,  # type: ignore[arg-type]
        )

    @property
    def client(self) -> stripe.StripeClient:
        """The SDK's client, at the pinned API version (``stripe-setup`` uses it for webhook endpoints)."""
        return self._client

    def create_checkout(self, request: CheckoutRequest) -> CreatedSession:
        try:
            # The order id as idempotency key: a retried create never makes a second session.
            session = self._client.v1.checkout.sessions.create(
                params=session_params(request),  # type: ignore[arg-type]
                options={"idempotency_key": f"checkout-{request.order_id}"},
            )
        except stripe.StripeError as exc:
            raise translate(exc) from exc
        data = _as_dict(session)
        state = _session_state(data)
        url = data.get("url")
        if not isinstance(url, str) or not url.startswith(("https://", "http://")):
            raise PaymentProviderUnavailable("Stripe answered a Checkout Session without a url")
        return CreatedSession(id=state.id, url=url)

    def knows_customer(self, known: str | None) -> bool:
        return bool(known and known.startswith("cus_") and not known.startswith(STUB_CUSTOMER_PREFIX))

    def ensure_customer(self, user_id: int, email: str, known: str | None) -> str:
        if known is not None and self.knows_customer(known):
            return known
        try:
            # The user as idempotency key: a retried create (or two checkouts at once) makes one customer. The
            # email's digest beside the id: another database on the same account (a staging copy) has its own
            # user 1, whose create must not be answered with this one's.
            digest = hashlib.sha256(email.encode()).hexdigest()[:16]
            customer = self._client.v1.customers.create(
                params={"email": email, "metadata": {"userId": str(user_id)}},
                options={"idempotency_key": f"customer-{user_id}-{digest}"},
            )
        except stripe.StripeError as exc:
            raise translate(exc) from exc
        customer_id = _as_dict(customer).get("id")
        if not isinstance(customer_id, str) or not customer_id.startswith("cus_"):
            raise PaymentProviderUnavailable("Stripe answered a customer without an id")
        return customer_id

    def retrieve_session(self, session_id: str) -> SessionState:
        try:
            # What a receipt names besides the amounts: the code the buyer entered (a session's discount holds only
            # its id) and the tax rate charged (the breakdown comes only when asked for).
            session = self._client.v1.checkout.sessions.retrieve(session_id, params={"expand": SESSION_EXPAND})
        except stripe.StripeError as exc:
            raise translate(exc, session_id) from exc
        return _session_state(_as_dict(session))

    def invoice_links(self, invoice_id: str) -> InvoiceLinks | None:
        invoice = _retrieve_or_none(self._client.v1.invoices, invoice_id)
        if invoice is None:
            log.warning("payment invoice=%s outcome=invoice_missing_at_provider", invoice_id)
            return None
        if invoice.get("object") != "invoice":
            raise PaymentProviderUnavailable("Stripe answered something other than an invoice")
        hosted, pdf = invoice.get("hosted_invoice_url"), invoice.get("invoice_pdf")
        if not _web_link(hosted):
            return None  # a draft: Stripe gives the links once the invoice is finalized
        return InvoiceLinks(hosted_url=str(hosted), pdf=str(pdf) if _web_link(pdf) else None)

    def update_customer(self, customer_id: str, details: BillingDetails) -> None:
        address = {"line1": details.line1, "line2": details.line2, "city": details.city,
                   "postal_code": details.postal_code, "state": details.state, "country": details.country}
        try:
            self._client.v1.customers.update(customer_id, params={  # type: ignore[arg-type]
                "name": details.name, "address": address if any(address.values()) else ""})
            tax_ids = self._client.v1.customers.tax_ids
            wanted = (details.tax_id_type, details.tax_id_value or "") if details.tax_id_type else None
            held = [_as_dict(t) for t in tax_ids.list(customer_id, params={"limit": 100}).auto_paging_iter()]
            kept = next((t for t in held if (t.get("type"), t.get("value")) == wanted), None)
            if wanted is not None and kept is None:  # made first: one Stripe refuses leaves the old one in place
                kept = _as_dict(tax_ids.create(customer_id, params={"type": wanted[0], "value": wanted[1]}))
            for tax_id in held:  # the customer keeps one tax id: the one given (a retry makes no second)
                if tax_id is not kept:
                    tax_ids.delete(customer_id, str(tax_id.get("id")))
        except stripe.StripeError as exc:
            if isinstance(exc, stripe.InvalidRequestError) and exc.code == "tax_id_invalid":
                raise InvalidTaxId(_describe(exc)) from exc
            raise translate(exc) from exc

    def expire_session(self, session_id: str) -> SessionState:
        try:
            session = self._client.v1.checkout.sessions.expire(session_id)
        except stripe.StripeError as exc:
            raise translate(exc, session_id) from exc
        return _session_state(_as_dict(session))


    def list_events(self, types: Collection[str], created_since: int) -> Iterator[dict[str, Any]]:
        """Stripe's Events API, every page (it keeps 30 days of events)."""
        params = {"types": sorted(types), "created": {"gte": created_since}, "limit": 100}
        try:
            for event in self._client.v1.events.list(params=params).auto_paging_iter():  # type: ignore[arg-type]
                data = _as_dict(event)
                if data.get("object") != "event":
                    raise PaymentProviderUnavailable("Stripe's Events API answered something other than events")
                yield data
        except stripe.StripeError as exc:
            raise translate(exc) from exc

    def list_refunds(self, payment_intent: str) -> list[dict[str, Any]]:
        return self._list(self._client.v1.refunds, {"payment_intent": payment_intent}, "refund")

    def list_disputes(self, payment_intent: str) -> list[dict[str, Any]]:
        return self._list(self._client.v1.disputes, {"payment_intent": payment_intent}, "dispute")

    def payment_of_charge(self, charge_id: str) -> str | None:
        charge = _retrieve_or_none(self._client.v1.charges, charge_id)
        if charge is None:
            return None
        payment_intent = charge.get("payment_intent")
        if isinstance(payment_intent, dict):
            payment_intent = payment_intent.get("id")
        return payment_intent if isinstance(payment_intent, str) and payment_intent else None

    def saved_payment_method(self, session_id: str, payment_intent: str | None) -> str | None:
        """The card the Checkout's payment saved (``setup_future_usage``): the PaymentIntent's payment method."""
        if not payment_intent:
            return None
        intent = _retrieve_or_none(self._client.v1.payment_intents, payment_intent)
        if intent is None:
            return None
        method = intent.get("payment_method")
        if isinstance(method, dict):
            method = method.get("id")
        return method if isinstance(method, str) and method.startswith("pm_") else None

    def charge_off_session(self, charge: OffSessionCharge) -> PaymentIntentState:
        """An off-session PaymentIntent, confirmed at once, one per top-up (its idempotency key). Stripe answers a
        decline or a bank asking for the customer with a 402 card_error naming the PaymentIntent: an answer here."""
        params = {"amount": charge.amount, "currency": charge.currency, "customer": charge.customer_id,
                  "payment_method": charge.payment_method, "off_session": True, "confirm": True,
                  "metadata": dict(charge.metadata), "description": "Auto top-up"}
        try:
            intent = self._client.v1.payment_intents.create(
                params=params,  # type: ignore[arg-type]
                options={"idempotency_key": charge.idempotency_key})
        except stripe.CardError as exc:
            error = exc.error
            found = _as_dict(getattr(error, "payment_intent", None)) if error is not None else {}
            code = getattr(error, "code", None) or exc.code
            decline = getattr(error, "decline_code", None)
            status = "requires_action" if code == "authentication_required" else "failed"
            log.warning("payment topup=%s outcome=topup_%s code=%s decline_code=%s", charge.topup_id, status, code,
                        decline)
            return PaymentIntentState(found.get("id") if isinstance(found.get("id"), str) else None, status,
                                      charge.amount, charge.currency, dict(charge.metadata),
                                      error_code=str(code) if code else None,
                                      decline_code=str(decline) if decline else None)
        except stripe.StripeError as exc:
            raise translate(exc) from exc
        try:
            return PaymentIntentState.from_stripe(_as_dict(intent))
        except MalformedSession as exc:
            raise PaymentProviderUnavailable(f"Stripe answered something other than a PaymentIntent: {exc}") from exc

    def refund(self, payment_intent: str, amount: int, idempotency_key: str) -> dict[str, Any]:
        try:
            refund = self._client.v1.refunds.create(
                params={"payment_intent": payment_intent, "amount": amount, "metadata": {"reason": "auto_topup_undo"}},
                options={"idempotency_key": idempotency_key})
        except stripe.StripeError as exc:
            raise translate(exc) from exc
        data = _as_dict(refund)
        if data.get("object") != "refund":
            raise PaymentProviderUnavailable("Stripe answered something other than a refund")
        return data

    # A payment has a handful of refunds and disputes at most: more than this is not an answer to trust.
    MAX_LISTED = 1000

    def _list(self, service: Any, params: dict[str, Any], kind: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        try:
            for item in service.list(params={**params, "limit": 100}).auto_paging_iter():
                data = _as_dict(item)
                if data.get("object") != kind:
                    raise PaymentProviderUnavailable(f"Stripe answered something other than a {kind} list")
                found.append(data)
                if len(found) > self.MAX_LISTED:
                    raise PaymentProviderUnavailable(f"Stripe listed more than {self.MAX_LISTED} {kind}s of a payment")
        except stripe.StripeError as exc:
            raise translate(exc) from exc
        return found


def _retrieve_or_none(service: Any, object_id: str) -> dict[str, Any] | None:
    """``service.retrieve(object_id)`` as a dict, or None when Stripe has no such object (404 ``resource_missing``,
    its "No such ..."); every other error translated. A 404 without that code (an unknown URL, from a wrong
    ``STRIPE_API_BASE``) is no answer about the object, so it is translated too."""
    try:
        return _as_dict(service.retrieve(object_id))
    except stripe.StripeError as exc:
        if isinstance(exc, stripe.InvalidRequestError) and exc.http_status == 404 and exc.code == "resource_missing":
            return None
        raise translate(exc) from exc


def _as_dict(answer: Any) -> dict[str, Any]:
    to_dict = getattr(answer, "to_dict", None)
    data = to_dict() if callable(to_dict) else answer
    return data if isinstance(data, dict) else {}


def _web_link(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(("https://", "http://"))


def _session_state(data: dict[str, Any]) -> SessionState:
    """The answer as a session, or PaymentProviderUnavailable when it is something else (a list, an error
    page served with 200 by a misconfigured ``STRIPE_API_BASE``...)."""
    try:
        return SessionState.from_stripe(data)
    except MalformedSession as exc:
        raise PaymentProviderUnavailable(f"Stripe answered something other than a Checkout Session: {exc}") from exc


def translate(exc: stripe.StripeError, session_id: str | None = None) -> PaymentProviderError:
    """Stripe's error as ours: not found, a refusal for good, or a passing failure worth retrying."""
    status = exc.http_status
    description = _describe(exc)
    if isinstance(exc, stripe.InvalidRequestError) and status == 404 and session_id is not None:
        return SessionNotFound(session_id)
    if isinstance(exc, stripe.RateLimitError) or status in (409, 429) or status is None or status >= 500:
        return PaymentProviderUnavailable(description)
    if isinstance(exc, (stripe.APIConnectionError, stripe.APIError)):
        return PaymentProviderUnavailable(description)  # no answer, or one that is not Stripe's JSON
    if 400 <= status < 500:
        log.error("payment outcome=provider_rejected reason=%s", description)
        return PaymentProviderRejected(description)
    return PaymentProviderUnavailable(description)


def _describe(exc: stripe.StripeError) -> str:
    # user_message and code never carry the secret key; str(exc) may quote request details.
    kind = type(exc).__name__
    status = getattr(exc, "http_status", None)
    return f"Stripe {kind} (HTTP {status}, code {getattr(exc, 'code', None)})"
