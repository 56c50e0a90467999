"""The backend's pages in a real browser, with the app's real loopback listener standing in for the app.

Chromium (headless) opens the checkout page the backend answered with: the backend's stub checkout page in
stub mode, or the Stripe-compatible server's hosted page in Stripe mode. It clicks Pay or Cancel and follows
the redirects through Checkout's success or cancel URL to the desktop app's ``LoopbackListener``, which must
show its own page (not Chromium's error page) and hand over the session id and status.

Screenshots of the final page go to ``test-artifacts/``. Skipped when Chromium is not installed (failed under
``CI=true``): ``apt-get install chromium chromium-driver``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from desktop.core.callback import CallbackResult, LoopbackListener
from tests.helpers.api import Api
from tests.helpers.backend import BackendProcess
from tests.helpers.browser import Browser, browser_fixture  # noqa: F401  (the ``browser`` fixture)
from tests.helpers.stripe_server import WEBHOOK_MODES, FakeStripe

pytestmark = pytest.mark.timeout(60)


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


def arrive_at_callback(browser: Browser, listener: LoopbackListener, heading: str) -> CallbackResult:
    """Wait for the browser to show the listener's page; return what the listener received."""
    browser.wait_for_url(listener.return_url + "?", timeout=20)
    browser.assert_not_error_page()
    browser.wait_for_text(heading, timeout=10)
    result = listener.wait(10)
    assert result is not None, "the listener never received the callback"
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
    assert "25.00 USD" in page
    browser.click("#pay")

    result = arrive_at_callback(browser, listener, "Payment received")
    assert (result.session_id, result.status) == (checkout["sessionId"], "paid")
    assert checkout["sessionId"] in browser.text()  # the listener's page names the reference
    shot = browser.screenshot()
    assert shot.is_file() and shot.stat().st_size > 1000

    assert api.balance() == 550
    verified = api.verify(checkout["sessionId"])
    assert verified.status_code == 200, verified.text
    assert verified.json() == {"sessionId": checkout["sessionId"], "status": "paid", "creditsGranted": 550,
                               "balance": 550}
    assert purchase_grants(stub_backend, checkout["sessionId"]) == 1


def test_stub_checkout_cancel_in_the_browser(
    browser: Browser, stub_backend: BackendProcess, listener: LoopbackListener
) -> None:
    api = Api(stub_backend.url).register()
    checkout = api.checkout("starter", returnUrl=listener.return_url, state=listener.state)

    browser.open(checkout["url"])
    browser.assert_not_error_page()
    assert "5.00 USD" in browser.wait_for_text("Starter")
    browser.click("#cancel")

    result = arrive_at_callback(browser, listener, "Checkout cancelled")
    assert (result.session_id, result.status) == (checkout["sessionId"], "cancelled")
    browser.screenshot()

    assert api.balance() == 0
    assert api.verify(checkout["sessionId"]).json()["status"] == "cancelled"
    assert purchase_grants(stub_backend, checkout["sessionId"]) == 0


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

    result = arrive_at_callback(browser, listener, "Payment received")
    assert (result.session_id, result.status) == (session_id, "paid")
    browser.screenshot()

    verified = api.verify(session_id)
    assert verified.status_code == 200, verified.text
    assert verified.json() == {"sessionId": session_id, "status": "paid", "creditsGranted": 550, "balance": 550}
    assert purchase_grants(backend, session_id) == 1

    fake.wait_deliveries(timeout=10)  # after_redirect: the webhook lands after the browser came back
    assert purchase_grants(backend, session_id) == 1
    assert api.balance() == 550
    completed = [d for d in fake.delivery_log if d["type"] == "checkout.session.completed"]
    if webhook_mode == "never":
        assert completed == []
    else:
        assert [d["status"] for d in completed] == [200], completed
