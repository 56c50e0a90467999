"""The window at its smallest, 480 x 360: the status bar says whole words (the backend's status and the messages,
which the backend's status no longer cuts), and a notification in the window covers no balance. From the
walkthrough of issue 18 ("…stub payments (no real r"; the notification over the balance)."""

from __future__ import annotations

import logging
from typing import Any

import requests
from PySide6.QtCore import QRect
from PySide6.QtWidgets import QToolButton

from desktop.qt.main_window import MINIMUM_SIZE, MainWindow
from desktop.qt.status_bar import ELLIPSIS
from tests.desktop.qt.conftest import sign_up
from tests.helpers.api import Api
from tests.helpers.backend import BackendProcess


def whole_words(shown: str, full: str) -> bool:
    """``shown`` is ``full``, or some of its first words and "…" (never a word cut)."""
    if shown == full:
        return True
    kept = shown.removesuffix(ELLIPSIS)
    return shown.endswith(ELLIPSIS) and full.startswith(kept) and full[len(kept)] in " ·,;:(" and kept.strip() != ""


def in_window(window: MainWindow, widget: Any) -> QRect:
    return QRect(widget.mapTo(window, widget.rect().topLeft()), widget.size())


def smallest(qtbot: Any, window: MainWindow) -> None:
    window.resize(MINIMUM_SIZE)
    qtbot.waitUntil(lambda: window.size() == MINIMUM_SIZE)


def test_at_its_smallest_the_status_bar_says_whole_words(
    qtbot: Any, make_window: Any, stub_backend: BackendProcess, caplog: Any, monkeypatch: Any,
) -> None:
    monkeypatch.setenv("CREDITDESK_DOCS_URL", "https://docs.example.com/creditdesk/user-guide")
    window: MainWindow = make_window(stub_backend.url)  # its opener opens nothing
    sign_up(qtbot, window)
    smallest(qtbot, window)
    label, bar = window.backend_label, window.status_bar
    qtbot.waitUntil(lambda: label.text().endswith("· connected"), timeout=10_000)
    full = label.text()
    assert "stub payments (no real money)" in full and label.toolTip().startswith(full)
    qtbot.waitUntil(lambda: label.shown_text() != full)  # too long for 480 pixels beside "No new alerts"
    shown = label.shown_text()
    assert whole_words(shown, full) and label.fontMetrics().horizontalAdvance(shown) <= label.contentsRect().width()
    alerts = window.spend_ui.alerts_button
    assert alerts.isVisible() and not in_window(window, label).intersects(in_window(window, alerts))
    assert in_window(window, alerts).right() <= window.width()

    # A message takes the bar's width: the backend's status steps aside while it shows, and comes back.
    caplog.set_level(logging.WARNING)
    window.show_documentation()
    qtbot.waitUntil(lambda: bar.currentMessage().startswith("The browser did not open the documentation"),
                    timeout=10_000)
    qtbot.waitUntil(lambda: not label.isVisible())
    message = bar.currentMessage()
    assert whole_words(bar.shown_message(), message)
    assert bar.shown_message().startswith("The browser did not open the documentation")
    assert bar.fontMetrics().horizontalAdvance(bar.shown_message()) <= bar.message_rect().width()
    assert not bar.message_rect().intersects(alerts.geometry())
    # The log and the diagnostics' recent errors say what failed to open: not "the checkout page".
    assert "the browser did not open the documentation" in caplog.text and "checkout" not in caplog.text
    errors = window.controller.recent_errors
    assert errors is None or any("documentation" in e for e in errors.messages())
    bar.clearMessage()
    assert label.isVisible()


def test_at_its_smallest_a_notification_covers_no_balance(
    qtbot: Any, make_window: Any, stub_backend: BackendProcess,
) -> None:
    window: MainWindow = make_window(stub_backend.url)
    sign_up(qtbot, window)
    smallest(qtbot, window)
    api = Api(stub_backend.url, window.controller.backend.api.token)  # type: ignore[union-attr]
    requests.post(api.checkout("starter")["url"] + "/pay", timeout=10)
    api.request("PUT", "/api/credits/controls", json={"caps": {"day": 50}})
    api.post("/api/credits/spend", json={"amount": 45, "idempotencyKey": "near-the-cap"})  # a long alert's text
    toast = window.spend_ui.notifier.toast
    qtbot.waitUntil(lambda: toast.isVisible() and "cap" in toast.message.text(), timeout=20_000)
    balance = window.account.balance
    assert balance.isVisible() and balance.visibleRegion().boundingRect().height() >= balance.height() // 2
    written = balance.fontMetrics().boundingRect(balance.text())  # the balance's words, where they are drawn
    balance_rect = QRect(in_window(window, balance).topLeft(), written.size())
    box = toast.geometry()
    assert not box.intersects(balance_rect)
    assert box.bottom() < window.status_bar.y()  # above the status bar
    assert box.top() > window.menuBar().height() and box.right() < window.width()
    assert box.width() <= window.width() * 3 // 5 + 1  # at most three fifths of the window's width
    close = toast.findChild(QToolButton)
    assert close.text() == "\u00d7" and toast.rect().contains(close.geometry())  # the close mark lies wholly inside
    window.resize(940, 720)
    qtbot.waitUntil(lambda: toast.geometry().right() < window.width() and toast.width() <= 380)
    assert toast.geometry().bottom() < window.status_bar.y()
