"""The main window: starting, signing in, and the account page; menus and the status bar."""

from __future__ import annotations

import logging
from collections.abc import Callable

from PySide6.QtCore import QByteArray, Qt, QUrl
from PySide6.QtGui import QAction, QCloseEvent, QDesktopServices, QIcon, QKeySequence
from PySide6.QtWidgets import (
    QLabel,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

import resources
from desktop.core.api import Pack
from desktop.core.purchase import FlowState, PurchaseFlow
from desktop.qt.account_page import AccountPage
from desktop.qt.controller import AppController, Health
from desktop.qt.diagnostics_dialog import DiagnosticsDialog
from desktop.qt.purchase_controller import Opener, PurchaseController
from desktop.qt.purchase_dialog import PurchaseDialog
from desktop.qt.sign_in import SignInPage
from desktop.qt.spend_ui import SpendUi

log = logging.getLogger("desktop.window")


def open_in_system_browser(url: str) -> bool:
    return QDesktopServices.openUrl(QUrl(url))


def app_icon() -> QIcon:
    icon = QIcon(str(resources.path("icons/creditdesk.svg")))
    icon.addFile(str(resources.path("icons/creditdesk.png")))
    return icon


class StartingPage(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.label = QLabel("Starting Creditdesk…")
        self.label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.label.setWordWrap(True)
        self.progress = QProgressBar()
        self.progress.setRange(0, 0)
        self.progress.setMaximumWidth(280)
        self.progress.setTextVisible(False)
        layout = QVBoxLayout(self)
        layout.addStretch()
        layout.addWidget(self.label)
        layout.addWidget(self.progress, alignment=Qt.AlignmentFlag.AlignCenter)
        layout.addStretch()


class MainWindow(QMainWindow):
    def __init__(self, controller: AppController, opener: Opener | None = None, *,
                 poll_first_delay: float = 2.0, poll_max_delay: float = 30.0) -> None:
        super().__init__()
        self.controller = controller
        self.opener: Callable[[str], bool] = opener or open_in_system_browser
        self._poll = (poll_first_delay, poll_max_delay)
        self.purchase: PurchaseController | None = None
        self.purchase_dialog: PurchaseDialog | None = None
        self.resumed: list[PurchaseController] = []
        self.diagnostics: DiagnosticsDialog | None = None

        self.setWindowTitle("Creditdesk")
        self.setWindowIcon(app_icon())
        self.resize(920, 680)
        self.starting = StartingPage()
        self.sign_in = SignInPage()
        self.account = AccountPage()
        self.pages = QStackedWidget()
        for page in (self.starting, self.sign_in, self.account):
            self.pages.addWidget(page)
        self.setCentralWidget(self.pages)

        self.backend_label = QLabel()
        self.backend_label.setObjectName("backendStatus")
        self.backend_label.setAccessibleName("Backend status")
        self.statusBar().addPermanentWidget(self.backend_label)
        self._build_menus()
        self._connect()
        self.spend_ui = SpendUi(self, controller)  # the Credits menu: spending, usage, alerts, spend controls
        self._restore_geometry()

    # -- set-up -----------------------------------------------------------------------------------------------

    def _build_menus(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        self.refresh_action = QAction("&Refresh", self, shortcut=QKeySequence.StandardKey.Refresh)
        self.refresh_action.triggered.connect(self.controller.refresh)
        self.sign_out_action = QAction("Sign &out", self)
        self.sign_out_action.triggered.connect(self.controller.sign_out)
        quit_action = QAction("&Quit", self, shortcut=QKeySequence.StandardKey.Quit)
        quit_action.triggered.connect(self.close)
        for action in (self.refresh_action, self.sign_out_action):
            file_menu.addAction(action)
            action.setEnabled(False)
        file_menu.addSeparator()
        file_menu.addAction(quit_action)
        help_menu = self.menuBar().addMenu("&Help")
        self.diagnostics_action = QAction("&Diagnostics…", self, shortcut=QKeySequence("Ctrl+Shift+D"))
        self.diagnostics_action.triggered.connect(self.show_diagnostics)
        about = QAction("&About Creditdesk", self)
        about.triggered.connect(self._about)
        help_menu.addAction(self.diagnostics_action)
        help_menu.addAction(about)

    def _connect(self) -> None:
        c = self.controller
        c.backendReady.connect(lambda url: self.starting.label.setText(f"Connecting to {url}…"))
        c.backendFailed.connect(self._backend_failed)
        c.healthChanged.connect(self._show_health)
        c.signedIn.connect(self._signed_in)
        c.signedOut.connect(self._signed_out)
        c.authFailed.connect(self.sign_in.failed)
        c.balanceChanged.connect(self.account.set_balance)
        c.packsChanged.connect(self.account.set_packs)
        c.historyChanged.connect(self.account.set_history)
        c.errorOccurred.connect(lambda message: self.statusBar().showMessage(message, 10_000))
        self.sign_in.submitted.connect(c.sign_in)
        self.account.buyRequested.connect(self.buy)
        self.account.loadOlderRequested.connect(c.load_older)

    def _restore_geometry(self) -> None:
        geometry = self.controller.settings.load().window_geometry
        if geometry:
            self.restoreGeometry(QByteArray.fromBase64(geometry.encode()))

    # -- reactions --------------------------------------------------------------------------------------------

    def _backend_failed(self, message: str) -> None:
        self.starting.progress.hide()
        self.starting.label.setText(message + "\n\nSee Help → Diagnostics for details.")

    def _show_health(self, health: Health) -> None:
        mode = {"stub": "stub payments (no real money)", "stripe": "Stripe payments"}.get(health.payments, "")
        state = "connected" if health.reachable else "not reachable"
        parts = [f"Backend {self.controller.backend_url}", mode, state]
        self.backend_label.setText(" · ".join(p for p in parts if p))
        self.backend_label.setToolTip(health.message)
        self.backend_label.setStyleSheet("" if health.reachable else "color: #b42318;")

    def _signed_in(self, email: str) -> None:
        tokens = self.controller.tokens
        self.account.set_email(email, "" if tokens.persistent else tokens.where)
        self.account.set_balance(self.controller.account.balance)
        self.account.set_packs(self.controller.account.packs)
        self.pages.setCurrentWidget(self.account)
        self.refresh_action.setEnabled(True)
        self.sign_out_action.setEnabled(True)
        self._resume_unfinished(email)

    def _signed_out(self, reason: str) -> None:
        self.pages.setCurrentWidget(self.sign_in)
        self.refresh_action.setEnabled(False)
        self.sign_out_action.setEnabled(False)
        self.account.set_balance(None)
        self.account.set_history([], False)
        self.sign_in.reset(reason, self.controller.settings.load().last_email or "")

    # -- buying -----------------------------------------------------------------------------------------------

    def buy(self, pack: Pack) -> None:
        if self.purchase is not None and not self.purchase.flow.is_terminal:
            if self.purchase_dialog is not None:
                self.purchase_dialog.show()
                self.purchase_dialog.raise_()
            return
        first, cap = self._poll
        purchase = PurchaseController(self.controller, self.opener, first_delay=first, max_delay=cap, parent=self)
        self.purchase = purchase
        purchase.callbackReceived.connect(self.bring_to_front)
        purchase.finished.connect(self._purchase_finished)
        self.account.set_buying(True)
        purchase.start(pack)
        dialog = PurchaseDialog(purchase, self)
        dialog.setWindowModality(Qt.WindowModality.WindowModal)
        self.purchase_dialog = dialog
        dialog.show()

    def _purchase_finished(self, flow: PurchaseFlow) -> None:
        self.account.set_buying(False)
        if flow.state is FlowState.PAID:
            self.bring_to_front()
            self.statusBar().showMessage(f"{flow.credits_granted:,} credits added.", 15_000)

    def _resume_unfinished(self, email: str) -> None:
        backend_url = self.controller.backend_url or ""
        for pending in self.controller.pending.unfinished(backend_url, email):
            first, cap = self._poll
            purchase = PurchaseController(self.controller, self.opener, first_delay=first, max_delay=cap,
                                          parent=self)
            purchase.finished.connect(self._resumed_finished)
            self.resumed.append(purchase)
            self.statusBar().showMessage(f"Checking your unfinished purchase of the {pending.pack_name} pack…")
            purchase.resume(pending)

    def _resumed_finished(self, flow: PurchaseFlow) -> None:
        if flow.state is FlowState.PAID:
            self.statusBar().showMessage(
                f"Your earlier purchase went through: {flow.credits_granted:,} credits added.", 20_000)
        elif flow.state is not FlowState.GAVE_UP:
            self.statusBar().showMessage("An earlier purchase did not complete; nothing was charged.", 20_000)

    def bring_to_front(self) -> None:
        self.setWindowState((self.windowState() & ~Qt.WindowState.WindowMinimized) | Qt.WindowState.WindowActive)
        self.show()
        self.raise_()
        self.activateWindow()
        if self.purchase_dialog is not None and self.purchase_dialog.isVisible():
            self.purchase_dialog.raise_()  # without a window manager the dialog would end up behind

    # -- help -------------------------------------------------------------------------------------------------

    def show_diagnostics(self) -> DiagnosticsDialog:
        if self.diagnostics is None:
            self.diagnostics = DiagnosticsDialog(self.controller, self)
        else:
            self.diagnostics.refresh()
        self.diagnostics.show()
        self.diagnostics.raise_()
        return self.diagnostics

    def _about(self) -> None:
        QMessageBox.about(self, "About Creditdesk",
                          "<b>Creditdesk</b><p>Buy prepaid credits and keep track of them.</p>")

    def closeEvent(self, event: QCloseEvent) -> None:
        for purchase in [self.purchase, *self.resumed]:
            if purchase is not None:
                if not purchase.flow.is_terminal:
                    purchase.give_up()  # remembered on disk; checked again at the next start
                purchase.close_listener()
        self.controller.settings.update(window_geometry=bytes(self.saveGeometry().toBase64().data()).decode())
        self.spend_ui.close()
        super().closeEvent(event)
