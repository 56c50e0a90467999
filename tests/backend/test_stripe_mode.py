"""Stripe mode, end to end through the real stripe SDK and signed webhooks from a Stripe-compatible server.

Every scenario ends with the ledger checked (the ``stripe_backend`` fixture) and the secret key and
webhook secret absent from the backend's log. The money's paths run on both engines; what is refused before the
database is asked, or is about what goes to Stripe, runs once, on SQLite (``engines`` markers).
"""

from __future__ import annotations

import json
import threading
import time

import pytest
import requests

from tests.conftest import STRIPE_KEY
from tests.helpers.api import Api
from tests.helpers.backend import BackendProcess
from tests.helpers.pages import handoff_url, outcome
from tests.helpers.stripe_server import FakeStripe

RETURN_URL = "http://127.0.0.1:45679/callback"


def grants(backend: BackendProcess, session_id: str) -> int:
    return backend.query("SELECT COUNT(*) AS n FROM ledger_entries WHERE reference = ? AND type = 'purchase'",
                         session_id)[0]["n"]


def success_page(backend: BackendProcess, session_id: str) -> requests.Response:
    return requests.get(f"{backend.url}/account/credits/success", params={"session_id": session_id},
                        allow_redirects=False, timeout=30)


@pytest.mark.engines("sqlite")  # the HTTP shape of the answer or of the calls to Stripe
def test_health_and_the_checkout_session_we_create(stripe_backend: tuple[BackendProcess, FakeStripe]) -> None:
    backend, fake = stripe_backend
    assert requests.get(f"{backend.url}/api/health", timeout=5).json()["payments"] == "stripe"
    api = Api(backend.url).register()
    checkout = api.checkout("pro", returnUrl=RETURN_URL, state="abc")
    session = fake.sessions[checkout["sessionId"]]
    assert checkout["url"] == session["url"]
    assert session["mode"] == "payment" and session["client_reference_id"] == str(api.user["id"])
    assert session["amount_total"] == 5000 and session["currency"] == "usd"
    meta = session["metadata"]
    assert meta["userId"] == str(api.user["id"]) and meta["packId"] == "pro" and meta["credits"] == "1200"
    assert meta["type"] == "credit_purchase" and meta["orderId"].startswith("ord_")
    assert session["success_url"] == f"{backend.url}/account/credits/success?session_id={{CHECKOUT_SESSION_ID}}"
    create = next(r for r in fake.requests if r["method"] == "POST" and r["path"] == "/v1/checkout/sessions")
    assert create["headers"].get("Idempotency-Key")


def test_happy_path_webhook_then_verify(stripe_backend: tuple[BackendProcess, FakeStripe]) -> None:
    backend, fake = stripe_backend
    api = Api(backend.url).register()
    session_id = api.checkout("standard")["sessionId"]
    assert api.verify(session_id).json()["status"] == "pending"
    fake.pay(session_id)
    assert fake.deliveries[-1][1] == 200
    assert api.verify(session_id).json() == {"sessionId": session_id, "status": "paid", "creditsGranted": 550,
                                             "balance": 550, "payment": {"amount": 2500, "currency": "usd",
                                                                         "listPrice": 2500, "discount": 0, "tax": 0}}
    log = backend.log_with("event=checkout.session.completed", "outcome=granted")
    assert "event=checkout.session.completed" in log and "outcome=granted" in log


def test_verify_before_the_webhook_then_the_late_webhook(stripe_backend: tuple[BackendProcess, FakeStripe]) -> None:
    backend, fake = stripe_backend
    api = Api(backend.url).register()
    session_id = api.checkout("starter")["sessionId"]
    event = fake.pay(session_id, deliver=False)
    assert api.verify(session_id).json()["status"] == "paid"  # confirmed with Stripe, no webhook yet
    assert fake.deliver(event) == [200]
    assert api.balance() == 100 and grants(backend, session_id) == 1


def test_success_page_grants_when_the_webhook_never_comes(stripe_backend: tuple[BackendProcess, FakeStripe]) -> None:
    backend, fake = stripe_backend
    api = Api(backend.url).register()
    checkout = api.checkout("starter", returnUrl=RETURN_URL, state="st8")
    fake.pay(checkout["sessionId"], deliver=False)
    r = success_page(backend, checkout["sessionId"])
    assert r.status_code == 200 and outcome(r.text) == "paid"
    assert handoff_url(r.text) == f"{RETURN_URL}?session_id={checkout['sessionId']}&state=st8&status=paid"
    assert api.balance() == 100


def test_one_grant_under_20_concurrent_deliveries_verify_and_success_page(
    stripe_backend: tuple[BackendProcess, FakeStripe],
) -> None:
    backend, fake = stripe_backend
    api = Api(backend.url).register()
    session_id = api.checkout("pro")["sessionId"]
    event = fake.pay(session_id, deliver=False)
    results: dict[str, list[int]] = {"verify": [], "success": []}
    go = threading.Event()

    def verify() -> None:
        go.wait()
        results["verify"].append(Api(backend.url, api.token).verify(session_id).status_code)

    def success() -> None:
        go.wait()
        results["success"].append(success_page(backend, session_id).status_code)

    side = [threading.Thread(target=f) for f in (verify, verify, verify, success, success, success)]
    for t in side:
        t.start()
    go.set()
    statuses = fake.deliver(event, times=20, concurrency=20)
    for t in side:
        t.join()
    assert statuses == [200] * 20
    assert results == {"verify": [200] * 3, "success": [200] * 3}
    assert grants(backend, session_id) == 1 and api.balance() == 1200
    assert backend.query("SELECT COUNT(*) AS n FROM webhook_events WHERE id = ?", event["id"])[0]["n"] == 1


def test_async_payment_success_and_failure(stripe_backend: tuple[BackendProcess, FakeStripe]) -> None:
    backend, fake = stripe_backend
    api = Api(backend.url).register()
    good, bad = api.checkout("starter")["sessionId"], api.checkout("standard")["sessionId"]
    fake.pay_async(good)
    fake.pay_async(bad)
    assert api.verify(good).json()["status"] == "pending" and api.balance() == 0
    fake.async_succeed(good)
    fake.async_fail(bad)
    assert api.verify(good).json()["status"] == "paid"
    assert api.verify(bad).json() == {"sessionId": bad, "status": "failed", "creditsGranted": 0, "balance": 100}


def test_expiry(stripe_backend: tuple[BackendProcess, FakeStripe]) -> None:
    backend, fake = stripe_backend
    api = Api(backend.url).register()
    session_id = api.checkout("starter")["sessionId"]
    fake.expire(session_id)
    assert api.verify(session_id).json()["status"] == "expired"
    other = api.checkout("starter")["sessionId"]
    fake.expire(other, deliver=False)  # the webhook is lost: verify asks Stripe
    assert api.verify(other).json()["status"] == "expired" and api.balance() == 0


@pytest.mark.engines("sqlite")  # the HTTP shape of the answer or of the calls to Stripe
def test_cancel_page_asks_and_its_button_expires_the_session(stripe_backend: tuple[BackendProcess, FakeStripe]) -> None:
    backend, fake = stripe_backend
    api = Api(backend.url).register()
    checkout = api.checkout("starter", returnUrl=RETURN_URL, state="s")
    cancel_url = fake.sessions[checkout["sessionId"]]["cancel_url"]
    for _ in range(3):  # a browser's prefetch, a link scanner, the customer: a GET changes nothing
        asked = requests.get(cancel_url, allow_redirects=False, timeout=30)
        assert asked.status_code == 200 and outcome(asked.text) == "asking" and 'id="confirm-cancel"' in asked.text
        assert handoff_url(asked.text) is None
    assert fake.sessions[checkout["sessionId"]]["status"] == "open"
    assert api.verify(checkout["sessionId"]).json()["status"] == "pending"
    assert fake.calls("/v1/checkout/sessions/*/expire", "POST") == 0
    posted = requests.post(cancel_url, allow_redirects=False, timeout=30)
    assert posted.status_code == 303 and posted.headers["Location"].endswith("&done=cancelled")
    assert posted.headers["Location"].startswith(backend.url + "/account/credits/cancel?order_id=")
    r = requests.get(posted.headers["Location"], allow_redirects=False, timeout=30)
    assert r.status_code == 200 and outcome(r.text) == "cancelled" and "Nothing was charged" in r.text
    assert "status=cancelled" in (handoff_url(r.text) or "")
    fake.wait_deliveries(timeout=10)
    assert fake.sessions[checkout["sessionId"]]["status"] == "expired"
    # Cancelled on the customer's word, then expired once Stripe's checkout.session.expired says so;
    # verify answers from the database either way (a settled order: no call to Stripe).
    calls = len(fake.requests)
    assert api.verify(checkout["sessionId"]).json()["status"] == "expired"
    assert len(fake.requests) == calls


def test_cancel_api_expires_the_session_at_stripe(stripe_backend: tuple[BackendProcess, FakeStripe]) -> None:
    backend, fake = stripe_backend
    api = Api(backend.url).register()
    session_id = api.checkout("starter")["sessionId"]
    r = api.post("/api/billing/cancel", json={"sessionId": session_id})
    # "expired" when Stripe's checkout.session.expired (caused by our expiry) came in first: the same outcome
    assert r.status_code == 200 and r.json()["sessionId"] == session_id
    assert r.json()["status"] in ("cancelled", "expired")
    assert fake.sessions[session_id]["status"] == "expired"  # it can no longer be paid
    fake.wait_deliveries(timeout=10)  # then Stripe's checkout.session.expired: the order state machine's "expired"
    assert api.verify(session_id).json()["status"] in ("cancelled", "expired")
    assert api.post("/api/billing/cancel", json={"sessionId": session_id}).json()["status"] in ("cancelled",
                                                                                               "expired")
    assert api.balance() == 0


@pytest.mark.engines("sqlite")  # the HTTP shape of the answer or of the calls to Stripe
def test_cancel_api_while_stripe_fails_changes_nothing_and_says_retry(
    stripe_backend: tuple[BackendProcess, FakeStripe],
) -> None:
    backend, fake = stripe_backend
    api = Api(backend.url).register()
    session_id = api.checkout("starter")["sessionId"]
    fake.fail_next(6, 500)  # expire and retrieve, each with the SDK's retries
    r = api.post("/api/billing/cancel", json={"sessionId": session_id})
    assert r.status_code == 503 and r.json()["error"]["code"] == "payment_provider_unavailable"
    assert int(r.headers["Retry-After"]) >= 1
    assert fake.sessions[session_id]["status"] == "open"
    rows = backend.query("SELECT status FROM orders WHERE session_id = ?", session_id)
    assert [row["status"] for row in rows] == ["pending"]  # the order is as it was


def test_a_checkout_paid_by_bank_debit_still_clearing_cannot_be_cancelled(
    stripe_backend: tuple[BackendProcess, FakeStripe],
) -> None:
    backend, fake = stripe_backend
    api = Api(backend.url).register()
    session_id = api.checkout("standard")["sessionId"]
    fake.pay_async(session_id)  # complete, payment_status unpaid: the debit takes days
    fake.wait_deliveries()
    r = api.post("/api/billing/cancel", json={"sessionId": session_id})
    assert r.status_code == 409 and r.json()["error"]["code"] == "payment_processing"
    assert "can no longer be cancelled" in r.json()["error"]["message"]
    cancel_url = fake.sessions[session_id]["cancel_url"]
    posted = requests.post(cancel_url, allow_redirects=True, timeout=30)  # the cancel page's button too
    assert posted.status_code == 200 and outcome(posted.text) == "processing"
    assert "can no longer be" in posted.text and "cancelled" in posted.text
    assert api.verify(session_id).json()["status"] == "pending"
    fake.async_succeed(session_id)
    fake.wait_deliveries()
    assert api.verify(session_id).json()["status"] == "paid" and api.balance() == 550
    assert [row["status"] for row in backend.query("SELECT status FROM orders")] == ["paid"]


def test_cancel_api_on_a_session_paid_meanwhile_grants_and_answers_paid(
    stripe_backend: tuple[BackendProcess, FakeStripe],
) -> None:
    backend, fake = stripe_backend
    api = Api(backend.url).register()
    session_id = api.checkout("starter")["sessionId"]
    fake.pay(session_id, deliver=False)  # paid, the webhook not in yet
    r = api.post("/api/billing/cancel", json={"sessionId": session_id})
    assert r.status_code == 200 and r.json()["status"] == "paid"
    assert api.balance() == 100 and grants(backend, session_id) == 1


def test_full_refund_delivered_twice_claws_back_once_even_when_spent(
    stripe_backend: tuple[BackendProcess, FakeStripe],
) -> None:
    backend, fake = stripe_backend
    api = Api(backend.url).register()
    session_id = api.checkout("starter")["sessionId"]
    fake.pay(session_id)
    assert api.post("/api/credits/spend", json={"amount": 80, "idempotencyKey": "k"}).json()["balance"] == 20
    event = fake.refund(session_id, deliver=False)
    assert fake.deliver(event, times=2) == [200, 200]
    assert api.balance() == -80
    assert api.verify(session_id).json()["status"] == "refunded"
    r = api.post("/api/credits/spend", json={"amount": 1, "idempotencyKey": "k2"})
    assert r.status_code == 402
    assert [t["type"] for t in api.transactions()] == ["refund", "spend", "purchase"]


def test_partial_refunds_each_twice_and_out_of_order(stripe_backend: tuple[BackendProcess, FakeStripe]) -> None:
    backend, fake = stripe_backend
    api = Api(backend.url).register()
    session_id = api.checkout("standard")["sessionId"]  # 550 credits for 2500 cents
    fake.pay(session_id)
    first = fake.refund(session_id, 500, deliver=False)  # 20 %
    second = fake.refund(session_id, 1000, deliver=False)  # 60 % in all
    assert fake.deliver(second, times=2) == [200, 200]
    assert api.balance() == 550 - 330
    assert fake.deliver(first, times=2) == [200, 200]  # older, smaller cumulative amount: nothing more
    assert api.balance() == 220
    fake.refund(session_id)  # the rest
    assert api.balance() == 0 and api.verify(session_id).json()["status"] == "refunded"
    assert [t["amount"] for t in api.transactions() if t["type"] == "refund"] == [-220, -330]


def test_a_refund_event_before_the_payment_event(stripe_backend: tuple[BackendProcess, FakeStripe]) -> None:
    backend, fake = stripe_backend
    api = Api(backend.url).register()
    session_id = api.checkout("starter")["sessionId"]
    paid = fake.pay(session_id, deliver=False)
    fake.refund(session_id)  # arrives first: kept until the payment is known
    assert api.balance() == 0
    fake.deliver(paid)
    assert api.balance() == 0 and grants(backend, session_id) == 1
    assert api.verify(session_id).json()["status"] == "refunded"


@pytest.mark.engines("sqlite")  # the HTTP shape of the answer or of the calls to Stripe
def test_bad_signatures_change_nothing(stripe_backend: tuple[BackendProcess, FakeStripe]) -> None:
    backend, fake = stripe_backend
    api = Api(backend.url).register()
    session_id = api.checkout("starter")["sessionId"]
    event = fake.pay(session_id, deliver=False)
    body = fake.payload(event)
    other_body = fake.payload(fake.make_event("checkout.session.completed", fake.sessions[session_id]))
    forged = fake.sign(body, secret="whsec_not_the_secret_at_all")
    stale = fake.sign(body, timestamp=int(time.time()) - 301)
    for payload, header in ((body, forged), (body, stale), (body, fake.sign(other_body)), (body, None),
                            (body, "garbage"), (body + b" ", fake.sign(body))):
        assert fake.post_webhook(payload, header) == 400
    r = requests.post(fake.webhook_url, data=body, headers={"Stripe-Signature": forged}, timeout=10)
    assert r.json()["error"]["code"] == "invalid_signature"
    assert backend.query("SELECT COUNT(*) AS n FROM webhook_events")[0]["n"] == 0
    assert api.balance() == 0


@pytest.mark.engines("sqlite")  # the HTTP shape of the answer or of the calls to Stripe
def test_a_signed_body_that_is_not_an_event_is_400(stripe_backend: tuple[BackendProcess, FakeStripe]) -> None:
    backend, fake = stripe_backend
    for body in (b"not json", b"[]", b'{"id": "evt_1"}', b'{"id": "evt_2", "type": "checkout.session.completed",'
                 b' "data": {"object": {"object": "charge"}}}'):
        assert fake.post_webhook(body, fake.sign(body)) == 400
    other = fake.make_event("customer.created", {"id": "cus_1", "object": "customer"})
    assert fake.deliver(other) == [200]
    assert backend.query("SELECT outcome FROM webhook_events")[0]["outcome"] == "ignored"


def test_tampered_amount_or_metadata_grants_nothing(stripe_backend: tuple[BackendProcess, FakeStripe]) -> None:
    backend, fake = stripe_backend
    api = Api(backend.url).register()
    session_id = api.checkout("starter")["sessionId"]
    fake.pay(session_id, deliver=False)
    for field, value in (("amount_subtotal", 1), ("currency", "eur"), ("client_reference_id", "999999"),
                         ("metadata", {**fake.sessions[session_id]["metadata"], "credits": "1000000"}),
                         ("metadata", {**fake.sessions[session_id]["metadata"], "type": "donation"})):
        tampered = {**fake.sessions[session_id], field: value}
        assert fake.deliver(fake.make_event("checkout.session.completed", tampered)) == [200]
    assert api.balance() == 0
    assert backend.query("SELECT DISTINCT outcome FROM webhook_events")[0]["outcome"] == "refused"
    fake.sessions[session_id]["metadata"]["credits"] = "1000000"  # what verify reads is checked too
    assert api.verify(session_id).json()["status"] == "pending" and api.balance() == 0
    assert "outcome=refused reason=mismatch" in backend.log_with("outcome=refused reason=mismatch")


@pytest.mark.engines("sqlite")  # the HTTP shape of the answer or of the calls to Stripe
def test_stripe_unreachable_at_checkout_is_503_and_writes_nothing(
    stripe_backend: tuple[BackendProcess, FakeStripe],
) -> None:
    backend, fake = stripe_backend
    api = Api(backend.url).register()
    fake.fail_next(10, status=500)
    r = api.post("/api/billing/checkout", json={"packId": "starter"})
    assert r.status_code == 503 and r.json()["error"]["code"] == "payment_provider_unavailable"
    assert backend.query("SELECT COUNT(*) AS n FROM orders")[0]["n"] == 0
    fake.fail_next(0)


@pytest.mark.engines("sqlite")  # the HTTP shape of the answer or of the calls to Stripe
def test_the_secret_key_is_sent_to_stripe_only(stripe_backend: tuple[BackendProcess, FakeStripe]) -> None:
    backend, fake = stripe_backend
    api = Api(backend.url).register()
    checkout = api.checkout("starter")
    assert fake.requests[-1]["headers"]["Authorization"] == f"Bearer {STRIPE_KEY}"
    answers = [api.get("/api/health").text, requests.get(checkout["url"], timeout=5).text,
               api.verify(checkout["sessionId"]).text, api.transactions().__repr__()]
    assert all(STRIPE_KEY not in answer for answer in answers)


@pytest.mark.subprocess
def test_stripe_mode_refuses_to_start_without_the_webhook_secret(tmp_path) -> None:
    backend = BackendProcess(tmp_path, {"STRIPE_SECRET_KEY": STRIPE_KEY})
    assert backend.refused_to_start() == 2
    assert "STRIPE_WEBHOOK_SECRET" in backend.log() and STRIPE_KEY not in backend.log()


def test_a_promotion_code_or_tax_changes_what_is_paid_not_the_credits(
    stripe_backend: tuple[BackendProcess, FakeStripe],
) -> None:
    backend, fake = stripe_backend
    api = Api(backend.url).register()
    discounted, taxed, free = (api.checkout("standard")["sessionId"] for _ in range(3))
    fake.pay(discounted, discount=833)  # 2500 less a third, rounded to the cent
    fake.pay(taxed, tax=213)
    fake.pay(free, discount=2500)  # the whole price: Stripe takes nothing and makes no payment
    fake.wait_deliveries()
    assert fake.sessions[free]["payment_status"] == "no_payment_required"
    assert api.balance() == 3 * 550
    report = json.loads(backend.admin("user", api.user["email"], "--json").stdout)
    paid = {o["sessionId"]: (o["status"], o["amountPaid"], o["amountDiscount"], o["amountTax"], o["refusal"])
            for o in report["orders"]}
    assert paid == {discounted: ("paid", 1667, 833, 0, None), taxed: ("paid", 2713, 0, 213, None),
                    free: ("paid", 0, 2500, 0, None)}
    text = backend.admin("user", api.user["email"]).stdout
    assert "16.67 USD, -8.33 USD discount" in text and "27.13 USD, 2.13 USD tax" in text
    # A refund of the discounted payment's whole total takes back all of its credits.
    fake.create_refund(discounted, 1667)
    fake.wait_deliveries()
    assert api.balance() == 2 * 550


def test_a_refused_payment_says_why_to_support(stripe_backend: tuple[BackendProcess, FakeStripe]) -> None:
    backend, fake = stripe_backend
    api = Api(backend.url).register()
    session_id = api.checkout("starter")["sessionId"]
    fake.sessions[session_id]["currency"] = "eur"  # not what the order sold
    fake.pay(session_id)
    fake.wait_deliveries()
    assert api.balance() == 0
    text = backend.admin("user", api.user["email"]).stdout
    assert "paid but refused: the session does not match the order: currency" in text


def test_a_signed_event_holding_nul_is_kept_refused_and_answered_200(
    stripe_backend: tuple[BackendProcess, FakeStripe],
) -> None:
    """Stripe retries anything but 2xx for days: an event Creditdesk will never process is answered 200."""
    backend, fake = stripe_backend
    for field in ("id", "type"):
        event = fake.make_event("customer.created", {"id": "cus_1", "object": "customer"}, store=False)
        event[field] = f"{event[field]}\u0000\u001b[2J"
        body = json.dumps(event).encode()
        for _ in range(2):
            r = requests.post(f"{backend.url}/api/webhooks/stripe", data=body, timeout=10,
                              headers={"Stripe-Signature": fake.sign(body), "Content-Type": "application/json"})
            assert r.status_code == 200 and r.json() == {"received": True, "outcome": "refused"}
    api = Api(backend.url).register()
    session_id = api.checkout("starter")["sessionId"]
    paid = fake.pay(session_id, deliver=False)
    paid["data"]["object"]["metadata"]["note"] = "\u0000"
    body = json.dumps(paid).encode()
    r = requests.post(f"{backend.url}/api/webhooks/stripe", data=body, timeout=10,
                      headers={"Stripe-Signature": fake.sign(body), "Content-Type": "application/json"})
    assert r.status_code == 200 and r.json()["outcome"] == "refused" and api.balance() == 0
    # Kept for support as failed deliveries that can never be processed (as reconcile keeps such an event), with
    # their id and type, NUL written out.
    rows = backend.query("SELECT outcome, event_id, event_type, error FROM failed_deliveries ORDER BY id")
    assert [row["outcome"] for row in rows] == ["malformed"] * 5
    assert [row["event_type"] for row in rows[2:4]] == ["customer.created\\x00\x1b[2J"] * 2
    assert rows[0]["event_id"].endswith("\\x00\x1b[2J") and rows[4]["event_id"] == paid["id"]
    assert all("never processed" in row["error"] for row in rows)
    assert backend.query("SELECT COUNT(*) AS n FROM webhook_events")[0]["n"] == 0
    log = backend.log_with("reason=nul")
    assert "\x00" not in log and "[2J" not in log
