"""Opens every window and dialog of the app on the screen the offscreen platform is given, and prints where each
lies and what of it shows, as one line of JSON (``python -m tests.desktop.qt.screen_probe HOME URL EMAIL PASSWORD``).

A process of its own (test_screen_fit.py starts one per scale factor): the screen's scaling is fixed before the
QApplication exists. The user (made by the test) has spend controls that ask to confirm above 250 credits, a
history of spends and alerts, so that each window shows what it holds.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QLocale, QPoint, QRect
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QAbstractButton, QAbstractScrollArea, QApplication, QWidget

from desktop.app import build_window
from desktop.core.settings import AppPaths


def wait_until(condition: Callable[[], object], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        QTest.qWait(20)


def _rect(rect: QRect) -> list[int]:
    return [rect.x(), rect.y(), rect.width(), rect.height()]


def _scrolled_in(widget: QWidget) -> QWidget | None:
    """The scroll area's viewport that ``widget`` is scrolled in, if any."""
    parent = widget.parentWidget()
    while parent is not None and not parent.isWindow():
        grand = parent.parentWidget()
        if isinstance(grand, QAbstractScrollArea) and grand.viewport() is parent:
            return parent
        parent = grand
    return None


def placement(widget: QWidget) -> dict[str, Any]:
    """Where ``widget`` is on the screen, whether it scrolls, and which parent (below a scroll area's viewport, or
    its window) cuts part of it off."""
    viewport = _scrolled_in(widget)
    clipped_by = None
    parent = widget.parentWidget()
    while parent is not None and parent is not viewport:
        inside = QRect(widget.mapTo(parent, QPoint(0, 0)), widget.size())
        if not parent.rect().contains(inside):
            clipped_by = f"{type(parent).__name__} {parent.objectName()}".strip()
            break
        if parent.isWindow():
            break
        parent = parent.parentWidget()
    return {"global": _rect(QRect(widget.mapToGlobal(QPoint(0, 0)), widget.size())), "scrolls": viewport is not None,
            "clipped_by": clipped_by, "size": [widget.width(), widget.height()],
            "minimum": [widget.minimumSizeHint().width(), widget.minimumHeight() or widget.minimumSizeHint().height()]}


def measure(window: QWidget) -> dict[str, Any]:
    QTest.qWait(60)  # the fitting's second turn, once the frame is known
    buttons = {}
    for button in window.findChildren(QAbstractButton):
        if button.window() is not window or not button.isVisible() or button.width() <= 0 or button.height() <= 0:
            continue
        name = button.text().replace("&", "") or button.accessibleName() or button.objectName() or type(button).__name__
        buttons[name] = placement(button)
    return {"frame": _rect(window.frameGeometry()), "inner": _rect(window.geometry()),
            "available": _rect(window.screen().availableGeometry()), "buttons": buttons}


def main(home: str, url: str, email: str, password: str) -> None:
    app = QApplication([])
    QLocale.setDefault(QLocale(QLocale.Language.English, QLocale.Country.UnitedStates))
    window = build_window(AppPaths.under(Path(home)).ensure(), url, lambda _url, _what: False, poll_first_delay=0.2,
                          poll_max_delay=0.5)
    window.show()
    window.controller.start()
    screen = app.primaryScreen()
    found: dict[str, Any] = {"screen": _rect(screen.geometry()), "scale": screen.devicePixelRatio(), "windows": {}}
    windows = found["windows"]

    wait_until(lambda: window.pages.currentWidget() is window.sign_in, "the sign-in page")
    windows["Main window: sign in"] = measure(window)
    window.sign_in.forgot_button.click()
    wait_until(lambda: window.sign_in.reset_form.isVisible(), "the forgot-password form")
    window.sign_in.reset_form.email.setText(email)
    window.sign_in.reset_form.send_button.click()
    wait_until(lambda: window.sign_in.reset_form.set_button.isVisible(), "the code and new password")
    windows["Main window: new password"] = measure(window)
    window.sign_in.reset_form.back_button.click()
    window.sign_in.email.setText(email)
    window.sign_in.password.setText(password)
    window.sign_in.sign_in_button.click()
    wait_until(lambda: window.pages.currentWidget() is window.account and len(window.account.cards) == 3, "the account")
    windows["Main window: account"] = measure(window)

    ui = window.spend_ui
    wait_until(lambda: ui.spending.controls is not None, "the spend controls")
    spend = ui.show_spend()
    spend.amount.setValue(300)  # above the user's 250: Use credits asks to confirm
    spend.description.setText("Render the film in full resolution for the festival")
    spend.submit()
    wait_until(lambda: spend.refusal_box.isVisible(), "the confirmation")
    windows["Use credits: confirm"] = measure(spend)
    spend.close()

    usage = ui.show_usage()
    wait_until(lambda: usage.usage is not None, "the usage")
    windows["Usage"] = {**measure(usage), "chart": placement(usage.chart_view)}
    usage.close()

    alerts = ui.show_alerts()
    wait_until(lambda: alerts.list.count() > 0, "the alerts")
    windows["Alerts"] = measure(alerts)
    alerts.close()

    controls = ui.show_controls()
    wait_until(lambda: controls.history.rowCount() > 0, "the controls' history")
    windows["Spend controls"] = measure(controls)
    controls.close()

    topup = ui.show_auto_topup()
    wait_until(lambda: topup.state is not None, "auto top-up's settings")
    windows["Auto top-up"] = measure(topup)
    topup.close()

    diagnostics = window.show_diagnostics()
    wait_until(lambda: diagnostics.report is not None, "the diagnostics report")
    windows["Diagnostics"] = measure(diagnostics)
    diagnostics.close()

    report = window.show_report_problem()
    wait_until(lambda: report.report is not None, "the report to send")
    windows["Report a problem"] = measure(report)
    report.close()

    billing = window.show_billing_details()
    wait_until(lambda: billing.save_button.isEnabled(), "the billing details")
    windows["Billing details"] = measure(billing)
    billing.close()

    assert window.show_documentation() is None, "CREDITDESK_DOCS_URL is set"  # the app's own user guide
    guide = window.help_window
    assert guide is not None
    wait_until(lambda: guide.loaded, "the user guide")
    windows["Help"] = measure(guide)
    guide.close()

    about = window._about()
    wait_until(about.isVisible, "About")
    windows["About"] = measure(about)
    about.close()

    print(json.dumps(found))
    window.close()
    window.controller.shutdown()


if __name__ == "__main__":
    main(*sys.argv[1:5])
