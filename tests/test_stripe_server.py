"""The Stripe-compatible test server, driven through the real stripe SDK."""

from __future__ import annotations

import http.client
import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import stripe

from tests.helpers.stripe_server import FakeStripe, decode_form, fixture, format_amount

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
    assert [r["amount"] for r in charge["refunds"]["data"]] == [1500, 1000]
    assert rest["data"]["previous_attributes"]["amount_refunded"] == 1000
    with pytest.raises(ValueError):
        fake.refund(session.id, 1)
    assert [e["type"] for e in receiver.events()][-2:] == ["charge.refunded", "charge.refunded"]


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
