"""Customers, as Creditdesk makes one per user and gives it to every Checkout Session:
POST ``/v1/customers``, GET ``/v1/customers/{id}``. The shape is stripe-python's ``Customer`` (its fields at the
pinned version); a session given an unknown customer is refused, as at Stripe."""

from __future__ import annotations

import copy
from typing import Any

from .state import FakeStripeState
from .wire import StripeError, as_str, check_keys, new_id, no_such, valid_metadata, words

CUSTOMER_CREATE_PARAMS = words("address description email expand metadata name phone preferred_locales")


class CustomersMixin(FakeStripeState):
    def _api_create_customer(self, params: dict[str, Any], request: dict[str, Any]) -> tuple[Any, list[Any]]:
        check_keys(params, CUSTOMER_CREATE_PARAMS, "")
        email = as_str(params["email"], "email") if params.get("email") else None
        if email is not None and "@" not in email:
            raise StripeError(400, f"Invalid email address: {email}", code="email_invalid", param="email")
        with self._lock:
            customer = {
                "id": new_id("cus_"), "object": "customer", "address": None, "balance": 0, "created": self.now(),
                "currency": None, "default_source": None, "delinquent": False,
                "description": params.get("description") or None, "discount": None, "email": email,
                "invoice_prefix": new_id("")[:8].upper(),
                "invoice_settings": {"custom_fields": None, "default_payment_method": None, "footer": None,
                                     "rendering_options": None},
                "livemode": False, "metadata": valid_metadata(params.get("metadata", {})),
                "name": params.get("name") or None, "next_invoice_sequence": 1, "phone": params.get("phone") or None,
                "preferred_locales": [], "shipping": None, "tax_exempt": "none", "test_clock": None,
            }
            self.customers[customer["id"]] = customer
            return copy.deepcopy(customer), []

    def _api_get_customer(self, params: dict[str, Any], request: dict[str, Any], id: str) -> tuple[Any, list[Any]]:
        with self._lock:
            if id not in self.customers:
                raise no_such("customer", id, "id")
            return copy.deepcopy(self.customers[id]), []

