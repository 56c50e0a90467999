"""The Stripe API version: pinned in code for every call, the webhook endpoint set up at it by
``creditdesk-backend stripe-setup``, and events rendered at another version read as Stripe has them now."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from stripe import StripeClient

from backend import cli, webhooks
from backend.payments.base import STRIPE_API_VERSION
from tests.conftest import STRIPE_KEY, WEBHOOK_SECRET
from tests.helpers.api import Api
from tests.helpers.backend import BackendProcess
from tests.helpers.stripe_server import API_VERSION, FakeStripe

Stripe = tuple[BackendProcess, FakeStripe]


@pytest.mark.engines("sqlite")  # the HTTP shape of the answer or of the calls to Stripe
def test_the_pinned_version_is_the_sdks_and_every_call_is_made_at_it(stripe_backend: Stripe) -> None:
    backend, fake = stripe_backend
    assert STRIPE_API_VERSION == API_VERSION  # the test server speaks the version stripe-python 16.1 pins
    api = Api(backend.url).register()
    session_id = api.checkout("standard")["sessionId"]
    fake.pay(session_id)
    api.verify(session_id)
    api.post("/api/billing/cancel", json={"sessionId": api.checkout("starter")["sessionId"]})
    versions = {r["headers"].get("Stripe-Version") for r in fake.requests if r["path"].startswith("/v1/")}
    assert versions == {STRIPE_API_VERSION}


def _adaptive(fake: FakeStripe, session_id: str) -> None:
    """The customer pays in euros under Adaptive Pricing: 2,500 US cents shown as 2,301 euro cents."""
    fake.adapt_price(session_id, "eur", 2301)


def test_a_session_event_of_an_older_api_version_is_read_as_stripe_has_it_now(stripe_backend: Stripe) -> None:
    backend, fake = stripe_backend
    api = Api(backend.url).register()
    session_id = api.checkout("standard")["sessionId"]
    _adaptive(fake, session_id)
    fake.event_api_version = "2024-06-20"  # the endpoint's version, older than the pinned one
    event = fake.pay(session_id)
    fake.wait_deliveries()
    assert (event["api_version"], event["data"]["object"]["currency"]) == ("2024-06-20", "eur")
    assert api.balance() == 550
    assert backend.query("SELECT outcome FROM webhook_events WHERE id = ?", event["id"])[0]["outcome"] == "granted"


def test_events_for_an_endpoint_of_an_older_version_are_rendered_at_it_and_read_at_the_pinned_one(
    stripe_backend: Stripe,
) -> None:
    backend, fake = stripe_backend
    stripe = StripeClient(STRIPE_KEY, base_addresses={"api": fake.url})
    stripe.v1.webhook_endpoints.create(params={  # made by hand in the dashboard, at the account's old version
        "url": fake.webhook_url, "api_version": "2024-06-20", "enabled_events": sorted(webhooks.HANDLED)})
    api = Api(backend.url).register()
    session_id = api.checkout("standard")["sessionId"]
    fake.adapt_price(session_id, "eur", 1731)  # 1,880 US cents: 2,500 less 833 off, plus 213 tax
    event = fake.pay(session_id, discount=833, tax=213)
    fake.wait_deliveries()
    shown = event["data"]["object"]
    assert event["api_version"] == "2024-06-20" and "presentment_details" not in shown
    assert (shown["currency"], shown["amount_total"], shown["amount_subtotal"]) == ("eur", 1731, 2302)
    assert shown["currency_conversion"] == {"amount_subtotal": 2500, "amount_total": 1880,
                                            "fx_rate": "0.920744680851", "source_currency": "usd"}
    assert (shown["total_details"]["amount_discount"], shown["total_details"]["amount_tax"]) == (767, 196)
    assert api.balance() == 550
    [order] = json.loads(backend.admin("user", api.user["email"], "--json").stdout)["orders"]
    assert (order["currency"], order["amountPaid"], order["amountDiscount"], order["amountTax"],
            order["refusal"]) == ("usd", 1880, 833, 213, None)  # the order's dollars, not the customer's euros


def test_an_older_event_while_stripe_is_unreachable_is_retried_not_refused(stripe_backend: Stripe) -> None:
    backend, fake = stripe_backend
    api = Api(backend.url).register()
    session_id = api.checkout("standard")["sessionId"]
    _adaptive(fake, session_id)
    fake.event_api_version = "2024-06-20"
    event = fake.pay(session_id, deliver=False)
    fake.fault("error", status=500, path="/v1/checkout/sessions/*")
    assert fake.deliver(event) == [503]  # Stripe retries it
    assert api.balance() == 0
    assert backend.query("SELECT COUNT(*) AS n FROM webhook_events")[0]["n"] == 0
    fake.clear_faults()
    assert fake.deliver(event) == [200]
    assert api.balance() == 550


# --- stripe-setup ---------------------------------------------------------------------------------------


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeStripe]:
    with FakeStripe(api_key=STRIPE_KEY, webhook_secret=WEBHOOK_SECRET) as fake:
        for name in ("CREDITDESK_PUBLIC_URL", "CREDITDESK_DATABASE_URL"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("STRIPE_SECRET_KEY", STRIPE_KEY)
        monkeypatch.setenv("STRIPE_WEBHOOK_SECRET", WEBHOOK_SECRET)
        monkeypatch.setenv("STRIPE_API_BASE", fake.url)
        yield fake


def test_stripe_setup_creates_the_endpoint_once_and_prints_its_secret_once(
    fake: FakeStripe, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["stripe-setup", "--url", "https://credits.example.com/"]) == 0
    out = capsys.readouterr().out
    [endpoint] = fake.webhook_endpoints.values()
    assert endpoint["url"] == "https://credits.example.com/api/webhooks/stripe"
    assert endpoint["api_version"] == STRIPE_API_VERSION
    assert sorted(endpoint["enabled_events"]) == sorted(webhooks.HANDLED)
    secret = out.strip().splitlines()[-1]
    assert secret.startswith("whsec_") and out.count("whsec_") == 1

    assert cli.main(["stripe-setup", "--url", "https://credits.example.com"]) == 0  # checked, not made again
    again = capsys.readouterr().out
    assert "is set up" in again and "whsec_" not in again and len(fake.webhook_endpoints) == 1


def test_stripe_setup_says_what_differs_in_an_endpoint_made_by_hand(
    fake: FakeStripe, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    fake.webhook_endpoints["we_hand"] = {
        "id": "we_hand", "object": "webhook_endpoint", "api_version": "2024-06-20", "application": None,
        "created": 1, "description": None, "livemode": False, "metadata": {}, "status": "enabled",
        "url": "https://credits.example.com/api/webhooks/stripe",
        "enabled_events": ["checkout.session.completed", "customer.created"],
    }
    monkeypatch.setenv("CREDITDESK_PUBLIC_URL", "https://credits.example.com")
    assert cli.main(["stripe-setup"]) == 1
    out = capsys.readouterr().out
    assert "its API version is 2024-06-20, not " + STRIPE_API_VERSION in out
    assert "it does not send charge.dispute.closed" in out and "it also sends customer.created" in out
    assert "whsec_" not in out and len(fake.webhook_endpoints) == 1


@pytest.mark.parametrize(("env", "args", "says"), [
    ({"STRIPE_SECRET_KEY": "", "STRIPE_WEBHOOK_SECRET": ""}, ["--url", "https://x.example"], "needs STRIPE_SECRET_KEY"),
    ({}, [], "needs the backend's public URL"),
    ({}, ["--url", "credits.example.com"], "needs the backend's public URL"),
])
def test_stripe_setup_refuses_what_it_cannot_use_in_one_line(
    fake: FakeStripe, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
    env: dict[str, str], args: list[str], says: str,
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert cli.main(["stripe-setup", *args]) == 2
    err = capsys.readouterr().err
    assert says in err and len(err.strip().splitlines()) == 1 and fake.webhook_endpoints == {}
