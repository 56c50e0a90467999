"""Stripe's invoices as receipts (issue 18): Checkout makes one for each payment (``invoice_creation``) and the
receipts list opens it; its links are read after the payment, once, and later by reconcile when that read failed
(backend/invoices.py). Against the Stripe-compatible test server, on both engines."""

from __future__ import annotations

import json
import time
from typing import Any

import requests

from tests.helpers.api import Api
from tests.helpers.backend import BackendProcess
from tests.helpers.stripe_server import FakeStripe

Stripe = tuple[BackendProcess, FakeStripe]


def receipts(api: Api) -> list[dict[str, Any]]:
    r = api.get("/api/billing/receipts")
    assert r.status_code == 200, r.text
    return list(r.json()["receipts"])


def invoice_receipt(api: Api, timeout: float = 10.0) -> dict[str, Any]:
    """The newest receipt once it opens Stripe's invoice (its links are read just after the webhook's answer)."""
    deadline = time.monotonic() + timeout
    while True:
        newest = receipts(api)[0]
        if newest["invoicePdf"] is not None or time.monotonic() > deadline:
            return newest
        time.sleep(0.05)


def test_a_paid_checkout_has_stripes_invoice_as_its_receipt(stripe_backend: Stripe) -> None:
    backend, fake = stripe_backend
    api = Api(backend.url).register()
    checkout = api.checkout("pro")
    session = fake.sessions[checkout["sessionId"]]
    assert session["invoice_creation"]["enabled"] is True
    assert session["invoice_creation"]["invoice_data"]["metadata"] == {"orderId": checkout["orderId"]}
    assert session["tax_id_collection"]["enabled"] is True
    fake.pay(checkout["sessionId"])
    invoice = fake.invoice_of(checkout["sessionId"])
    assert invoice is not None and invoice["status"] == "paid" and invoice["customer"] == session["customer"]
    receipt = invoice_receipt(api)
    assert (receipt["url"], receipt["invoicePdf"]) == (invoice["hosted_invoice_url"], invoice["invoice_pdf"])
    assert (receipt["orderId"], receipt["amount"], receipt["credits"]) == (checkout["orderId"], 5000, 1200)
    page = requests.get(receipt["url"], timeout=10)
    assert page.status_code == 200 and invoice["number"] in page.text
    [order] = backend.query("SELECT invoice_id, invoice_url, invoice_pdf FROM orders")
    assert tuple(order.values()) == (invoice["id"], invoice["hosted_invoice_url"], invoice["invoice_pdf"])


def test_a_duplicated_webhook_reads_the_invoice_once(stripe_backend: Stripe) -> None:
    backend, fake = stripe_backend
    api = Api(backend.url).register()
    checkout = api.checkout("starter")
    event = fake.pay(checkout["sessionId"], deliver=False)
    fake.deliver(event, times=3)
    receipt = invoice_receipt(api)
    fake.redeliver(event["id"])
    assert receipt["url"] == fake.invoice_of(checkout["sessionId"])["hosted_invoice_url"]  # type: ignore[index]
    time.sleep(0.3)  # any background read a duplicate had started would be done by now
    assert fake.calls("/v1/invoices/*", "GET") == 1
    assert api.balance() == 100 and len(receipts(api)) == 1


def test_an_invoice_that_cannot_be_read_does_not_hold_up_the_credits_and_reconcile_reads_it_later(
    stripe_backend: Stripe,
) -> None:
    backend, fake = stripe_backend
    api = Api(backend.url).register()
    checkout = api.checkout("standard")
    fake.fault("error", path="/v1/invoices/*", status=500)
    fake.pay(checkout["sessionId"])
    assert api.balance() == 550  # granted at once, whatever the invoice
    backend.log_with("outcome=invoice_not_read")
    [receipt] = receipts(api)
    assert receipt["url"].startswith(f"{backend.url}/receipts/{checkout['orderId']}?key=")  # the backend's page
    assert receipt["invoicePdf"] is None
    assert requests.get(receipt["url"], timeout=10).status_code == 200
    failed = json.loads(backend.admin("reconcile", "--json").stdout)
    assert failed["invoicesFilled"] == 0 and any("invoice" in error for error in failed["errors"])
    fake.clear_faults()
    report = json.loads(backend.admin("reconcile", "--json").stdout)
    assert report["invoicesFilled"] == 1
    invoice = fake.invoice_of(checkout["sessionId"])
    assert invoice is not None
    assert (receipts(api)[0]["url"], receipts(api)[0]["invoicePdf"]) == (invoice["hosted_invoice_url"],
                                                                        invoice["invoice_pdf"])
    assert json.loads(backend.admin("reconcile", "--json").stdout)["invoicesFilled"] == 0  # once
    own_page = requests.get(receipt["url"], timeout=10).text  # the backend's page, which the outcome page links to
    assert f'href="{invoice["hosted_invoice_url"]}"' in own_page and f'href="{invoice["invoice_pdf"]}"' in own_page


def test_a_draft_invoice_is_read_again_once_stripe_finalizes_it(stripe_backend: Stripe) -> None:
    backend, fake = stripe_backend
    api = Api(backend.url).register()
    checkout = api.checkout("starter")
    fake.invoices_final = False
    fake.pay(checkout["sessionId"])
    backend.log_with("outcome=invoice_not_final")
    assert receipts(api)[0]["invoicePdf"] is None
    invoice = fake.invoice_of(checkout["sessionId"])
    assert invoice is not None
    fake.finalize_invoice(invoice["id"])
    assert json.loads(backend.admin("reconcile", "--json").stdout)["invoicesFilled"] == 1
    assert receipts(api)[0]["invoicePdf"] == fake.invoice_of(checkout["sessionId"])["invoice_pdf"]  # type: ignore[index]


def test_billing_details_go_to_the_stripe_customer_once_and_onto_its_invoices(stripe_backend: Stripe) -> None:
    backend, fake = stripe_backend
    api = Api(backend.url).register()
    details = {"name": "Muster GmbH", "address": {"line1": "Hauptstr. 1", "city": "Berlin", "postalCode": "10115",
                                                  "country": "de"},
               "taxId": {"type": "eu_vat", "value": "DE123456789"}}
    saved = api.request("PUT", "/api/billing/details", json=details)
    assert saved.status_code == 200, saved.text
    assert saved.json()["address"]["country"] == "DE"
    [customer_id] = [row["customer_id"] for row in backend.query("SELECT customer_id FROM users")]
    customer = fake.customers[customer_id]
    assert customer["name"] == "Muster GmbH"
    assert customer["address"] == {"city": "Berlin", "country": "DE", "line1": "Hauptstr. 1", "line2": None,
                                   "postal_code": "10115", "state": None}
    assert [(t["type"], t["value"]) for t in fake.tax_ids[customer_id]] == [("eu_vat", "DE123456789")]
    assert api.request("PUT", "/api/billing/details", json=details).status_code == 200  # again: nothing new
    assert fake.calls(f"/v1/customers/{customer_id}/tax_ids", "POST") == 1
    assert [t["value"] for t in fake.tax_ids[customer_id]] == ["DE123456789"]

    refused = api.request("PUT", "/api/billing/details", json={**details, "taxId": {"type": "eu_vat", "value": "12"}})
    assert refused.status_code == 422 and refused.json()["error"]["code"] == "invalid_tax_id"
    assert api.get("/api/billing/details").json()["taxId"] == {"type": "eu_vat", "value": "DE123456789"}

    checkout = api.checkout("starter")
    assert fake.sessions[checkout["sessionId"]]["customer"] == customer_id
    fake.pay(checkout["sessionId"])
    invoice = fake.invoice_of(checkout["sessionId"])
    assert invoice is not None
    assert invoice["customer_name"] == "Muster GmbH"
    assert invoice["customer_tax_ids"] == [{"type": "eu_vat", "value": "DE123456789"}]
    assert "DE123456789" in requests.get(invoice_receipt(api)["url"], timeout=10).text

    cleared = api.request("PUT", "/api/billing/details", json={"name": "Muster GmbH"})
    assert cleared.status_code == 200 and cleared.json()["taxId"] is None
    assert fake.tax_ids[customer_id] == [] and fake.customers[customer_id]["address"] is None


def test_billing_details_are_not_kept_while_stripe_cannot_be_reached(stripe_backend: Stripe) -> None:
    backend, fake = stripe_backend
    api = Api(backend.url).register()
    api.checkout("starter")  # the user has a customer already
    with fake.fault("error", path="/v1/customers/*", status=503):
        r = api.request("PUT", "/api/billing/details", json={"name": "Jane Doe"})
    assert r.status_code == 503 and r.json()["error"]["code"] == "payment_provider_unavailable"
    assert api.get("/api/billing/details").json()["name"] == ""
    assert api.request("PUT", "/api/billing/details", json={"name": "Jane Doe"}).json()["name"] == "Jane Doe"
