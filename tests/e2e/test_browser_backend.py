"""The backend's pages in a real browser, with the app's real loopback listener standing in for the app.

Chromium (headless) opens the checkout page the backend answered with: the backend's stub checkout page in
stub mode, or the Stripe-compatible server's hosted page in Stripe mode. It clicks Pay or Cancel and follows
the redirects to Checkout's success or cancel URL, where the backend's page states the payment's real outcome
and hands it to the desktop app's ``LoopbackListener`` in the background. The browser must end on that page,
never on Chromium's error page: with the app listening, after it stopped listening, and when Chromium's Local
Network Access rules refuse a public page the loopback request.

Screenshots of the final page go to ``test-artifacts/``. Skipped when Chromium is not installed (failed under
``CI=true``): ``apt-get install chromium chromium-driver``.

The pages run once, on SQLite (the module's ``engines`` marker): what the browser shows and hands over is the
same on either engine, and what the engine decides under them (one grant however the webhook and the success
page race, before, after or without the redirect; a cancel that expires the session) is held on both engines by
tests/backend/test_stripe_mode.py and tests/backend/test_purchase_stub.py.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from desktop.core.callback import CallbackResult, LoopbackListener
from tests.conftest import SHARED_ENV
from tests.helpers.api import Api
from tests.helpers.backend import BackendProcess
from tests.helpers.browser import Browser, browser_fixture, public_address_space, require_chromium  # noqa: F401
from tests.helpers.stripe_server import WEBHOOK_MODES, FakeStripe

pytestmark = [pytest.mark.timeout(60), pytest.mark.engines("sqlite")]


@pytest.fixture
def listener() -> Iterator[LoopbackListener]:
    """The desktop app's one-shot callback server, as the app starts it for one purchase."""
    with LoopbackListener(timeout_seconds=60) as listening:
        yield listening


def purchase_grants(backend: BackendProcess, session_id: str) -> int:
    rows = backend.query(
        "SELECT COUNT(*) AS n FROM ledger_entries WHERE type = 'purchase' AND reference = ?", session_id
    )
    return int(rows[0]["n"])


def at_outcome(browser: Browser, backend_url: str, heading: str, handoff: str) -> None:
    """The browser shows the backend's outcome page (not an error page), and the hand-off went as expected:
    ``told`` (the app's listener took it) or ``missed`` (nobody listening, or the browser refused it)."""
    browser.wait_for_url(f"{backend_url}/account/credits/", timeout=20)
    browser.assert_not_error_page()
    browser.wait_for_text(heading, timeout=10)
    browser.wait_until(lambda: browser.attribute("#handoff", "data-state") == handoff, timeout=10,
                       message=f"the hand-off ending {handoff!r}")
    browser.assert_not_error_page()


def handed_over(listener: LoopbackListener) -> CallbackResult:
    result = listener.wait(10)
    assert result is not None, "the listener never received the hand-off"
    assert result.state_ok
    assert listener.closed  # one-shot: the port is closed once the result is in
    return result


def test_stub_checkout_pay_in_the_browser(
    browser: Browser, stub_backend: BackendProcess, listener: LoopbackListener
) -> None:
    api = Api(stub_backend.url).register()
    checkout = api.checkout("standard", returnUrl=listener.return_url, state=listener.state)
    assert checkout["url"].startswith(f"{stub_backend.url}/stub/checkout/")

    browser.open(checkout["url"])
    browser.assert_not_error_page()
    page = browser.wait_for_text("Standard")
    assert "$25.00" in page  # written as the browser's locale writes it, as the app does
    browser.click("#pay")

    at_outcome(browser, stub_backend.url, "Payment received", "told")
    result = handed_over(listener)
    assert (result.session_id, result.status) == (checkout["sessionId"], "paid")
    text = browser.text()
    assert "550 credits were added to your balance" in text and checkout["sessionId"] in text
    assert "Creditdesk has been told" in text
    shot = browser.screenshot()
    assert shot.is_file() and shot.stat().st_size > 1000

    assert api.balance() == 550
    verified = api.verify(checkout["sessionId"])
    assert verified.status_code == 200, verified.text
    assert verified.json() == {"sessionId": checkout["sessionId"], "status": "paid", "creditsGranted": 550,
                               "balance": 550, "payment": {"amount": 2500, "currency": "usd", "listPrice": 2500,
                                                           "discount": 0, "tax": 0}}
    assert purchase_grants(stub_backend, checkout["sessionId"]) == 1

    # Back: the checkout page says it is paid instead of offering Pay again.
    browser.back()
    browser.wait_for_text("This checkout is already paid", timeout=10)
    assert browser.attribute("#pay", "id") is None
    browser.screenshot(suffix="-back")


def test_the_cancel_url_asks_and_only_its_button_cancels(
    browser: Browser, stub_backend: BackendProcess, listener: LoopbackListener
) -> None:
    """Checkout's back link (Stripe's cancel URL) opened, reloaded, prefetched: nothing changes until the
    customer presses Cancel purchase; Back to checkout returns to a checkout that can still be paid."""
    api = Api(stub_backend.url).register()
    checkout = api.checkout("starter", returnUrl=listener.return_url, state=listener.state)
    order_id = stub_backend.query("SELECT id FROM orders WHERE session_id = ?", checkout["sessionId"])[0]["id"]
    cancel_url = f"{stub_backend.url}/account/credits/cancel?order_id={order_id}"

    for _ in range(2):
        browser.open(cancel_url)
        browser.assert_not_error_page()
        browser.wait_for_text("Cancel this purchase?")
    assert api.verify(checkout["sessionId"]).json()["status"] == "pending"
    browser.click("#back-to-checkout")
    browser.wait_for_url(f"{stub_backend.url}/stub/checkout/")
    browser.wait_for_text("Starter")
    browser.open(cancel_url)
    browser.wait_for_text("Cancel this purchase?")
    browser.screenshot(suffix="-asking")
    browser.click("#confirm-cancel")

    at_outcome(browser, stub_backend.url, "Checkout cancelled", "told")
    assert handed_over(listener).status == "cancelled"
    assert api.verify(checkout["sessionId"]).json()["status"] == "cancelled"
    browser.screenshot()


def test_stub_checkout_cancel_in_the_browser(
    browser: Browser, stub_backend: BackendProcess, listener: LoopbackListener
) -> None:
    api = Api(stub_backend.url).register()
    checkout = api.checkout("starter", returnUrl=listener.return_url, state=listener.state)

    browser.open(checkout["url"])
    browser.assert_not_error_page()
    assert "$5.00" in browser.wait_for_text("Starter")
    browser.click("#cancel")

    at_outcome(browser, stub_backend.url, "Checkout cancelled", "told")
    result = handed_over(listener)
    assert (result.session_id, result.status) == (checkout["sessionId"], "cancelled")
    browser.screenshot()

    assert api.balance() == 0
    assert api.verify(checkout["sessionId"]).json()["status"] == "cancelled"
    assert purchase_grants(stub_backend, checkout["sessionId"]) == 0
    browser.back()
    browser.wait_for_text("This checkout was cancelled", timeout=10)
    assert browser.attribute("#pay", "id") is None


def test_paying_after_the_app_stopped_listening_shows_the_outcome(
    browser: Browser, stub_backend: BackendProcess,
) -> None:
    """The app quit, was killed or closed the purchase: its port is closed when the browser comes back."""
    listener = LoopbackListener().start()
    api = Api(stub_backend.url).register()
    checkout = api.checkout("standard", returnUrl=listener.return_url, state=listener.state)
    browser.open(checkout["url"])
    browser.wait_for_text("Standard")
    listener.close()

    browser.click("#pay")
    at_outcome(browser, stub_backend.url, "Payment received", "missed")
    assert "550 credits were added to your balance" in browser.text()
    assert "Creditdesk shows this payment the next time it checks" in browser.text()
    browser.screenshot()
    assert api.balance() == 550


@pytest.mark.parametrize("permission", ["refused", "allowed"])
def test_a_public_backend_under_local_network_access(
    stub_backend: BackendProcess, listener: LoopbackListener, permission: str,
) -> None:
    """A backend on the internet: Chromium lets its page reach the app's loopback listener only with the user's
    permission. Refused, the page still states the outcome (the app learns it by polling); allowed, the
    hand-off arrives at once."""
    require_chromium()
    api = Api(stub_backend.url).register()
    checkout = api.checkout("standard", returnUrl=listener.return_url, state=listener.state)
    with Browser(flags=(public_address_space(stub_backend.port),)) as browser:
        if permission == "allowed":
            browser.grant_loopback_access()
        browser.open(checkout["url"])
        browser.wait_for_text("Standard")
        browser.click("#pay")
        at_outcome(browser, stub_backend.url, "Payment received", "told" if permission == "allowed" else "missed")
        browser.screenshot()
    if permission == "allowed":
        assert handed_over(listener).status == "paid"
    else:
        assert listener.wait(0.5) is None and not listener.closed
    assert api.verify(checkout["sessionId"]).json()["status"] == "paid"


@pytest.mark.parametrize("webhook_mode", WEBHOOK_MODES)
def test_stripe_hosted_checkout_in_the_browser(
    browser: Browser, stripe_backend: tuple[BackendProcess, FakeStripe], listener: LoopbackListener,
    webhook_mode: str,
) -> None:
    backend, fake = stripe_backend
    fake.webhook_mode = webhook_mode
    api = Api(backend.url).register()
    checkout = api.checkout("standard", returnUrl=listener.return_url, state=listener.state)
    session_id = checkout["sessionId"]
    assert checkout["url"].startswith(f"{fake.url}/pay/")

    browser.open(checkout["url"])
    browser.assert_not_error_page()
    assert "$25.00" in browser.wait_for_text("Total due")
    browser.click("#pay")

    at_outcome(browser, backend.url, "Payment received", "told")
    result = handed_over(listener)
    assert (result.session_id, result.status) == (session_id, "paid")
    browser.screenshot()

    verified = api.verify(session_id)
    assert verified.status_code == 200, verified.text
    assert verified.json() == {"sessionId": session_id, "status": "paid", "creditsGranted": 550, "balance": 550,
                               "payment": {"amount": 2500, "currency": "usd", "listPrice": 2500, "discount": 0,
                                           "tax": 0}}
    assert purchase_grants(backend, session_id) == 1

    fake.wait_deliveries(timeout=10)  # after_redirect: the webhook lands after the browser came back
    assert purchase_grants(backend, session_id) == 1
    assert api.balance() == 550
    completed = [d for d in fake.delivery_log if d["type"] == "checkout.session.completed"]
    if webhook_mode == "never":
        assert completed == []
    else:
        assert [d["status"] for d in completed] == [200], completed


def test_prices_on_the_pages_are_stripes_amounts_in_the_browsers_words(
    browser: Browser, backend_factory, tmp_path  # type: ignore[no-untyped-def]
) -> None:
    """The value is Stripe's (500 ISK in the API is 5 krónur; KWD counts thousandths), the writing the browser's
    locale's (en-US here), and the text before the script runs says the same value."""
    packs = tmp_path / "packs.toml"
    packs.write_text("".join(
        f'[[packs]]\nid = "{pack}"\nname = "{name}"\ncredits = 7\namount = {amount}\ncurrency = "{currency}"\n'
        for pack, name, amount, currency in [("ice", "Krona", 500, "isk"), ("yen", "Yen", 503, "jpy"),
                                             ("kw", "Dinar", 5130, "kwd")]))
    backend = backend_factory({**SHARED_ENV, "CREDITDESK_PACKS": str(packs)})
    api = Api(backend.url).register()
    assert [(p["id"], p["pricePerCredit"]) for p in api.get("/api/billing/packs").json()["packs"]] == [
        ("ice", "71.4286"), ("yen", "71.8571"), ("kw", "732.8571")]
    for pack, server_text, browser_text in [("ice", "5 ISK", "ISK\xa05"), ("yen", "503 JPY", "¥503"),
                                            ("kw", "5.130 KWD", "KWD\xa05.130")]:
        checkout = api.checkout(pack)
        page = requests.get(checkout["url"], timeout=10).text
        assert f">{server_text}<" in page  # what a browser without JavaScript shows
        browser.open(checkout["url"])
        browser.assert_not_error_page()
        shown = browser.wait_for_text(browser_text)
        assert f"Pay {browser_text}" in shown.replace("\n", " ")
    browser.screenshot()
