"""Signing in and out, the account page, the status bar, the backend coming and going, keyrings."""

from __future__ import annotations

import threading
from decimal import Decimal
from typing import Any

import pytest
import requests
from PySide6.QtCore import Qt, QTimeZone
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QAbstractButton, QApplication

from desktop.core.models import ApiError, Pack
from desktop.qt import formatting
from desktop.qt.account_page import AccountPage
from desktop.qt.backend_connection import BackendState
from tests.desktop.qt.conftest import PASSWORD, sign_up, user_with_history
from tests.helpers.api import Api
from tests.helpers.backend import BackendProcess
from tests.helpers.fakes import FakeBrowser
from tests.helpers.stripe_server import FakeStripe


def test_sign_up_shows_balance_packs_and_status(qtbot: Any, make_window: Any, stub_backend: BackendProcess) -> None:
    window = make_window(stub_backend.url)
    email = sign_up(qtbot, window)
    qtbot.waitUntil(lambda: window.account.balance.text() == "0 credits")
    assert window.account.account.text() == f"Signed in as {email}"
    assert not window.account.keyring_note.isVisible()
    cards = window.account.cards
    assert [c.pack.name for c in cards] == ["Starter", "Standard", "Pro"]
    assert [c.price.text() for c in cards] == ["$5.00", "$25.00", "$50.00"]
    assert window.account.empty.isVisible() and not window.account.table.isVisible()
    qtbot.waitUntil(lambda: "connected" in window.backend_label.text())
    assert window.backend_label.text() == f"Backend {stub_backend.url} · stub payments (no real money) · connected"
    # What the starting page said once the server answered agrees with the status bar.
    assert window.starting.label.text() == f"Connected to {stub_backend.url}. Checking your sign-in…"


def test_sign_out_and_in_again(qtbot: Any, make_window: Any, stub_backend: BackendProcess, memory_keyring: Any) -> None:
    window = make_window(stub_backend.url)
    email = sign_up(qtbot, window)
    qtbot.waitUntil(lambda: len(memory_keyring.entries) == 1)
    window.sign_out_action.trigger()
    assert window.pages.currentWidget() is window.sign_in
    qtbot.waitUntil(lambda: memory_keyring.entries == {})
    assert window.sign_in.email.text() == email and window.sign_in.password.text() == ""

    window.sign_in.password.setText("not the password")
    window.sign_in.sign_in_button.click()
    qtbot.waitUntil(lambda: window.sign_in.message.text() == "The email or the password is wrong. Forgot your "
                    "password? Choose Forgot password? to set a new one. New here? Choose Create account to make one "
                    "with this email.")
    assert window.sign_in.sign_in_button.isEnabled()
    window.sign_in.password.setText(PASSWORD)
    window.sign_in.sign_in_button.click()
    qtbot.waitUntil(lambda: window.pages.currentWidget() is window.account)


def test_signing_out_revokes_the_token_on_the_server(qtbot: Any, make_window: Any,
                                                     stub_backend: BackendProcess) -> None:
    window = make_window(stub_backend.url)
    sign_up(qtbot, window)
    token = window.controller.backend.api.token
    window.sign_out_action.trigger()
    qtbot.waitUntil(lambda: Api(stub_backend.url, token).get("/api/credits/balance").status_code == 401)


def test_taken_email_and_short_password(qtbot: Any, make_window: Any, stub_backend: BackendProcess) -> None:
    taken = Api(stub_backend.url).register().user["email"]
    window = make_window(stub_backend.url)
    qtbot.waitUntil(lambda: window.pages.currentWidget() is window.sign_in, timeout=10_000)
    for typed, said in [("", "Enter your email address."),
                        ("bob", "“bob” is not an email address: it needs a name, an @ and a domain, like "
                                "name@example.com."),
                        ("bob@localhost", "“bob@localhost” is not an email address"),
                        ("bob @example.com", "“bob @example.com” is not an email address")]:
        window.sign_in.email.setText(typed)
        window.sign_in.create_button.click()
        assert window.sign_in.message.text().startswith(said)
    window.sign_in.email.setText(taken)
    window.sign_in.password.setText("short")
    window.sign_in.create_button.click()
    assert window.sign_in.message.text() == "Choose a password of at least 8 characters."
    window.sign_in.password.setText(PASSWORD)
    window.sign_in.create_button.click()
    qtbot.waitUntil(lambda: "already exists" in window.sign_in.message.text())


def test_the_session_is_restored_from_the_keyring(qtbot: Any, make_window: Any, stub_backend: BackendProcess,
                                                  tmp_path: Any) -> None:
    first = make_window(stub_backend.url)
    email = sign_up(qtbot, first)
    first.close()
    second = make_window(stub_backend.url)
    qtbot.waitUntil(lambda: second.pages.currentWidget() is second.account, timeout=10_000)
    assert second.account.account.text() == f"Signed in as {email}"


def test_without_a_keyring_the_token_lives_for_the_session_only(
    qtbot: Any, make_window: Any, stub_backend: BackendProcess, no_keyring: Any,
) -> None:
    window = make_window(stub_backend.url)
    sign_up(qtbot, window)
    note = window.account.keyring_note
    assert note.isVisible() and "kept only until Creditdesk closes" in note.text()
    window.close()
    again = make_window(stub_backend.url)
    qtbot.waitUntil(lambda: again.pages.currentWidget() is again.sign_in, timeout=10_000)


def test_a_sign_in_by_hand_while_the_kept_one_is_looked_for_is_not_undone_by_that_look(
    qtbot: Any, make_window: Any, stub_backend: BackendProcess, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The backend answers again and the app looks for a kept sign-in (none after a sign-out) while the user signs
    in by hand: the look answering last must not sign them out (the account page flipped back, once in CI)."""
    from desktop.core import signin

    window = make_window(stub_backend.url)
    sign_up(qtbot, window)
    window.sign_out_action.trigger()
    qtbot.waitUntil(lambda: window.pages.currentWidget() is window.sign_in)
    looking, answer = threading.Event(), threading.Event()
    real = signin.restore_sign_in

    def slow_restore(*args: Any, **kwargs: Any) -> Any:
        found = real(*args, **kwargs)  # no kept token: the user signed out
        looking.set()
        answer.wait(20)  # ... and it answers after the sign-in by hand
        return found

    monkeypatch.setattr(signin, "restore_sign_in", slow_restore)
    session = window.controller.session
    session.restore()
    qtbot.waitUntil(looking.is_set)
    window.sign_in.password.setText(PASSWORD)
    window.sign_in.sign_in_button.click()
    qtbot.waitUntil(lambda: window.pages.currentWidget() is window.account, timeout=10_000)
    answer.set()
    qtbot.waitUntil(lambda: not session.restoring, timeout=10_000)  # the look answered: nothing to restore
    assert window.pages.currentWidget() is window.account and session.signed_in


def test_an_unreachable_backend_says_so_and_recovers(qtbot: Any, make_window: Any, backend_factory: Any) -> None:
    backend = backend_factory()
    window = make_window(backend.url)
    sign_up(qtbot, window)
    qtbot.waitUntil(lambda: window.backend_label.text().endswith("connected"))
    backend.stop()
    window.refresh_action.trigger()
    qtbot.waitUntil(lambda: window.backend_label.text().endswith("not reachable"), timeout=20_000)
    assert "not answering" in window.backend_label.toolTip()
    window.sign_out_action.trigger()
    window.sign_in.password.setText(PASSWORD)
    window.sign_in.sign_in_button.click()
    qtbot.waitUntil(lambda: "is not answering" in window.sign_in.message.text(), timeout=20_000)
    backend.start()  # the same port
    window.sign_in.sign_in_button.click()
    qtbot.waitUntil(lambda: window.pages.currentWidget() is window.account, timeout=20_000)
    qtbot.waitUntil(lambda: window.backend_label.text().endswith("· connected"), timeout=10_000)


def test_the_balance_line_says_what_open_holds_reserve(qtbot: Any, make_window: Any,
                                                       stub_backend: BackendProcess) -> None:
    api = user_with_history(stub_backend.url)
    held = api.post("/api/credits/holds", json={"amount": 45, "idempotencyKey": "render-1"})
    assert held.status_code == 201, held.text
    window = make_window(stub_backend.url)
    qtbot.waitUntil(lambda: window.pages.currentWidget() is window.sign_in, timeout=10_000)
    window.sign_in.email.setText(api.user["email"])
    window.sign_in.password.setText(PASSWORD)
    window.sign_in.sign_in_button.click()
    qtbot.waitUntil(lambda: window.account.reserved.text() == "45 reserved", timeout=10_000)
    assert window.account.balance.text() == "1,145 credits" and window.account.reserved.isVisible()
    api.post(f"/api/credits/holds/{held.json()['id']}/settle", json={"amount": 44})
    window.controller.figures.refresh()
    qtbot.waitUntil(lambda: not window.account.reserved.isVisible(), timeout=10_000)
    assert window.account.balance.text() == "1,101 credits"


def test_an_answer_to_an_earlier_sign_in_neither_signs_out_nor_shows_its_figures(
    qtbot: Any, make_window: Any, stub_backend: BackendProcess,
) -> None:
    """A call made before a sign-out and answered after the next sign-in (the flake of the test above: a refresh
    retried while the server was down, answered 401 once it was back) is not this session's: its 401 ends nothing,
    and its figures (perhaps another account's) are not shown."""
    window = make_window(stub_backend.url)
    email = sign_up(qtbot, window)
    session, figures = window.controller.session, window.controller.figures
    before = session.generation
    window.sign_out_action.trigger()
    window.sign_in.email.setText(email)
    window.sign_in.password.setText(PASSWORD)
    window.sign_in.sign_in_button.click()
    qtbot.waitUntil(lambda: window.pages.currentWidget() is window.account, timeout=10_000)
    assert session.generation == before + 2  # out, and in again
    figures._failed(ApiError(401, "unauthorized", "Sign in first."), before)  # the earlier session's answer
    assert session.signed_in and window.pages.currentWidget() is window.account
    figures._failed(ApiError(401, "unauthorized", "Sign in first."), session.generation)  # this one's: it ended
    assert not session.signed_in and window.pages.currentWidget() is window.sign_in


def test_sign_in_is_rate_limited_with_a_clear_message(qtbot: Any, make_window: Any, backend_factory: Any) -> None:
    backend = backend_factory()  # the default limits: 10 sign-in attempts a minute per email
    email = Api(backend.url).register().user["email"]
    window = make_window(backend.url)
    qtbot.waitUntil(lambda: window.pages.currentWidget() is window.sign_in, timeout=10_000)
    for _ in range(9):
        requests.post(f"{backend.url}/api/auth/login", json={"email": email, "password": "wrong"}, timeout=10)
    window.sign_in.email.setText(email)
    window.sign_in.password.setText(PASSWORD)
    window.sign_in.sign_in_button.click()
    qtbot.waitUntil(lambda: window.sign_in.message.text().startswith("Too many attempts. Please try again in"))


def test_history_shows_newest_first_and_loads_older_pages(qtbot: Any, make_window: Any,
                                                          stub_backend: BackendProcess) -> None:
    api = user_with_history(stub_backend.url)
    window = make_window(stub_backend.url)
    qtbot.waitUntil(lambda: window.pages.currentWidget() is window.sign_in, timeout=10_000)
    window.sign_in.email.setText(api.user["email"])
    window.sign_in.password.setText(PASSWORD)
    window.sign_in.sign_in_button.click()
    model = window.account.model
    qtbot.waitUntil(lambda: model.rowCount() == 50, timeout=10_000)
    assert window.account.balance.text() == "1,145 credits"
    assert [model.index(0, c).data() for c in range(5)][:3] == ["Spent", "-1", "1,145"]
    assert model.index(0, 4).data() == "Job 54"
    assert window.account.load_older.isVisible()
    window.account.load_older.click()
    qtbot.waitUntil(lambda: model.rowCount() == 56)
    assert model.index(55, 0).data() == "Purchase" and model.index(55, 1).data() == "+1,200"
    assert not window.account.load_older.isVisible()


def test_every_control_is_named_and_reachable_from_the_keyboard(qtbot: Any, make_window: Any,
                                                                stub_backend: BackendProcess) -> None:
    window = make_window(stub_backend.url)
    sign_up(qtbot, window)
    for button in window.findChildren(QAbstractButton):
        if button.isVisible():
            assert button.accessibleName() or button.text().strip("&"), button
            assert button.focusPolicy() != 0, button  # Qt.NoFocus
    menus = [action.text() for action in window.menuBar().actions()]
    assert menus == ["&File", "&Buy", "&Credits", "&Help"]
    assert window.refresh_action.shortcut().toString() and window.diagnostics_action.shortcut().toString()
    assert [a.shortcut().toString() for a in window.buy_actions] == ["Ctrl+1", "Ctrl+2", "Ctrl+3"]
    assert window.buy_actions[1].text() == "&2 Buy Standard (550 credits, $25.00)"


def test_tab_reaches_every_buy_button_and_is_not_trapped_in_the_history(
    qtbot: Any, make_window: Any, stub_backend: BackendProcess,
) -> None:
    api = Api(stub_backend.url).register()
    requests.post(api.checkout("starter")["url"] + "/pay", timeout=10)
    window = make_window(stub_backend.url)
    qtbot.waitUntil(lambda: window.pages.currentWidget() is window.sign_in, timeout=20_000)
    window.activateWindow()
    window.sign_in.email.setText(api.user["email"])
    window.sign_in.password.setText(PASSWORD)
    window.sign_in.sign_in_button.click()
    qtbot.waitUntil(lambda: window.account.model.rowCount() == 1 and len(window.account.cards) == 3,
                    timeout=10_000)
    qtbot.waitUntil(lambda: all(c.button.isEnabled() for c in window.account.cards), timeout=10_000)
    window.account.cards[0].button.setFocus()
    reached = []
    for _ in range(12):
        QTest.keyClick(QApplication.focusWidget(), Qt.Key.Key_Tab)
        reached.append(QApplication.focusWidget())
    buttons = [card.button for card in window.account.cards]
    assert buttons[1] in reached and buttons[2] in reached
    table = window.account.table
    assert table in reached
    after_table = reached[reached.index(table) + 1]
    assert after_table is not table  # Tab moves on; the arrow keys move within the table
    assert buttons[0] in reached  # and round again
    assert window.account not in reached  # the page's scroll area, which would show no focus, is no stop
    for button in buttons:
        assert button.focusPolicy() & Qt.FocusPolicy.TabFocus


def test_ctrl_number_buys_a_pack(qtbot: Any, make_window: Any, stub_backend: BackendProcess) -> None:
    window = make_window(stub_backend.url, FakeBrowser("close_tab"), poll=60)
    sign_up(qtbot, window)
    qtbot.waitUntil(lambda: window.buy_actions and window.buy_actions[0].isEnabled(), timeout=10_000)
    window.activateWindow()
    QTest.keyClick(window, Qt.Key.Key_2, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: len(window.controller.purchases.items) == 1, timeout=5_000)
    assert window.controller.purchases.items[0].pack_name == "Standard"


def test_tab_goes_down_the_page_through_the_purchases_in_progress_first(
    qtbot: Any, make_window: Any, stub_backend: BackendProcess,
) -> None:
    window = make_window(stub_backend.url, FakeBrowser("close_tab"), poll=60)
    sign_up(qtbot, window)
    for card in (0, 1):
        window.account.cards[card].button.click()
        qtbot.waitUntil(lambda card=card: len(window.account.panels) == card + 1, timeout=10_000)
    first, second = window.account.panels
    qtbot.waitUntil(lambda: first.reopen_button.isEnabled() and second.reopen_button.isEnabled(), timeout=10_000)
    window.activateWindow()
    first.reopen_button.setFocus()
    reached = [first.reopen_button]
    for _ in range(10):
        QTest.keyClick(QApplication.focusWidget(), Qt.Key.Key_Tab)
        reached.append(QApplication.focusWidget())
    shown = [b for b in first.buttons() + second.buttons() if b.isVisible() and b.isEnabled()]
    cards = [card.button for card in window.account.cards]
    assert reached[:len(shown)] == shown  # the first panel's buttons, then the second's
    assert reached[len(shown)] is cards[0]  # then the packs below them


def test_each_pack_shows_its_price_per_credit_and_what_it_saves(qtbot: Any) -> None:
    """The bundled packs as the backend sends them: 5, 4.5455 and 4.1667 cents a credit."""
    page = AccountPage()
    qtbot.addWidget(page)
    page.set_packs([Pack("starter", "Starter", 100, 500, "usd", Decimal("5")),
                    Pack("standard", "Standard", 550, 2500, "usd", Decimal("4.5455")),
                    Pack("pro", "Pro", 1200, 5000, "usd", Decimal("4.1667"))])
    page.show()
    shown = {card.pack.id: (card.per_credit.text(), card.value.text() if card.value.isVisible() else "")
             for card in page.cards}
    money = formatting.unit_price
    assert shown == {
        "starter": (f"{money(Decimal('5'), 'usd')} per credit", ""),
        "standard": (f"{money(Decimal('4.5455'), 'usd')} per credit", "Save 9%"),
        "pro": (f"{money(Decimal('4.1667'), 'usd')} per credit", "Best value · Save 16%"),
    }
    assert page.cards[2].button.accessibleName().endswith("per credit, best value · save 16%")


@pytest.mark.engines("sqlite")
def test_while_stripe_does_not_answer_the_server_buying_is_off_and_says_why(
    qtbot: Any, make_window: Any, stripe_backend: tuple[BackendProcess, FakeStripe],
) -> None:
    """Before a Buy fails: the backend's health says its breaker is open, the status bar and the Buy buttons say
    so, and buying comes back once its health does."""
    backend, fake = stripe_backend
    window = make_window(backend.url)
    sign_up(qtbot, window)
    qtbot.waitUntil(lambda: all(card.button.isEnabled() for card in window.account.cards), timeout=10_000)
    fake.fault("error", status=500)
    api = Api(backend.url).register()
    for _ in range(10):  # until the backend's breaker opens (5 failures in a row)
        api.post("/api/billing/checkout", json={"packId": "starter"})
        if requests.get(f"{backend.url}/api/health", timeout=5).json()["paymentProvider"]["state"] == "unavailable":
            break
    window.controller.backend.check_health()  # (the app reads it every 30 s; now, for the test)
    qtbot.waitUntil(lambda: not window.account.cards[0].button.isEnabled(), timeout=10_000)
    assert "Stripe is not answering: buying is off for now" in window.backend_label.text()
    assert window.account.cards[0].button.toolTip().startswith("Stripe is not answering the server just now")
    assert not any(action.isEnabled() for action in window.buy_actions)
    fake.clear_faults()
    # Its next health answer says payments are back (the breaker's half-open state lets a call through).
    backend_state = window.controller.backend.health
    window.controller.backend.health = BackendState(True, backend_state.payments, backend_state.version, "Connected")
    window.controller.backend.healthChanged.emit(window.controller.backend.health)
    assert all(card.button.isEnabled() for card in window.account.cards)
    assert "buying is off" not in window.backend_label.text()


def test_the_account_page_says_promotional_credits_and_when_the_next_expire(qtbot: Any) -> None:
    from desktop.core.models import GrantSummary

    page = AccountPage()
    qtbot.addWidget(page)
    page.show()
    page.zone = QTimeZone(b"Europe/London")
    page.set_grants(GrantSummary(12, "2026-12-14T00:00:00.000Z", 9))  # adjust --expires 2026-12-13
    # (with " 2026" once the clock reads 2027)
    assert page.grants.isVisible() and page.grants.text().startswith("12 promotional · 9 expire at the end of 13 Dec")
    page.zone = QTimeZone(b"America/Los_Angeles")  # where 24:00 UTC is the afternoon of the 13th
    page.set_grants(GrantSummary(12, "2026-12-14T00:00:00.000Z", 9))
    assert page.grants.text() == "12 promotional · 9 expire at 12/13/2026 4:00\u202fPM PST"
    page.set_grants(GrantSummary(0, None, 0))  # only paid credits, none expiring: nothing to say
    assert not page.grants.isVisible()
    page.set_grants(None)  # signed out, or a backend older than grants
    assert not page.grants.isVisible()
