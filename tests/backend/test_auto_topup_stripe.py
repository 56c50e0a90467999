"""Auto top-up in Stripe mode, end to end (issue 19): the real backend on loopback, the real stripe SDK against the
Stripe-compatible test server, webhooks signed as Stripe signs them.

One walk through what a user sees, so that the backend starts once per engine: opt in; the first top-up's Checkout
saves the card (``setup_future_usage=off_session`` on the user's customer); a spend crossing the threshold charges it
off session (one PaymentIntent, its idempotency key the top-up's; granted once although the answer and
``payment_intent.succeeded`` both arrive); Undo after a partial spend refunds the unspent part through Stripe and
claws back exactly that; a declined card and then a payment needing the user each turn auto top-up off, with an
alert, and are never retried."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from tests.helpers.api import Api
from tests.helpers.backend import BackendProcess
from tests.helpers.stripe_server import FakeStripe


def until(condition: Callable[[], Any], what: str, seconds: float = 20) -> Any:
    """The backend charges on a thread of its own after the spend's answer: wait for what it does, not for a time."""
    deadline = time.monotonic() + seconds
    pause = threading.Event()
    while True:
        found = condition()
        if found:
            return found
        assert time.monotonic() < deadline, f"never: {what}"
        pause.wait(0.02)


def topups(api: Api) -> dict[str, Any]:
    r = api.get("/api/credits/auto-topup")
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def spend(api: Api, amount: int) -> int:
    r = api.post("/api/credits/spend", json={"amount": amount, "idempotencyKey": f"k-{time.monotonic_ns()}"})
    assert r.status_code == 200, r.text
    return r.json()["balance"]  # type: ignore[no-any-return]


def settled(api: Api, count: int) -> list[dict[str, Any]]:
    def done() -> list[dict[str, Any]] | None:
        found = topups(api)["topups"]
        return found if len(found) == count and found[0]["status"] not in ("in_flight", "undoing") else None

    return until(done, f"{count} top-up(s) settled")  # type: ignore[no-any-return]


def alert_kinds(api: Api) -> list[str]:
    return [a["kind"] for a in api.get("/api/alerts").json()["alerts"] if a["kind"].startswith("topup")]


def test_auto_topup_with_a_saved_card_off_session(stripe_backend: tuple[BackendProcess, FakeStripe]) -> None:
    backend, fake = stripe_backend
    api = Api(backend.url).register()
    # "standard" is 550 credits for 25.00 in the test catalogue; threshold 100, at most 100.00 a month.
    r = api.request("PUT", "/api/credits/auto-topup", json={
        "enabled": True, "threshold": 100, "packId": "standard", "monthlyLimit": 10_000})
    assert r.status_code == 200, r.text
    assert r.json()["enabled"] and not r.json()["cardSaved"]

    # The first top-up: the normal Checkout, saving the card on the user's one customer.
    session_id = api.checkout("standard", saveCard=True)["sessionId"]
    session = fake.sessions[session_id]
    create = next(r for r in fake.requests if r["method"] == "POST" and r["path"] == "/v1/checkout/sessions")
    assert create["params"]["payment_intent_data"]["setup_future_usage"] == "off_session"
    assert session["customer"] and session["metadata"]["autoTopup"] == "save"
    fake.pay(session_id)
    assert api.balance() == 550 and topups(api)["cardSaved"]

    # A spend crossing 100 downward: one off-session charge of the saved card, granted once.
    assert spend(api, 451) == 99
    [paid] = settled(api, 1)
    assert paid["status"] == "succeeded" and paid["undoable"] and paid["amount"] == 2500
    fake.wait_deliveries(timeout=15)
    [charge] = [r for r in fake.requests if r["method"] == "POST" and r["path"] == "/v1/payment_intents"]
    assert charge["params"]["off_session"] == "true" and charge["params"]["confirm"] == "true"
    assert charge["params"]["customer"] == session["customer"]
    assert charge["params"]["payment_method"] == fake.payment_intents[session["payment_intent"]]["payment_method"]
    assert charge["headers"]["Idempotency-Key"] == f"topup-{paid['id']}"
    succeeded = [e for e in fake.events.values() if e["type"] == "payment_intent.succeeded"]
    assert len(succeeded) == 1 and fake.deliver(succeeded[0]) == [200]  # once more: a duplicate
    assert api.balance() == 99 + 550
    assert backend.query("SELECT COUNT(*) AS n FROM ledger_entries WHERE reference = ? AND type = 'purchase'",
                         paid["id"])[0]["n"] == 1

    # Undo after spending 37 of it (spends take the 99 credits from before it first): 513 of 550 credits left,
    # bought for 25.00: 23.36 refunded (floor(550 * 2336 / 2500) = 513; 23.37 would take 514).
    assert spend(api, 99 + 37) == 513
    r = api.post(f"/api/credits/auto-topup/{paid['id']}/undo")
    assert r.status_code == 200, r.text
    assert r.json() == {"topupId": paid["id"], "refunded": 2336, "currency": "usd", "credits": 513, "balance": 0}
    [refund] = [x for x in fake.refunds.values() if x["payment_intent"] == paid_intent(backend, paid["id"])]
    assert refund["amount"] == 2336
    fake.wait_deliveries(timeout=15)  # refund.created and charge.refunded change nothing more
    assert api.balance() == 0
    assert api.post(f"/api/credits/auto-topup/{paid['id']}/undo").json()["error"]["code"] == "topup_not_undoable"

    # The card is declined next time: auto top-up turns off, says so, and does not try again.
    [method] = fake.saved_cards
    fake.saved_cards[method] = "declined"
    backend_add(backend, api, 199)  # back above the threshold (an admin adjustment)
    assert spend(api, 101) == 98
    [failed, _] = settled(api, 2)
    assert failed["status"] == "failed" and failed["failure"] == "card_declined"
    state = topups(api)
    assert not state["enabled"] and state["disabledReason"] == "card_declined"
    assert alert_kinds(api)[0] == "topup_failed"
    backend_add(backend, api, 100)
    spend(api, 101)
    assert len(topups(api)["topups"]) == 2  # off: nothing retries

    # On again by the user; the bank now wants the user (requires_action): off again, nothing charged.
    assert api.request("PUT", "/api/credits/auto-topup", json={"enabled": True}).json()["enabled"]
    fake.saved_cards[method] = "requires_action"
    backend_add(backend, api, 100)
    spend(api, 101)
    [needs_user, _, _] = settled(api, 3)
    assert needs_user["status"] == "failed" and needs_user["failure"] == "authentication_required"
    assert topups(api)["disabledReason"] == "authentication_required"
    assert api.balance() == 96


def paid_intent(backend: BackendProcess, topup_id: str) -> str:
    return str(backend.query("SELECT payment_intent FROM topups WHERE id = ?", topup_id)[0]["payment_intent"])


def backend_add(backend: BackendProcess, api: Api, credits: int) -> None:
    """Support adds credits (``creditdesk-backend adjust``): the balance back above the threshold."""
    assert backend.admin("adjust", api.user["email"], str(credits), "--reason", "Goodwill").returncode == 0


def test_stub_mode_saves_a_chosen_card_and_undoes_without_keys(stub_api: Api, stub_backend: BackendProcess) -> None:
    """Stub mode, on the shared stub backend: the stub checkout page offers the card's later behaviour when it saves
    one; a top-up charged to the stub card, then undone (a stub refund, the same clawback); a hold's settle that
    crosses tops up too."""
    import requests

    api = stub_api
    assert api.request("PUT", "/api/credits/auto-topup", json={
        "enabled": True, "threshold": 100, "packId": "starter", "monthlyLimit": 999, "maxPerDay": 2}).status_code == 200
    checkout = api.checkout("starter", saveCard=True)
    page = requests.get(checkout["url"], timeout=10).text
    assert 'name="card"' in page and "Declined off session" in page and "Needs authentication" in page
    paid = requests.post(f"{checkout['url']}/pay", data={"card": "succeeds"}, allow_redirects=False, timeout=10)
    assert paid.status_code == 303
    assert api.balance() == 100 and topups(api)["cardSaved"]
    assert spend(api, 1) == 99
    [topup] = settled(api, 1)
    assert topup["status"] == "succeeded" and api.balance() == 199
    r = api.post(f"/api/credits/auto-topup/{topup['id']}/undo")
    assert r.status_code == 200, r.text
    assert (r.json()["credits"], r.json()["balance"]) == (100, 99)
    assert "topup_undone" in alert_kinds(api) and "topup_succeeded" in alert_kinds(api)
    backend_add(stub_backend, api, 100)
    hold = api.post("/api/credits/holds", json={"amount": 150, "idempotencyKey": "render-1"}).json()
    settle = api.post(f"/api/credits/holds/{hold['id']}/settle", json={"amount": 100})
    assert settle.json()["balance"] == 99
    [second, _] = settled(api, 2)
    assert second["status"] == "succeeded" and api.balance() == 199
    # Turning it off is one call, and it stays off.
    off = api.request("PUT", "/api/credits/auto-topup", json={"enabled": False}).json()
    assert not off["enabled"] and off["threshold"] == 100
