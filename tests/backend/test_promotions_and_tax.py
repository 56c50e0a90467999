"""Promotion codes (CREDITDESK_PROMOTION_CODES) and tax (CREDITDESK_AUTOMATIC_TAX) at checkout: in stub mode the
catalogue's codes and stub_tax_percent on the stub checkout page, in Stripe mode Stripe's own (allow_promotion_codes,
automatic_tax with each pack's tax_behavior). The order keeps what was paid, its tax and discount; the credits
granted are the pack's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import requests

from backend.catalogue import Catalogue, PromotionCode
from backend.config import ConfigError, Settings
from tests.conftest import SHARED_ENV, STRIPE_KEY, WEBHOOK_SECRET
from tests.helpers.api import Api
from tests.helpers.backend import BackendProcess
from tests.helpers.stripe_server import FakeStripe

CATALOGUE = """
[[packs]]
id = "odd"
name = "Odd"
credits = 333
amount = 1999
currency = "usd"

[[promotion_codes]]
code = "Welcome15"
percent_off = 15
"""


def backend_selling(backend_factory: Any, tmp_path: Path, catalogue: str, **env: str) -> BackendProcess:
    """A backend whose catalogue is ``catalogue``, with ``env`` besides the tests' shared settings."""
    packs = tmp_path / "packs.toml"
    packs.write_text(catalogue)
    return backend_factory({**SHARED_ENV, "CREDITDESK_PACKS": str(packs), **env})


@pytest.mark.parametrize(("percent", "subtotal", "discount"), [
    (15, 1999, 300),  # 299.85: half up to 300
    (10, 1995, 200),  # 199.5: half up
    (33, 7, 2),  # 2.31
    (100, 503, 503),
    (1, 49, 0),  # 0.49: nothing
])
def test_a_percent_off_is_rounded_half_up_to_the_minor_unit(percent: int, subtotal: int, discount: int) -> None:
    assert PromotionCode("CODE", percent).discount(subtotal) == discount


@pytest.mark.parametrize(("codes", "message"), [
    ('[[promotion_codes]]\ncode = "x"\npercent_off = 10\n', "code must be 3 to 40"),
    ('[[promotion_codes]]\ncode = "SAVE"\npercent_off = 0\n', "percent_off must be a whole number from 1 to 100"),
    ('[[promotion_codes]]\ncode = "SAVE"\npercent_off = 10\namount_off = 5\n', "needs code and percent_off"),
    ('[[promotion_codes]]\ncode = "SAVE"\npercent_off = 10\n[[promotion_codes]]\ncode = "save"\npercent_off = 5\n',
     "'save' is there twice"),
])
def test_a_bad_promotion_code_in_the_catalogue_is_refused_clearly(tmp_path: Path, codes: str, message: str) -> None:
    path = tmp_path / "packs.toml"
    path.write_text(CATALOGUE.split("[[promotion_codes]]")[0] + codes)
    with pytest.raises(ConfigError, match=message):
        Catalogue.load(path)


def test_the_setting_is_on_or_off() -> None:
    assert Settings.from_env({"CREDITDESK_PROMOTION_CODES": "1"}).promotion_codes
    assert not Settings.from_env({"CREDITDESK_PROMOTION_CODES": "0"}).promotion_codes
    assert not Settings.from_env({}).promotion_codes
    with pytest.raises(ConfigError, match="CREDITDESK_PROMOTION_CODES is 1"):
        Settings.from_env({"CREDITDESK_PROMOTION_CODES": "maybe"})


@pytest.mark.engines("sqlite")
def test_a_code_on_the_stub_checkout_takes_its_discount_and_grants_the_packs_credits(
    backend_factory, tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    backend = backend_selling(backend_factory, tmp_path, CATALOGUE, CREDITDESK_PROMOTION_CODES="1")
    api = Api(backend.url).register()
    checkout = api.checkout("odd")
    page = requests.get(checkout["url"], timeout=10)
    assert 'name="code"' in page.text
    code_url = checkout["url"] + "/promotion-code"
    # POST/redirect/GET: each answer is a 303 back to the checkout page, whose query names what to say (reloading
    # it posts nothing again); the page says only its own words, whatever the query holds.
    wrong = requests.post(code_url, data={"code": "NOPE"}, timeout=10)
    assert [r.status_code for r in wrong.history] == [303] and wrong.url == checkout["url"] + "?promotion=refused"
    assert wrong.status_code == 200 and "This promotion code is not valid." in wrong.text and "19.99 USD" in wrong.text
    crowded = requests.post(code_url, data={f"f{n}": "x" for n in range(9)}, timeout=10)  # not the page's form
    assert crowded.url.endswith("?promotion=missing") and "Enter a promotion code." in crowded.text
    made_up = requests.get(checkout["url"], params={"promotion": "<b>free</b>"}, timeout=10)
    assert made_up.status_code == 200 and "free" not in made_up.text and 'id="promotion-message"' not in made_up.text
    applied = requests.post(code_url, data={"code": " welcome15 "}, timeout=10)  # any case, spaces around
    assert applied.status_code == 200 and applied.url == checkout["url"]
    assert "Promotion code WELCOME15" in applied.text and "3.00 USD" in applied.text and "16.99 USD" in applied.text
    assert 'name="code"' not in applied.text and 'id="remove-code"' in applied.text  # Remove instead of Apply
    removed = requests.post(code_url + "/remove", timeout=10)
    assert [r.status_code for r in removed.history] == [303] and removed.url.endswith("?promotion=removed")
    assert "The promotion code was removed." in removed.text and "Pay <span" in removed.text
    assert "16.99 USD" not in removed.text and "19.99 USD" in removed.text and 'name="code"' in removed.text
    requests.post(code_url, data={"code": "WELCOME15"}, timeout=10)
    requests.post(checkout["url"] + "/pay", timeout=10)
    assert api.balance() == 333  # the pack's credits, not fewer
    [order] = backend.query("SELECT amount, amount_paid, amount_discount FROM orders")
    assert (order["amount"], order["amount_paid"], order["amount_discount"]) == (1999, 1699, 300)
    [receipt] = api.get("/api/billing/receipts").json()["receipts"]
    assert (receipt["amount"], receipt["discount"]) == (1699, 300)


@pytest.mark.engines("sqlite")
def test_without_the_setting_the_stub_checkout_takes_no_code(
    backend_factory, tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    backend = backend_selling(backend_factory, tmp_path, CATALOGUE)
    checkout = Api(backend.url).register().checkout("odd")
    assert 'name="code"' not in requests.get(checkout["url"], timeout=10).text
    refused = requests.post(checkout["url"] + "/promotion-code", data={"code": "WELCOME15"}, timeout=10)
    assert refused.status_code == 404
    assert requests.post(checkout["url"] + "/promotion-code/remove", timeout=10).status_code == 404


@pytest.mark.engines("sqlite")
def test_in_stripe_mode_checkout_lets_the_buyer_enter_stripes_codes(
    backend_factory,  # type: ignore[no-untyped-def]
) -> None:
    with FakeStripe(api_key=STRIPE_KEY, webhook_secret=WEBHOOK_SECRET) as fake:
        env = {**SHARED_ENV, "STRIPE_SECRET_KEY": STRIPE_KEY, "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
               "STRIPE_API_BASE": fake.url}
        on = backend_factory({**env, "CREDITDESK_PROMOTION_CODES": "1"}, "on")
        off = backend_factory(env, "off")
        with_codes = Api(on.url).register().checkout("starter")["sessionId"]
        without = Api(off.url).register().checkout("starter")["sessionId"]
        assert fake.sessions[with_codes]["allow_promotion_codes"] is True
        assert fake.sessions[without]["allow_promotion_codes"] is None


TAXED = CATALOGUE + """
[[packs]]
id = "gross"
name = "Gross"
credits = 97
amount = 1234
currency = "eur"
tax_behavior = "inclusive"
"""


@pytest.mark.engines("sqlite")
@pytest.mark.parametrize(("pack", "code", "paid", "tax", "discount"), [
    ("odd", None, 2379, 380, 0),  # 1999 + 19 % (379.81, half up) on top
    ("odd", "WELCOME15", 2022, 323, 300),  # (1999 - 300) + 19 % of 1699 (322.81)
    ("gross", None, 1234, 197, 0),  # 19 % held in 1234: 1234 - 1037 (1036.97 half up)
    ("gross", "WELCOME15", 1049, 167, 185),  # 15 % of 1234 is 185.1: 1049 paid, 1049 - 882 held
])
def test_stub_checkout_collects_tax_on_top_or_held_in_the_price(
    backend_factory, tmp_path: Path, pack: str, code: str | None, paid: int, tax: int, discount: int,  # type: ignore[no-untyped-def]
) -> None:
    backend = backend_selling(backend_factory, tmp_path, "stub_tax_percent = 19\n" + TAXED,  # a top-level key first
                              CREDITDESK_PROMOTION_CODES="1", CREDITDESK_AUTOMATIC_TAX="1")
    api = Api(backend.url).register()
    checkout = api.checkout(pack)
    if code:
        requests.post(checkout["url"] + "/promotion-code", data={"code": code}, timeout=10)
    page = requests.get(checkout["url"], timeout=10).text
    assert ("Tax included (19 %): " if pack == "gross" else "Tax (19 %): ") in page  # the rate, as the receipt says
    requests.post(checkout["url"] + "/pay", timeout=10)
    assert api.balance() == (333 if pack == "odd" else 97)
    [order] = backend.query("SELECT amount_paid, amount_tax, amount_discount FROM orders")
    assert (order["amount_paid"], order["amount_tax"], order["amount_discount"]) == (paid, tax, discount)


@pytest.mark.engines("sqlite")
def test_in_stripe_mode_checkout_asks_stripe_tax_with_each_packs_tax_behavior(
    backend_factory, tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    with FakeStripe(api_key=STRIPE_KEY, webhook_secret=WEBHOOK_SECRET) as fake:
        backend = backend_selling(backend_factory, tmp_path, TAXED, STRIPE_SECRET_KEY=STRIPE_KEY,
                                  STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET, STRIPE_API_BASE=fake.url,
                                  CREDITDESK_AUTOMATIC_TAX="1")
        api = Api(backend.url).register()
        session_id = api.checkout("gross")["sessionId"]
        assert fake.sessions[session_id]["automatic_tax"]["enabled"] is True
        assert fake.line_items(session_id)[0]["price"]["tax_behavior"] == "inclusive"
        fake.pay(session_id, tax=0)  # inclusive: Stripe Tax finds the tax inside the price
        assert api.verify(session_id).json()["status"] == "paid" and api.balance() == 97
