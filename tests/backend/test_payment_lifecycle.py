"""After the money moves, end to end: the real backend, the real stripe SDK, signed webhooks from the
Stripe-compatible server. The figures are those Stripe's own fixtures and `stripe trigger` produce."""

from __future__ import annotations

import json

from tests.helpers.api import Api
from tests.helpers.backend import BackendProcess
from tests.helpers.stripe_server import FakeStripe

Stripe = tuple[BackendProcess, FakeStripe]


def bought(backend: BackendProcess, fake: FakeStripe, pack: str = "pro") -> tuple[Api, str]:
    api = Api(backend.url).register()
    session_id = api.checkout(pack)["sessionId"]
    fake.pay(session_id)
    assert api.verify(session_id).json()["status"] == "paid"
    return api, session_id


def status(api: Api, session_id: str) -> str:
    return api.verify(session_id).json()["status"]


def test_a_lost_dispute_takes_the_credits_and_the_order_says_charged_back(stripe_backend: Stripe) -> None:
    backend, fake = stripe_backend
    api, session_id = bought(backend, fake)  # 1,200 credits for 50.00 USD
    dispute = fake.open_dispute(session_id).object
    fake.wait_deliveries()
    assert api.balance() == 0 and status(api, session_id) == "disputed"
    fake.close_dispute(dispute["id"], "lost")
    fake.wait_deliveries()
    assert api.balance() == 0 and status(api, session_id) == "charged_back"
    types = [t["type"] for t in api.transactions()]
    assert types == ["dispute", "purchase"]
    assert api.transactions()[0]["reference"] == dispute["id"]


def test_a_won_dispute_gives_the_credits_back(stripe_backend: Stripe) -> None:
    backend, fake = stripe_backend
    api, session_id = bought(backend, fake)
    dispute = fake.open_dispute(session_id, 1337).object  # part of 5,000: 1200 * 1337 // 5000 = 320 held
    fake.wait_deliveries()
    assert api.balance() == 1200 - 320
    fake.close_dispute(dispute["id"], "won")
    fake.wait_deliveries()
    assert api.balance() == 1200 and status(api, session_id) == "paid"
    assert [t["type"] for t in api.transactions()] == ["dispute_reversal", "dispute", "purchase"]


def test_a_refund_that_fails_gives_the_credits_back(stripe_backend: Stripe) -> None:
    backend, fake = stripe_backend
    api, session_id = bought(backend, fake)
    refund = fake.create_refund(session_id, 2500, status="pending").object
    fake.wait_deliveries()
    assert api.balance() == 600
    fake.settle_refund(refund["id"], "failed")
    fake.wait_deliveries()
    assert api.balance() == 1200 and status(api, session_id) == "paid"
    assert [t["type"] for t in api.transactions()] == ["refund_reversal", "refund", "purchase"]


def test_refund_created_alone_claws_back(stripe_backend: Stripe) -> None:
    backend, fake = stripe_backend
    api, session_id = bought(backend, fake)
    fake.create_refund(session_id, events="refund")  # no charge.refunded at all
    fake.wait_deliveries()
    assert api.balance() == 0 and status(api, session_id) == "refunded"


def test_a_live_mode_event_under_a_test_key_changes_nothing(stripe_backend: Stripe) -> None:
    backend, fake = stripe_backend
    api, session_id = bought(backend, fake)
    change = fake.create_refund(session_id, livemode=True)
    fake.wait_deliveries()
    assert api.balance() == 1200
    r = backend.admin("events", "--session", session_id, "--json")
    outcomes = {e["id"]: (e["outcome"], e["detail"]) for e in json.loads(r.stdout)["events"]}
    for event in change.events:
        outcome, detail = outcomes[event["id"]]
        assert outcome == "refused" and "live-mode" in detail


def test_a_refund_in_another_currency_changes_nothing(stripe_backend: Stripe) -> None:
    backend, fake = stripe_backend
    api, session_id = bought(backend, fake)
    fake.create_refund(session_id, currency="eur")
    fake.wait_deliveries()
    assert api.balance() == 1200 and status(api, session_id) == "paid"
