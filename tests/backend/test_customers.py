"""One payment customer per user (migration 0009): made at the first checkout, idempotently, and named by every
Checkout Session after it, so that the buyer's details and receipts stay together at Stripe; the stub the same."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.conftest import SHARED_ENV, STRIPE_KEY, WEBHOOK_SECRET
from tests.helpers.api import Api
from tests.helpers.backend import BackendProcess
from tests.helpers.stripe_server import FakeStripe


def test_stripe_mode_makes_one_customer_per_user_and_every_session_names_it(
    stripe_backend: tuple[BackendProcess, FakeStripe],
) -> None:
    backend, fake = stripe_backend
    alice, bob = Api(backend.url).register(), Api(backend.url).register()
    with ThreadPoolExecutor(4) as pool:  # four checkouts at once, before any customer is known
        sessions = list(pool.map(lambda _: alice.checkout("starter")["sessionId"], range(4)))
    sessions.append(alice.checkout("pro")["sessionId"])
    named = {fake.sessions[s]["customer"] for s in sessions}
    assert len(named) == 1 and fake.sessions[sessions[0]]["customer_email"] is None
    [customer] = named
    assert fake.customers[customer]["email"] == alice.user["email"]
    assert fake.customers[customer]["metadata"] == {"userId": str(alice.user["id"])}
    other = fake.sessions[bob.checkout("starter")["sessionId"]]["customer"]
    assert other != customer and fake.customers[other]["email"] == bob.user["email"]
    assert len(fake.customers) == 2
    stored = backend.query("SELECT customer_id FROM users ORDER BY id")
    assert [row["customer_id"] for row in stored] == [customer, other]


def test_stub_mode_keeps_the_same_shape(stub_backend: BackendProcess) -> None:
    api = Api(stub_backend.url).register()
    first, second = api.checkout("starter"), api.checkout("pro")
    rows = stub_backend.query("SELECT data FROM stub_sessions WHERE id IN (?, ?)", first["sessionId"],
                              second["sessionId"])
    customers = {json.loads(row["data"])["customer"] for row in rows}
    assert customers == {row["customer_id"] for row in stub_backend.query(
        "SELECT customer_id FROM users WHERE id = ?", api.user["id"])}
    assert len(customers) == 1 and next(iter(customers)).startswith("cus_stub_")


@pytest.mark.engines("sqlite")
def test_a_stub_customer_is_replaced_by_a_stripe_one_when_the_server_moves_to_stripe(
    backend_factory,  # type: ignore[no-untyped-def]
) -> None:
    stub = backend_factory(SHARED_ENV, "stub")
    api = Api(stub.url).register()
    api.checkout("starter")
    stub.stop()
    with FakeStripe(api_key=STRIPE_KEY, webhook_secret=WEBHOOK_SECRET) as fake:
        env = {**SHARED_ENV, "STRIPE_SECRET_KEY": STRIPE_KEY, "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
               "STRIPE_API_BASE": fake.url}
        stripe = BackendProcess(stub.tmp, env).start()
        try:
            session = Api(stripe.url, api.token).checkout("starter")["sessionId"]
            customer = fake.sessions[session]["customer"]
            assert customer in fake.customers and not customer.startswith("cus_stub_")
        finally:
            stripe.stop()
