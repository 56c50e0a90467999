"""Every place that says what a purchase cost says what was paid (Checkout's amount_total), not the list price; the
packs say whether checkout adds tax; the receipt is a tax document (seller, list price, discount with its code, net,
tax with its rate, total). Amounts that do not divide evenly: a 15 % code and 19 % tax on $25.00 make
2500 - 375 + 404 (403.75, half up) = 2529.

The purchase writes the order's new columns (promotion code, tax rate) and reads them back: both engines."""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any

import pytest
import requests

import resources
from backend.billing_details import tax_id_name
from backend.config import ConfigError, Settings
from backend.payments.base import SessionState
from tests.conftest import SHARED_ENV
from tests.helpers.api import Api
from tests.helpers.backend import BackendProcess
from tests.helpers.stripe_server import FakeStripe

CODE = '\n[[promotion_codes]]\ncode = "WELCOME15"\npercent_off = 15\n'
TAXED = "stub_tax_percent = 19\n" + resources.path("packs.toml").read_text() + CODE
SELLER = {"CREDITDESK_SELLER_NAME": "Creditdesk GmbH", "CREDITDESK_SELLER_ADDRESS": r"Torstraße 1\n10119 Berlin\nDE",
          "CREDITDESK_SELLER_TAX_ID": "DE987654321"}
BUYER = {"name": "Erika Mustermann GmbH", "address": {"line1": "Hauptstraße 5", "line2": "", "city": "Berlin",
                                                      "postalCode": "10115", "state": "", "country": "DE"},
         "taxId": {"type": "eu_vat", "value": "DE123456789"}}
PAID = {"amount": 2529, "currency": "usd", "listPrice": 2500, "discount": 375, "tax": 404}


def backend_selling(backend_factory: Any, tmp_path: Path, catalogue: str, **env: str) -> BackendProcess:
    packs = tmp_path / "packs.toml"
    packs.write_text(catalogue)
    return backend_factory({**SHARED_ENV, "CREDITDESK_PACKS": str(packs), **env})


def text_of(html: str) -> str:
    """The page's words without its tags, spaces folded: what a reader sees (before the script's locale money)."""
    inline = re.sub(r"</?(?:span|strong)\b[^>]*>", "", html.split("<body>")[-1].split("<script")[0])
    return " ".join(re.sub(r"<[^>]+>", " ", inline).split())


def test_the_amount_paid_with_code_and_tax_is_what_every_answer_and_page_says(
    backend_factory, tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    backend = backend_selling(backend_factory, tmp_path, TAXED, CREDITDESK_PROMOTION_CODES="1",
                              CREDITDESK_AUTOMATIC_TAX="1", **SELLER)
    api = Api(backend.url).register()
    assert api.request("PUT", "/api/billing/details", json=BUYER).status_code == 200
    checkout = api.checkout("standard")
    requests.post(checkout["url"] + "/promotion-code", data={"code": "welcome15"}, timeout=10)
    outcome = requests.post(checkout["url"] + "/pay", timeout=10)  # on to the success URL: the outcome page
    assert "paid 25.29 USD" in text_of(outcome.text) and "25.00 USD" not in outcome.text

    verified = api.verify(checkout["sessionId"]).json()
    assert verified["status"] == "paid" and verified["payment"] == PAID
    [purchase] = api.transactions()
    assert purchase["payment"] == PAID and purchase["amount"] == 550  # the pack's credits

    [receipt] = api.get("/api/billing/receipts").json()["receipts"]
    assert (receipt["amount"], receipt["tax"], receipt["discount"]) == (2529, 404, 375)
    page = text_of(requests.get(receipt["url"], timeout=10).text)
    for line in ("Sold by Creditdesk GmbH Torstraße 1 10119 Berlin DE Tax id: DE987654321",
                 "Sold to Erika Mustermann GmbH Hauptstraße 5 10115 Berlin Germany", "EU VAT number: DE123456789",
                 "List price 25.00 USD", "Discount (WELCOME15) \u22123.75 USD", "Net 21.25 USD", "Tax (19 %) 4.04 USD",
                 "Total paid 25.29 USD"):
        assert line in page, (line, page)
    [order] = backend.query("SELECT promotion_code, tax_rate, tax_name FROM orders")
    assert (order["promotion_code"], order["tax_rate"], order["tax_name"]) == ("WELCOME15", "19", "Tax")


@pytest.mark.engines("sqlite")
def test_an_inclusive_price_says_the_tax_is_in_it_and_a_receipt_without_tax_has_no_tax_lines(
    backend_factory, tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    inclusive = TAXED.replace('currency = "usd"', 'currency = "usd"\ntax_behavior = "inclusive"')
    backend = backend_selling(backend_factory, tmp_path, inclusive, CREDITDESK_AUTOMATIC_TAX="1")
    api = Api(backend.url).register()
    assert {p["tax"] for p in api.get("/api/billing/packs").json()["packs"]} == {"inclusive"}
    checkout = api.checkout("standard")
    requests.post(checkout["url"] + "/pay", timeout=10)
    paid = api.verify(checkout["sessionId"]).json()["payment"]
    assert paid == {"amount": 2500, "currency": "usd", "listPrice": 2500, "discount": 0, "tax": 399}  # 2500 - 2101
    [receipt] = api.get("/api/billing/receipts").json()["receipts"]
    page = text_of(requests.get(receipt["url"], timeout=10).text)
    for line in ("Sold by Creditdesk", "List price (incl. tax) 25.00 USD", "Net 21.01 USD", "Tax (19 %) 3.99 USD",
                 "Total paid 25.00 USD"):
        assert line in page, (line, page)
    assert "Discount" not in page and "Tax id" not in page

    plain = backend_factory({**SHARED_ENV}, "plain")  # no tax added, no code: the list price and the total
    api = Api(plain.url).register()
    assert {p["tax"] for p in api.get("/api/billing/packs").json()["packs"]} == {None}
    checkout = api.checkout("starter")
    requests.post(checkout["url"] + "/pay", timeout=10)
    [receipt] = api.get("/api/billing/receipts").json()["receipts"]
    page = text_of(requests.get(receipt["url"], timeout=10).text)
    assert "List price 5.00 USD" in page and "Total paid 5.00 USD" in page
    assert "Net" not in page and "Tax" not in page


@pytest.mark.engines("sqlite")
@pytest.mark.parametrize(("env", "catalogue", "tax"), [
    ({}, TAXED, None),  # automatic tax off
    ({"CREDITDESK_AUTOMATIC_TAX": "1"}, TAXED, "exclusive"),
    ({"CREDITDESK_AUTOMATIC_TAX": "1"}, TAXED.replace("stub_tax_percent = 19", ""), None),  # the stub adds none
])
def test_the_packs_say_whether_checkout_adds_tax(
    backend_factory, tmp_path: Path, env: dict[str, str], catalogue: str, tax: str | None,  # type: ignore[no-untyped-def]
) -> None:
    packs = Api(backend_selling(backend_factory, tmp_path, catalogue, **env).url).get("/api/billing/packs").json()
    assert [set(p) for p in packs["packs"]] == [{"id", "name", "credits", "amount", "currency", "pricePerCredit",
                                                 "tax"}] * 3  # the contract's and the extension
    assert {p["tax"] for p in packs["packs"]} == {tax}


@pytest.mark.engines("sqlite")
def test_in_stripe_mode_the_receipt_names_the_promotion_code_and_the_tax_rate_from_stripe(
    stripe_backend: tuple[BackendProcess, FakeStripe],
) -> None:
    """The lines stub mode's receipt has, from what Stripe says: the code the buyer entered (the session's discount,
    its promotion code expanded) and the rate Stripe Tax charged (the session's total_details.breakdown), read once
    the webhook that paid is answered. 2500 less a 15 % code (375), plus 19 % of 2125 (403.75, half up): 2529."""
    backend, fake = stripe_backend
    api = Api(backend.url).register()
    checkout = api.checkout("standard")
    code = fake.create_promotion_code("SPRING15")
    rate = fake.create_tax_rate("VAT", 19.0, country="DE", tax_type="vat")
    fake.pay(checkout["sessionId"], discount=375, tax=404, promotion_code=code["id"], tax_rate=rate["id"])
    assert api.balance() == 550  # granted from the event, which names neither
    backend.log_with("outcome=receipt_names_kept")  # read from Stripe just after the webhook's answer
    outcome = requests.get(f"{backend.url}/account/credits/success", params={"session_id": checkout["sessionId"]},
                           timeout=10)
    link = re.search(r'<a id="receipt" href="([^"]+)"', outcome.text)
    assert link, outcome.text
    page = text_of(requests.get(html.unescape(link[1]), timeout=10).text)
    for line in ("List price 25.00 USD", "Discount (SPRING15) \u22123.75 USD", "Net 21.25 USD", "VAT (19 %) 4.04 USD",
                 "Total paid 25.29 USD"):
        assert line in page, (line, page)
    [order] = backend.query("SELECT promotion_code, tax_rate, tax_name FROM orders")
    assert (order["promotion_code"], order["tax_rate"], order["tax_name"]) == ("SPRING15", "19", "VAT")


def test_a_session_says_its_promotion_code_and_tax_rate_where_it_knows_them() -> None:
    base = {"object": "checkout.session", "id": "cs_1", "status": "complete", "payment_status": "paid"}
    assert (SessionState.from_stripe(base).promotion_code, SessionState.from_stripe(base).tax_rate) == (None, None)
    expanded = SessionState.from_stripe({
        **base, "discounts": [{"promotion_code": {"id": "promo_1", "code": "SPRING"}}],
        "total_details": {"amount_tax": 71, "breakdown": {"taxes": [
            {"amount": 71, "rate": {"percentage": 8.875, "display_name": "Sales tax"}},
            {"amount": 0, "rate": {"percentage": 4, "display_name": "Other"}}]}}})  # nothing charged: not its rate
    assert (expanded.promotion_code, expanded.tax_rate, expanded.tax_name) == ("SPRING", "8.875", "Sales tax")
    two_rates = SessionState.from_stripe({
        **base, "discounts": [{"promotion_code": "promo_1Abc"}],  # Stripe's id is not the code the buyer knows
        "total_details": {"breakdown": {"taxes": [{"amount": 50, "rate": {"percentage": 6.25}},
                                                  {"amount": 20, "rate": {"percentage": 2.5}}]}}})
    assert (two_rates.promotion_code, two_rates.tax_rate, two_rates.tax_name) == (None, None, None)
    stub = SessionState.from_stripe({**base, "discounts": [{"promotion_code": "promo_stub_WELCOME15"}],
                                     "total_details": {"breakdown": {"taxes": [
                                         {"amount": 404, "rate": {"percentage": 19, "display_name": "VAT"}}]}}})
    assert (stub.promotion_code, stub.tax_rate, stub.tax_name) == ("WELCOME15", "19", "VAT")
    # Stripe Tax's rate as charged, where its statutory percentage holds a jurisdiction's that was not.
    effective = SessionState.from_stripe({**base, "total_details": {"breakdown": {"taxes": [
        {"amount": 66, "rate": {"percentage": 8.875, "effective_percentage": 6.625, "display_name": "Sales tax"}}]}}})
    assert (effective.tax_rate, effective.tax_name) == ("6.625", "Sales tax")


def test_a_tax_id_type_is_named_as_people_name_it() -> None:
    assert [tax_id_name(t) for t in ("eu_vat", "gb_vat", "us_ein", "ca_pst_bc")] == [
        "EU VAT number", "GB VAT number", "US EIN", "CA PST BC"]  # the words the app offers them with


def test_the_seller_is_creditdesk_unless_configured() -> None:
    default = Settings.from_env({})
    assert (default.seller_name, default.seller_address, default.seller_tax_id) == ("Creditdesk", (), None)
    seller = Settings.from_env({**SELLER, "CREDITDESK_SELLER_ADDRESS": "Torstraße 1\\n\n10119 Berlin\nDE "})
    assert seller.seller_address == ("Torstraße 1", "10119 Berlin", "DE")  # "\n" written or real; blanks dropped
    with pytest.raises(ConfigError, match="CREDITDESK_SELLER_TAX_ID takes printable text"):
        Settings.from_env({"CREDITDESK_SELLER_TAX_ID": "x" * 201})
