"""Catching up with Stripe: events that never reached the endpoint are read back from the Events API.

The Stripe-compatible server keeps every event in its Events API whether or not it delivered it, and can
drop chosen webhooks; `creditdesk-backend reconcile` (and `serve` on its interval) must repair the rest.
"""

from __future__ import annotations

import json
import threading
import time

from tests.conftest import SHARED_ENV, STRIPE_KEY, WEBHOOK_SECRET
from tests.helpers.api import Api
from tests.helpers.backend import BackendProcess
from tests.helpers.stripe_server import FakeStripe

Stripe = tuple[BackendProcess, FakeStripe]


def test_reconcile_repairs_payments_refunds_and_expiries_that_were_never_delivered(stripe_backend: Stripe) -> None:
    backend, fake = stripe_backend
    api = Api(backend.url).register()
    pro, standard, starter = (api.checkout(p)["sessionId"] for p in ("pro", "standard", "starter"))
    with fake.drop_webhooks():  # the endpoint is down; Stripe keeps the events
        fake.pay(pro)
        fake.pay(standard)
        fake.create_refund(standard, 1250, status="pending")  # 550 * 1250 // 2500 = 275 credits back
        fake.expire(starter)
    fake.wait_deliveries()
    assert api.balance() == 0 and len(fake.dropped) >= 5

    r = backend.admin("reconcile", "--since", "72h")
    assert r.returncode == 0, r.stderr
    assert "checkout.session.completed  -> granted" in r.stdout
    assert api.balance() == 1200 + 550 - 275
    statuses = {o["sessionId"]: o["status"] for o in json.loads(backend.admin("user", api.user["email"], "--json")
                                                                     .stdout)["orders"]}
    assert statuses == {pro: "paid", standard: "paid", starter: "expired"}

    again = json.loads(backend.admin("reconcile", "--json").stdout)  # safe to run again: nothing left to do
    assert again["eventsApplied"] == [] and again["ordersChanged"] == [] and again["eventsSeen"] >= 5
    assert api.balance() == 1200 + 550 - 275


def test_reconcile_while_the_webhooks_arrive_applies_each_event_once(stripe_backend: Stripe) -> None:
    backend, fake = stripe_backend
    api = Api(backend.url).register()
    sessions = [api.checkout("starter")["sessionId"] for _ in range(8)]
    with fake.drop_webhooks():
        events = [fake.pay(s) for s in sessions]
        for s in sessions[:4]:
            fake.create_refund(s, 123)  # 100 * 123 // 500 = 24 credits back each
    fake.wait_deliveries()
    results: list[int] = []
    runner = threading.Thread(target=lambda: results.append(backend.admin("reconcile").returncode))
    runner.start()
    fake.deliver_events(list(fake.events.values()), times=2, shuffle=7)  # Stripe's retries, racing it
    runner.join()
    assert results == [0] and len(events) == 8
    assert api.balance() == 8 * 100 - 4 * 24
    assert [t["type"] for t in api.transactions()].count("purchase") == 8


def test_a_wrong_signing_secret_shows_up_for_support_and_reconcile_heals_it(stripe_backend: Stripe) -> None:
    backend, fake = stripe_backend
    api = Api(backend.url).register()
    session_id = api.checkout("standard")["sessionId"]
    with fake.drop_webhooks(wrong_secret=True):
        fake.pay(session_id)
    fake.wait_deliveries()
    failed = json.loads(backend.admin("events", "--json").stdout)["failedDeliveries"]
    assert failed and failed[0]["outcome"] == "rejected_signature" and failed[0]["signatureValid"] is False
    assert backend.admin("reconcile").returncode == 0
    assert api.balance() == 550


def test_serve_in_stripe_mode_heals_a_webhook_outage_by_itself(backend_factory) -> None:
    with FakeStripe(api_key=STRIPE_KEY, webhook_secret=WEBHOOK_SECRET) as fake:
        backend = backend_factory({
            **SHARED_ENV, "STRIPE_SECRET_KEY": STRIPE_KEY, "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "STRIPE_API_BASE": fake.url, "CREDITDESK_RECONCILE_INTERVAL": "1",
        })
        fake.webhook_url = f"{backend.url}/api/webhooks/stripe"
        api = Api(backend.url).register()
        session_id = api.checkout("pro")["sessionId"]
        with fake.drop_webhooks():
            fake.pay(session_id)
            fake.open_dispute(session_id, 2500)  # half: 600 credits held
        deadline = time.monotonic() + 30
        while api.balance() != 600 and time.monotonic() < deadline:  # nobody asks: no verify, no page
            time.sleep(0.2)
        assert api.balance() == 600
        assert "reconcile trigger=interval" in backend.log_with("reconcile trigger=interval")
        assert backend.ledger_problems() == []


def test_reconcile_refuses_a_bad_period_in_one_line_and_caps_it_at_30_days(stripe_backend: Stripe) -> None:
    backend, _ = stripe_backend
    bad = backend.admin("reconcile", "--since", "soon")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "72h" in bad.stderr
    capped = backend.admin("reconcile", "--since", "90d")
    assert capped.returncode == 0 and "30 days" in capped.stderr
