"""ApiClient against the real backend in stub mode, plus a scripted server for retries and odd answers."""

from __future__ import annotations

import logging
import socket
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests

from desktop.core.api import (
    ApiClient,
    ApiError,
    BackendUnreachable,
    CancelResult,
    CheckoutSession,
    GrantSummary,
    HeldCredits,
    PaymentVerification,
    Price,
)
from desktop.core.callback import LoopbackListener
from desktop.core.purchase import FlowState, PurchaseFlow
from tests.desktop.core.conftest import PASSWORD, unique_email
from tests.helpers.backend import BackendProcess
from tests.helpers.pages import handoff_url

# -- against the real backend ---------------------------------------------------------------------------------


def test_health_reports_stub_mode_and_latency(stub_backend: BackendProcess) -> None:
    health = ApiClient(stub_backend.url).health()
    assert health.status == "ok"
    assert health.payments == "stub"
    assert health.version
    assert 0 < health.latency_ms < 5000


def test_register_login_logout(stub_backend: BackendProcess) -> None:
    email = unique_email()
    api = ApiClient(stub_backend.url + "/")
    registered = api.register(email, PASSWORD)
    assert api.token == registered.token
    assert registered.user.email == email
    assert registered.token not in repr(registered)
    assert registered.token not in repr(api)

    other = ApiClient(stub_backend.url)
    logged_in = other.login(email, PASSWORD)
    assert logged_in.user.id == registered.user.id
    assert other.token == logged_in.token != registered.token

    other.logout()
    assert other.token is None
    with pytest.raises(ApiError) as caught:
        ApiClient(stub_backend.url, logged_in.token).balance()
    assert caught.value.status == 401
    assert api.balance() == 0  # the other token still works


def test_errors_carry_the_contract_code_and_message(stub_backend: BackendProcess) -> None:
    email = unique_email()
    ApiClient(stub_backend.url).register(email, PASSWORD)
    with pytest.raises(ApiError) as taken:
        ApiClient(stub_backend.url).register(email, PASSWORD)
    assert (taken.value.status, taken.value.code) == (409, "email_taken")
    assert "already exists" in str(taken.value)

    with pytest.raises(ApiError) as wrong:
        ApiClient(stub_backend.url).login(email, "not the password")
    assert (wrong.value.status, wrong.value.code) == (401, "invalid_credentials")
    assert wrong.value.retry_after is None

    with pytest.raises(ApiError) as invalid:
        ApiClient(stub_backend.url).register("not an email", PASSWORD)
    assert invalid.value.status == 422


def test_calls_that_need_a_token_say_so_without_one(stub_backend: BackendProcess) -> None:
    with pytest.raises(ApiError) as caught:
        ApiClient(stub_backend.url).balance()
    assert caught.value.status == 401


def test_packs(stub_backend: BackendProcess) -> None:
    packs = ApiClient(stub_backend.url).packs()
    starter = next(p for p in packs if p.id == "starter")
    assert (starter.credits, starter.amount, starter.currency) == (100, 500, "usd")
    assert [p.price_per_credit for p in packs] == [Decimal("5"), Decimal("4.5455"), Decimal("4.1667")]


@pytest.mark.parametrize(("sent", "per_credit"), [
    ('"4.5455"', Decimal("4.5455")),
    ('"0"', Decimal("0")),  # a credit worth less than a ten-thousandth of a cent
    (None, Decimal(2500) / Decimal(550)),  # an older backend: worked out from the price
])
def test_a_packs_price_per_credit(scripted: Scripted, sent: str | None, per_credit: Decimal) -> None:
    field = f', "pricePerCredit": {sent}' if sent is not None else ""
    scripted.then(200, '{"packs": [{"id": "s", "name": "S", "credits": 550, "amount": 2500, "currency": "usd"'
                       + field + "}]}")
    assert ApiClient(scripted.url).packs()[0].per_credit == per_credit


@pytest.mark.parametrize(("sent", "tax"), [
    ('"exclusive"', "exclusive"), ('"inclusive"', "inclusive"), ("null", None),
    ('"other"', None),  # a value this app does not know says nothing
])
def test_a_pack_says_whether_checkout_adds_tax(scripted: Scripted, sent: str, tax: str | None) -> None:
    scripted.then(200, '{"packs": [{"id": "s", "name": "S", "credits": 550, "amount": 2500, "currency": "usd", '
                       f'"pricePerCredit": "4.5455", "tax": {sent}}}]}}')
    assert ApiClient(scripted.url).packs()[0].tax == tax


@pytest.mark.parametrize("sent", ['4.5', '"cheap"', '"NaN"', '"-1"', '"Infinity"'])
def test_a_price_per_credit_that_is_not_a_decimal_string_is_a_bad_answer(scripted: Scripted, sent: str) -> None:
    scripted.then(200, '{"packs": [{"id": "s", "name": "S", "credits": 550, "amount": 2500, "currency": "usd", '
                       f'"pricePerCredit": {sent}}}]}}')
    with pytest.raises(ApiError) as caught:
        ApiClient(scripted.url).packs()
    assert caught.value.code == "invalid_response"


def test_checkout_errors(client: ApiClient) -> None:
    with pytest.raises(ApiError) as unknown:
        client.checkout("no-such-pack")
    assert (unknown.value.status, unknown.value.code) == (404, "unknown_pack")
    with pytest.raises(ApiError) as bad_url:
        client.checkout("starter", "https://evil.example/callback", "x")
    assert (bad_url.value.status, bad_url.value.code) == (400, "invalid_return_url")
    with pytest.raises(ApiError) as unknown_session:
        client.verify_payment("cs_stub_nope")
    assert unknown_session.value.status == 404


def test_whole_stub_purchase_through_the_loopback_listener(client: ApiClient) -> None:
    flow = PurchaseFlow("starter")
    flow.begin()
    heard: list[Any] = []
    with LoopbackListener(on_result=heard.append, timeout_seconds=60) as listener:
        session = client.checkout("starter", listener.return_url, listener.state)
        assert isinstance(session, CheckoutSession)
        assert session.session_id.startswith("cs_stub_")
        flow.started(session.session_id, session.url)
        assert client.verify_payment(session.session_id).status == "pending"

        # The browser: the stub checkout page, then Pay, following the redirects to the loopback listener.
        page = requests.get(session.url, timeout=10)
        assert page.status_code == 200 and "/pay" in page.text
        # It ends on the backend's page, which hands the result to the listener in the background.
        paid = requests.post(f"{session.url}/pay", timeout=10)
        assert paid.status_code == 200 and "Payment received" in paid.text
        assert paid.url.startswith(f"{client.base_url}/account/credits/success")
        handoff = handoff_url(paid.text)
        assert handoff is not None and handoff.startswith(listener.return_url + "?")
        assert requests.get(handoff, headers={"Sec-Fetch-Mode": "no-cors"}, timeout=10).status_code == 204

        result = listener.wait(10)
    assert result is not None
    assert result.session_id == session.session_id
    assert result.status == "paid"
    assert heard == [result]
    assert flow.callback(result) and flow.state is FlowState.VERIFYING

    verification = client.verify_payment(session.session_id)
    assert verification == PaymentVerification(session.session_id, "paid", 100, 100, Price(500, "usd"))
    flow.verified(verification.status, verification.credits_granted, verification.balance)
    assert flow.state is FlowState.PAID

    assert client.balance() == 100
    page_ = client.transactions()
    assert [t.type for t in page_.items] == ["purchase"]
    assert page_.items[0].amount == 100 and page_.items[0].balance_after == 100
    assert page_.next_cursor is None
    assert page_.items[0].payment == Price(500, "usd") and page_.items[0].order_id == session.order_id
    assert session.order_id and session.order_id.startswith("ord_")


def test_cancel_in_the_browser_reaches_the_listener(client: ApiClient) -> None:
    with LoopbackListener(timeout_seconds=60) as listener:
        session = client.checkout("starter", listener.return_url, listener.state)
        answer = requests.post(f"{session.url}/cancel", timeout=10)
        assert answer.status_code == 200
        assert "Checkout cancelled" in answer.text
        requests.get(handoff_url(answer.text) or "", headers={"Sec-Fetch-Mode": "no-cors"}, timeout=10)
        result = listener.wait(10)
    assert result is not None
    assert (result.session_id, result.status) == (session.session_id, "cancelled")
    assert client.verify_payment(session.session_id).status == "cancelled"
    assert client.balance() == 0


def test_cancel_a_checkout(client: ApiClient) -> None:
    session = client.checkout("starter")
    assert client.cancel(session.session_id) == CancelResult(session.session_id, "cancelled")
    assert client.cancel(session.session_id).status == "cancelled"
    assert requests.post(f"{session.url}/pay", timeout=10).status_code == 410
    with pytest.raises(ApiError) as unknown:
        client.cancel("cs_stub_nope")
    assert unknown.value.status == 404


def _buy(client: ApiClient) -> None:
    session = client.checkout("starter")
    assert requests.post(f"{session.url}/pay", timeout=10).status_code == 200
    assert client.verify_payment(session.session_id).status == "paid"


def test_spend_is_idempotent(client: ApiClient) -> None:
    _buy(client)
    key = str(uuid.uuid4())
    first = client.spend(30, key, "report")
    assert first.balance == 70
    again = client.spend(30, key, "report")
    assert again == first
    assert client.balance() == 70
    with pytest.raises(ApiError) as conflict:
        client.spend(31, key, "report")
    assert conflict.value.status == 409
    with pytest.raises(ApiError) as poor:
        client.spend(1000, str(uuid.uuid4()))
    assert (poor.value.status, poor.value.code) == (402, "insufficient_credits")
    assert "balance is 70" in poor.value.message


def test_held_credits_say_what_open_holds_reserve(client: ApiClient) -> None:
    _buy(client)
    assert client.held_credits() == HeldCredits(reserved=0, available=100, open=0)
    http = requests.Session()
    http.headers["Authorization"] = f"Bearer {client.token}"
    for key, amount in (("a", 33), ("b", 7)):
        r = http.post(f"{client.base_url}/api/credits/holds", json={"amount": amount, "idempotencyKey": key},
                      timeout=10)
        assert r.status_code == 201, r.text
    hold_id = r.json()["id"]
    assert client.held_credits() == HeldCredits(reserved=40, available=60, open=2)
    http.post(f"{client.base_url}/api/credits/holds/{hold_id}/void", json={}, timeout=10)
    assert client.held_credits() == HeldCredits(reserved=33, available=67, open=1)


def test_a_backend_older_than_holds_reserves_nothing(scripted: Scripted) -> None:
    scripted.then(404, '{"error": {"code": "not_found", "message": "There is nothing at this address."}}')
    assert ApiClient(scripted.url, "tok").held_credits() is None


def test_transactions_paginate(client: ApiClient) -> None:
    _buy(client)
    for n in range(3):
        client.spend(1, f"k-{n}", f"spend {n}")
    first = client.transactions(limit=2)
    assert [t.description for t in first.items] == ["spend 2", "spend 1"]
    assert first.next_cursor is not None
    second = client.transactions(limit=2, before=first.next_cursor)
    assert [t.type for t in second.items] == ["spend", "purchase"]
    rest = client.transactions(limit=2, before=second.next_cursor) if second.next_cursor else None
    assert rest is None or rest.items == ()


def test_one_client_from_many_threads(client: ApiClient) -> None:
    sessions: set[int] = set()
    lock = threading.Lock()

    def call(_: int) -> int:
        value = client.balance()
        with lock:
            sessions.add(id(client._session(True)))
        return value

    with ThreadPoolExecutor(6) as pool:
        assert list(pool.map(call, range(24))) == [0] * 24
    assert len(sessions) > 1  # one session per thread


def test_the_token_never_reaches_logs_or_errors(
    stub_backend: BackendProcess, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    api = ApiClient(stub_backend.url)
    token = api.register(unique_email(), PASSWORD).token
    api.balance()
    with pytest.raises(ApiError) as caught:
        api.verify_payment("cs_stub_unknown")
    api.token = token + "x"
    with pytest.raises(ApiError) as unauthorized:
        api.balance()
    text = caplog.text + str(caught.value) + repr(caught.value) + str(unauthorized.value) + repr(api)
    assert token not in text


# -- unreachable servers ----------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_connection_refused_is_backend_unreachable() -> None:
    url = f"http://127.0.0.1:{_free_port()}"
    api = ApiClient(url, "secret-token-value", retries=1)
    with pytest.raises(BackendUnreachable) as caught:
        api.balance()
    assert str(caught.value) == f"The Creditdesk server at {url} is not answering."
    assert "secret-token-value" not in repr(caught.value)


def test_a_silent_server_times_out() -> None:
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        url = f"http://127.0.0.1:{listening.getsockname()[1]}"
        with pytest.raises(BackendUnreachable) as caught:
            ApiClient(url, timeout=0.3, retries=0).health()
    assert "did not answer in time" in str(caught.value)


# -- a scripted server ------------------------------------------------------------------------------------------


class Scripted:
    """Answers each request with the next scripted (status, headers, body); records what it received."""

    def __init__(self) -> None:
        self.script: list[tuple[int, dict[str, str], bytes]] = []
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        scripted = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                scripted.requests.append((self.command, self.path, dict(self.headers)))
                status, headers, body = scripted.script.pop(0) if scripted.script else (500, {}, b"")
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _answer

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def then(self, status: int, body: bytes | str = b"", **headers: str) -> Scripted:
        if isinstance(body, str):
            body = body.encode()
            headers.setdefault("Content-Type", "application/json")
        self.script.append((status, {k.replace("_", "-"): v for k, v in headers.items()}, body))
        return self

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def scripted() -> Iterator[Scripted]:
    server = Scripted()
    yield server
    server.close()


HEALTH = '{"status": "ok", "payments": "stub", "version": "9.9"}'


def test_gets_are_retried_on_gateway_errors(scripted: Scripted) -> None:
    scripted.then(503, "").then(502, "<html>bad gateway</html>").then(200, HEALTH)
    assert ApiClient(scripted.url).health().version == "9.9"
    assert len(scripted.requests) == 3


def test_retries_give_up_with_the_last_answer(scripted: Scripted) -> None:
    for _ in range(4):
        scripted.then(503, '{"error": {"code": "payment_provider_unavailable", "message": "Try later."}}',
                      Retry_After="5")
    with pytest.raises(ApiError) as caught:
        ApiClient(scripted.url, "tok", retries=3).verify_payment("cs_1")
    assert (caught.value.status, caught.value.code, caught.value.retry_after) == (
        503, "payment_provider_unavailable", 5)
    assert len(scripted.requests) == 4


def test_posts_are_not_retried(scripted: Scripted) -> None:
    scripted.then(503, "").then(200, '{"sessionId": "cs_1", "url": "http://x"}')
    with pytest.raises(ApiError) as caught:
        ApiClient(scripted.url, "tok").checkout("starter")
    assert caught.value.status == 503
    assert "not available" in caught.value.message  # a sensible message without a JSON body
    assert [r[0] for r in scripted.requests] == ["POST"]


def test_spend_is_retried_with_the_same_key(scripted: Scripted) -> None:
    scripted.then(502, "").then(200, '{"transactionId": 7, "balance": 3}')
    result = ApiClient(scripted.url, "tok").spend(2, "key-1", "x")
    assert (result.transaction_id, result.balance) == (7, 3)
    assert [r[0] for r in scripted.requests] == ["POST", "POST"]
    assert all(r[2]["Authorization"] == "Bearer tok" for r in scripted.requests)


def test_rate_limit_carries_retry_after(scripted: Scripted) -> None:
    scripted.then(429, '{"error": {"code": "rate_limited", "message": "Slow down."}}', Retry_After="12")
    with pytest.raises(ApiError) as caught:
        ApiClient(scripted.url, "tok").checkout("starter")
    assert (caught.value.code, caught.value.message, caught.value.retry_after) == ("rate_limited", "Slow down.", 12)


def test_non_json_answers(scripted: Scripted) -> None:
    scripted.then(404, b"<html>nope</html>", Content_Type="text/html").then(200, b"<html>hi</html>")
    with pytest.raises(ApiError) as not_found:
        ApiClient(scripted.url).packs()
    assert (not_found.value.status, not_found.value.code) == (404, "http_404")
    with pytest.raises(ApiError) as garbage:
        ApiClient(scripted.url).packs()
    assert garbage.value.code == "invalid_response"
    assert "does not understand" in garbage.value.message


def test_wrong_shape_is_invalid_response(scripted: Scripted) -> None:
    scripted.then(200, '{"packs": [{"id": "x"}]}')
    with pytest.raises(ApiError) as caught:
        ApiClient(scripted.url).packs()
    assert caught.value.code == "invalid_response"


def test_environment_proxies_and_netrc_do_not_apply(
    scripted: Scripted, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login someone password netrc-secret\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # a dead proxy: loopback calls must not use it
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")
    scripted.then(200, HEALTH).then(200, '{"balance": 5}')
    assert ApiClient(scripted.url).health().version == "9.9"
    assert ApiClient(scripted.url, "tok").balance() == 5
    assert "Authorization" not in scripted.requests[0][2]
    assert scripted.requests[1][2]["Authorization"] == "Bearer tok"


@pytest.mark.parametrize(("provider", "available", "retry_after"), [
    (', "paymentProvider": {"state": "unavailable", "retryAfter": 17}', False, 17),
    (', "paymentProvider": {"state": "recovering"}', True, None),  # a call goes through to try
    (', "paymentProvider": {"state": "available"}', True, None),
    ("", True, None),  # an older backend does not say
])
def test_health_says_whether_the_backend_reaches_its_payment_provider(
    scripted: Scripted, provider: str, available: bool, retry_after: int | None,
) -> None:
    scripted.then(200, '{"status": "ok", "payments": "stripe", "version": "9.9"' + provider + "}")
    health = ApiClient(scripted.url).health()
    assert (health.payments_available, health.provider_retry_after) == (available, retry_after)


def test_a_receipt_link_that_is_not_a_web_link_is_a_bad_answer(scripted: Scripted) -> None:
    """The app opens it in the system browser, which would run another scheme's handler."""
    receipt = ('{"orderId": "ord_1", "sessionId": "cs_1", "packId": "p", "credits": 7, "amount": 503, "currency": '
               '"jpy", "tax": 0, "discount": 0, "paidAt": "2026-12-05T18:00:00.000Z", "url": "%s"}')
    scripted.then(200, '{"receipts": [' + receipt % "http://127.0.0.1:8787/receipts/ord_1?key=ab" + "]}")
    [found] = ApiClient(scripted.url, "tok").receipts()
    assert (found.order_id, found.amount, found.currency) == ("ord_1", 503, "jpy")
    scripted.then(200, '{"receipts": [' + receipt % "file:///etc/passwd" + "]}")
    with pytest.raises(ApiError) as caught:
        ApiClient(scripted.url, "tok").receipts()
    assert caught.value.code == "invalid_response"


def test_the_balance_says_its_promotional_credits_and_the_next_expiry(scripted: Scripted) -> None:
    scripted.then(200, '{"balance": 112, "paid": 100, "promotional": 12, "nextExpiry": {"at": '
                       '"2026-12-14T12:00:00.000Z", "credits": 9}, "grants": []}')
    balance, grants = ApiClient(scripted.url, "tok").credits()
    assert balance == 112 and grants == GrantSummary(12, "2026-12-14T12:00:00.000Z", 9)
    assert grants.words(lambda iso: f"at {iso[:10]}") == "12 promotional · 9 expire at 2026-12-14"
    assert GrantSummary(0, "2026-12-14T12:00:00.000Z", 1).words(lambda iso: "at the end of 13 Dec") == \
        "1 expires at the end of 13 Dec"
    assert GrantSummary(0, None, 0).words(lambda iso: iso) == ""
    scripted.then(200, '{"balance": 7}')  # a backend older than grants
    assert ApiClient(scripted.url, "tok").credits() == (7, None)
