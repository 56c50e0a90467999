"""Buying a pack from the window, with the injected opener playing the system browser."""

from __future__ import annotations

from typing import Any

import requests

from desktop.core.purchase import FlowState
from tests.desktop.qt.conftest import sign_up
from tests.helpers.api import Api
from tests.helpers.backend import BackendProcess
from tests.helpers.fakes import FakeBrowser


def buy(qtbot: Any, window: Any, card: int = 1) -> Any:
    window.account.cards[card].button.click()
    assert window.purchase is not None
    return window.purchase


def test_a_whole_purchase_updates_the_balance_and_history(qtbot: Any, make_window: Any,
                                                          stub_backend: BackendProcess) -> None:
    browser = FakeBrowser("pay")
    window = make_window(stub_backend.url, browser)
    sign_up(qtbot, window)
    purchase = buy(qtbot, window)
    dialog = window.purchase_dialog
    assert dialog.isVisible() and dialog.windowTitle() == "Buying the Standard pack"
    qtbot.waitUntil(lambda: purchase.flow.state is FlowState.PAID, timeout=15_000)
    browser.wait()
    assert browser.callback_statuses == [200] and "Payment received" in browser.callback_pages[0]
    assert purchase.listener.closed
    assert dialog.message.text() == "Payment received: 550 credits were added. Your balance is now 550."
    assert dialog.close_button.isVisible() and not dialog.cancel_button.isVisible()
    qtbot.waitUntil(lambda: window.account.balance.text() == "550 credits")
    qtbot.waitUntil(lambda: window.account.model.rowCount() == 1)
    assert window.account.model.index(0, 1).data() == "+550"
    assert all(card.button.isEnabled() for card in window.account.cards)
    (record,) = window.controller.pending.recent()
    assert record.status == "paid" and record.finished_at
    dialog.close_button.click()
    assert not dialog.isVisible()


def test_cancel_in_the_browser_ends_the_purchase(qtbot: Any, make_window: Any, stub_backend: BackendProcess) -> None:
    browser = FakeBrowser("cancel")
    window = make_window(stub_backend.url, browser)
    sign_up(qtbot, window)
    purchase = buy(qtbot, window, 0)
    qtbot.waitUntil(lambda: purchase.flow.state is FlowState.CANCELLED, timeout=15_000)
    assert window.purchase_dialog.message.text() == "The checkout was cancelled. Nothing was charged."
    assert window.account.balance.text() == "0 credits"
    assert window.controller.pending.recent()[0].status == "cancelled"


def test_a_callback_with_a_wrong_state_is_refused_and_polling_finds_the_payment(
    qtbot: Any, make_window: Any, stub_backend: BackendProcess,
) -> None:
    browser = FakeBrowser("wrong_state")
    window = make_window(stub_backend.url, browser)
    sign_up(qtbot, window)
    purchase = buy(qtbot, window)
    qtbot.waitUntil(lambda: browser.callback_statuses == [400], timeout=15_000)
    assert not purchase.listener.closed  # still waiting for the real browser
    qtbot.waitUntil(lambda: purchase.flow.state is FlowState.PAID, timeout=15_000)
    assert purchase.flow.polls >= 1 and purchase.flow.callback_status is None
    qtbot.waitUntil(lambda: window.account.balance.text() == "550 credits")


def test_no_callback_at_all_polling_finds_the_payment(qtbot: Any, make_window: Any,
                                                      stub_backend: BackendProcess) -> None:
    browser = FakeBrowser("pay_no_return")
    window = make_window(stub_backend.url, browser)
    sign_up(qtbot, window)
    purchase = buy(qtbot, window, 2)
    qtbot.waitUntil(lambda: purchase.flow.state is FlowState.PAID, timeout=15_000)
    assert purchase.flow.callback_status is None and purchase.flow.credits_granted == 1200
    # The browser arrives late, after polling found the payment: it still gets our page, not an error.
    (late,) = browser.callback_urls
    answer = requests.get(late, timeout=10)
    assert answer.status_code == 200 and "Payment received" in answer.text


def test_when_the_browser_does_not_open_the_link_is_shown_and_check_now_finds_the_payment(
    qtbot: Any, make_window: Any, stub_backend: BackendProcess,
) -> None:
    browser = FakeBrowser("fail")
    window = make_window(stub_backend.url, browser, poll=60)  # no automatic poll within the test
    sign_up(qtbot, window)
    purchase = buy(qtbot, window, 0)
    dialog = window.purchase_dialog
    qtbot.waitUntil(lambda: purchase.flow.state is FlowState.WAITING, timeout=10_000)
    assert "did not open" in dialog.message.text()
    assert dialog.link.isVisible() and dialog.link.text() == purchase.flow.checkout_url
    requests.post(purchase.flow.checkout_url + "/pay", timeout=10, allow_redirects=False)  # paid elsewhere
    dialog.check_button.click()
    qtbot.waitUntil(lambda: purchase.flow.state is FlowState.PAID, timeout=10_000)
    assert browser.opened == [purchase.flow.checkout_url]
    dialog.close_button.click()


def test_open_checkout_again(qtbot: Any, make_window: Any, stub_backend: BackendProcess) -> None:
    browser = FakeBrowser("close_tab")
    window = make_window(stub_backend.url, browser, poll=60)
    sign_up(qtbot, window)
    purchase = buy(qtbot, window, 0)
    qtbot.waitUntil(lambda: purchase.flow.state is FlowState.WAITING, timeout=10_000)
    browser.action = "pay"
    window.purchase_dialog.reopen_button.click()
    qtbot.waitUntil(lambda: purchase.flow.state is FlowState.PAID, timeout=15_000)
    assert len(browser.opened) == 2


def test_stop_waiting_then_a_restart_finishes_the_purchase(qtbot: Any, make_window: Any,
                                                           stub_backend: BackendProcess, tmp_path: Any) -> None:
    browser = FakeBrowser("close_tab")
    window = make_window(stub_backend.url, browser, poll=60)
    sign_up(qtbot, window)
    purchase = buy(qtbot, window, 0)
    qtbot.waitUntil(lambda: purchase.flow.state is FlowState.WAITING, timeout=10_000)
    window.purchase_dialog.cancel_button.click()  # "Stop waiting"
    assert purchase.flow.state is FlowState.GAVE_UP and "checks it again" in purchase.message
    url = purchase.flow.checkout_url
    window.close()  # the app quits with the purchase in flight

    requests.post(url + "/pay", timeout=10, allow_redirects=False)  # the user paid in the open tab
    again = make_window(stub_backend.url, FakeBrowser("close_tab"))
    qtbot.waitUntil(lambda: again.pages.currentWidget() is again.account, timeout=10_000)
    qtbot.waitUntil(lambda: again.account.balance.text() == "100 credits", timeout=15_000)
    qtbot.waitUntil(lambda: "earlier purchase went through" in again.statusBar().currentMessage())
    assert again.controller.pending.unfinished(stub_backend.url, again.controller.account.email) == []


def test_closing_the_window_mid_purchase_remembers_it(qtbot: Any, make_window: Any,
                                                      stub_backend: BackendProcess) -> None:
    window = make_window(stub_backend.url, FakeBrowser("close_tab"), poll=60)
    email = sign_up(qtbot, window)
    purchase = buy(qtbot, window, 0)
    qtbot.waitUntil(lambda: purchase.flow.state is FlowState.WAITING, timeout=10_000)
    window.close()
    (pending,) = window.controller.pending.unfinished(stub_backend.url, email)
    assert pending.session_id == purchase.flow.session_id and pending.pack_name == "Starter"


def test_the_purchase_survives_the_backend_going_away(qtbot: Any, make_window: Any, backend_factory: Any) -> None:
    backend = backend_factory()
    window = make_window(backend.url, FakeBrowser("close_tab"), poll=0.3)
    sign_up(qtbot, window)
    purchase = buy(qtbot, window, 0)
    qtbot.waitUntil(lambda: purchase.flow.state is FlowState.WAITING, timeout=10_000)
    url = purchase.flow.checkout_url
    backend.stop()
    qtbot.waitUntil(lambda: purchase.flow.verify_failures >= 1, timeout=20_000)
    assert "not answering" in window.purchase_dialog.message.text()
    backend.start()  # the same port: the checkout link still works
    requests.post(url + "/pay", timeout=10, allow_redirects=False)
    qtbot.waitUntil(lambda: purchase.flow.state is FlowState.PAID, timeout=30_000)


def test_buy_is_refused_by_the_server_with_a_message(qtbot: Any, make_window: Any, backend_factory: Any) -> None:
    backend = backend_factory()
    window = make_window(backend.url, FakeBrowser("close_tab"))
    sign_up(qtbot, window)
    api = Api(backend.url, window.controller.api.token)
    for _ in range(10):
        api.checkout("starter")  # this user's checkouts for the minute are used up
    purchase = buy(qtbot, window, 0)
    qtbot.waitUntil(lambda: purchase.flow.state is FlowState.FAILED, timeout=10_000)
    assert window.purchase_dialog.message.text().startswith("Too many attempts")
    qtbot.waitUntil(lambda: purchase.listener.closed)


def test_an_unpaid_purchase_from_last_time_is_checked_a_few_times_then_left_for_later(
    qtbot: Any, make_window: Any, stub_backend: BackendProcess,
) -> None:
    window = make_window(stub_backend.url, FakeBrowser("close_tab"), poll=60)
    email = sign_up(qtbot, window)
    buy(qtbot, window, 0)
    qtbot.waitUntil(lambda: window.purchase.flow.state is FlowState.WAITING, timeout=10_000)
    window.close()  # never paid

    again = make_window(stub_backend.url, FakeBrowser("close_tab"), poll=0.05)
    qtbot.waitUntil(lambda: bool(again.resumed) and again.resumed[0].flow.is_terminal, timeout=20_000)
    resumed = again.resumed[0]
    assert resumed.flow.state is FlowState.GAVE_UP and resumed.flow.polls == resumed.max_checks
    assert len(again.controller.pending.unfinished(stub_backend.url, email)) == 1  # checked again next time
