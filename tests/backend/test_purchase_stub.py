"""Buying a pack in stub payments mode, through the stub checkout page as a browser would."""

from __future__ import annotations

import json

import requests

from tests.helpers.api import Api
from tests.helpers.backend import BackendProcess
from tests.helpers.pages import handoff_query, handoff_url, outcome

RETURN_URL = "http://127.0.0.1:45678/callback"


def follow(response: requests.Response) -> requests.Response:
    """Follow 303s like a browser; the browser ends on the backend's own page."""
    while response.status_code in (302, 303):
        response = requests.get(response.headers["Location"], allow_redirects=False, timeout=10)
    return response


def test_health_says_stub_mode(stub_backend: BackendProcess) -> None:
    body = requests.get(f"{stub_backend.url}/api/health", timeout=5).json()
    assert body["status"] == "ok" and body["payments"] == "stub" and body["version"]
    assert "Stub payments mode" in stub_backend.log_with("Stub payments mode")


def test_packs_come_from_the_catalogue(stub_backend: BackendProcess) -> None:
    packs = requests.get(f"{stub_backend.url}/api/billing/packs", timeout=5).json()["packs"]
    assert [p["id"] for p in packs] == ["starter", "standard", "pro"]
    assert packs[0] == {"id": "starter", "name": "Starter", "credits": 100, "amount": 500, "currency": "usd",
                        "pricePerCredit": "5", "tax": None}  # the contract's, and whether tax is added (none)
    # a cent's share of a credit, to four places: 2500 / 550 = 4.5454..., 5000 / 1200 = 4.1666...
    assert [p["pricePerCredit"] for p in packs] == ["5", "4.5455", "4.1667"]


def test_happy_path_pay_on_the_stub_page(stub_api: Api) -> None:
    checkout = stub_api.checkout("standard", returnUrl=RETURN_URL, state="s-123_abc")
    page = requests.get(checkout["url"], timeout=5)
    assert page.status_code == 200 and page.headers["Cache-Control"] == "no-store"
    assert "Standard pack" in page.text and "25.00 USD" in page.text and "Stub payments mode" in page.text
    assert 'id="pay"' in page.text and 'id="cancel"' in page.text
    assert stub_api.verify(checkout["sessionId"]).json()["status"] == "pending"

    page = follow(requests.post(checkout["url"] + "/pay", allow_redirects=False, timeout=10))
    # The browser ends on the backend's page stating the outcome, which hands it to the app in the background.
    assert page.status_code == 200 and outcome(page.text) == "paid" and "550 credits were added" in page.text
    assert handoff_query(page.text) == {"session_id": [checkout["sessionId"]], "state": ["s-123_abc"],
                                        "status": ["paid"]}
    policy = page.headers["Content-Security-Policy"]
    assert "connect-src http://127.0.0.1:45678;" in policy and "script-src 'nonce-" in policy

    verified = stub_api.verify(checkout["sessionId"]).json()
    assert verified == {"sessionId": checkout["sessionId"], "status": "paid", "creditsGranted": 550, "balance": 550,
                        "payment": {"amount": 2500, "currency": "usd", "listPrice": 2500, "discount": 0, "tax": 0}}
    (entry,) = stub_api.transactions()
    assert entry["type"] == "purchase" and entry["amount"] == 550 and entry["reference"] == checkout["sessionId"]
    # what was paid, and the order behind it, for the app's history and support
    assert checkout["orderId"].startswith("ord_") and entry["orderId"] == checkout["orderId"]
    assert entry["payment"] == {"amount": 2500, "currency": "usd", "listPrice": 2500, "discount": 0, "tax": 0}
    # paying again (a second click, the back button) grants nothing more
    follow(requests.post(checkout["url"] + "/pay", allow_redirects=False, timeout=10))
    assert stub_api.balance() == 550


def test_a_stub_payment_is_kept_as_stripe_shapes_one_at_the_list_price(
    stub_api: Api, stub_backend: BackendProcess
) -> None:
    """The stub's session has Stripe's totals (subtotal = total, no discount, no tax): one path for both."""
    checkout = stub_api.checkout("standard")
    follow(requests.post(checkout["url"] + "/pay", allow_redirects=False, timeout=10))
    assert stub_api.balance() == 550
    [order] = json.loads(stub_backend.admin("user", stub_api.user["email"], "--json").stdout)["orders"]
    assert (order["status"], order["amount"], order["amountPaid"], order["amountDiscount"], order["amountTax"],
            order["refusal"]) == ("paid", 2500, 2500, 0, 0, None)


def test_a_checkout_saving_the_card_asks_how_it_behaves_above_pay_and_cancel(stub_api: Api) -> None:
    """The stub card's choice is a line of its own above the buttons, sent with Pay (the select names Pay's form):
    inside Pay's form it stood beside Cancel, which the buttons' row then lined up with the question."""
    page = requests.get(stub_api.checkout("starter", saveCard=True)["url"], timeout=5).text
    choice, actions = page.index('id="card"'), page.index('class="actions"')
    assert page.index('id="save-card"') < choice < actions
    assert 'name="card" form="pay-form"' in page and '<form id="pay-form" method="post"' in page[actions:]
    assert 'id="card"' not in requests.get(stub_api.checkout("starter")["url"], timeout=5).text


def test_without_a_return_url_the_success_page_confirms_itself(stub_api: Api) -> None:
    checkout = stub_api.checkout("starter")
    page = follow(requests.post(checkout["url"] + "/pay", allow_redirects=False, timeout=10))
    assert page.status_code == 200 and handoff_url(page.text) is None
    assert "Payment received" in page.text and "100 credits" in page.text
    assert "connect-src 'none'" in page.headers["Content-Security-Policy"]
    assert stub_api.balance() == 100


def test_cancel_shows_cancelled_and_the_session_can_no_longer_be_paid(stub_api: Api) -> None:
    checkout = stub_api.checkout("starter", returnUrl=RETURN_URL, state="st")
    page = follow(requests.post(checkout["url"] + "/cancel", allow_redirects=False, timeout=10))
    assert page.status_code == 200 and outcome(page.text) == "cancelled" and "Nothing was charged" in page.text
    assert handoff_query(page.text)["status"] == ["cancelled"]
    assert stub_api.verify(checkout["sessionId"]).json()["status"] == "cancelled"
    page = requests.get(checkout["url"], timeout=5)  # the checkout page again (the Back button)
    assert "This checkout was cancelled" in page.text and 'id="pay"' not in page.text
    r = requests.post(checkout["url"] + "/pay", allow_redirects=False, timeout=10)
    assert r.status_code == 410 and "Checkout cancelled" in r.text
    assert stub_api.balance() == 0


def test_the_cancel_url_asks_and_only_a_post_cancels(stub_api: Api, stub_backend: BackendProcess) -> None:
    checkout = stub_api.checkout("starter", returnUrl=RETURN_URL, state="st")
    [order] = stub_backend.query("SELECT id FROM orders WHERE session_id = ?", checkout["sessionId"])
    cancel_url = f"{stub_backend.url}/account/credits/cancel"
    for _ in range(3):
        asked = requests.get(cancel_url, params={"order_id": order["id"]}, timeout=10)
        assert asked.status_code == 200 and outcome(asked.text) == "asking" and handoff_url(asked.text) is None
        assert "form-action 'self'" in asked.headers["Content-Security-Policy"]
    assert stub_api.verify(checkout["sessionId"]).json()["status"] == "pending"
    posted = requests.post(cancel_url, params={"order_id": order["id"]}, allow_redirects=False, timeout=10)
    assert posted.status_code == 303
    page = follow(posted)
    assert outcome(page.text) == "cancelled" and handoff_query(page.text)["status"] == ["cancelled"]
    assert stub_api.verify(checkout["sessionId"]).json()["status"] == "cancelled"
    again = requests.get(cancel_url, params={"order_id": order["id"]}, timeout=10)
    assert outcome(again.text) == "cancelled"  # a cancelled order is not offered for cancelling again
    unknown = requests.post(cancel_url, params={"order_id": "ord_nothing"}, allow_redirects=False, timeout=10)
    assert unknown.status_code == 404


def test_a_paid_checkout_page_says_so_instead_of_offering_pay(stub_api: Api) -> None:
    checkout = stub_api.checkout("starter", returnUrl=RETURN_URL, state="st")
    follow(requests.post(checkout["url"] + "/pay", allow_redirects=False, timeout=10))
    page = requests.get(checkout["url"], timeout=5)
    assert "This checkout is already paid" in page.text and 'id="pay"' not in page.text
    assert stub_api.balance() == 100


def test_the_success_page_while_the_payment_is_pending_refreshes_itself(stub_api: Api) -> None:
    checkout = stub_api.checkout("starter", returnUrl=RETURN_URL, state="st")
    page = requests.get(f"{stub_api.base_url}/account/credits/success",
                        params={"session_id": checkout["sessionId"]}, timeout=5)
    assert page.status_code == 200 and outcome(page.text) == "pending"
    assert '<meta http-equiv="refresh" content="10">' in page.text
    assert handoff_query(page.text)["status"] == ["pending"]


def test_cancel_api_expires_the_checkout(stub_api: Api, stub_backend: BackendProcess) -> None:
    checkout = stub_api.checkout("standard", returnUrl=RETURN_URL, state="st")
    r = stub_api.post("/api/billing/cancel", json={"sessionId": checkout["sessionId"]})
    assert r.status_code == 200 and r.json() == {"sessionId": checkout["sessionId"], "status": "cancelled"}
    again = stub_api.post("/api/billing/cancel", json={"sessionId": checkout["sessionId"]})
    assert again.json()["status"] == "cancelled"  # idempotent
    assert requests.post(checkout["url"] + "/pay", allow_redirects=False, timeout=10).status_code == 410
    assert stub_api.verify(checkout["sessionId"]).json()["status"] == "cancelled"
    assert stub_api.balance() == 0

    paid = stub_api.checkout("starter")
    follow(requests.post(paid["url"] + "/pay", allow_redirects=False, timeout=10))
    r = stub_api.post("/api/billing/cancel", json={"sessionId": paid["sessionId"]})
    assert r.status_code == 200 and r.json()["status"] == "paid" and stub_api.balance() == 100


def test_cancel_api_refuses_other_users_and_bad_input(stub_backend: BackendProcess) -> None:
    alice, mallory = Api(stub_backend.url).register(), Api(stub_backend.url).register()
    session_id = alice.checkout("starter")["sessionId"]
    for api, body, status in ((mallory, {"sessionId": session_id}, 404), (alice, {"sessionId": "cs_nope"}, 404),
                              (alice, {}, 422), (alice, {"sessionId": 7}, 422), (alice, {"sessionId": ""}, 422)):
        r = api.post("/api/billing/cancel", json=body)
        assert r.status_code == status, (body, r.text)
        assert r.json()["error"]["code"]
    assert Api(stub_backend.url).post("/api/billing/cancel", json={"sessionId": session_id}).status_code == 401
    assert alice.verify(session_id).json()["status"] == "pending"  # nothing changed


def test_success_page_for_an_unknown_session_is_a_404_page(stub_backend: BackendProcess) -> None:
    r = requests.get(f"{stub_backend.url}/account/credits/success", params={"session_id": "cs_nope"}, timeout=5)
    assert r.status_code == 404 and "Checkout not found" in r.text
    r = requests.get(f"{stub_backend.url}/stub/checkout/<script>", timeout=5)
    assert r.status_code == 404 and "<script>" not in r.text


def test_another_users_session_is_404(stub_backend: BackendProcess) -> None:
    alice, mallory = Api(stub_backend.url).register(), Api(stub_backend.url).register()
    checkout = alice.checkout("starter")
    follow(requests.post(checkout["url"] + "/pay", allow_redirects=False, timeout=10))
    r = mallory.verify(checkout["sessionId"])
    assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_session"
    assert mallory.balance() == 0 and mallory.transactions() == []
    assert alice.balance() == 100


def test_return_url_must_be_loopback_with_a_port(stub_backend: BackendProcess, stub_api: Api) -> None:
    for bad in ("https://127.0.0.1:8000/cb", "http://localhost:8000/cb", "http://127.0.0.1/cb",
                "http://evil.example:8000/cb", "http://127.0.0.2:8000/cb", "http://user@127.0.0.1:80/cb",
                "http://[::1]/cb", "http://127.0.0.1:0/cb", "http://127.0.0.1:99999/cb", "javascript:alert(1)",
                "http://127.0.0.1:8000/cb#frag", "http://0x7f000001:8000/"):
        r = stub_api.post("/api/billing/checkout", json={"packId": "starter", "returnUrl": bad})
        assert r.status_code == 400, bad
        assert r.json()["error"]["code"] == "invalid_return_url"
    orders = "SELECT COUNT(*) AS n FROM orders WHERE user_id = ?"
    assert stub_backend.query(orders, stub_api.user["id"])[0]["n"] == 0  # nothing was written
    for good in ("http://127.0.0.1:8000/cb", "http://[::1]:8000/cb?x=1"):
        assert stub_api.post("/api/billing/checkout", json={"packId": "starter", "returnUrl": good}).status_code == 200
    assert stub_backend.query(orders, stub_api.user["id"])[0]["n"] == 2


def test_unknown_pack_is_404(stub_api: Api) -> None:
    r = stub_api.post("/api/billing/checkout", json={"packId": "diamond"})
    assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_pack"


def test_checkout_and_verify_are_rate_limited_per_user(stub_backend: BackendProcess) -> None:
    api, other = Api(stub_backend.url).register(), Api(stub_backend.url).register()
    codes = [api.post("/api/billing/checkout", json={"packId": "starter"}).status_code for _ in range(11)]
    assert codes == [200] * 10 + [429]
    assert other.post("/api/billing/checkout", json={"packId": "starter"}).status_code == 200
    session_id = other.checkout("starter")["sessionId"]
    codes = [other.verify(session_id).status_code for _ in range(21)]
    assert codes == [200] * 20 + [429]
    r = other.verify(session_id)
    assert r.json()["error"]["code"] == "rate_limited" and int(r.headers["Retry-After"]) >= 1
