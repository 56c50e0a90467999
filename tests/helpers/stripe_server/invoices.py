"""Invoices, as Checkout makes one for a one-time payment when the session asks (``invoice_creation``).

The session names its invoice once its payment succeeds (``invoice``, on ``checkout.session.completed``, or on
``async_payment_succeeded`` for a delayed method), and the invoice is finalized and paid at once, as Stripe's
post-payment invoices are: ``hosted_invoice_url`` (a page this fake serves, ``GET /invoices/{id}``) and
``invoice_pdf`` (``GET /invoices/{id}/pdf``). It carries the customer's name, address and tax ids as they were
then. API: GET ``/v1/invoices/{id}``. The shape is stripe-python's ``Invoice`` at the pinned version (Stripe's
published fixtures hold no invoice).

``fake.invoices_final = False`` makes new invoices drafts (no links yet) until ``finalize_invoice(id)``.
"""

from __future__ import annotations

import copy
import html
from typing import Any

from .state import FakeStripeState
from .wire import format_amount, new_id


class InvoicesMixin(FakeStripeState):
    def _invoice_for(self, session: dict[str, Any]) -> None:
        """Make the session's invoice if it asked for one (call with the lock held, once it is paid)."""
        creation = session.get("invoice_creation") or {}
        if not creation.get("enabled") or session.get("invoice"):
            return
        data = creation.get("invoice_data") or {}
        customer = self.customers.get(session.get("customer") or "") or {}
        details = session.get("customer_details") or {}
        invoice_id = new_id("in_")
        now = self.now()
        items = self._line_items.get(session["id"], [])
        invoice: dict[str, Any] = {
            "id": invoice_id, "object": "invoice", "account_country": "US", "account_name": "Creditdesk test",
            "account_tax_ids": None, "amount_due": session["amount_total"], "amount_overpaid": 0,
            "amount_paid": session["amount_total"], "amount_paid_off_stripe": 0, "amount_remaining": 0,
            "amount_shipping": 0, "application": None, "attempt_count": 0, "attempted": True, "auto_advance": False,
            "automatic_tax": copy.deepcopy(session["automatic_tax"]), "automatically_finalizes_at": None,
            "billing_reason": "manual", "collection_method": "charge_automatically", "confirmation_secret": None,
            "created": now, "currency": session["currency"], "custom_fields": None,
            "customer": session.get("customer"), "customer_account": None,
            "customer_address": copy.deepcopy(customer.get("address") or details.get("address")),
            "customer_email": details.get("email") or customer.get("email"),
            "customer_name": customer.get("name") or details.get("name"), "customer_phone": None,
            "customer_shipping": None, "customer_tax_exempt": "none",
            "customer_tax_ids": [{"type": t["type"], "value": t["value"]}
                                 for t in self.tax_ids.get(session.get("customer") or "", [])],
            "default_payment_method": None, "default_source": None, "default_tax_rates": [],
            "description": data.get("description"), "discounts": [], "due_date": None, "effective_at": now,
            "ending_balance": 0, "footer": data.get("footer"), "from_invoice": None, "hosted_invoice_url": None,
            "invoice_pdf": None, "issuer": {"type": "self"}, "last_finalization_error": None, "latest_revision": None,
            "lines": {"object": "list", "data": [
                {"id": new_id("il_"), "object": "line_item", "amount": item["amount_subtotal"],
                 "currency": item["currency"], "description": item["description"], "quantity": item["quantity"]}
                for item in items], "has_more": False, "url": f"/v1/invoices/{invoice_id}/lines"},
            "livemode": session["livemode"], "metadata": dict(data.get("metadata") or {}),
            "next_payment_attempt": None, "number": None, "on_behalf_of": None, "parent": None,
            "payment_settings": {"default_mandate": None, "payment_method_options": None,
                                 "payment_method_types": None},
            "period_end": now, "period_start": now, "post_payment_credit_notes_amount": 0,
            "pre_payment_credit_notes_amount": 0, "receipt_number": None, "rendering": None, "shipping_cost": None,
            "shipping_details": None, "starting_balance": 0, "statement_descriptor": None, "status": "draft",
            "status_details": None,
            "status_transitions": {"finalized_at": None, "marked_uncollectible_at": None, "paid_at": None,
                                   "voided_at": None},
            "subtotal": session["amount_subtotal"], "subtotal_excluding_tax": session["amount_subtotal"],
            "test_clock": None, "total": session["amount_total"],
            "total_discount_amounts": [], "total_excluding_tax": session["amount_total"]
            - session["total_details"]["amount_tax"], "total_pretax_credit_amounts": [], "total_taxes": [],
            "webhooks_delivered_at": now,
        }
        self.invoices[invoice_id] = invoice
        session["invoice"] = invoice_id
        if self.invoices_final:
            self._finalize(invoice)

    def _finalize(self, invoice: dict[str, Any]) -> None:
        now = self.now()
        number = f"{new_id('')[:8].upper()}-{len(self.invoices):04d}"
        invoice.update(status="paid", number=number, receipt_number=number,
                       hosted_invoice_url=f"{self.url}/invoices/{invoice['id']}",
                       invoice_pdf=f"{self.url}/invoices/{invoice['id']}/pdf",
                       status_transitions={"finalized_at": now, "marked_uncollectible_at": None, "paid_at": now,
                                           "voided_at": None})

    def finalize_invoice(self, invoice_id: str) -> dict[str, Any]:
        """Finalize a draft invoice (made while ``invoices_final`` was False): it gets its links."""
        with self._lock:
            invoice = self._known(self.invoices, "invoice", invoice_id)
            if invoice["status"] == "draft":
                self._finalize(invoice)
            return copy.deepcopy(invoice)

    def invoice_of(self, session_id: str) -> dict[str, Any] | None:
        """The session's invoice, or None."""
        with self._lock:
            invoice_id = self._session(session_id).get("invoice")
            return copy.deepcopy(self.invoices[invoice_id]) if invoice_id else None

    def _api_get_invoice(self, params: dict[str, Any], request: dict[str, Any], id: str) -> tuple[Any, list[Any]]:
        return self._expand(self._known(self.invoices, "invoice", id), params), []

    def _invoice_page(self, invoice_id: str, pdf: bool) -> tuple[int, str]:
        """The hosted invoice page (and a stand-in for its PDF): what the buyer opens from the receipt."""
        invoice = self.invoices.get(invoice_id)
        if invoice is None or invoice["hosted_invoice_url"] is None:
            return 404, "<p>Not found.</p>"
        address = invoice["customer_address"] or {}
        lines = [invoice["customer_name"] or "", *(address.get(k) or "" for k in
                 ("line1", "line2", "postal_code", "city", "state", "country"))]
        tax_ids = [f"{t['type']} {t['value']}" for t in invoice["customer_tax_ids"]]
        body = "".join(f"<p>{html.escape(line)}</p>" for line in [*lines, *tax_ids] if line)
        total = html.escape(format_amount(invoice["total"], invoice["currency"]))
        kind = "PDF" if pdf else "Invoice"
        return 200, (f"<!doctype html><title>{kind} {html.escape(invoice['number'])}</title>"
                     f'<h1 data-invoice="{html.escape(invoice_id)}">{kind} {html.escape(invoice["number"])}</h1>'
                     f'{body}<p>Paid <strong id="total">{total}</strong></p>')
