"""The Stripe-compatible test server, driven through the real stripe SDK."""

from __future__ import annotations

import http.client
import json
import re
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import stripe

from tests.helpers.stripe_server import FakeStripe, decode_form, fixture, format_amount, stripe_statuses
from tests.helpers.stripe_server.disputes import DISPUTE_CLOSED_STATUSES, DISPUTE_OPEN_STATUSES

API_KEY = "sk_test_creditdesk_0123456789"
SECRET = "whsec_test_creditdesk"


class Receiver:
    """A webhook endpoint on loopback that records raw bodies and headers and answers ``status``."""

    def __init__(self) -> None:
        self.received: list[tuple[bytes, dict[str, str]]] = []
        self.status = 200
        self.delay = 0.0
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            disable_nagle_algorithm = True

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with receiver._lock:
                    receiver.received.append((body, dict(self.headers.items())))
                    receiver.in_flight += 1
                    receiver.max_in_flight = max(receiver.max_in_flight, receiver.in_flight)
                time.sleep(receiver.delay)
                with receiver._lock:
                    receiver.in_flight -= 1
                self.send_response(receiver.status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/api/webhooks/stripe"
        threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True).start()

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(body) for body, _ in self.received]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def fake(receiver: Receiver) -> Iterator[FakeStripe]:
    with FakeStripe(api_key=API_KEY, webhook_secret=SECRET) as f:
        f.webhook_url = receiver.url
        yield f
        assert f.errors == []


@pytest.fixture
def client(fake: FakeStripe) -> stripe.StripeClient:
    return stripe.StripeClient(API_KEY, base_addresses={"api": fake.url})


def session_params(**overrides: Any) -> dict[str, Any]:
    params: dict[str, Any] = {
        "mode": "payment",
        "success_url": "http://127.0.0.1:8787/account/credits/success?session_id={CHECKOUT_SESSION_ID}",
        "cancel_url": "http://127.0.0.1:8787/account/credits/cancel?order=o1",
        "client_reference_id": "7",
        "line_items": [
            {
                "quantity": 1,
                "price_data": {"currency": "usd", "unit_amount": 2500, "product_data": {"name": "Standard"}},
            }
        ],
        "metadata": {
            "userId": 7,
            "packId": "standard",
            "credits": 550,
            "orderId": "o1",
            "type": "credit_purchase",
        },
    }
    params.update(overrides)
    return params


def create(client: stripe.StripeClient, key: str = "order-o1", **overrides: Any) -> Any:
    return client.v1.checkout.sessions.create(
        params=session_params(**overrides), options={"idempotency_key": key}
    )


def raw(fake: FakeStripe, method: str, path: str, headers: dict[str, str] | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(
        fake.url + path, method=method, headers=headers or {}, data=b"" if method == "POST" else None
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def browser(fake: FakeStripe, method: str, path: str) -> tuple[int, dict[str, str], str]:
    """One request as a browser makes it, without following redirects."""
    conn = http.client.HTTPConnection(fake.url.removeprefix("http://"), timeout=5)
    try:
        headers = {"Content-Type": "application/x-www-form-urlencoded"} if method == "POST" else {}
        conn.request(method, path, body=b"" if method == "POST" else None, headers=headers)
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read().decode()
    finally:
        conn.close()


# ---- wire format -------------------------------------------------------------------------------


def test_decode_form_nested_brackets() -> None:
    body = (
        "mode=payment&line_items[0][price_data][currency]=usd&line_items[0][quantity]=2"
        "&line_items[1][price]=price_1&metadata[userId]=7&expand[]=line_items&expand[]=payment_intent"
        "&success_url=http%3A%2F%2Fx%2Fs%3Fid%3D%7BCHECKOUT_SESSION_ID%7D"
    )
    assert decode_form(body) == {
        "mode": "payment",
        "line_items": [{"price_data": {"currency": "usd"}, "quantity": "2"}, {"price": "price_1"}],
        "metadata": {"userId": "7"},
        "expand": ["line_items", "payment_intent"],
        "success_url": "http://x/s?id={CHECKOUT_SESSION_ID}",
    }
    with pytest.raises(ValueError):
        decode_form("a=1&a[b]=2")


def test_format_amount() -> None:
    assert format_amount(2500, "usd") == "$25.00"
    assert format_amount(123456, "eur") == "€1,234.56"
    assert format_amount(500, "jpy") == "¥500"
    assert format_amount(999, "chf") == "9.99 CHF"


# ---- checkout sessions through the SDK ---------------------------------------------------------


def test_create_session_is_stripe_shaped(fake: FakeStripe, client: stripe.StripeClient) -> None:
    before = int(time.time())
    session = create(client)
    assert isinstance(session, stripe.checkout.Session)
    assert session.id.startswith("cs_test_")
    assert session.object == "checkout.session"
    assert (session.mode, session.status, session.payment_status) == ("payment", "open", "unpaid")
    assert session.amount_total == session.amount_subtotal == 2500
    assert session.currency == "usd"
    assert session.client_reference_id == "7"
    assert session.metadata.to_dict() == {
        "userId": "7",
        "packId": "standard",
        "credits": "550",
        "orderId": "o1",
        "type": "credit_purchase",
    }
    assert session.success_url.endswith("session_id={CHECKOUT_SESSION_ID}")  # kept literally
    assert session.url == f"{fake.url}/pay/{session.id}"
    assert session.payment_intent is None
    assert session.livemode is False
    assert before <= session.created <= time.time()
    assert session.expires_at - session.created == 24 * 3600
    assert set(fixture("checkout.session")) <= set(fake.sessions[session.id])

    request = fake.requests[-1]
    assert (request["method"], request["path"]) == ("POST", "/v1/checkout/sessions")
    assert request["params"]["line_items"][0]["price_data"]["product_data"] == {"name": "Standard"}
    assert request["params"]["metadata"]["userId"] == "7"
    assert request["headers"]["idempotency-key"] == "order-o1"  # lookups ignore case
    assert request["headers"]["Authorization"] == f"Bearer {API_KEY}"


def test_totals_sum_line_items_and_retrieve_expands(fake: FakeStripe, client: stripe.StripeClient) -> None:
    items = [
        {"quantity": 3, "price_data": {"currency": "eur", "unit_amount": 400, "product_data": {"name": "A"}}},
        {"quantity": 1, "price": fake.add_price(1000, "eur", name="B")["id"]},
    ]
    session = create(client, line_items=items)
    assert (session.amount_total, session.currency) == (2200, "eur")

    again = client.v1.checkout.sessions.retrieve(session.id, params={"expand": ["line_items"]})
    assert again.id == session.id
    assert [(li.description, li.quantity, li.amount_total) for li in again.line_items.data] == [
        ("A", 3, 1200),
        ("B", 1, 1000),
    ]
    assert fake.requests[-1]["params"] == {"expand": ["line_items"]}


def test_idempotency_key(fake: FakeStripe, client: stripe.StripeClient) -> None:
    first = create(client, key="k-1")
    assert create(client, key="k-1").id == first.id
    assert len(fake.sessions) == 1
    with pytest.raises(stripe.IdempotencyError) as info:
        create(client, key="k-1", client_reference_id="8")
    assert info.value.http_status == 400
    assert create(client, key="k-2").id != first.id


def test_wrong_or_missing_api_key(fake: FakeStripe) -> None:
    bad = stripe.StripeClient("sk_test_wrongwrongwrong1234", base_addresses={"api": fake.url})
    with pytest.raises(stripe.AuthenticationError) as info:
        bad.v1.checkout.sessions.retrieve("cs_test_x")
    assert info.value.http_status == 401
    assert "Invalid API Key provided" in info.value.user_message
    assert "sk_test_wrongwrongwrong1234" not in str(info.value.http_body)
    assert info.value.user_message.endswith("1234")

    status, body = raw(fake, "GET", "/v1/checkout/sessions/cs_test_x")
    assert status == 401
    assert body["error"]["type"] == "invalid_request_error"


def test_unknown_session_is_404_resource_missing(fake: FakeStripe, client: stripe.StripeClient) -> None:
    with pytest.raises(stripe.InvalidRequestError) as info:
        client.v1.checkout.sessions.retrieve("cs_test_nope")
    assert info.value.http_status == 404
    error = info.value.json_body["error"]
    assert error["type"] == "invalid_request_error"
    assert (error["code"], error["param"]) == ("resource_missing", "session")
    assert error["message"] == "No such checkout.session: 'cs_test_nope'"


@pytest.mark.parametrize("missing", ["mode", "success_url", "line_items"])
def test_create_requires_params(client: stripe.StripeClient, missing: str) -> None:
    params = session_params()
    del params[missing]
    with pytest.raises(stripe.InvalidRequestError) as info:
        client.v1.checkout.sessions.create(params=params)
    assert info.value.http_status == 400
    assert info.value.param == missing
    assert info.value.code == "parameter_missing"


def test_create_rejects_bad_params(client: stripe.StripeClient) -> None:
    with pytest.raises(stripe.InvalidRequestError, match="unknown parameter: colour"):
        client.v1.checkout.sessions.create(params=session_params(colour="red"))
    bad_amount = [
        {"quantity": 1, "price_data": {"currency": "usd", "unit_amount": "x", "product_data": {"name": "A"}}}
    ]
    with pytest.raises(stripe.InvalidRequestError) as info:
        client.v1.checkout.sessions.create(params=session_params(line_items=bad_amount))
    assert info.value.param == "line_items[0][price_data][unit_amount]"


def test_expire_via_api(fake: FakeStripe, client: stripe.StripeClient, receiver: Receiver) -> None:
    session = create(client)
    expired = client.v1.checkout.sessions.expire(session.id)
    assert (expired.status, expired.url) == ("expired", None)
    with pytest.raises(stripe.InvalidRequestError) as info:
        client.v1.checkout.sessions.expire(session.id)
    assert info.value.http_status == 400
    fake.wait_deliveries()
    [event] = receiver.events()
    assert event["type"] == "checkout.session.expired"
    assert event["request"]["id"].startswith("req_")


def test_fail_next_then_recover(fake: FakeStripe, client: stripe.StripeClient, monkeypatch: Any) -> None:
    session = create(client)
    fake.fail_next(1)
    with pytest.raises(stripe.APIError) as info:
        client.v1.checkout.sessions.retrieve(session.id)
    assert info.value.http_status == 500
    assert info.value.json_body["error"]["type"] == "api_error"
    assert client.v1.checkout.sessions.retrieve(session.id).id == session.id

    # the SDK retries 5xx itself only when the client has max_network_retries (default: none)
    monkeypatch.setattr(stripe.HTTPClient, "_sleep_time_seconds", lambda self, n: 0)
    retrying = stripe.StripeClient(API_KEY, base_addresses={"api": fake.url}, max_network_retries=2)
    fake.fail_next(2, 503)
    count = len(fake.requests)
    assert retrying.v1.checkout.sessions.retrieve(session.id).id == session.id
    assert len(fake.requests) - count == 3

    fake.fail_next(1, 429)
    with pytest.raises(stripe.RateLimitError):
        client.v1.checkout.sessions.retrieve(session.id)


# ---- state changes and webhooks ----------------------------------------------------------------


def test_pay_delivers_signed_completed_event(
    fake: FakeStripe, client: stripe.StripeClient, receiver: Receiver
) -> None:
    session = create(client)
    event = fake.pay(session.id)
    assert event["type"] == "checkout.session.completed"
    assert event["id"].startswith("evt_") and event["object"] == "event"
    assert set(fixture("event")) <= set(event)
    assert event["livemode"] is False and event["pending_webhooks"] == 1

    [(body, headers)] = receiver.received
    assert headers["Content-Type"].startswith("application/json")
    verified = stripe.Webhook.construct_event(body, headers["Stripe-Signature"], SECRET, tolerance=300)
    assert verified.id == event["id"]
    paid = verified.data.object
    assert (paid.status, paid.payment_status) == ("complete", "paid")
    assert paid.payment_intent.startswith("pi_")
    assert paid.metadata["orderId"] == "o1"
    assert fake.deliveries == [(event["id"], 200)]

    pi = client.v1.payment_intents.retrieve(paid.payment_intent)
    assert (pi.status, pi.amount, pi.amount_received) == ("succeeded", 2500, 2500)
    charge = client.v1.charges.retrieve(pi.latest_charge)
    assert (charge.id[:3], charge.amount, charge.payment_intent, charge.paid) == ("ch_", 2500, pi.id, True)
    retrieved = client.v1.checkout.sessions.retrieve(session.id)
    assert retrieved.payment_status == "paid"
    with pytest.raises(ValueError):
        fake.pay(session.id)


def test_signature_rejected_when_tampered_or_stale(fake: FakeStripe) -> None:
    payload = b'{"id": "evt_1", "object": "event"}'
    header = fake.sign(payload)
    assert header.startswith("t=") and ",v1=" in header
    stripe.Webhook.construct_event(payload, header, SECRET, tolerance=300)
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(payload + b" ", header, SECRET, tolerance=300)
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(
            payload, fake.sign(payload, secret="whsec_other"), SECRET, tolerance=300
        )
    stale = fake.sign(payload, timestamp=int(time.time()) - 600)
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(payload, stale, SECRET, tolerance=300)


def test_async_payment_success_and_failure(
    fake: FakeStripe, client: stripe.StripeClient, receiver: Receiver
) -> None:
    ok, bad = create(client, key="a").id, create(client, key="b").id
    completed = fake.pay_async(ok)
    assert (completed["data"]["object"]["status"], completed["data"]["object"]["payment_status"]) == (
        "complete",
        "unpaid",
    )
    succeeded = fake.async_succeed(ok)
    assert succeeded["type"] == "checkout.session.async_payment_succeeded"
    assert succeeded["data"]["object"]["payment_status"] == "paid"

    fake.pay_async(bad)
    failed = fake.async_fail(bad)
    assert failed["type"] == "checkout.session.async_payment_failed"
    assert failed["data"]["object"]["payment_status"] == "unpaid"
    assert [e["type"] for e in receiver.events()] == [
        "checkout.session.completed",
        "checkout.session.async_payment_succeeded",
        "checkout.session.completed",
        "checkout.session.async_payment_failed",
    ]
    with pytest.raises(ValueError):
        fake.async_succeed(bad)


def test_expire_helper(fake: FakeStripe, client: stripe.StripeClient) -> None:
    session = create(client)
    event = fake.expire(session.id)
    assert event["type"] == "checkout.session.expired"
    assert client.v1.checkout.sessions.retrieve(session.id).status == "expired"


def test_refunds_accumulate(fake: FakeStripe, client: stripe.StripeClient, receiver: Receiver) -> None:
    session = create(client)
    paid = fake.pay(session.id)["data"]["object"]
    first = fake.refund(session.id, 1000)["data"]["object"]
    assert first["object"] == "charge"
    assert (first["payment_intent"], first["amount"]) == (paid["payment_intent"], 2500)
    assert (first["amount_refunded"], first["refunded"]) == (1000, False)
    rest = fake.refund(session.id)
    charge = rest["data"]["object"]
    assert rest["type"] == "charge.refunded"
    assert (charge["amount_refunded"], charge["refunded"]) == (2500, True)
    assert "refunds" not in charge  # not expanded by default since API version 2022-11-15
    assert rest["data"]["previous_attributes"] == {"amount_refunded": 1000, "refunded": False}
    assert [r["amount"] for r in fake.refunds_of(session.id)] == [1500, 1000]
    with pytest.raises(ValueError):
        fake.refund(session.id, 1)
    assert [e["type"] for e in receiver.events()][1:] == ["refund.created", "charge.refunded"] * 2


def test_deliver_repeats_the_same_bytes_concurrently(fake: FakeStripe, receiver: Receiver) -> None:
    event = fake.make_event("checkout.session.completed", {"id": "cs_test_1", "object": "checkout.session"})
    assert fake.deliver(event, times=3) == [200, 200, 200]
    receiver.delay = 0.2
    receiver.status = 500
    assert fake.deliver(event, times=4, concurrency=4) == [500] * 4
    assert receiver.max_in_flight >= 2
    bodies = {body for body, _ in receiver.received}
    assert len(bodies) == 1 and len(receiver.received) == 7
    assert fake.deliveries == [(event["id"], 200)] * 3 + [(event["id"], 500)] * 4


def test_no_webhook_url_means_no_delivery(client: stripe.StripeClient, fake: FakeStripe) -> None:
    fake.webhook_url = None
    event = fake.pay(create(client).id)
    assert fake.deliveries == []
    with pytest.raises(RuntimeError):
        fake.deliver(event)


# ---- hosted checkout page ----------------------------------------------------------------------


def test_hosted_page_shows_pack_and_forms(fake: FakeStripe, client: stripe.StripeClient) -> None:
    name = "Pro <b>& more</b>"
    items = [
        {
            "quantity": 1,
            "price_data": {"currency": "usd", "unit_amount": 5000, "product_data": {"name": name}},
        }
    ]
    session = create(client, line_items=items)
    status, headers, page = browser(fake, "GET", f"/pay/{session.id}")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert "Pro &lt;b&gt;&amp; more&lt;/b&gt;" in page and name not in page
    assert "$50.00" in page
    assert f'<form method="post" action="/pay/{session.id}/confirm">' in page
    assert '<button id="pay" type="submit">' in page
    assert f'action="/pay/{session.id}/cancel"' in page and 'id="cancel"' in page
    assert browser(fake, "GET", "/pay/cs_test_unknown")[0] == 404


@pytest.mark.parametrize(
    ("mode", "before", "after"), [("before_redirect", 1, 1), ("after_redirect", 0, 1), ("never", 0, 0)]
)
def test_hosted_pay_redirects_and_delivers_by_mode(
    fake: FakeStripe, client: stripe.StripeClient, receiver: Receiver, mode: str, before: int, after: int
) -> None:
    fake.webhook_mode = mode
    session = create(client)
    status, headers, _ = browser(fake, "POST", f"/pay/{session.id}/confirm")
    assert status == 303
    assert headers["Location"] == (f"http://127.0.0.1:8787/account/credits/success?session_id={session.id}")
    assert len(receiver.received) == before
    fake.wait_deliveries(timeout=5)
    assert len(receiver.received) == after
    assert fake.sessions[session.id]["payment_status"] == "paid"
    # the browser resubmitting the form is sent on again, with no second payment
    assert browser(fake, "POST", f"/pay/{session.id}/confirm")[0] == 303
    assert len([e for e in fake.events.values() if e["type"] == "checkout.session.completed"]) == 1


def test_hosted_cancel_keeps_session_open(fake: FakeStripe, client: stripe.StripeClient) -> None:
    session = create(client)
    status, headers, _ = browser(fake, "POST", f"/pay/{session.id}/cancel")
    assert (status, headers["Location"]) == (303, "http://127.0.0.1:8787/account/credits/cancel?order=o1")
    assert fake.sessions[session.id]["status"] == "open"
    fake.expire(session.id, deliver=False)
    assert browser(fake, "POST", f"/pay/{session.id}/confirm")[0] == 410


def test_stopped_server_has_no_url() -> None:
    fake = FakeStripe()
    with pytest.raises(RuntimeError):
        _ = fake.url
    with fake:
        assert fake.url.startswith("http://127.0.0.1:")


def test_refund_and_lookups_via_api(
    fake: FakeStripe, client: stripe.StripeClient, receiver: Receiver
) -> None:
    session = create(client)
    pi_id = fake.pay(session.id)["data"]["object"]["payment_intent"]
    refund = client.v1.refunds.create(params={"payment_intent": pi_id, "amount": 500})
    assert (refund.object, refund.amount, refund.payment_intent, refund.status) == (
        "refund",
        500,
        pi_id,
        "succeeded",
    )
    with pytest.raises(stripe.InvalidRequestError) as info:
        client.v1.refunds.create(params={"payment_intent": pi_id, "amount": 5000})
    assert info.value.param == "amount"
    fake.wait_deliveries()
    event = receiver.events()[-1]
    assert event["type"] == "charge.refunded"
    assert event["data"]["object"]["amount_refunded"] == 500
    assert client.v1.events.retrieve(event["id"]).type == "charge.refunded"

    found = client.v1.checkout.sessions.list(params={"payment_intent": pi_id})
    assert [s.id for s in found.data] == [session.id]
    items = client.v1.checkout.sessions.line_items.list(session.id)
    assert [(i.description, i.amount_total) for i in items.data] == [("Standard", 2500)]


def test_expiring_a_paid_session_or_twice_is_stripes_error(fake: FakeStripe, client: stripe.StripeClient) -> None:
    paid = create(client, key="paid")
    fake.pay(paid.id)
    with pytest.raises(stripe.InvalidRequestError) as info:
        client.v1.checkout.sessions.expire(paid.id)
    assert info.value.http_status == 400
    assert info.value.user_message == (
        'Only Checkout Sessions with a status in ["open"] can be expired. '
        "This Checkout Session has a status of `complete`."
    )
    assert client.v1.checkout.sessions.retrieve(paid.id).status == "complete"

    session = create(client, key="open")
    client.v1.checkout.sessions.expire(session.id)
    with pytest.raises(stripe.InvalidRequestError) as info:
        client.v1.checkout.sessions.expire(session.id)
    assert info.value.user_message.endswith("This Checkout Session has a status of `expired`.")
    fake.wait_deliveries()
    assert [e["type"] for e in fake.events.values()].count("checkout.session.expired") == 1


# ---- refunds -----------------------------------------------------------------------------------


def paid(fake: FakeStripe, client: stripe.StripeClient, key: str = "order-o1", **overrides: Any) -> str:
    """A session paid by card; its id."""
    session = create(client, key=key, **overrides)
    fake.pay(session.id)
    return session.id


def verified(receiver: Receiver) -> list[stripe.Event]:
    """Every event the endpoint received, each checked as a backend checks it."""
    return [
        stripe.Webhook.construct_event(body, headers["Stripe-Signature"], SECRET, tolerance=300)
        for body, headers in receiver.received
    ]


def test_a_pending_refund_that_fails_through_the_sdk(
    fake: FakeStripe, client: stripe.StripeClient, receiver: Receiver
) -> None:
    session_id = paid(fake, client)
    pi_id = fake.sessions[session_id]["payment_intent"]
    fake.api_refund_status = "pending"
    refund = client.v1.refunds.create(params={"payment_intent": pi_id, "amount": 700, "reason": "duplicate"})
    assert isinstance(refund, stripe.Refund)
    assert (refund.id[:3], refund.status, refund.amount, refund.currency) == ("re_", "pending", 700, "usd")
    assert (refund.payment_intent, refund.reason, refund.pending_reason) == (pi_id, "duplicate", "processing")
    assert set(fixture("refund")) <= set(refund.to_dict())
    fake.wait_deliveries()
    created, refunded = verified(receiver)[1:]
    assert (created.type, refunded.type) == ("refund.created", "charge.refunded")
    assert created.data.object.id == refund.id and created.request.id.startswith("req_")
    charge = refunded.data.object
    assert (charge.object, charge.amount_refunded, charge.refunded) == ("charge", 700, False)
    assert "refunds" not in charge  # since 2022-11-15 the charge carries no refunds list
    expanded = client.v1.charges.retrieve(charge.id, params={"expand": ["refunds"]})
    assert [r.id for r in expanded.refunds.data] == [refund.id]

    change = fake.settle_refund(refund.id, "failed", failure_reason="expired_or_canceled_card")
    assert change.types == ["refund.updated", "refund.failed", "charge.refund.updated"]
    assert change.event("refund.updated")["data"]["previous_attributes"] == {"status": "pending"}
    assert "previous_attributes" not in change.event("refund.failed")["data"]
    assert [e.id for e in verified(receiver)[3:]] == [e["id"] for e in change.events]
    failed = client.v1.refunds.retrieve(refund.id)
    assert (failed.status, failed.failure_reason) == ("failed", "expired_or_canceled_card")
    assert failed.failure_balance_transaction.startswith("txn_")
    assert client.v1.charges.retrieve(charge.id).amount_refunded == 0  # a failed refund gives it back


@pytest.mark.parametrize(
    ("style", "on_create", "on_fail"),
    [
        ("both", ["refund.created", "charge.refunded"], ["refund.updated", "refund.failed", "charge.refund.updated"]),
        ("refund", ["refund.created"], ["refund.updated", "refund.failed"]),
        ("charge", ["charge.refunded"], ["charge.refund.updated"]),
    ],
)
def test_which_events_a_refund_makes(
    fake: FakeStripe, client: stripe.StripeClient, receiver: Receiver, style: str, on_create: list, on_fail: list
) -> None:
    session_id = paid(fake, client)
    change = fake.create_refund(session_id, 1000, status="pending", events=style)
    assert change.types == on_create
    assert fake.settle_refund(change.id, "failed", events=style).types == on_fail
    fake.refund_events = style  # the same as the default for every refund, API ones too
    pi_id = fake.sessions[session_id]["payment_intent"]
    client.v1.refunds.create(params={"payment_intent": pi_id, "amount": 1})
    fake.wait_deliveries()
    assert [e.type for e in verified(receiver)] == ["checkout.session.completed", *on_create, *on_fail, *on_create]
    assert {e["type"] for e in fake.events.values()} == {"checkout.session.completed", *on_create, *on_fail}


REFUND_MOVES_TABLE = [
    ("pending", "succeeded", 1000),
    ("pending", "failed", 0),
    ("pending", "canceled", 0),
    ("requires_action", "succeeded", 1000),
    ("requires_action", "canceled", 0),
    ("succeeded", "failed", 0),
    ("succeeded", "canceled", None),
    ("succeeded", "succeeded", None),
    ("failed", "succeeded", None),
    ("canceled", "pending", None),
]


@pytest.mark.parametrize(("start", "to", "refunded_after"), REFUND_MOVES_TABLE)
def test_refund_status_moves(
    fake: FakeStripe, client: stripe.StripeClient, start: str, to: str, refunded_after: int | None
) -> None:
    session_id = paid(fake, client)
    first = "pending" if start in ("failed", "canceled") else start
    refund = fake.create_refund(session_id, 1000, status=first, deliver=False)
    if start != first:
        fake.settle_refund(refund.id, start, deliver=False)
    charge = fake.charges[refund.object["charge"]]
    before = charge["amount_refunded"]
    if refunded_after is None:
        with pytest.raises(ValueError, match=f"cannot go from {start} to {to}"):
            fake.settle_refund(refund.id, to)
        assert charge["amount_refunded"] == before
    else:
        assert fake.settle_refund(refund.id, to, deliver=False).object["status"] == to
        assert charge["amount_refunded"] == refunded_after
        assert client.v1.refunds.retrieve(refund.id).status == to


def test_refund_metadata_update_cancel_and_list_through_the_sdk(
    fake: FakeStripe, client: stripe.StripeClient, receiver: Receiver
) -> None:
    session_id = paid(fake, client)
    pi_id = fake.sessions[session_id]["payment_intent"]
    fake.api_refund_status = "requires_action"
    refund = client.v1.refunds.create(params={"payment_intent": pi_id, "amount": 333})
    assert refund.next_action.type == "display_details"
    updated = client.v1.refunds.update(refund.id, params={"metadata": {"order_id": "6735"}})
    assert updated.metadata.to_dict() == {"order_id": "6735"}
    canceled = client.v1.refunds.cancel(refund.id)
    assert canceled.status == "canceled"
    with pytest.raises(stripe.InvalidRequestError, match="Only refunds with a status of requires_action"):
        client.v1.refunds.cancel(refund.id)
    fake.wait_deliveries()  # each API call's events come from its own thread: compare them unordered
    made = list(fake.events.values())[3:]
    assert [e["type"] for e in made] == ["refund.updated", "charge.refund.updated"] * 2
    assert sorted(e.id for e in verified(receiver)) == sorted(fake.events)
    assert made[0]["data"]["previous_attributes"] == {"metadata": {}}
    assert made[2]["data"]["previous_attributes"] == {"status": "requires_action"}
    assert client.v1.charges.retrieve(refund.charge).amount_refunded == 0

    fake.api_refund_status = "succeeded"
    second = client.v1.refunds.create(params={"charge": refund.charge, "amount": 1})
    assert [r.id for r in client.v1.refunds.list(params={"payment_intent": pi_id}).auto_paging_iter()] == [
        second.id,
        refund.id,
    ]
    assert client.v1.refunds.list(params={"charge": "ch_other"}).data == []
    with pytest.raises(stripe.InvalidRequestError) as info:
        client.v1.refunds.retrieve("re_unknown")
    assert (info.value.http_status, info.value.code) == (404, "resource_missing")


def test_a_refund_in_another_currency_or_live_mode_on_request(fake: FakeStripe, client: stripe.StripeClient) -> None:
    session_id = paid(fake, client)
    change = fake.create_refund(session_id, 500, currency="EUR", status="pending", livemode=True)
    assert change.object["currency"] == "eur"
    assert [e["livemode"] for e in change.events] == [True, True]
    assert change.event("charge.refunded")["data"]["object"]["currency"] == "eur"
    assert change.event("charge.refunded")["data"]["object"]["livemode"] is True
    assert fake.charges[change.object["charge"]]["currency"] == "usd"  # Stripe's own record is unchanged
    assert all(e["livemode"] for e in fake.settle_refund(change.id, "succeeded").events)


def test_every_event_live_mode_for_a_while(fake: FakeStripe, client: stripe.StripeClient, receiver: Receiver) -> None:
    session = create(client)
    fake.livemode = True
    completed = fake.pay(session.id)
    fake.livemode = False
    assert completed["livemode"] is True and completed["data"]["object"]["livemode"] is True
    assert fake.sessions[session.id]["livemode"] is False
    assert verified(receiver)[0].livemode is True
    assert fake.expire(create(client, key="k2").id)["livemode"] is False


def test_refunds_refused_as_stripe_refuses_them(fake: FakeStripe, client: stripe.StripeClient) -> None:
    session_id = paid(fake, client)
    pi_id = fake.sessions[session_id]["payment_intent"]
    with pytest.raises(stripe.InvalidRequestError) as info:
        client.v1.refunds.create(params={"payment_intent": pi_id, "amount": 2501})
    assert (info.value.code, info.value.param) == ("amount_too_large", "amount")
    with pytest.raises(stripe.InvalidRequestError) as info:
        client.v1.refunds.create(params={"payment_intent": pi_id, "colour": "red"})
    assert info.value.code == "parameter_unknown"
    with pytest.raises(ValueError, match="not paid"):
        fake.create_refund(create(client, key="unpaid").id)
    fake.open_dispute(session_id)
    with pytest.raises(stripe.InvalidRequestError) as info:
        client.v1.refunds.create(params={"payment_intent": pi_id})
    assert info.value.code == "charge_disputed"


# ---- disputes ----------------------------------------------------------------------------------


def test_a_chargeback_that_is_lost(fake: FakeStripe, client: stripe.StripeClient, receiver: Receiver) -> None:
    session_id = paid(fake, client)
    opened = fake.open_dispute(session_id, 2000, reason="fraudulent")
    assert opened.types == ["charge.dispute.created", "charge.dispute.funds_withdrawn"]
    dispute = client.v1.disputes.retrieve(opened.id)
    assert isinstance(dispute, stripe.Dispute)
    assert (dispute.id[:3], dispute.status, dispute.amount, dispute.currency) == ("dp_", "needs_response", 2000, "usd")
    assert dispute.payment_intent == fake.sessions[session_id]["payment_intent"]
    assert (dispute.reason, dispute.is_charge_refundable, dispute.livemode) == ("fraudulent", False, False)
    assert dispute.payment_method_details.card.case_type == "chargeback"
    [withdrawal] = dispute.balance_transactions
    assert (withdrawal.amount, withdrawal.fee, withdrawal.net) == (-2000, 1500, -3500)
    assert (withdrawal.reporting_category, withdrawal.source) == ("dispute", dispute.id)
    assert set(fixture("dispute")) <= set(dispute.to_dict())
    assert client.v1.charges.retrieve(dispute.charge).disputed is True

    review = fake.update_dispute(opened.id, status="under_review")
    assert review.types == ["charge.dispute.updated"]
    assert review.events[0]["data"]["previous_attributes"] == {"status": "needs_response"}
    lost = fake.close_dispute(opened.id, "lost")
    assert lost.types == ["charge.dispute.closed"] and lost.object["status"] == "lost"
    events = verified(receiver)[1:]
    assert [e.type for e in events] == [*opened.types, *review.types, *lost.types]
    assert events[-1].data.object.status == "lost"


def test_a_chargeback_that_is_won_gives_the_funds_back(fake: FakeStripe, client: stripe.StripeClient) -> None:
    session_id = paid(fake, client)
    opened = fake.open_dispute(session_id)
    won = fake.close_dispute(opened.id, "won")
    assert won.types == ["charge.dispute.closed", "charge.dispute.funds_reinstated"]
    dispute = client.v1.disputes.retrieve(opened.id)
    assert dispute.status == "won" and dispute.amount == 2500
    assert [t.reporting_category for t in dispute.balance_transactions] == ["dispute", "dispute_reversal"]
    assert sum(t.net for t in dispute.balance_transactions) == 0


def test_an_inquiry_closes_or_escalates(fake: FakeStripe, client: stripe.StripeClient) -> None:
    session_id = paid(fake, client)
    inquiry = fake.open_dispute(session_id, inquiry=True, reason="product_not_received")
    assert inquiry.types == ["charge.dispute.created"]
    assert (inquiry.object["status"], inquiry.object["is_charge_refundable"]) == ("warning_needs_response", True)
    assert inquiry.object["balance_transactions"] == []
    assert fake.close_dispute(inquiry.id, "warning_closed").object["status"] == "warning_closed"

    other = paid(fake, client, key="other")
    escalating = fake.open_dispute(other, inquiry=True)
    escalated = fake.update_dispute(escalating.id, status="needs_response")
    assert escalated.types == ["charge.dispute.updated", "charge.dispute.funds_withdrawn"]
    assert escalated.events[0]["data"]["previous_attributes"] == {
        "status": "warning_needs_response",
        "is_charge_refundable": True,
    }
    assert [t["amount"] for t in escalated.object["balance_transactions"]] == [-2500]
    assert fake.close_dispute(escalating.id, "won").types[-1] == "charge.dispute.funds_reinstated"


def test_a_lost_dispute_is_appealed_and_the_appeal_won_or_lost(fake: FakeStripe, client: stripe.StripeClient) -> None:
    for end, net in (("won", 0), ("lost", -4000)):
        opened = fake.open_dispute(paid(fake, client, key=end))
        fake.close_dispute(opened.id, "lost")
        appealed = fake.update_dispute(opened.id, status="appeal_needs_response")
        assert appealed.types == ["charge.dispute.updated"]
        assert appealed.events[0]["data"]["previous_attributes"] == {"status": "lost"}
        evidence = client.v1.disputes.update(opened.id, params={"evidence": {"uncategorized_text": "Used."}})
        assert evidence.status == "appeal_under_review"
        with pytest.raises(stripe.InvalidRequestError):  # Stripe refuses refunds while the funds are withdrawn
            client.v1.refunds.create(params={"payment_intent": evidence.payment_intent, "amount": 1})
        closed = fake.close_dispute(opened.id, end)
        assert closed.object["status"] == end
        dispute = client.v1.disputes.retrieve(opened.id)
        assert sum(t.net for t in dispute.balance_transactions) == net
    assert set(DISPUTE_OPEN_STATUSES + DISPUTE_CLOSED_STATUSES) == stripe_statuses(stripe.Dispute)


def test_a_prevented_dispute_refunds_the_cardholder_without_a_fee(
    fake: FakeStripe, client: stripe.StripeClient
) -> None:
    prevented = fake.open_dispute(paid(fake, client), prevented=True)
    assert prevented.types == ["charge.dispute.created", "charge.dispute.funds_withdrawn", "charge.dispute.closed"]
    dispute = client.v1.disputes.retrieve(prevented.id)
    assert (dispute.status, dispute.payment_method_details.card.case_type) == ("prevented", "resolution")
    [withdrawal] = dispute.balance_transactions
    assert (withdrawal.amount, withdrawal.fee, withdrawal.net) == (-2500, 0, -2500)
    with pytest.raises(ValueError, match="cannot go from"):
        fake.close_dispute(prevented.id, "won")


@pytest.mark.parametrize(
    ("inquiry", "move", "to"),
    [
        (False, "close", "warning_closed"),
        (True, "close", "won"),
        (True, "close", "lost"),
        (False, "update", "warning_under_review"),
        (False, "update", "won"),
    ],
)
def test_dispute_moves_stripe_never_makes(
    fake: FakeStripe, client: stripe.StripeClient, inquiry: bool, move: str, to: str
) -> None:
    opened = fake.open_dispute(paid(fake, client), inquiry=inquiry)
    with pytest.raises(ValueError, match="cannot go from"):
        if move == "close":
            fake.close_dispute(opened.id, to)
        else:
            fake.update_dispute(opened.id, status=to)
    assert fake.disputes[opened.id]["status"] == opened.object["status"]


def test_closed_disputes_stay_closed(fake: FakeStripe, client: stripe.StripeClient) -> None:
    opened = fake.open_dispute(paid(fake, client))
    fake.close_dispute(opened.id, "lost")
    for status in ("won", "lost"):
        with pytest.raises(ValueError):
            fake.close_dispute(opened.id, status)
    with pytest.raises(stripe.InvalidRequestError, match="already closed"):
        client.v1.disputes.close(opened.id)


def test_disputes_through_the_sdk(fake: FakeStripe, client: stripe.StripeClient, receiver: Receiver) -> None:
    session_id = paid(fake, client)
    pi_id = fake.sessions[session_id]["payment_intent"]
    opened = fake.open_dispute(session_id, 1234)
    listed = client.v1.disputes.list(params={"payment_intent": pi_id})
    assert [d.id for d in listed.data] == [opened.id]
    assert client.v1.disputes.list(params={"charge": "ch_other"}).data == []
    updated = client.v1.disputes.update(
        opened.id, params={"evidence": {"uncategorized_text": "Credits were used."}, "metadata": {"case": "7"}}
    )
    assert (updated.status, updated.evidence.uncategorized_text) == ("under_review", "Credits were used.")
    assert updated.evidence_details.submission_count == 1 and updated.metadata["case"] == "7"
    closed = client.v1.disputes.close(opened.id)
    assert closed.status == "lost"
    with pytest.raises(stripe.InvalidRequestError) as info:
        client.v1.disputes.retrieve("dp_unknown")
    assert info.value.http_status == 404
    fake.wait_deliveries()
    events = sorted(verified(receiver)[1:], key=lambda e: list(fake.events).index(e.id))
    assert [e.type for e in events] == [
        "charge.dispute.created",
        "charge.dispute.funds_withdrawn",
        "charge.dispute.updated",
        "charge.dispute.closed",
    ]
    assert events[2].data.previous_attributes.status == "needs_response"
    assert events[3].request.id.startswith("req_")


def test_a_dispute_in_another_currency_or_live_mode_on_request(fake: FakeStripe, client: stripe.StripeClient) -> None:
    opened = fake.open_dispute(paid(fake, client), currency="gbp", livemode=True)
    assert (opened.object["currency"], opened.object["livemode"]) == ("gbp", True)
    assert all(e["livemode"] and e["data"]["object"]["currency"] == "gbp" for e in opened.events)
    assert all(e["livemode"] for e in fake.close_dispute(opened.id, "won").events)


# ---- the Events API ----------------------------------------------------------------------------


def some_events(fake: FakeStripe, n: int, type: str = "customer.created") -> list[dict[str, Any]]:
    return [fake.make_event(type, {"id": f"cus_{i}", "object": "customer"}) for i in range(n)]


def test_events_list_pages_newest_first_as_stripe_does(fake: FakeStripe, client: stripe.StripeClient) -> None:
    made = some_events(fake, 25)
    newest_first = [e["id"] for e in reversed(made)]
    page = client.v1.events.list(params={"limit": 10})
    assert isinstance(page, stripe.ListObject) and page.has_more is True
    assert [e.id for e in page.data] == newest_first[:10]
    assert all(isinstance(e, stripe.Event) for e in page.data)
    assert [e.id for e in page.auto_paging_iter()] == newest_first
    assert fake.calls("/v1/events", "GET") == 3  # pages of 10, 10 and 5; the last says has_more false

    after = client.v1.events.list(params={"limit": 10, "starting_after": newest_first[19]})
    assert ([e.id for e in after.data], after.has_more) == (newest_first[20:], False)
    before = client.v1.events.list(params={"limit": 3, "ending_before": newest_first[10]})
    assert ([e.id for e in before.data], before.has_more) == (newest_first[7:10], True)
    # paging backwards from the oldest yields everything newer, oldest first, as the SDK pages it
    backwards = client.v1.events.list(params={"limit": 4, "ending_before": newest_first[-1]})
    assert [e.id for e in backwards.auto_paging_iter()] == list(reversed(newest_first[:-1]))


def test_events_list_filters(fake: FakeStripe, client: stripe.StripeClient) -> None:
    session_id = paid(fake, client)
    refund = fake.create_refund(session_id, 100)
    dispute = fake.open_dispute(session_id)
    wanted = ["refund.created", "charge.dispute.created"]
    found = client.v1.events.list(params={"types": wanted}).auto_paging_iter()
    assert [e.id for e in found] == [dispute.events[0]["id"], refund.events[0]["id"]]
    by_prefix = client.v1.events.list(params={"type": "charge.dispute.*"})
    assert [e.type for e in by_prefix.data] == ["charge.dispute.funds_withdrawn", "charge.dispute.created"]
    assert client.v1.events.list(params={"type": "refund.created"}).data[0].data.object.id == refund.id
    assert client.v1.events.retrieve(refund.events[0]["id"]).data.object.amount == 100

    fake.advance_clock(3600)
    late = fake.settle_refund(refund.id, "failed", events="refund")
    since = client.v1.events.list(params={"created": {"gte": fake.now() - 60}})
    assert [e.id for e in since.data] == [e["id"] for e in reversed(late.events)]
    until = client.v1.events.list(params={"created": {"lt": fake.now() - 60}, "limit": 100})
    assert len(until.data) == len(fake.events) - 2
    exact = client.v1.events.list(params={"created": late.events[0]["created"]})
    assert len(exact.data) == 2


def test_events_api_keeps_30_days(fake: FakeStripe, client: stripe.StripeClient) -> None:
    fake.set_clock(time.time() - 31 * 24 * 3600)
    [old] = some_events(fake, 1)
    fake.set_clock(time.time() - 29 * 24 * 3600)
    [recent] = some_events(fake, 1)
    fake.set_clock(None)
    assert abs(fake.now() - time.time()) < 5
    [new] = some_events(fake, 1)
    assert [e.id for e in client.v1.events.list().auto_paging_iter()] == [new["id"], recent["id"]]
    with pytest.raises(stripe.InvalidRequestError) as info:
        client.v1.events.retrieve(old["id"])
    assert info.value.http_status == 404
    assert old["id"] in fake.events  # still known to the test, as Stripe keeps it out of sight

    fake.advance_clock(30 * 24 * 3600 + 1)
    assert client.v1.events.list().data == []


def test_events_api_delivery_state(fake: FakeStripe, client: stripe.StripeClient, receiver: Receiver) -> None:
    session_id = paid(fake, client)  # delivered
    with fake.drop_webhooks():
        fake.create_refund(session_id, 100, events="refund")  # not delivered
    ok = client.v1.events.list(params={"delivery_success": True})
    pending = client.v1.events.list(params={"delivery_success": False})
    assert [(e.type, e.pending_webhooks) for e in ok.data] == [("checkout.session.completed", 0)]
    assert [(e.type, e.pending_webhooks) for e in pending.data] == [("refund.created", 1)]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"type": "refund.created", "types": ["refund.failed"]}, "only specify one of these parameters: type, types"),
        ({"limit": 101}, "less than or equal to 100"),
        ({"limit": 0}, "greater than or equal to 1"),
        ({"starting_after": "evt_unknown"}, "No such event: 'evt_unknown'"),
        ({"starting_after": "evt_1", "ending_before": "evt_2"}, "ending_before, starting_after"),
        ({"created": {"after": 1}}, "unknown parameter: created[after]"),
        ({"types": [f"t{i}" for i in range(21)]}, "at most 20"),
        ({"colour": "red"}, "unknown parameter: colour"),
    ],
)
def test_events_list_refuses_what_stripe_refuses(client: stripe.StripeClient, params: dict, message: str) -> None:
    with pytest.raises(stripe.InvalidRequestError, match=re.escape(message)) as info:
        client.v1.events.list(params=params)
    assert info.value.http_status == 400


# ---- dropped, redelivered, reordered and duplicated webhooks -----------------------------------


def test_dropped_webhooks_stay_in_the_events_api_and_can_be_redelivered(
    fake: FakeStripe, client: stripe.StripeClient, receiver: Receiver
) -> None:
    session_id = paid(fake, client)
    rule = fake.drop_webhooks("refund.*")
    change = fake.create_refund(session_id, 500, status="pending")
    fake.settle_refund(change.id, "failed")
    assert [e.type for e in verified(receiver)] == [
        "checkout.session.completed",
        "charge.refunded",
        "charge.refund.updated",
    ]
    missed = [e["id"] for e in fake.events.values() if e["type"].startswith("refund.")]
    assert rule.dropped == fake.dropped == missed and len(missed) == 3
    listed = client.v1.events.list(params={"types": ["refund.created", "refund.updated", "refund.failed"]})
    assert sorted(e.id for e in listed.auto_paging_iter()) == sorted(missed)

    assert fake.redeliver(missed[0]) == [200]  # Stripe's "Resend": drop rules do not apply
    assert verified(receiver)[-1].id == missed[0]
    rule.cancel()
    fake.create_refund(session_id, 1, events="refund")
    assert verified(receiver)[-1].type == "refund.created"
    with pytest.raises(KeyError):
        fake.redeliver("evt_unknown")


def test_dropping_by_count_for_a_while_and_all(
    fake: FakeStripe, client: stripe.StripeClient, receiver: Receiver
) -> None:
    session_id = paid(fake, client)
    received = len(receiver.received)
    first_two = fake.drop_webhooks(count=2)
    change = fake.create_refund(session_id, 100, status="pending")  # two events: both dropped
    fake.settle_refund(change.id, "succeeded", events="charge")  # one more: delivered
    assert first_two.dropped == [e["id"] for e in change.events] and not first_two.active
    assert len(receiver.received) == received + 1

    expired = fake.drop_webhooks(for_seconds=0)
    assert not expired.active
    with fake.drop_webhooks(for_seconds=600) as everything:  # "the endpoint is down for a while"
        fake.open_dispute(session_id)
        assert everything.active and len(everything.dropped) == 2
    fake.create_refund(paid(fake, client, key="k2"), 100, events="charge")
    assert len(receiver.received) == received + 3  # the second payment and its refund
    fake.drop_webhooks()
    fake.drop_webhooks("charge.*", count=1)
    fake.stop_dropping()
    fake.expire(create(client, key="k3").id)
    assert verified(receiver)[-1].type == "checkout.session.expired"


def test_api_caused_events_obey_drop_rules(fake: FakeStripe, client: stripe.StripeClient, receiver: Receiver) -> None:
    session_id = paid(fake, client)
    with fake.drop_webhooks("charge.refunded"):
        client.v1.refunds.create(params={"payment_intent": fake.sessions[session_id]["payment_intent"]})
        fake.wait_deliveries()
    assert [e.type for e in verified(receiver)] == ["checkout.session.completed", "refund.created"]
    assert [fake.events[i]["type"] for i in fake.dropped] == ["charge.refunded"]


def test_a_wrong_secret_for_a_while(fake: FakeStripe, client: stripe.StripeClient, receiver: Receiver) -> None:
    session_id = paid(fake, client)
    with fake.drop_webhooks(wrong_secret=True) as misconfigured:
        change = fake.create_refund(session_id, 100)
    assert misconfigured.dropped == [e["id"] for e in change.events]
    for body, headers in receiver.received[1:]:
        with pytest.raises(stripe.SignatureVerificationError):
            stripe.Webhook.construct_event(body, headers["Stripe-Signature"], SECRET, tolerance=300)
    assert [d["event_id"] for d in fake.delivery_log[1:]] == misconfigured.dropped
    del receiver.received[:3]
    for event_id in misconfigured.dropped:
        fake.redeliver(event_id)
    assert [e.id for e in verified(receiver)] == misconfigured.dropped


def test_deliver_events_in_a_chosen_order_with_duplicates(
    fake: FakeStripe, client: stripe.StripeClient, receiver: Receiver
) -> None:
    change = fake.create_refund(paid(fake, client), 100, status="pending", deliver=False)
    settled = fake.settle_refund(change.id, "succeeded", deliver=False)
    events = change.events + settled.events
    ids = [e["id"] for e in events]
    start = len(receiver.received)
    assert fake.deliver_events(reversed(events), times=2) == [200] * 8
    assert [e.id for e in verified(receiver)[start:]] == [i for i in reversed(ids) for _ in range(2)]

    receiver.received.clear()
    fake.deliver_events(events, shuffle=7)
    first = [e.id for e in verified(receiver)]
    receiver.received.clear()
    fake.deliver_events(events, shuffle=7)
    assert [e.id for e in verified(receiver)] == first and sorted(first) == sorted(ids)


# ---- faults ------------------------------------------------------------------------------------


def fast_client(fake: FakeStripe, timeout: float = 30) -> stripe.StripeClient:
    """A client that gives up after ``timeout`` seconds and never retries."""
    return stripe.StripeClient(
        API_KEY,
        base_addresses={"api": fake.url},
        http_client=stripe.RequestsClient(timeout=timeout),
        max_network_retries=0,
    )


def test_a_hang_until_cleared_answers_nothing(fake: FakeStripe, client: stripe.StripeClient) -> None:
    session = create(client)
    rule = fake.fault("hang", path="/v1/checkout/sessions/*", method="GET")
    with pytest.raises(stripe.APIConnectionError):
        fast_client(fake, timeout=0.5).v1.checkout.sessions.retrieve(session.id)
    assert rule.hits == 1
    assert create(client, key="other").id  # other paths answer

    outcome: list[Any] = []
    waiting = threading.Thread(
        target=lambda: outcome.append(_call(lambda: fast_client(fake).v1.checkout.sessions.retrieve(session.id)))
    )
    waiting.start()
    wait_until(lambda: rule.hits == 2)
    fake.clear_faults()  # lets the hung request go without an answer
    waiting.join(timeout=10)
    assert not waiting.is_alive()
    assert isinstance(outcome[0], stripe.APIConnectionError)
    assert client.v1.checkout.sessions.retrieve(session.id).id == session.id
    assert fake.calls(f"/v1/checkout/sessions/{session.id}", "GET") == 3


def _call(action: Any) -> Any:
    try:
        return action()
    except Exception as exc:
        return exc


def wait_until(condition: Any, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "gave up waiting"
        time.sleep(0.01)


def test_a_hang_with_a_delay_answers_late(fake: FakeStripe, client: stripe.StripeClient) -> None:
    session = create(client)
    with fake.fault("hang", delay=0.2, count=1) as slow:
        assert client.v1.checkout.sessions.retrieve(session.id).id == session.id
    assert slow.hits == 1 and not slow.active


def test_hangs_are_bounded(fake: FakeStripe) -> None:
    fake.hang_limit = 0.2
    fake.fault("hang")
    with pytest.raises(stripe.APIConnectionError):
        fast_client(fake).v1.checkout.sessions.retrieve("cs_test_x")


@pytest.mark.parametrize(
    ("status", "error", "type_"),
    [
        (500, stripe.APIError, "api_error"),
        (503, stripe.APIError, "api_error"),
        (429, stripe.RateLimitError, "invalid_request_error"),
        (400, stripe.InvalidRequestError, "invalid_request_error"),
    ],
)
def test_error_faults_per_path(
    fake: FakeStripe, client: stripe.StripeClient, status: int, error: type, type_: str
) -> None:
    session = create(client)
    fake.fault("error", status=status, path="/v1/checkout/sessions/*", method="GET")
    for _ in range(2):
        with pytest.raises(error) as info:
            client.v1.checkout.sessions.retrieve(session.id)
        assert info.value.http_status == status
        assert info.value.json_body["error"]["type"] == type_
    assert create(client, key="other").id  # POST /v1/checkout/sessions is another path
    fake.clear_faults()
    assert client.v1.checkout.sessions.retrieve(session.id).id == session.id


def test_error_faults_by_count_and_time(fake: FakeStripe, client: stripe.StripeClient, monkeypatch: Any) -> None:
    session = create(client)
    fake.fault("error", status=503, count=1, should_retry=True)
    monkeypatch.setattr(stripe.HTTPClient, "_sleep_time_seconds", lambda self, n: 0)
    retrying = stripe.StripeClient(API_KEY, base_addresses={"api": fake.url}, max_network_retries=1)
    before = fake.calls()
    assert retrying.v1.checkout.sessions.retrieve(session.id).id == session.id
    assert fake.calls() - before == 2
    fake.fault("error", status=500, for_seconds=0)  # already over
    assert client.v1.checkout.sessions.retrieve(session.id).id == session.id


def test_wrong_bodies(fake: FakeStripe, client: stripe.StripeClient) -> None:
    session = create(client)
    with fake.fault("list", path="/v1/checkout/sessions/*"):
        answer = client.v1.checkout.sessions.retrieve(session.id)
        assert isinstance(answer, stripe.ListObject) and not isinstance(answer, stripe.checkout.Session)
    with fake.fault("html"), pytest.raises(stripe.APIError, match="Invalid response body"):
        client.v1.checkout.sessions.retrieve(session.id)
    assert client.v1.checkout.sessions.retrieve(session.id).id == session.id


def test_calls_are_counted_per_path(fake: FakeStripe, client: stripe.StripeClient) -> None:
    session = create(client)
    for _ in range(3):
        client.v1.checkout.sessions.retrieve(session.id)
    fake.fail_next(1)
    with pytest.raises(stripe.APIError):
        client.v1.checkout.sessions.retrieve(session.id)
    assert fake.calls("/v1/checkout/sessions/*", "GET") == 4
    assert fake.calls("/v1/checkout/sessions", "POST") == 1
    assert fake.calls() == 5
    with pytest.raises(ValueError):
        fake.fault("explode")


def test_stop_lets_hung_requests_go(receiver: Receiver) -> None:
    fake = FakeStripe(api_key=API_KEY).start()
    fake.fault("hang")
    outcome: list[Any] = []
    waiting = threading.Thread(
        target=lambda: outcome.append(_call(lambda: fast_client(fake).v1.checkout.sessions.retrieve("cs_x")))
    )
    waiting.start()
    wait_until(lambda: fake.calls() == 1)
    fake.stop()
    waiting.join(timeout=10)
    assert not waiting.is_alive() and isinstance(outcome[0], stripe.APIConnectionError)


# ---- saved cards and off-session PaymentIntents (auto top-up, issue 19) ----------------------------------------


def saved_card(fake: FakeStripe, client: stripe.StripeClient, behaviour: str) -> tuple[str, str]:
    """A customer whose Checkout saved its card (``setup_future_usage``), which later charges as ``behaviour``."""
    customer = client.v1.customers.create(params={"email": "a@example.com"}).id
    fake.saved_card_behaviour = behaviour
    session = create(client, key=f"save-{customer}", customer=customer,
                     payment_intent_data={"setup_future_usage": "off_session"})
    fake.pay(session.id)
    pi = client.v1.payment_intents.retrieve(fake.sessions[session.id]["payment_intent"])
    assert pi.setup_future_usage == "off_session" and pi.customer == customer
    method = client.v1.payment_methods.retrieve(str(pi.payment_method))
    assert method.customer == customer and method.type == "card"
    return customer, method.id


def off_session(client: stripe.StripeClient, customer: str, method: str, key: str = "topup-1") -> Any:
    return client.v1.payment_intents.create(params={
        "amount": 499, "currency": "usd", "customer": customer, "payment_method": method, "off_session": True,
        "confirm": True, "metadata": {"topupId": "tu_1"}}, options={"idempotency_key": key})


@pytest.mark.parametrize(("behaviour", "code", "decline_code"), [
    ("declined", "card_declined", "generic_decline"),
    ("authentication", "authentication_required", "authentication_required"),
])
def test_an_off_session_payment_declined_answers_a_402_card_error_as_stripe(
    fake: FakeStripe, client: stripe.StripeClient, receiver: Receiver, behaviour: str, code: str, decline_code: str
) -> None:
    customer, method = saved_card(fake, client, behaviour)
    with pytest.raises(stripe.CardError) as raised:
        off_session(client, customer, method)
    error = raised.value
    assert error.http_status == 402 and error.code == code
    assert error.error is not None and error.error.decline_code == decline_code
    pi = error.error.payment_intent
    assert pi is not None and pi.status == "requires_payment_method" and pi.last_payment_error.code == code
    with pytest.raises(stripe.CardError) as again:  # the same key answers the same, a 402 included
        off_session(client, customer, method)
    assert again.value.error is not None and again.value.error.payment_intent.id == pi.id
    fake.wait_deliveries()
    assert [e["type"] for e in receiver.events()][-1] == "payment_intent.payment_failed"


def test_an_off_session_payment_succeeds_once_per_key_and_can_be_refunded(
    fake: FakeStripe, client: stripe.StripeClient, receiver: Receiver
) -> None:
    customer, method = saved_card(fake, client, "succeeds")
    pi = off_session(client, customer, method)
    assert (pi.status, pi.amount_received, pi.metadata["topupId"]) == ("succeeded", 499, "tu_1")
    assert off_session(client, customer, method).id == pi.id
    refund = client.v1.refunds.create(params={"payment_intent": pi.id, "amount": 463})
    assert (refund.amount, refund.status, refund.payment_intent) == (463, "succeeded", pi.id)
    fake.wait_deliveries()
    assert "payment_intent.succeeded" in [e["type"] for e in receiver.events()]
    other, _ = saved_card(fake, client, "succeeds")
    with pytest.raises(stripe.InvalidRequestError):  # a card is its own customer's
        off_session(client, other, method, key="topup-2")


def test_a_payment_needing_the_customer_answers_requires_action(fake: FakeStripe, client: stripe.StripeClient) -> None:
    customer, method = saved_card(fake, client, "requires_action")
    pi = off_session(client, customer, method)
    assert pi.status == "requires_action" and pi.next_action is not None
