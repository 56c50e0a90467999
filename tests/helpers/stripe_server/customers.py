"""Customers, as Creditdesk makes one per user and gives it to every Checkout Session:
POST ``/v1/customers``, GET and POST (update) ``/v1/customers/{id}``, and their tax ids: GET and POST
``/v1/customers/{id}/tax_ids``, DELETE ``/v1/customers/{id}/tax_ids/{id}`` (a value that is not of its type's form is
Stripe's 400 ``tax_id_invalid``; ``eu_vat``, ``gb_vat`` and ``us_ein`` are checked, others only for being there). The
shape is stripe-python's ``Customer`` (its fields at the
pinned version); a session given an unknown customer is refused, as at Stripe."""

from __future__ import annotations

import copy
import re
from typing import Any

from .state import FakeStripeState
from .wire import StripeError, as_dict, as_str, check_keys, list_object, new_id, no_such, valid_metadata, words

CUSTOMER_CREATE_PARAMS = words("address description email expand metadata name phone preferred_locales")
CUSTOMER_UPDATE_PARAMS = CUSTOMER_CREATE_PARAMS
ADDRESS_PARAMS = words("city country line1 line2 postal_code state")
# The forms Stripe checks for a few types (its own are stricter: a VAT number's check digits).
TAX_ID_FORMS = {"eu_vat": r"[A-Z]{2}[0-9A-Z+*]{2,12}", "gb_vat": r"GB\d{9}(\d{3})?", "us_ein": r"\d{2}-\d{7}"}


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


    def _api_update_customer(self, params: dict[str, Any], request: dict[str, Any], id: str) -> tuple[Any, list[Any]]:
        check_keys(params, CUSTOMER_UPDATE_PARAMS, "")
        with self._lock:
            customer = self._known(self.customers, "customer", id)
            if "name" in params:
                customer["name"] = as_str(params["name"], "name") or None
            if "address" in params:
                address = as_dict(params["address"], "address")
                check_keys(address, ADDRESS_PARAMS, "address")
                customer["address"] = None if not address else {
                    key: as_str(address.get(key, ""), f"address[{key}]") or None for key in sorted(ADDRESS_PARAMS)}
            if "email" in params:
                customer["email"] = as_str(params["email"], "email") or None
            if "metadata" in params:
                customer["metadata"].update(valid_metadata(params["metadata"]))
            return copy.deepcopy(customer), []

    def _api_list_tax_ids(self, params: dict[str, Any], request: dict[str, Any], id: str) -> tuple[Any, list[Any]]:
        with self._lock:
            self._known(self.customers, "customer", id, "customer")
            ordered = list(reversed(self.tax_ids.get(id, [])))  # newest first
            return list_object(ordered, params, f"/v1/customers/{id}/tax_ids", kind="tax_id"), []

    def _api_create_tax_id(self, params: dict[str, Any], request: dict[str, Any], id: str) -> tuple[Any, list[Any]]:
        check_keys(params, ("expand", "type", "value"), "")
        with self._lock:
            self._known(self.customers, "customer", id, "customer")
            kind, value = as_str(params.get("type", ""), "type"), as_str(params.get("value", ""), "value")
            if not kind or not value:
                raise StripeError(400, f"Missing required param: {'type' if not kind else 'value'}.",
                                  code="parameter_missing", param="type" if not kind else "value")
            form = TAX_ID_FORMS.get(kind)
            if form is not None and not re.fullmatch(form, value):
                raise StripeError(400, f"Invalid value for {kind}.", code="tax_id_invalid", param="value")
            country = value[:2] if kind == "eu_vat" else kind[:2].upper()
            tax_id = {"id": new_id("txi_"), "object": "tax_id", "country": country, "created": self.now(),
                      "customer": id, "customer_account": None, "livemode": False,
                      "owner": {"type": "customer", "customer": id}, "type": kind, "value": value,
                      "verification": {"status": "pending", "verified_address": None, "verified_name": None}}
            self.tax_ids.setdefault(id, []).append(tax_id)
            return copy.deepcopy(tax_id), []

    def _api_delete_tax_id(self, params: dict[str, Any], request: dict[str, Any], id: str,
                           tax_id: str) -> tuple[Any, list[Any]]:
        with self._lock:
            self._known(self.customers, "customer", id, "customer")
            kept = self.tax_ids.get(id, [])
            if not any(t["id"] == tax_id for t in kept):
                raise no_such("tax_id", tax_id, "id")
            self.tax_ids[id] = [t for t in kept if t["id"] != tax_id]
            return {"id": tax_id, "object": "tax_id", "deleted": True}, []
