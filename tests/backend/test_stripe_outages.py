"""Stripe slow, down or answering nonsense: what does not need Stripe never waits on it, and what does
answers a clear 503 (or a 502 for a refusal for good) within about ten seconds.

What is answered before the database is written, and the calls made to Stripe, are the same on either engine:
those run once, on SQLite (``engines`` markers). The bounds on time here are coarse on purpose (a hanging Stripe
call used to hold a thread for about 240 s): they tell "waited on Stripe" from "did not", not how fast anything is.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests

from backend.catalogue import Pack
from backend.errors import PaymentProviderRejected, PaymentProviderUnavailable
from backend.payments.base import CheckoutRequest
from backend.payments.gateway import ProviderGateway
from backend.payments.stripe_provider import StripeProvider
from tests.conftest import STRIPE_KEY, WEBHOOK_SECRET
from tests.helpers.api import Api
from tests.helpers.backend import BackendProcess
from tests.helpers.stripe_server import FakeStripe

SESSION_GETS = "/v1/checkout/sessions/*"
STRIPE_BUDGET = 12.0  # seconds: the 10 s deadline and some slack for a busy machine
NO_WAIT = 3.0  # seconds: far below one hanging Stripe call (8.5 s), far above a normal answer


def timed(call: Callable[[], requests.Response]) -> tuple[requests.Response, float]:
    began = time.monotonic()
    response = call()
    return response, time.monotonic() - began


def assert_unavailable(r: requests.Response) -> None:
    assert r.status_code == 503, r.text
    assert r.json()["error"]["code"] == "payment_provider_unavailable"
    assert 1 <= int(r.headers["Retry-After"]) <= 60


def health(backend: BackendProcess) -> dict[str, Any]:
    r = requests.get(f"{backend.url}/api/health", timeout=NO_WAIT)
    assert r.status_code == 200
    return r.json()


def test_a_hanging_stripe_holds_up_nothing_else(stripe_backend: tuple[BackendProcess, FakeStripe]) -> None:
    backend, fake = stripe_backend
    fake.webhook_url = None  # events below are delivered by hand
    buyers = [Api(backend.url).register() for _ in range(6)]
    pending = buyers[0].checkout("starter")["sessionId"]
    fake.fault("hang")  # every API call: accepted, never answered

    # 48 requests that need Stripe at once: more than the server's whole shared thread pool (40).
    with ThreadPoolExecutor(48) as pool:
        began = time.monotonic()
        stuck = [pool.submit(timed, lambda api=api: api.post("/api/billing/checkout", json={"packId": "pro"}))
                 for api in buyers for _ in range(8)]
        time.sleep(1)  # they are all waiting on Stripe now

        # Meanwhile, everything that does not need Stripe answers at once.
        assert timed(lambda: requests.get(f"{backend.url}/api/health", timeout=NO_WAIT))[1] < NO_WAIT
        newcomer = Api(backend.url)
        r, seconds = timed(lambda: newcomer.post("/api/auth/register", json={
            "email": "newcomer@example.com", "password": "correct horse battery"}))
        assert r.status_code == 201 and seconds < NO_WAIT
        r, seconds = timed(lambda: newcomer.post("/api/auth/login", json={
            "email": "newcomer@example.com", "password": "correct horse battery"}))
        assert r.status_code == 200 and seconds < NO_WAIT
        for path in ("/api/credits/balance", "/api/credits/transactions", "/api/billing/packs"):
            r, seconds = timed(lambda path=path: buyers[1].get(path))
            assert r.status_code == 200 and seconds < NO_WAIT, path
        r, seconds = timed(lambda: buyers[1].post("/api/credits/spend", json={"amount": 5, "idempotencyKey": "k1"}))
        assert r.status_code == 402 and seconds < NO_WAIT
        event = fake.make_event("customer.created", {"id": "cus_123", "object": "customer"})
        body = fake.payload(event)
        r, seconds = timed(lambda: requests.post(f"{backend.url}/api/webhooks/stripe", data=body, timeout=NO_WAIT,
                                                 headers={"Stripe-Signature": fake.sign(body)}))
        assert r.status_code == 200 and seconds < NO_WAIT

        # Those that need Stripe answer 503 with Retry-After, within the budget, and none is left hanging.
        for future in stuck:
            r, _ = future.result(timeout=60)
            assert_unavailable(r)
        assert time.monotonic() - began < STRIPE_BUDGET + 2

    # Stripe keeps failing: the breaker is open, checks fail fast and /api/health says so.
    calls = fake.calls()
    r, seconds = timed(lambda: buyers[0].verify(pending))
    assert_unavailable(r)
    assert seconds < NO_WAIT and fake.calls() == calls
    state = health(backend)
    assert state["status"] == "ok" and state["payments"] == "stripe"
    assert state["paymentProvider"]["state"] == "unavailable" and state["paymentProvider"]["retryAfter"] >= 1
    # The success page still answers, with the payment as we know it, rather than an error.
    r = requests.get(f"{backend.url}/account/credits/success", params={"session_id": pending}, timeout=NO_WAIT)
    assert r.status_code == 200 and "being confirmed" in r.text
    fake.clear_faults()
    assert backend.query("SELECT COUNT(*) AS n FROM orders")[0]["n"] == 1  # only the one made before


def checkout_request(order_id: str) -> CheckoutRequest:
    return CheckoutRequest(
        order_id=order_id, user_id=1, user_email="a@example.com", pack=Pack("starter", "Starter", 100, 500, "usd"),
        success_url="http://127.0.0.1:9/s", cancel_url="http://127.0.0.1:9/c")


def test_a_burst_of_checkouts_on_a_slow_but_working_stripe_is_served_not_refused() -> None:
    """More checkouts at once than the gateway has threads: the others wait for a thread, within the deadline."""
    with FakeStripe(api_key=STRIPE_KEY, webhook_secret=WEBHOOK_SECRET) as fake:
        gateway = ProviderGateway(StripeProvider(STRIPE_KEY, fake.url), workers=4, waiting=32)
        fake.fault("hang", delay=0.3)  # every call answers, after 0.3 s

        async def burst() -> list[Any]:
            return await asyncio.gather(*(gateway.create_checkout(checkout_request(f"ord_burst_{n}"))
                                          for n in range(20)))

        try:
            sessions = asyncio.run(burst())
        finally:
            gateway.close()
        assert len({session.id for session in sessions}) == 20
        assert gateway.health() == {"state": "available"}


def test_calls_beyond_the_waiting_room_are_refused_at_once_and_a_call_given_up_on_never_starts() -> None:
    with FakeStripe(api_key=STRIPE_KEY, webhook_secret=WEBHOOK_SECRET) as fake:
        gateway = ProviderGateway(StripeProvider(STRIPE_KEY, fake.url), workers=1, waiting=1, deadline=0.5)
        fake.fault("hang", delay=2.0)

        async def scenario() -> None:
            running = asyncio.ensure_future(gateway.create_checkout(checkout_request("ord_running")))
            waiting = asyncio.ensure_future(gateway.create_checkout(checkout_request("ord_waiting")))
            await asyncio.sleep(0.1)
            began = time.monotonic()
            with pytest.raises(PaymentProviderUnavailable) as refused:
                await gateway.create_checkout(checkout_request("ord_refused"))
            assert time.monotonic() - began < 0.4 and refused.value.retry_after >= 1
            for call in (running, waiting):
                with pytest.raises(PaymentProviderUnavailable):
                    await call
            await asyncio.sleep(2.5)  # the running call's answer comes and goes; the waiting one was dropped

        try:
            asyncio.run(scenario())
        finally:
            gateway.close()
        assert fake.calls("/v1/checkout/sessions", "POST") == 1


def test_the_breaker_opens_fails_fast_and_closes_again(tmp_path: Path) -> None:
    with FakeStripe(api_key=STRIPE_KEY, webhook_secret=WEBHOOK_SECRET) as fake:
        provider = StripeProvider(STRIPE_KEY, fake.url)
        session_id = provider.create_checkout(CheckoutRequest(
            order_id="ord_breaker", user_id=1, user_email="a@example.com",
            pack=Pack("starter", "Starter", 100, 500, "usd"),
            success_url="http://127.0.0.1:9/s", cancel_url="http://127.0.0.1:9/c")).id
        gateway = ProviderGateway(provider, failure_threshold=3, open_seconds=1.0, session_ttl=0)

        async def scenario() -> None:
            before = fake.calls()
            fake.fault("error", status=500)
            for _ in range(3):
                with pytest.raises(PaymentProviderUnavailable):
                    await gateway.retrieve_session(session_id)
            calls = fake.calls()
            assert calls - before == 3 * 2  # each call tried twice (one retry), no more
            with pytest.raises(PaymentProviderUnavailable) as failing_fast:
                await gateway.retrieve_session(session_id)
            assert fake.calls() == calls and 1 <= failing_fast.value.retry_after <= 2
            assert gateway.health()["state"] == "unavailable"
            fake.clear_faults()
            await asyncio.sleep(1.1)
            assert gateway.health()["state"] == "recovering"
            assert (await gateway.retrieve_session(session_id)).id == session_id
            assert gateway.health() == {"state": "available"}

        try:
            asyncio.run(scenario())
        finally:
            gateway.close()


@pytest.mark.engines("sqlite")  # the HTTP shape of the answer or of the calls to Stripe
def test_a_permanent_refusal_is_not_try_again(stripe_backend: tuple[BackendProcess, FakeStripe]) -> None:
    backend, fake = stripe_backend
    api = Api(backend.url).register()
    fake.fault("error", status=400, path="/v1/checkout/sessions", method="POST")
    r = api.post("/api/billing/checkout", json={"packId": "starter"})
    assert r.status_code == 502 and "Retry-After" not in r.headers
    assert r.json()["error"]["code"] == "payment_provider_rejected"
    assert fake.calls("/v1/checkout/sessions", "POST") == 1  # not retried
    assert backend.query("SELECT COUNT(*) AS n FROM orders")[0]["n"] == 0
    assert health(backend)["paymentProvider"]["state"] == "available"  # Stripe is up; it said no


@pytest.mark.engines("sqlite")  # the HTTP shape of the answer or of the calls to Stripe
@pytest.mark.parametrize("kind", ["list", "html"])
def test_an_answer_that_is_not_a_session_is_503(stripe_backend: tuple[BackendProcess, FakeStripe], kind: str) -> None:
    backend, fake = stripe_backend
    api = Api(backend.url).register()
    session_id = api.checkout("starter")["sessionId"]
    fake.fault(kind)
    assert_unavailable(api.post("/api/billing/checkout", json={"packId": "starter"}))
    assert_unavailable(api.verify(session_id))
    r = requests.get(f"{backend.url}/account/credits/success", params={"session_id": session_id}, timeout=30)
    assert r.status_code == 200 and "being confirmed" in r.text
    fake.clear_faults()
    assert "internal_error" not in backend.log() and "Traceback" not in backend.log()


@pytest.mark.engines("sqlite")  # the HTTP shape of the answer or of the calls to Stripe
def test_sixty_hits_on_a_success_page_make_a_handful_of_stripe_calls(
    stripe_backend: tuple[BackendProcess, FakeStripe],
) -> None:
    backend, fake = stripe_backend
    api = Api(backend.url).register()
    session_id = api.checkout("starter")["sessionId"]  # pending: every hit would ask Stripe
    fake.fault("hang", delay=1.0, path=SESSION_GETS, method="GET")  # a slow Stripe, so that hits overlap

    def hit(_: int) -> requests.Response:
        return requests.get(f"{backend.url}/account/credits/success", params={"session_id": session_id},
                            timeout=30)

    with ThreadPoolExecutor(20) as pool:
        pages = list(pool.map(hit, range(60)))
        checks = list(pool.map(lambda _: api.verify(session_id), range(5)))
    statuses = [r.status_code for r in pages]
    assert statuses.count(200) >= 1 and set(statuses) <= {200, 429}
    assert statuses.count(429) >= 40  # per checkout: 12 a minute
    limited = next(r for r in pages if r.status_code == 429)
    assert int(limited.headers["Retry-After"]) >= 1 and "Too many requests" in limited.text
    assert all(r.status_code == 200 and r.json()["status"] == "pending" for r in checks)
    assert fake.calls(SESSION_GETS, "GET") <= 4


@pytest.mark.engines("sqlite")  # the HTTP shape of the answer or of the calls to Stripe
def test_the_success_and_cancel_pages_are_limited_per_address(backend_factory) -> None:
    backend = backend_factory()
    statuses = [requests.get(f"{backend.url}/account/credits/{page}", params={key: f"cs_nothing_{n}"},
                             timeout=10).status_code
                for n in range(70) for page, key in (("success", "session_id"), ("cancel", "order_id"))]
    assert statuses[:100] == [404] * 100 and statuses[-1] == 429


@pytest.mark.subprocess  # the SDK runs `uname -p` once, for its User-Agent, in a process that has not yet
def test_an_object_stripe_does_not_have_is_none_and_any_other_refusal_is_an_error() -> None:
    """A charge, a PaymentIntent or an invoice that Stripe has not got (404 resource_missing) is an answer: None.
    Any other failure on the way to it is no answer about the object, and is raised."""
    with FakeStripe(api_key=STRIPE_KEY, webhook_secret=WEBHOOK_SECRET) as fake:
        provider = StripeProvider(STRIPE_KEY, fake.url)
        lookups: list[Callable[[], object]] = [
            lambda: provider.payment_of_charge("ch_missing"),
            lambda: provider.saved_payment_method("cs_missing", "pi_missing"),
            lambda: provider.invoice_links("in_missing"),
        ]
        assert [lookup() for lookup in lookups] == [None, None, None]
        fake.fault("error", status=400)  # a refusal for good, not "no such object": not retried
        for lookup in lookups:
            with pytest.raises(PaymentProviderRejected):
                lookup()
