"""Every paid purchase has a receipt its buyer can open in a browser, from the app's list or the outcome page:
``GET /api/billing/receipts`` and ``/receipts/{order}?key=...`` (backend/receipts.py)."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import requests

from backend import receipts
from backend.db import Database
from tests.helpers.api import Api
from tests.helpers.backend import BackendProcess
from tests.helpers.payments import new_order, session_event

RECEIPT_FIELDS = {"orderId", "sessionId", "packId", "credits", "amount", "currency", "tax", "discount", "paidAt", "url",
                  "invoicePdf"}  # the contract's, and the PDF of Stripe's invoice (docs/api.md): null in stub mode


def test_each_paid_purchase_has_a_receipt_newest_first_and_only_its_buyer_lists_it(
    stub_backend: BackendProcess,
) -> None:
    buyer, other = Api(stub_backend.url).register(), Api(stub_backend.url).register()
    paid = []
    for pack in ("starter", "pro"):
        checkout = buyer.checkout(pack)
        requests.post(checkout["url"] + "/pay", timeout=10)
        paid.append(checkout)
    buyer.checkout("standard")  # never paid: no receipt
    listed = buyer.get("/api/billing/receipts").json()["receipts"]
    assert [r["sessionId"] for r in listed] == [paid[1]["sessionId"], paid[0]["sessionId"]]
    newest = listed[0]
    assert set(newest) == RECEIPT_FIELDS
    assert (newest["orderId"], newest["packId"], newest["credits"], newest["amount"], newest["currency"],
            newest["tax"], newest["discount"]) == (paid[1]["orderId"], "pro", 1200, 5000, "usd", 0, 0)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", newest["paidAt"])
    assert newest["url"].startswith(f"{stub_backend.url}/receipts/{paid[1]['orderId']}?key=")
    assert newest["invoicePdf"] is None
    assert other.get("/api/billing/receipts").json() == {"receipts": []}
    assert Api(stub_backend.url).get("/api/billing/receipts").status_code == 401


def test_a_receipt_link_opens_its_receipt_without_a_sign_in_and_no_other(stub_backend: BackendProcess) -> None:
    buyer = Api(stub_backend.url).register()
    checkout = buyer.checkout("standard")
    pay = requests.post(checkout["url"] + "/pay", timeout=10, allow_redirects=True)
    receipt = buyer.get("/api/billing/receipts").json()["receipts"][0]
    assert f'href="{receipt["url"]}"' in pay.text  # the outcome page links to it
    page = requests.get(receipt["url"], timeout=10)
    assert page.status_code == 200 and page.headers["Cache-Control"] == "no-store"
    for shown in ("Receipt", buyer.user["email"], "Standard pack", "550", "25.00 USD", checkout["orderId"],
                  checkout["sessionId"], "Sold by", "<strong>Creditdesk</strong>"):
        assert shown in page.text, shown
    path, key = urlsplit(receipt["url"]).path, urlsplit(receipt["url"]).query.removeprefix("key=")
    other = buyer.checkout("starter")
    requests.post(other["url"] + "/pay", timeout=10)
    wrong = key[:-1] + ("1" if key[-1] == "0" else "0")  # one character off
    for url in (f"{stub_backend.url}{path}?key={wrong}", f"{stub_backend.url}{path}",
                f"{stub_backend.url}/receipts/{other['orderId']}?key={key}",  # another order's key
                f"{stub_backend.url}/receipts/ord_nope?key={key}"):
        refused = requests.get(url, timeout=10)
        assert refused.status_code == 404 and "Receipt not found" in refused.text, url
        assert buyer.user["email"] not in refused.text


def test_a_receipt_says_what_was_paid_with_its_tax_and_discount(db: Database) -> None:
    """1000 cents less a 137 discount plus 83 tax: 946 paid. The list and the link agree on both engines."""
    purchase = new_order(db, credits=333, amount=1000)
    event = session_event(purchase)
    event["data"]["object"].update(amount_total=946, total_details={"amount_discount": 137, "amount_shipping": 0,
                                                                    "amount_tax": 83})
    assert purchase.apply(event) == "granted"
    with db.read() as conn:
        [receipt] = receipts.for_user(conn, purchase.user_id)
        assert (receipt.amount, receipt.tax, receipt.discount, receipt.credits) == (946, 83, 137, 333)
        key = receipts.link_key(conn, purchase.order_id)
        assert receipts.by_link(conn, purchase.order_id, key) == receipt
        assert receipts.by_link(conn, purchase.order_id, "0" * 32) is None
        assert receipts.by_link(conn, purchase.order_id, "é" * 32) is None  # text beyond ASCII: no receipt, no error
        assert receipts.by_link(conn, "\ud800", key) is None  # a lone surrogate
        assert receipts.link(conn, "http://x", purchase.order_id) == f"http://x/receipts/{purchase.order_id}?key={key}"
