"""Saved cards and off-session PaymentIntents (auto top-up, issue 19): POST ``/v1/payment_intents``,
GET ``/v1/payment_methods/{id}``.

A Checkout Session paid with ``payment_intent_data[setup_future_usage]`` saves its card: a ``payment_method``
attached to the session's customer (``fake.saved_cards`` keeps how each behaves when charged later). A later
``POST /v1/payment_intents`` with ``customer``, ``payment_method``, ``off_session=true`` and ``confirm=true`` charges
it, as Stripe answers for its test cards:

* ``succeeds`` (4242 4242 4242 4242): 200, status ``succeeded``, a charge (refundable by ``POST /v1/refunds``), and
  ``payment_intent.succeeded``;
* ``declined`` (4000 0000 0000 0341, attached then declined): 402 ``card_error`` ``card_declined`` with its
  ``decline_code`` and the PaymentIntent (``requires_payment_method``, ``last_payment_error``), and
  ``payment_intent.payment_failed``;
* ``authentication`` (4000 0027 6000 3184 off session): 402 ``card_error`` ``authentication_required``, the same way;
* ``requires_action`` (confirmed without ``off_session``, or ``fake.off_session_requires_action``): 200, status
  ``requires_action`` with a ``next_action``, and ``payment_intent.requires_action``.

The same Idempotency-Key answers the same, a 402 included (as at Stripe). ``fake.saved_card_behaviour`` is how a card
saved from now on behaves; ``fake.saved_cards[pm_id]`` changes one already saved.
"""

from __future__ import annotations

import copy
from typing import Any

from .state import FakeStripeState
from .wire import StripeError, as_bool, as_int, as_str, check_keys, fixture, new_id, no_such, valid_metadata, words

PI_CREATE_PARAMS = words("amount currency customer payment_method off_session confirm metadata description expand "
                         "payment_method_types setup_future_usage error_on_requires_action")
CARD_BEHAVIOURS = ("succeeds", "declined", "authentication", "requires_action")


class CardError(StripeError):
    """A 402 ``card_error``: Stripe names the code, the decline code and the PaymentIntent it left."""

    def __init__(self, message: str, *, code: str, decline_code: str | None, payment_intent: dict[str, Any],
                 charge: str | None) -> None:
        super().__init__(402, message, type="card_error", code=code)
        self.decline_code = decline_code
        self.payment_intent = payment_intent
        self.charge = charge

    def body(self, request_id: str | None = None) -> dict[str, Any]:
        body = super().body(request_id)
        error = body["error"]
        if self.decline_code:
            error["decline_code"] = self.decline_code
        if self.charge:
            error["charge"] = self.charge
        error["payment_intent"] = copy.deepcopy(self.payment_intent)
        error["payment_method"] = {"id": self.payment_intent.get("payment_method"), "object": "payment_method"}
        return body


class PaymentIntentsMixin(FakeStripeState):
    def _save_card(self, pi: dict[str, Any]) -> None:
        """Called when a Checkout with ``setup_future_usage`` is paid: its card, attached to the customer."""
        method = {"id": pi["payment_method"], "object": "payment_method", "type": "card",
                  "customer": pi.get("customer"), "created": self.now(), "livemode": False, "metadata": {},
                  "card": {"brand": "visa", "last4": "4242", "exp_month": 12, "exp_year": 2030}}
        self.payment_methods[method["id"]] = method
        self.saved_cards[method["id"]] = self.saved_card_behaviour

    def _api_get_payment_method(self, params: dict[str, Any], request: dict[str, Any], id: str
                                ) -> tuple[Any, list[Any]]:
        method = self.payment_methods.get(id)
        if method is None:
            raise no_such("payment_method", id, "id")
        return copy.deepcopy(method), []

    def _api_create_payment_intent(self, params: dict[str, Any], request: dict[str, Any]) -> tuple[Any, list[Any]]:
        key = request.get("idempotency_key")
        if key and key in self._card_errors:
            raise self._card_errors[key]
        check_keys(params, PI_CREATE_PARAMS, "")
        amount = as_int(params.get("amount"), "amount", minimum=1)
        currency = as_str(params.get("currency"), "currency").lower()
        customer = as_str(params.get("customer", ""), "customer") or None
        if customer is not None and customer not in self.customers:
            raise no_such("customer", customer, "customer", status=400)
        method_id = as_str(params.get("payment_method", ""), "payment_method") or None
        method = self.payment_methods.get(method_id or "")
        if method_id is not None and method is None:
            raise no_such("payment_method", method_id, "payment_method", status=400)
        confirm = as_bool(params.get("confirm", "false"), "confirm")
        off_session = as_bool(params.get("off_session", "false"), "off_session")
        if off_session and not confirm:
            raise StripeError(400, "You may only specify `off_session` when `confirm` is true.", param="off_session")
        if method is not None and method["customer"] != customer:
            raise StripeError(400, f"The provided PaymentMethod {method_id} was previously used with a different "
                              "customer or without one; attach it to the customer first.",
                              param="payment_method")
        pi = fixture("payment_intent")
        pi_id = new_id("pi_")
        pi.update(id=pi_id, amount=amount, amount_capturable=0, amount_received=0, automatic_payment_methods=None,
                  canceled_at=None, cancellation_reason=None, client_secret=f"{pi_id}_secret_{new_id('', 25)}",
                  created=self.now(), currency=currency, customer=customer,
                  description=params.get("description") or None, last_payment_error=None, latest_charge=None,
                  metadata=valid_metadata(params.get("metadata", {})), next_action=None, payment_method=method_id,
                  payment_method_options={}, payment_method_types=["card"], processing=None, shipping=None,
                  setup_future_usage=None, status="requires_confirmation" if method_id else "requires_payment_method",
                  transfer_data=None)
        self.payment_intents[pi_id] = pi
        if not confirm or method_id is None:
            return copy.deepcopy(pi), []
        behaviour = self.saved_cards.get(method_id, "succeeds")
        if behaviour == "requires_action" or (behaviour == "authentication" and not off_session):
            pi.update(status="requires_action", next_action={
                "type": "use_stripe_sdk", "use_stripe_sdk": {"type": "three_d_secure_redirect",
                                                             "stripe_js": f"{self.url}/3ds/{pi_id}"}})
            return copy.deepcopy(pi), [self.make_event("payment_intent.requires_action", pi)]
        if behaviour in ("declined", "authentication"):
            code = "card_declined" if behaviour == "declined" else "authentication_required"
            decline = "generic_decline" if behaviour == "declined" else "authentication_required"
            message = ("Your card was declined." if behaviour == "declined" else
                       "Your card was declined. This transaction requires authentication.")
            pi.update(status="requires_payment_method", last_payment_error={
                "code": code, "decline_code": decline, "message": message, "type": "card_error",
                "payment_method": copy.deepcopy(method)})
            error = CardError(message, code=code, decline_code=decline, payment_intent=pi, charge=None)
            if key:
                self._card_errors[key] = error
            self._deliver_later([self.make_event("payment_intent.payment_failed", pi)])
            raise error
        session = {"id": f"pi:{pi_id}", "customer": customer, "customer_email": None}
        pi.update(status="succeeded", amount_received=amount)
        charge = self._new_charge(session, pi, "succeeded")  # type: ignore[attr-defined]
        pi["latest_charge"] = charge["id"]
        return copy.deepcopy(pi), [self.make_event("payment_intent.succeeded", pi)]
