"""Every window closes with a Close button, and Alt+letter does what its underlined letter says: no two mnemonics
clash in any window (a clash makes Alt+S toggle a checkbox instead of saving), and each window's menus and
buttons have them."""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Any

import pytest
from PySide6.QtWidgets import QAbstractButton, QGroupBox, QLabel, QMainWindow, QMenu, QWidget

from desktop.qt.main_window import MainWindow
from tests.desktop.qt.conftest import sign_up
from tests.helpers.backend import BackendProcess

_MNEMONIC = re.compile(r"(?<!&)&([^&\s])")


def mnemonics(window: QWidget) -> dict[str, list[str]]:
    """Each mnemonic letter of what Alt+letter reaches in ``window``: its menu bar's menus, its visible buttons,
    the labels that lead to a field (buddy) and group boxes; with the texts that use it."""
    found: dict[str, list[str]] = defaultdict(list)

    def note(text: str) -> None:
        for letter in _MNEMONIC.findall(text):
            found[letter.lower()].append(text)

    if isinstance(window, QMainWindow):
        for action in window.menuBar().actions():
            note(action.text())
    for widget in window.findChildren(QWidget):
        if not widget.isVisibleTo(window) or widget.window() is not window or isinstance(widget, QMenu):
            continue
        if isinstance(widget, QAbstractButton | QGroupBox):
            note(widget.text() if isinstance(widget, QAbstractButton) else widget.title())
        elif isinstance(widget, QLabel) and widget.buddy() is not None:
            note(widget.text())
    return found


def clashes(window: QWidget) -> dict[str, list[str]]:
    return {letter: texts for letter, texts in mnemonics(window).items() if len(texts) > 1}


def menu_clashes(menu: QMenu) -> dict[str, list[str]]:
    found: dict[str, list[str]] = defaultdict(list)
    for action in menu.actions():
        for letter in _MNEMONIC.findall(action.text()):
            found[letter.lower()].append(action.text())
    return {letter: texts for letter, texts in found.items() if len(texts) > 1}


def test_no_two_mnemonics_clash_in_any_window(qtbot: Any, make_window: Any, stub_backend: BackendProcess) -> None:
    window: MainWindow = make_window(stub_backend.url)
    qtbot.waitUntil(lambda: window.pages.currentWidget() is window.sign_in, timeout=20_000)
    assert clashes(window) == {}  # the sign-in page with the menus
    sign_up(qtbot, window)
    qtbot.waitUntil(lambda: window.spend_ui.spending.controls is not None, timeout=10_000)
    assert clashes(window) == {}  # the account page with the menus
    for menu in window.menuBar().findChildren(QMenu):
        assert menu_clashes(menu) == {}, menu.title()
        if menu is not window.buy_menu:  # (its packs are numbered: &1, &2, …)
            unreachable = [a.text() for a in menu.actions() if not a.isSeparator() and "&" not in a.text()]
            assert unreachable == [], menu.title()
    buy_texts = [action.text() for action in window.buy_menu.actions() if not action.isSeparator()]
    assert all(_MNEMONIC.search(text) for text in buy_texts), buy_texts  # Alt+B, then a pack's letter
    ui = window.spend_ui
    for opened in (ui.show_spend(), ui.show_usage(), ui.show_alerts(), ui.show_controls(), window.show_diagnostics(),
                   window.show_report_problem(), window.show_billing_details(), ui.show_auto_topup()):
        qtbot.waitUntil(opened.isVisible)
        assert clashes(opened) == {}, type(opened).__name__
        assert mnemonics(opened), f"{type(opened).__name__} has no mnemonics"
        opened.close()


def test_every_window_has_a_close_button(qtbot: Any, make_window: Any, stub_backend: BackendProcess,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CREDITDESK_DOCS_URL", raising=False)  # Help → Documentation: the app's own user guide
    window: MainWindow = make_window(stub_backend.url)
    sign_up(qtbot, window)
    ui = window.spend_ui
    window.show_documentation()
    for opened in (ui.show_spend(), ui.show_usage(), ui.show_alerts(), ui.show_controls(), window.show_diagnostics(),
                   window.show_billing_details(), window.help_window, ui.show_auto_topup()):
        qtbot.waitUntil(opened.isVisible)
        close = [b for b in opened.findChildren(QAbstractButton) if b.text() == "Close" and b.isVisibleTo(opened)]
        assert len(close) == 1, type(opened).__name__
        close[0].click()
        assert not opened.isVisible(), type(opened).__name__
