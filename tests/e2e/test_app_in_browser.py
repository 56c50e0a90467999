"""The whole purchase as a user lives it: the desktop app's window, a real Chromium, the real backend.

The app runs offscreen against the real backend on loopback. Its injected "open URL" function hands the
checkout URL to a headless Chromium (one per test, started before the window), which opens the checkout
page, clicks Pay or Cancel and follows the redirects to Checkout's success or cancel URL, where the backend's
page states the outcome and hands it to the app's loopback listener in the background. The window must then
show what happened: the purchase panel's message, the new balance and the history row. And when the app has
quit before the user pays, Chromium must still end on the outcome page, and the next start finds the payment.

* stub mode: the backend's stub checkout page;
* Stripe mode: the backend with Stripe keys against the tests' Stripe-compatible server, whose hosted page
  marks the session paid, sends the signed webhook and redirects Chromium to the success URL, with the
  webhook arriving before the redirect, after it, or never (the success page and verify-payment alone).

The app polls the backend only after a minute here, so what the window shows comes from Chromium's hand-off.
Screenshots of Chromium at the outcome page and of the app's window after the purchase go to
``test-artifacts/``. Chromium's own error page anywhere on the way fails the test. Skipped when Chromium
is not installed (failed under ``CI=true``): ``apt-get install chromium chromium-driver``.
"""

from __future__ import annotations

import re
import threading
from pathlib import Path
from typing import Any

import pytest

from desktop.core.purchase import FlowState
from desktop.qt.main_window import MainWindow
from tests.desktop.qt.conftest import sign_up  # the app's fixtures come from tests/e2e/conftest.py
from tests.helpers.api import Api
from tests.helpers.backend import BackendProcess
from tests.helpers.browser import Browser, artifact_path, browser_fixture  # noqa: F401  (the ``browser`` fixture)
from tests.helpers.stripe_server import WEBHOOK_MODES, FakeStripe

pytestmark = pytest.mark.timeout(60)

NO_POLLING = 60.0  # seconds before the app's first poll of the backend: longer than any of these tests
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class ChromiumOpener:
    """The app's injected "open URL" function, handing the checkout URL to a real Chromium.

    The app calls it on a worker thread, so it only records the URL and starts a thread that drives the
    browser: open the checkout page, click ``button`` (unless None: the user pays later, see ``pay_now``),
    and wait until the browser shows the backend's outcome page with ``heading`` and its hand-off to the app
    is over. Selenium's driver is not thread-safe: the test uses the browser again only after ``join()``.
    """

    def __init__(self, browser: Browser, button: str | None, *, checkout_text: str, heading: str,
                 handoff: str = "told") -> None:
        self.browser = browser
        self.button = button
        self.checkout_text = checkout_text
        self.heading = heading
        self.handoff = handoff
        self.opened: list[str] = []
        self.opened_on_gui_thread: list[bool] = []
        self.checkout_page = ""
        self.outcome_page = ""
        self.error: BaseException | None = None
        self._thread: threading.Thread | None = None

    def __call__(self, url: str, what: str = "the page") -> bool:
        self.opened.append(url)
        self.opened_on_gui_thread.append(threading.current_thread() is threading.main_thread())
        if self._thread is not None:  # one purchase, one checkout tab
            self.error = self.error or AssertionError(f"the app opened a second checkout: {url}")
            return False
        thread = threading.Thread(target=self._browse, args=(url,), name="chromium-checkout", daemon=True)
        thread.start()
        self._thread = thread  # only once started: the test's thread looks at it meanwhile
        return True

    @property
    def finished(self) -> bool:
        return self._thread is not None and not self._thread.is_alive()

    def join(self, timeout: float = 5) -> None:
        """Wait for the browsing thread and raise what went wrong in it."""
        assert self._thread is not None, "the app never opened the browser"
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the browser is still busy with the checkout"
        if self.error is not None:
            raise self.error

    def _browse(self, url: str) -> None:
        try:
            self.browser.open(url)
            self.browser.assert_not_error_page()
            self.checkout_page = self.browser.wait_for_text(self.checkout_text, timeout=10)
            if self.button is not None:
                self.pay_now()
        except BaseException as exc:
            self.error = exc

    def pay_now(self) -> None:
        """Click the button and wait for the outcome page (through the redirects; Chromium's error page on the
        way ends the wait at once and fails)."""
        browser = self.browser
        browser.click(self.button or "#pay")
        browser.wait_until(lambda: "/account/credits/" in browser.url or browser.error_page_reason(),
                           timeout=20, message="the browser arriving at the backend's outcome page")
        browser.assert_not_error_page()
        self.outcome_page = browser.wait_for_text(self.heading, timeout=10)
        browser.wait_until(lambda: browser.attribute("#handoff", "data-state") == self.handoff, timeout=10,
                           message=f"the hand-off to the app ending {self.handoff!r}")
        browser.assert_not_error_page()


def buy(qtbot: Any, window: MainWindow, opener: ChromiumOpener, card: int) -> Any:
    """Click Buy on a pack card and let Chromium go through checkout; returns the PurchaseController."""
    window.account.cards[card].button.click()
    qtbot.waitUntil(lambda: bool(window.controller.purchases.items), timeout=5_000)
    purchase = window.controller.purchases.items[-1]
    qtbot.waitUntil(lambda: opener.finished, timeout=30_000)  # the GUI thread keeps running meanwhile
    opener.join()
    assert opener.opened == [purchase.flow.checkout_url]
    assert opener.opened_on_gui_thread == [False]  # the system browser is launched from a worker
    return purchase


def assert_at_outcome(browser: Browser, purchase: Any, backend_url: str, status: str) -> None:
    """Chromium shows the backend's page for this purchase's session, stating ``status``."""
    browser.assert_not_error_page()
    assert browser.url.startswith(f"{backend_url}/account/credits/"), browser.url
    assert browser.attribute("#outcome", "data-status") == status
    assert purchase.flow.session_id in browser.text()  # "reference cs_..."


def assert_png(path: Path, min_width: int, min_height: int) -> None:
    """A real screenshot: a PNG of a fitting size with more than one colour in it."""
    from PySide6.QtGui import QImage

    assert path.is_file(), f"no screenshot at {path}"
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE) and len(data) > 2000, f"{path} is not a non-trivial PNG"
    image = QImage(str(path))
    assert not image.isNull(), f"{path} does not load as an image"
    assert image.width() >= min_width and image.height() >= min_height, (path, image.width(), image.height())
    colours = {image.pixel(x, y) for x in range(0, image.width(), 7) for y in range(0, image.height(), 7)}
    assert len(colours) > 2, f"{path} is blank"


def screenshots(request: pytest.FixtureRequest, browser: Browser, window: MainWindow) -> None:
    """Chromium at the outcome page and the app's window after the purchase, into test-artifacts/."""
    page = browser.screenshot(suffix="-outcome")
    assert_png(page, 400, 300)
    window_shot = artifact_path(f"{request.node.name}-app-window")
    assert window.grab().save(str(window_shot), "PNG")
    assert_png(window_shot, 400, 300)


def purchase_grants(backend: BackendProcess, session_id: str) -> int:
    rows = backend.query(
        "SELECT COUNT(*) AS n FROM ledger_entries WHERE type = 'purchase' AND reference = ?", session_id
    )
    return int(rows[0]["n"])


def assert_paid_in_the_window(qtbot: Any, window: MainWindow, purchase: Any) -> None:
    qtbot.waitUntil(lambda: purchase.flow.state is FlowState.PAID, timeout=10_000)
    assert purchase.flow.callback_status == "paid" and purchase.flow.polls == 0  # Chromium's hand-off did it
    panel = window.panels[purchase]
    said = panel.message.text()  # when it was true: the balance moves on with every spend, the panel stays
    assert re.fullmatch(r"Payment received at \d{1,2}:\d\d\s[AP]M: 550 credits were added, for a balance of 550 "
                        r"then\.", said), said
    qtbot.waitUntil(lambda: window.account.balance.text() == "550 credits", timeout=10_000)
    qtbot.waitUntil(lambda: window.account.model.rowCount() == 1, timeout=10_000)
    model = window.account.model
    assert [model.index(0, column).data() for column in (0, 1, 2)] == ["Purchase", "+550", "550"]
    assert all(card.button.isEnabled() for card in window.account.cards)
    (record,) = window.controller.purchase_records.recent()
    assert record.status == "paid" and record.session_id == purchase.flow.session_id


def test_pay_on_the_stub_checkout_page_in_chromium(
    browser: Browser, qtbot: Any, make_window: Any, stub_backend: BackendProcess, request: pytest.FixtureRequest,
) -> None:
    opener = ChromiumOpener(browser, "#pay", checkout_text="Standard", heading="Payment received")
    window = make_window(stub_backend.url, opener, poll=NO_POLLING)
    sign_up(qtbot, window)
    purchase = buy(qtbot, window, opener, card=1)

    assert opener.opened[0].startswith(f"{stub_backend.url}/stub/checkout/")
    assert "$25.00" in opener.checkout_page  # as the app writes it
    assert_at_outcome(browser, purchase, stub_backend.url, "paid")
    assert "550 credits were added" in opener.outcome_page
    assert_paid_in_the_window(qtbot, window, purchase)
    assert purchase_grants(stub_backend, purchase.flow.session_id) == 1
    screenshots(request, browser, window)


def test_cancel_on_the_stub_checkout_page_in_chromium(
    browser: Browser, qtbot: Any, make_window: Any, stub_backend: BackendProcess, request: pytest.FixtureRequest,
) -> None:
    opener = ChromiumOpener(browser, "#cancel", checkout_text="Starter", heading="Checkout cancelled")
    window = make_window(stub_backend.url, opener, poll=NO_POLLING)
    sign_up(qtbot, window)
    purchase = buy(qtbot, window, opener, card=0)

    assert "$5.00" in opener.checkout_page
    assert_at_outcome(browser, purchase, stub_backend.url, "cancelled")
    qtbot.waitUntil(lambda: purchase.flow.state is FlowState.CANCELLED, timeout=10_000)
    # the hand-off said cancelled, and the backend confirmed it before the purchase ended
    assert purchase.flow.callback_status == "cancelled" and purchase.flow.payment_status == "cancelled"
    assert purchase.flow.polls == 0
    assert window.panels[purchase].message.text() == "The checkout was cancelled. Nothing was charged."
    assert all(card.button.isEnabled() for card in window.account.cards)
    assert window.account.balance.text() == "0 credits"
    assert window.account.model.rowCount() == 0
    assert window.controller.purchase_records.recent()[0].status == "cancelled"
    assert purchase_grants(stub_backend, purchase.flow.session_id) == 0
    api = Api(stub_backend.url, window.controller.backend.api.token)
    assert api.verify(purchase.flow.session_id).json()["status"] == "cancelled"
    screenshots(request, browser, window)


@pytest.mark.parametrize("webhook_mode", WEBHOOK_MODES)
def test_pay_on_the_stripe_hosted_checkout_page_in_chromium(
    browser: Browser, qtbot: Any, make_window: Any, stripe_backend: tuple[BackendProcess, FakeStripe],
    webhook_mode: str, request: pytest.FixtureRequest,
) -> None:
    backend, fake = stripe_backend
    fake.webhook_mode = webhook_mode
    opener = ChromiumOpener(browser, "#pay", checkout_text="Total due", heading="Payment received")
    window = make_window(backend.url, opener, poll=NO_POLLING)
    sign_up(qtbot, window)
    purchase = buy(qtbot, window, opener, card=1)
    session_id = purchase.flow.session_id

    assert opener.opened[0] == f"{fake.url}/pay/{session_id}"
    assert "$25.00" in opener.checkout_page
    assert_at_outcome(browser, purchase, backend.url, "paid")
    assert_paid_in_the_window(qtbot, window, purchase)
    assert fake.sessions[session_id]["status"] == "complete"
    assert fake.sessions[session_id]["payment_status"] == "paid"
    assert purchase_grants(backend, session_id) == 1

    fake.wait_deliveries(timeout=10)  # after_redirect: the webhook lands after the browser came back
    assert purchase_grants(backend, session_id) == 1
    assert Api(backend.url, window.controller.backend.api.token).balance() == 550
    completed = [d for d in fake.delivery_log if d["type"] == "checkout.session.completed"]
    if webhook_mode == "never":
        assert completed == []
    else:
        assert [d["status"] for d in completed] == [200], completed
    assert window.account.balance.text() == "550 credits"
    screenshots(request, browser, window)


def test_paying_in_chromium_after_the_app_quit_shows_the_outcome_and_the_next_start_finds_it(
    browser: Browser, qtbot: Any, make_window: Any, stub_backend: BackendProcess, request: pytest.FixtureRequest,
) -> None:
    """Buy, leave the checkout open, quit the app, then pay: the browser must not show "This site can't be
    reached" (the app's port is closed now), and the app, started again, shows the credits."""
    opener = ChromiumOpener(browser, None, checkout_text="Standard", heading="Payment received", handoff="missed")
    window = make_window(stub_backend.url, opener, poll=NO_POLLING)
    sign_up(qtbot, window)
    purchase = buy(qtbot, window, opener, card=1)
    session_id = purchase.flow.session_id
    window.close()
    window.controller.shutdown()  # the app has quit: its listener is closed
    assert purchase.listener is not None and purchase.listener.closed

    opener.pay_now()
    assert_at_outcome(browser, purchase, stub_backend.url, "paid")
    assert "550 credits were added" in browser.text()
    assert_png(browser.screenshot(suffix="-after-quit"), 400, 300)

    again = make_window(stub_backend.url, lambda url, what: True, poll=0.2)
    qtbot.waitUntil(lambda: again.pages.currentWidget() is again.account, timeout=20_000)
    qtbot.waitUntil(lambda: len(again.controller.purchases.items) == 1, timeout=20_000)
    (resumed,) = again.controller.purchases.items
    assert resumed.session_id == session_id
    qtbot.waitUntil(lambda: resumed.flow.state is FlowState.PAID, timeout=10_000)
    qtbot.waitUntil(lambda: again.account.balance.text() == "550 credits", timeout=20_000)
    assert purchase_grants(stub_backend, session_id) == 1


def test_in_the_default_mode_paying_after_the_app_quit_shows_the_outcome_and_the_next_start_finds_it(
    browser: Browser, qtbot: Any, make_window: Any, memory_keyring: Any,
) -> None:
    """As `make run` runs: the bundled backend is the server of the checkout page, so it must outlive the app
    while that checkout is open; the next start takes it over on the same port and finds the payment."""
    opener = ChromiumOpener(browser, None, checkout_text="Standard", heading="Payment received", handoff="missed")
    window = make_window(None, opener, poll=NO_POLLING)
    sign_up(qtbot, window)
    purchase = buy(qtbot, window, opener, card=1)
    url = window.controller.backend.url
    window.close()
    window.controller.shutdown()  # the app has quit

    opener.pay_now()
    assert_at_outcome(browser, purchase, url, "paid")
    assert "550 credits were added" in browser.text()

    again = make_window(None, lambda url, what: True, poll=0.2)
    qtbot.waitUntil(lambda: again.pages.currentWidget() is again.account, timeout=30_000)
    assert again.controller.backend.url == url
    qtbot.waitUntil(lambda: len(again.controller.purchases.items) == 1, timeout=20_000)
    (resumed,) = again.controller.purchases.items
    qtbot.waitUntil(lambda: resumed.flow.state is FlowState.PAID, timeout=10_000)
    qtbot.waitUntil(lambda: again.account.balance.text() == "550 credits", timeout=20_000)
