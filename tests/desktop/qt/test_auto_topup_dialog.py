"""Auto top-up in the real window against the real stub backend, offscreen (issue 19): the dialog from the Credits
menu says what will be charged, turns it on and off in one click, and a top-up's notification leads to its Undo,
which takes back the unspent credits."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from PySide6.QtWidgets import QScrollArea

from desktop.qt.main_window import MainWindow
from desktop.qt.notifier import ACTION_TOAST_MS
from tests.desktop.qt.conftest import sign_up
from tests.helpers.api import Api
from tests.helpers.backend import BackendProcess
from tests.helpers.fakes import FakeBrowser


def test_auto_topup_dialog_turns_it_on_and_off_and_undoes_a_topup(qtbot: Any, make_window: Any,
                                                                    stub_backend: BackendProcess) -> None:
    browser = FakeBrowser("pay")  # the stub page's Pay, with the card that succeeds
    window: MainWindow = make_window(stub_backend.url, browser, poll=60)  # no payment poll refreshes the balance
    sign_up(qtbot, window)
    api = Api(window.controller.backend.url or "", window.controller.backend.api.token)  # type: ignore[union-attr]
    ui = window.spend_ui
    assert ui.auto_topup_action.isEnabled() and ui.auto_topup_action.text() == "Auto &top-up…"
    dialog = ui.show_auto_topup()
    qtbot.waitUntil(lambda: dialog.state is not None, timeout=10_000)
    assert dialog.status.text() == "Auto top-up is off."
    dialog.threshold.setValue(100)
    dialog.pack.setCurrentIndex(dialog.pack.findData("starter"))
    dialog.monthly_limit.setValue(15.00)
    plan = dialog.plan.text()
    assert "below 100 credits" in plan and "$5.00" in plan and "at most 3 times a day" in plan
    assert "never more than $15.00 a month" in plan and "first top-up is a normal purchase" in plan
    assert dialog.buy_button.isVisible()

    dialog.on_button.click()
    qtbot.waitUntil(lambda: dialog.state is not None and dialog.state.enabled, timeout=10_000)
    assert dialog.status.text().startswith("Auto top-up is on.")
    assert dialog.on_button.text() == "&Apply changes"  # once on, the button saves changes; it no longer says on
    assert api.get("/api/credits/auto-topup").json()["monthlyLimit"] == 1500

    # Buy and save card: the first top-up's Checkout saves the card (paid on the stub page by the browser); once it is
    # paid the dialog knows the card is saved (no more "first top-up"). Then a spend crosses the threshold.
    assert dialog.buy_button.isVisible()
    dialog.buy_button.click()
    qtbot.waitUntil(lambda: dialog.state is not None and dialog.state.card_saved, timeout=20_000)
    assert not dialog.buy_button.isVisible() and "first top-up" not in dialog.plan.text()
    assert api.balance() == 100
    assert api.post("/api/credits/spend", json={"amount": 1, "idempotencyKey": "cross"}).json()["balance"] == 99
    qtbot.waitUntil(lambda: [t["status"] for t in api.get("/api/credits/auto-topup").json()["topups"]] == ["succeeded"],
                    timeout=10_000)

    def announced() -> bool:
        ui.spending.poll_alerts()  # (as its timer would, sooner)
        return any(n.title == "Auto top-up" for n in ui.notifier.shown)

    qtbot.waitUntil(announced, timeout=10_000)
    qtbot.waitUntil(lambda: ui.app.figures.balance == 199, timeout=3_000)  # the balance says it with the notification
    # Its history line says it was automatic, in the app and in the CSV; and it was announced once: by its own
    # notification (the one that leads to Undo), not also as "A payment went through" on the page and status bar.
    history = window.account.model
    qtbot.waitUntil(lambda: any(r.auto_topup for r in history.rows), timeout=10_000)
    [line] = [n for n, r in enumerate(history.rows) if r.auto_topup]
    assert history.data(history.index(line, 4)) == "Auto top-up: Starter pack · paid $5.00"
    assert history.data(history.index(line, 0)) == "Purchase" and history.data(history.index(line, 1)) == "+100"
    csv_text = api.get("/api/credits/transactions.csv").text
    assert "Auto top-up: Starter pack" in csv_text and csv_text.count("Starter pack") == 2  # the first one, by hand
    assert [n.title for n in ui.notifier.shown].count("Auto top-up") == 1
    # It leads to Undo: it stays longer than a notice with nothing to do (tests/desktop/qt/test_notifier.py).
    # (A notice showing when it came gives way to it after a moment: notifier.py.)
    qtbot.waitUntil(lambda: ui.notifier.toast.title.text() == "Auto top-up", timeout=10_000)
    assert ui.notifier.toast.timer.interval() == ACTION_TOAST_MS
    assert not window.account.notice.isVisible() and "went through" not in window.statusBar().currentMessage()
    # A "payment went through" notice still up (from a purchase this window learned of from the history) is not
    # left saying so once the top-up is undone: the page says what happened.
    window._payment_landed("A payment went through: 100 credits were added (Starter pack).")
    dialog.close()
    ui.notifier.clicked.emit()  # the notification leads to the dialog, with its Undo
    qtbot.waitUntil(lambda: dialog.isVisible() and dialog.undo_button.isVisible(), timeout=10_000)
    scroll = dialog.findChild(QScrollArea, "autoTopupScroll")
    # All of it in view at the dialog's size, Undo included (not scrolled away).
    assert scroll.widget().sizeHint().height() <= scroll.viewport().height()
    dialog.undo_button.click()
    qtbot.waitUntil(lambda: "Top-up undone" in dialog.status.text(), timeout=10_000)
    assert "100 credits taken back" in dialog.status.text() and "$5.00 refunded" in dialog.status.text()
    assert api.balance() == 99
    qtbot.waitUntil(lambda: window.account.notice.text().startswith("Auto top-up undone: 100 credits taken back"),
                    timeout=10_000)
    assert "went through" not in window.statusBar().currentMessage()

    dialog.off_button.click()  # one click
    qtbot.waitUntil(lambda: dialog.state is not None and not dialog.state.enabled, timeout=10_000)
    assert not api.get("/api/credits/auto-topup").json()["enabled"]
    assert dialog.on_button.text() == "Turn &on"
    assert dialog.state.card_saved and not dialog.buy_button.isVisible()  # off by the user: Turn on uses the card

    # Off because the saved card was declined: the status names the fix, and the dialog offers it.
    dialog.show_state(replace(dialog.state, disabled_reason="card_declined"))
    assert dialog.status.text() == ("Auto top-up is off: your card was declined. Buy and save card… pays with "
                                    "another card and turns it on again.")
    assert dialog.buy_button.isVisible() and dialog.buy_button.text().replace("&", "") == "Buy and save card…"
