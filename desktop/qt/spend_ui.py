"""The Credits menu and what hangs off it: "Use credits…", usage, alerts, spend controls; the unread-alerts
button in the status bar; desktop notifications. Installed on the main window by one call, so that the main
window only knows it is there."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QDialog, QMainWindow, QPushButton

from desktop.core.alert_inbox import notices, told_by_a_panel, told_by_a_refusal
from desktop.core.models import Pack
from desktop.core.spend_models import Alert, AlertPage
from desktop.qt import formatting
from desktop.qt.controller import AppController
from desktop.qt.notifier import Notifier
from desktop.qt.spend_controller import SpendController

if TYPE_CHECKING:  # the windows load when first opened: the main window paints sooner (bench/startup.py)
    from desktop.qt.alerts_window import AlertsWindow
    from desktop.qt.auto_topup_dialog import AutoTopupDialog
    from desktop.qt.controls_window import SpendControlsWindow
    from desktop.qt.spend_dialog import SpendDialog
    from desktop.qt.usage_window import SaveChooser, UsageWindow


TOPUP_KINDS = frozenset({"topup_succeeded", "topup_failed", "topup_threshold", "topup_limit", "topup_undone"})


class SpendUi(QObject):
    """Installed on ``window``; ``show_packs`` brings the packs to the front when a refusal offers to buy credits
    (a callback, so that this module needs nothing of the main window but what any QMainWindow has)."""

    topupUndone = Signal(str)  # a top-up's Undo went through: what it did, as its alert says it

    def __init__(self, window: QMainWindow, app: AppController, show_packs: Callable[[], None], *,
                 use_tray: bool | None = None, choose_path: SaveChooser | None = None) -> None:
        super().__init__(window)
        self.window = window
        self.show_packs = show_packs
        self.app = app
        self.choose_path = choose_path
        self.spending = SpendController(app, parent=self)
        self.notifier = Notifier(window, window.windowIcon(), use_tray=use_tray)
        self.spend_dialog: SpendDialog | None = None
        self.usage_window: UsageWindow | None = None
        self.alerts_window: AlertsWindow | None = None
        self.controls_window: SpendControlsWindow | None = None
        self.auto_topup_dialog: AutoTopupDialog | None = None
        self.buy_pack: Callable[[Pack, bool], object] | None = None  # the main window's buy (save_card for top-up)
        self._topup_notice = False  # the last notification was about a top-up: clicking it opens Auto top-up
        self.held: list[Alert] = []  # cap alerts that came while a spend was being sent: its answer may tell them

        menu = window.menuBar().addMenu("&Credits")
        help_action = next((a for a in window.menuBar().actions() if a.text() == "&Help"), None)
        if help_action is not None:  # Help stays last
            window.menuBar().insertMenu(help_action, menu)
        self.menu = menu
        self.use_action = QAction("&Use credits…", window, shortcut=QKeySequence("Ctrl+U"))
        self.usage_action = QAction("Usage and &export…", window, shortcut=QKeySequence("Ctrl+Shift+U"))
        self.alerts_action = QAction("&Alerts…", window, shortcut=QKeySequence("Ctrl+Shift+A"))
        self.controls_action = QAction("Spend &controls…", window, shortcut=QKeySequence("Ctrl+Shift+L"))
        self.auto_topup_action = QAction("Auto &top-up…", window)
        for action, slot in ((self.use_action, self.show_spend), (self.usage_action, self.show_usage),
                             (self.alerts_action, self.show_alerts), (self.controls_action, self.show_controls),
                             (self.auto_topup_action, self.show_auto_topup)):
            action.triggered.connect(slot)
            action.setEnabled(False)
            menu.addAction(action)

        self.alerts_button = QPushButton()
        self.alerts_button.setObjectName("alertsButton")
        self.alerts_button.setFlat(True)
        # Flat, it would show no focus at all: underlined when Tab reaches it.
        self.alerts_button.setStyleSheet("QPushButton:focus { text-decoration: underline; }")
        self.alerts_button.clicked.connect(self.show_alerts)
        self.alerts_button.hide()
        window.statusBar().addPermanentWidget(self.alerts_button)

        app.session.signedIn.connect(self._on_signed_in)
        app.session.signedOut.connect(self._on_signed_out)
        self.spending.alertsChanged.connect(self._show_unread)
        self.spending.notify.connect(self._notify)
        self.notifier.clicked.connect(self._notice_clicked)

    def _on_signed_in(self, _email: object) -> None:
        self._signed_in(True)

    def _on_signed_out(self, _reason: object) -> None:
        self._signed_in(False)

    def _signed_in(self, signed_in: bool) -> None:
        for action in (self.use_action, self.usage_action, self.alerts_action, self.controls_action,
                       self.auto_topup_action):
            action.setEnabled(signed_in)
        self.alerts_button.setVisible(signed_in)
        if not signed_in:
            for dialog in (self.spend_dialog, self.usage_window, self.alerts_window, self.controls_window,
                           self.auto_topup_dialog):
                if dialog is not None:
                    dialog.close()

    def _show_unread(self, page: AlertPage) -> None:
        text = "No new alerts" if page.unread == 0 else f"{page.unread} new alert{'s' if page.unread != 1 else ''}"
        self.alerts_button.setText(text)
        self.alerts_button.setAccessibleName(f"Alerts: {text.lower()}")
        font = self.alerts_button.font()
        font.setBold(page.unread > 0)
        self.alerts_button.setFont(font)

    def _notify(self, alerts: list[Alert]) -> None:
        """Announce new alerts, but not again what this window already told: a purchase its panel, a spend
        refused for a cap the Use credits dialog (those are marked read)."""
        shown = (p.session_id for p in self.app.purchases.items if p.session_id)
        alerts, told = told_by_a_panel(alerts, shown)
        dialog = self.spend_dialog
        if dialog is not None and dialog.isVisible() and dialog.sending:
            # Made in the spend's own transaction, a cap alert can arrive before the dialog has its answer.
            self.held += [a for a in alerts if a.kind == "cap_100"]
            alerts = [a for a in alerts if a.kind != "cap_100"]
        refused = [dialog.refused_cap] if dialog is not None and dialog.refused_cap is not None else []
        alerts, told_too = told_by_a_refusal(alerts, refused)
        told += told_too
        if told:
            self.spending.mark_read(a.id for a in told)
        for notice in notices(alerts, lambda a: formatting.alert_message(a.kind, a.message, a.data)):
            # A top-up's notice leads to Auto top-up, where its Undo is (the alert says so).
            self._topup_notice = any(a.kind in TOPUP_KINDS for a in notice.alerts)
            self.notifier.show(notice, actionable=self._topup_notice)
        if any(a.kind in TOPUP_KINDS for a in alerts) and self.auto_topup_dialog is not None:
            self.auto_topup_dialog.refresh()
        for alert in alerts:
            if alert.kind == "topup_undone":
                self.topupUndone.emit(alert.message)
        if any(a.kind in ("topup_succeeded", "topup_undone") for a in alerts):
            # The credits it added or took back: the balance says so with the notification, not at the next poll.
            self.app.figures.refresh()

    def _notice_clicked(self) -> None:
        if self._topup_notice:
            self.show_auto_topup()
        else:
            self.show_alerts()

    def _spend_answered(self) -> None:
        held, self.held = self.held, []
        if held:
            self._notify(held)

    # -- windows ------------------------------------------------------------------------------------------------

    def _present(self, dialog: QDialog) -> QDialog:
        dialog.show()
        dialog.raise_()
        dialog.activateWindow()
        return dialog

    def show_spend(self) -> SpendDialog:
        if self.spend_dialog is None:
            from desktop.qt.spend_dialog import SpendDialog

            self.spend_dialog = SpendDialog(self.spending, self.window)
            self.spend_dialog.buyRequested.connect(self.show_packs)
            self.spend_dialog.controlsRequested.connect(self.show_controls)
            self.spend_dialog.answered.connect(self._spend_answered)
        elif not self.spend_dialog.isVisible():
            self.spend_dialog.start_over()
        self._present(self.spend_dialog)
        return self.spend_dialog

    def show_usage(self) -> UsageWindow:
        if self.usage_window is None:
            from desktop.qt.usage_window import UsageWindow, ask_where_to_save

            self.usage_window = UsageWindow(self.spending, self.window,
                                            choose_path=self.choose_path or ask_where_to_save)
        else:
            self.usage_window.refresh()
        self._present(self.usage_window)
        return self.usage_window

    def show_alerts(self) -> AlertsWindow:
        if self.alerts_window is None:
            from desktop.qt.alerts_window import AlertsWindow

            self.alerts_window = AlertsWindow(self.spending, self.notifier.where, self.window)
        self._present(self.alerts_window)
        return self.alerts_window

    def show_controls(self) -> SpendControlsWindow:
        if self.controls_window is None:
            from desktop.qt.controls_window import SpendControlsWindow

            self.controls_window = SpendControlsWindow(self.spending, self.window)
        self._present(self.controls_window)
        return self.controls_window

    def show_auto_topup(self) -> AutoTopupDialog:
        if self.auto_topup_dialog is None:
            from desktop.qt.auto_topup_dialog import AutoTopupDialog

            self.auto_topup_dialog = AutoTopupDialog(self.spending, list(self.app.figures.packs), self.window)
            self.auto_topup_dialog.buyRequested.connect(self._buy_saving_card)
        else:
            self.auto_topup_dialog.refresh()
        self._present(self.auto_topup_dialog)
        return self.auto_topup_dialog

    def _buy_saving_card(self, pack: Pack, save_card: bool) -> None:
        if self.buy_pack is None:
            self.show_packs()
            return
        purchase = self.buy_pack(pack, save_card)
        # Once paid, the card is saved: the dialog reads that again (it said the first top-up was still to come).
        finished = getattr(purchase, "finished", None)
        if finished is not None:
            finished.connect(lambda _: self.auto_topup_dialog.refresh() if self.auto_topup_dialog else None)

    def close(self) -> None:
        """The main window is closing."""
        self.spending.stop()
        self.notifier.close()
