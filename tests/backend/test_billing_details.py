"""A buyer's billing details (``GET/PUT /api/billing/details``): set once, validated, kept per user, and printed on
the receipts of the purchases paid after, each receipt keeping them as they were when it was paid
(backend/billing_details.py). Stripe mode's side (the customer and its invoices) is in test_invoices.py."""

from __future__ import annotations

import typing
from pathlib import Path

import pytest
import requests

from backend import billing_details, migrations
from backend.db import Database
from tests.conftest import Databases
from tests.helpers.api import Api
from tests.helpers.backend import BackendProcess

DETAILS = {"name": "Muster GmbH", "address": {"line1": "Hauptstr. 1", "line2": "Hinterhaus", "city": "Berlin",
                                              "postalCode": "10115", "state": "", "country": "DE"},
           "taxId": {"type": "eu_vat", "value": "DE123456789"}}
BLANK = {"name": "", "address": {"line1": "", "line2": "", "city": "", "postalCode": "", "state": "", "country": ""},
         "taxId": None}


def put(api: Api, body: object) -> requests.Response:
    return api.request("PUT", "/api/billing/details", json=body)


def test_billing_details_are_blank_until_set_then_kept_per_user(stub_backend: BackendProcess) -> None:
    alice, bob = Api(stub_backend.url).register(), Api(stub_backend.url).register()
    assert alice.get("/api/billing/details").json() == BLANK
    saved = put(alice, {**DETAILS, "name": "  Muster GmbH  ", "address": {**DETAILS["address"], "country": "de"}})
    assert saved.status_code == 200 and saved.json() == DETAILS  # spaces around dropped, the country upper case
    assert alice.get("/api/billing/details").json() == DETAILS
    assert bob.get("/api/billing/details").json() == BLANK
    # All of them each time: what is left out is blank.
    assert put(alice, {"name": "Alice"}).json() == {**BLANK, "name": "Alice"}
    assert Api(stub_backend.url).get("/api/billing/details").status_code == 401
    assert Api(stub_backend.url).request("PUT", "/api/billing/details", json=DETAILS).status_code == 401


@pytest.mark.engines("sqlite")
@pytest.mark.parametrize("body", [
    {"name": "x" * 257},
    {"name": "two\nlines"},
    {"name": 7},
    {"address": {"country": "XX"}},
    {"address": {"country": "DEU"}},
    {"address": {"postalCode": "1" * 41}},
    {"address": {"line1": "a" * 201}},
    {"address": {"city": "Berlin", "planet": "Earth"}},
    {"taxId": {"type": "vat", "value": "DE123456789"}},
    {"taxId": {"type": "eu_vat", "value": ""}},
    {"taxId": {"type": "eu_vat"}},
    {"taxId": {"type": "eu_vat", "value": "D" * 101}},
    {"nickname": "Al"},
])
def test_billing_details_out_of_bounds_are_refused_and_nothing_changes(stub_backend: BackendProcess,
                                                                        body: object) -> None:
    api = Api(stub_backend.url).register()
    assert put(api, DETAILS).status_code == 200
    r = put(api, body)
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_fields", r.text
    assert api.get("/api/billing/details").json() == DETAILS


def test_a_stub_receipt_prints_the_billing_details_it_was_paid_with(stub_backend: BackendProcess) -> None:
    api = Api(stub_backend.url).register()
    before = api.checkout("starter")
    requests.post(before["url"] + "/pay", timeout=10)
    assert put(api, DETAILS).status_code == 200
    after = api.checkout("pro")
    requests.post(after["url"] + "/pay", timeout=10)
    put(api, {**DETAILS, "name": "Neuer Name AG"})
    newest, oldest = (r["url"] for r in api.get("/api/billing/receipts").json()["receipts"])
    page = requests.get(newest, timeout=10).text
    for shown in ("Muster GmbH", "Hauptstr. 1", "Hinterhaus", "10115 Berlin", "Germany", "EU VAT number: DE123456789"):
        assert shown in page, shown
    assert "Neuer Name AG" not in page  # as it was when paid: a receipt does not change afterwards
    earlier = requests.get(oldest, timeout=10).text
    assert 'id="billing"' not in earlier and "Muster" not in earlier  # paid before any were set
    third = api.checkout("starter")
    requests.post(third["url"] + "/pay", timeout=10)
    assert "Neuer Name AG" in requests.get(api.get("/api/billing/receipts").json()["receipts"][0]["url"],
                                           timeout=10).text


def test_the_tax_id_types_are_those_stripe_takes() -> None:
    from stripe.params._customer_tax_id_create_params import CustomerTaxIdCreateParams

    declared = typing.get_type_hints(CustomerTaxIdCreateParams)["type"]
    stripes = {value for arg in typing.get_args(declared) for value in typing.get_args(arg)}
    assert stripes == billing_details.TAX_ID_TYPES


def test_a_database_at_0009_keeps_its_orders_whose_receipts_carry_no_details(
    tmp_path: Path, databases: Databases,
) -> None:
    from alembic import command
    from sqlalchemy import text

    from backend import receipts

    db = Database(databases.new(migrated=False) or tmp_path / "at-0009.sqlite3")
    try:
        with db.transaction() as conn:
            command.upgrade(migrations._config(conn), "0009")
            conn.execute(text("INSERT INTO users (id, email, password_hash, created_at, customer_id) VALUES "
                              "(7, 'old@example.com', '-', 't', 'cus_old')"))
            conn.execute(text(
                "INSERT INTO orders (id, user_id, pack_id, pack_name, credits, amount, currency, provider, session_id, "
                "status, payment_intent, amount_refunded, credits_clawed_back, created_at, amount_disputed, "
                "amount_paid) VALUES ('ord_old', 7, 'pro', 'Pro', 1200, 5000, 'usd', 'stripe', 'cs_old', 'paid', "
                "'pi_old', 0, 0, 't', 0, 5000)"))
            conn.execute(text(
                "INSERT INTO ledger_entries (user_id, type, amount, balance_after, reference, description, created_at) "
                "VALUES (7, 'purchase', 1200, 1200, 'cs_old', 'Pro pack', '2026-12-01T00:00:00.000Z')"))
        assert migrations.upgrade(db) == ("0009", migrations.head())
        with db.read() as conn:
            row = conn.execute(text("SELECT credits, amount_paid, invoice_id, invoice_url, invoice_pdf, "
                                    "billing_details FROM orders")).one()
            assert tuple(row) == (1200, 5000, None, None, None, None)
            assert conn.execute(text("SELECT customer_id FROM users")).scalar_one() == "cus_old"
            [receipt] = receipts.for_user(conn, 7)
            assert (receipt.billing, receipt.invoice_url) == (None, None)
            assert receipt.as_json("http://x/receipts/ord_old")["url"] == "http://x/receipts/ord_old"
            assert billing_details.read(conn, 7) is None
    finally:
        db.close()
