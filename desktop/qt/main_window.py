"""The main window: starting, signing in, and the account page with its purchases; menus and the status bar.

Nothing here is modal for longer than a question takes to answer: purchases in flight are panels on the
account page, Diagnostics is a window of its own, and the menus, Quit and the close button work throughout.

At start the window shows the starting page only: the sign-in and account pages and the Credits menu are built
(and their modules loaded) after the window's first paint, a step per event-loop turn (``after_paint``), or
when first used if that is sooner. The controller's first answer (``healthChanged``) finishes them: whatever
it says next has its page.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QByteArray, QSize, QTimer
from PySide6.QtGui import (
    QAction,
    QCloseEvent,
    QIcon,
    QKeySequence,
)
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QProgressBar,
    QPushButton,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

import resources
from desktop.core.purchase import FlowState
from desktop.qt import screen_fit
from desktop.qt.after_paint import AfterFirstPaint
from desktop.qt.controller import AppController
from desktop.qt.purchase_controller import PurchaseController
from desktop.qt.status_bar import ElidedLabel, StatusBar

if TYPE_CHECKING:  # built after the first paint (see the module's docstring) or when first opened; or (html,
    # formatting with decimal, pack_values with fractions, the updates' part with packaging) loaded when first used
    from PySide6.QtGui import QFont
    from PySide6.QtWidgets import QMessageBox

    from desktop.core.models import GrantSummary, Pack, ResetCodeSent, Transaction
    from desktop.core.updates import Offer
    from desktop.qt.account_page import AccountPage
    from desktop.qt.backend_connection import BackendState
    from desktop.qt.billing_dialog import BillingDetailsDialog
    from desktop.qt.diagnostics_dialog import DiagnosticsDialog
    from desktop.qt.help_window import HelpWindow
    from desktop.qt.purchase_panel import PurchasePanel
    from desktop.qt.report_problem_dialog import ReportProblemDialog
    from desktop.qt.sign_in import SignInPage
    from desktop.qt.spend_ui import SpendUi
    from desktop.qt.update_controller import UpdateController

log = logging.getLogger("desktop.window")

PREFERRED_SIZE = QSize(940, 720)
MINIMUM_SIZE = QSize(480, 360)
TICK_MS = 30_000  # the panels' "expires in"
PASSWORD_CHANGED_NOTICE = "Your password was changed; other sign-ins were ended."  # noqa: S105 (words, no password)
NO_PREVIOUS_VERSION = "There is no previous version to go back to."


def open_in_system_browser(url: str) -> bool:
    """Qt's way (for platforms without xdg-open); the app uses :func:`desktop.core.browser.open_in_browser`."""
    from PySide6.QtCore import QUrl
    from PySide6.QtGui import QDesktopServices

    return QDesktopServices.openUrl(QUrl(url))


def app_icon() -> QIcon:
    """256 pixels square: as sharp as the SVG at window and About sizes, and without loading Qt's SVG module
    (the SVG stays in ``resources/icons`` for desktop files)."""
    return QIcon(str(resources.path("icons/creditdesk.png")))


def app_version() -> str:
    from desktop.core.version import package_version

    return package_version("creditdesk") or "unknown"


def _action(text: str, parent: QWidget, keys: QKeySequence) -> QAction:
    """A menu's action with its shortcut. Given with setShortcuts: QAction's ``shortcut=`` and setShortcut have
    overloads that PySide tells apart by making the Python type of Qt's namespace (28 ms, before the first paint)."""
    action = QAction(text, parent)
    action.setShortcuts([keys])
    return action


ALIGN_CENTER = 0x0084  # Qt::AlignCenter (AlignHCenter | AlignVCenter), as the "alignment" property takes it


class StartingPage(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.label = QLabel("Starting Creditdesk…")
        self.label.setObjectName("startingMessage")
        # This page is painted first: nothing here names Qt's namespace, whose Python type takes 28 ms to make
        # (its every enum). Its alignment is a property like any other; the bar and the button are centred between
        # stretches.
        self.label.setProperty("alignment", ALIGN_CENTER)
        self.label.setWordWrap(True)
        self.progress = QProgressBar()
        self.progress.setRange(0, 0)
        self.progress.setMaximumWidth(280)
        self.progress.setTextVisible(False)
        self.retry_button = QPushButton("&Try again now")
        self.retry_button.hide()
        layout = QVBoxLayout(self)
        layout.addStretch()
        layout.addWidget(self.label)
        for widget in (self.progress, self.retry_button):
            row = QHBoxLayout()
            row.addStretch()
            row.addWidget(widget)
            row.addStretch()
            layout.addLayout(row)
        layout.addStretch()

    def make_selectable(self) -> None:
        """Its words can be selected (to copy a failure's): after the first paint, since the app's first selectable
        text sets up Qt's text control, 5-6 ms."""
        from PySide6.QtCore import Qt

        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)


class MainWindow(QMainWindow):
    def __init__(self, controller: AppController, geometry: str | None = None) -> None:
        super().__init__()
        # The window owns the controller: it is deleted with the window, on the GUI thread, never by a worker
        # thread that happens to drop the last Python reference to it (Qt's timers cannot stop there).
        controller.setParent(self)
        self.controller = controller
        self.diagnostics: DiagnosticsDialog | None = None
        self.report_problem: ReportProblemDialog | None = None
        self.contact_box: QMessageBox | None = None
        self.about_box: QMessageBox | None = None
        self.help_window: HelpWindow | None = None
        self.panels: dict[PurchaseController, PurchasePanel] = {}

        self.setWindowTitle("Creditdesk")
        self.setWindowIcon(app_icon())
        self.starting = StartingPage()
        self.pages = QStackedWidget()
        self.pages.addWidget(self.starting)
        self.setCentralWidget(self.pages)
        self._sign_in: SignInPage | None = None
        self._account: AccountPage | None = None
        self._spend_ui: SpendUi | None = None
        self._payment_notice: str | None = None  # the account page's "A payment went through", while it shows
        self._fixed_font: QFont | None = None  # see warm_fixed_font

        # Readable at any width: a message takes the bar's width (the backend's status steps aside while it
        # shows), and the backend's status ends at a word where the window is narrow.
        self.status_bar = StatusBar(self)
        self.setStatusBar(self.status_bar)
        self.backend_label = ElidedLabel()
        self.backend_label.setObjectName("backendStatus")
        self.backend_label.setAccessibleName("Backend status")
        self.status_bar.addPermanentWidget(self.backend_label, 1)
        self.status_bar.quiet_while_message.append(self.backend_label)
        self._build_menus()
        self._connect()
        self.after_paint = AfterFirstPaint(self)
        self.after_paint.add(self.starting.make_selectable)
        self.after_paint.add(self._build_sign_in)
        self.after_paint.load("desktop.qt.history_model", "desktop.qt.purchase_panel")
        self.after_paint.add(self._build_account)
        self.after_paint.load("desktop.core.spend_models")
        self.after_paint.add(self._build_spend_ui)
        self.after_paint.add(self.warm_fixed_font)
        self._tick = QTimer(self)
        self._tick.setInterval(TICK_MS)
        self._tick.timeout.connect(self._tick_panels)
        self._tick.start()
        self.fit_to_screen(geometry)

    # -- set-up -----------------------------------------------------------------------------------------------

    @property
    def sign_in(self) -> SignInPage:
        return self._build_sign_in()

    @property
    def account(self) -> AccountPage:
        return self._build_account()

    @property
    def spend_ui(self) -> SpendUi:
        """The Credits menu: spending, usage, alerts, spend controls."""
        return self._build_spend_ui()

    # Each builds its part once (after the first paint, or when first asked for) and returns it.

    def _build_sign_in(self) -> SignInPage:
        if self._sign_in is None:
            from desktop.qt.sign_in import SignInPage

            self._sign_in = SignInPage()
            self.pages.addWidget(self._sign_in)
            self._sign_in.submitted.connect(self.controller.session.sign_in)
            self._sign_in.reset_form.codeRequested.connect(self.controller.session.request_reset)
            self._sign_in.reset_form.resetRequested.connect(self.controller.session.confirm_reset)
        return self._sign_in

    def _build_account(self) -> AccountPage:
        if self._account is None:
            from desktop.qt.account_page import AccountPage

            self._account = AccountPage()
            self.pages.addWidget(self._account)
            self._account.buyRequested.connect(self.buy)
            self._account.loadOlderRequested.connect(self.controller.figures.load_older)
            self._account.receiptRequested.connect(self.controller.purchases.open_receipt)
            self._update_buying()
        return self._account

    def _build_spend_ui(self) -> SpendUi:
        if self._spend_ui is None:
            from desktop.qt.spend_ui import SpendUi

            self._spend_ui = SpendUi(self, self.controller, self.show_packs)
            self._spend_ui.buy_pack = lambda pack, save_card: self.buy(pack, save_card=save_card)
            self._spend_ui.topupUndone.connect(self._topup_undone)
        return self._spend_ui

    def warm_fixed_font(self) -> None:
        """Help → Diagnostics shows the report in the fixed-width font. Qt loads a font when it is first used
        (fontconfig's match, the font file), in C++ on the GUI thread: here after the first paint, not as the
        dialog opens. The window keeps it, so that Qt's cache keeps it loaded."""
        from PySide6.QtGui import QFontDatabase, QFontMetricsF

        self._fixed_font = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)
        QFontMetricsF(self._fixed_font).height()

    def _build_menus(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        self.refresh_action = _action("&Refresh", self, QKeySequence(QKeySequence.StandardKey.Refresh))
        self.refresh_action.triggered.connect(self.controller.figures.refresh)
        self.sign_out_action = QAction("&Sign out", self)
        self.sign_out_action.triggered.connect(self.controller.session.sign_out)
        self.quit_action = _action("&Quit", self, QKeySequence(QKeySequence.StandardKey.Quit))
        self.quit_action.triggered.connect(self.close)
        for action in (self.refresh_action, self.sign_out_action):
            file_menu.addAction(action)
            action.setEnabled(False)
        file_menu.addSeparator()
        file_menu.addAction(self.quit_action)
        self.buy_menu = self.menuBar().addMenu("&Buy")
        self.buy_actions: list[QAction] = []
        # The buyer's name, address and tax id for receipts: open whenever signed in, buying or not.
        self.billing_action = QAction("Billing &details…", self)
        self.billing_action.triggered.connect(self.show_billing_details)
        self.billing_action.setEnabled(False)
        self.billing_dialog: BillingDetailsDialog | None = None
        help_menu = self.menuBar().addMenu("&Help")
        self.documentation_action = _action("Do&cumentation", self, QKeySequence(QKeySequence.StandardKey.HelpContents))
        self.documentation_action.triggered.connect(self.show_documentation)
        self.contact_action = QAction("Contact &support…", self)
        self.contact_action.triggered.connect(self.show_support_contact)
        self.report_problem_action = QAction("&Report a problem…", self)
        self.report_problem_action.triggered.connect(self.show_report_problem)
        for action in (self.documentation_action, self.contact_action, self.report_problem_action):
            help_menu.addAction(action)
        help_menu.addSeparator()
        self.diagnostics_action = _action("&Diagnostics…", self, QKeySequence("Ctrl+Shift+D"))
        self.diagnostics_action.triggered.connect(self.show_diagnostics)
        self.about_action = QAction("&About Creditdesk", self)
        self.about_action.triggered.connect(self._about)
        self.check_updates_action = QAction("Check for &updates…", self)
        self.check_updates_action.triggered.connect(lambda: self.controller.updates.check(asked=True))
        self.revert_action = QAction("Re&vert to previous version…", self)
        self.revert_action.triggered.connect(self.revert_to_previous)
        help_menu.addAction(self.diagnostics_action)
        help_menu.addAction(self.check_updates_action)
        help_menu.addAction(self.revert_action)
        help_menu.setToolTipsVisible(True)  # a greyed-out item says why
        help_menu.addSeparator()
        help_menu.addAction(self.about_action)
        self.update_box: QMessageBox | None = None
        self._revert_changed(None)
        self._set_buy_actions([])

    def _set_buy_actions(self, packs: list[Pack]) -> None:
        """Buy ▸ <pack>, with Ctrl+1, Ctrl+2, ... (the same as the cards' buttons)."""
        self.buy_menu.clear()
        self.buy_actions = []
        if packs:  # (none at start: their modules load with the first packs, after the first paint)
            from desktop.core.pack_values import tax_words
            from desktop.qt import formatting
        for number, pack in enumerate(packs, start=1):
            # Alt+B, then the pack's number (its mnemonic), as Ctrl+number does at once.
            mnemonic = f"&{number} " if number <= 9 else ""
            tax = f" {tax_words(pack)}" if tax_words(pack) else ""  # as its card says
            action = QAction(f"{mnemonic}Buy {pack.name} ({formatting.number(pack.credits)} credits, "
                             f"{formatting.money(pack.amount, pack.currency)}{tax})", self)
            if number <= 9:
                action.setShortcut(QKeySequence(f"Ctrl+{number}"))
            action.triggered.connect(lambda _=False, p=pack: self.buy(p))
            self.buy_menu.addAction(action)
            self.buy_actions.append(action)
        if not packs:
            placeholder = self.buy_menu.addAction("No packs yet")
            placeholder.setEnabled(False)
        self.buy_menu.addSeparator()
        self.buy_menu.addAction(self.billing_action)
        self._update_buying()

    def _connect(self) -> None:
        c = self.controller
        # Bound methods, not lambdas, for the controller's signals: a slot of this window is disconnected when
        # the window is deleted, while a lambda would still run on it (the controller may outlive it).
        c.backend.backendReady.connect(self._backend_ready)
        c.backend.backendFailed.connect(self._backend_failed)
        c.backend.onlineChanged.connect(self._online_changed)
        c.backend.healthChanged.connect(self._show_health)
        c.session.signedIn.connect(self._signed_in)
        c.session.signedOut.connect(self._signed_out)
        c.session.authFailed.connect(self._auth_failed)
        c.session.resetCodeSent.connect(self._reset_code_sent)
        c.session.resetFailed.connect(self._reset_failed)
        c.session.passwordChanged.connect(self._password_changed)
        c.figures.balanceChanged.connect(self._balance_changed)
        c.figures.reservedChanged.connect(self._reserved_changed)
        c.figures.grantsChanged.connect(self._grants_changed)
        c.figures.packsChanged.connect(self._packs_changed)
        c.figures.historyChanged.connect(self._history_changed)
        c.workers.errorOccurred.connect(self._show_error)
        c.purchases.purchaseAdded.connect(self._purchase_added)
        c.purchases.paymentLanded.connect(self._payment_landed)
        c.purchases.receiptFailed.connect(self._show_error)
        # The updates' part is made at start, after the first paint (or at Help → Check for updates if sooner).
        c.updatesMade.connect(self._connect_updates)
        if c.updates_made is not None:
            self._connect_updates(c.updates_made)
        self.starting.retry_button.clicked.connect(c.backend.supervisor.retry_now)

    def _connect_updates(self, updates: UpdateController) -> None:
        updates.offered.connect(self.offer_update)
        updates.said.connect(self._update_said)
        updates.installed.connect(self._update_installed)
        updates.revertChanged.connect(self._revert_changed)

    def _backend_ready(self, url: str) -> None:
        # The server answers (the status bar says connected): what is left is the account.
        self.starting.label.setText(f"Connected to {url}. Checking your sign-in…")

    def _show_error(self, message: str) -> None:
        self.statusBar().showMessage(message, 10_000)

    def fit_to_screen(self, geometry: str | None = None) -> None:
        """Restore the saved geometry (or take the preferred size) and keep the window on the screen's available
        area at any scaling, also where the saved one was on a screen that is gone (``screen_fit``)."""
        restored = bool(geometry) and self.restoreGeometry(QByteArray.fromBase64((geometry or "").encode()))
        screen_fit.mark_placed(self, restored)
        screen_fit.keep_on_screen(self, None if geometry else PREFERRED_SIZE, MINIMUM_SIZE)
        screen_fit.fit(self, None, MINIMUM_SIZE, place=False)  # (placed once shown and framed)

    # -- reactions --------------------------------------------------------------------------------------------

    def _backend_failed(self, message: str) -> None:
        self.starting.progress.hide()
        self.starting.label.setText(message + "\n\nHelp → Diagnostics has the details.")
        self.starting.retry_button.show()

    def _online_changed(self, online: bool) -> None:
        if online:
            self.starting.progress.show()
            self.starting.retry_button.hide()
        self._update_buying()
        self._show_stale()

    def _show_stale(self) -> None:
        backend = self.controller.backend
        if backend.online:
            self.account.set_stale(None)
            return
        from desktop.qt import formatting

        updated = self.controller.figures.updated_at
        since = f" These figures are from {formatting.clock(updated)}." if updated else ""
        self.account.set_stale(f"Not up to date: {backend.health.message}{since} Buying is off until the server is "
                               "back.")

    def _show_health(self, health: BackendState) -> None:
        self.after_paint.finish()  # the controller's first answer: what it says next needs the pages
        mode = {"stub": "stub payments (no real money)", "stripe": "Stripe payments"}.get(health.payments, "")
        state = "connected" if health.reachable else "not reachable"
        if health.reachable and not health.payments_available:
            state = "connected, but Stripe is not answering: buying is off for now"
        backend = self.controller.backend
        parts = [f"Backend {backend.url or backend.identity.label}", mode, state]
        self.backend_label.setText(" · ".join(p for p in parts if p))
        self.backend_label.setToolTip(f"{self.backend_label.text()}\n{health.message}")
        well = health.reachable and health.payments_available
        self.backend_label.setStyleSheet("" if well else "color: #b42318;")
        self._update_buying()
        if not health.reachable:
            self._show_stale()

    def _packs_changed(self, packs: list[Pack]) -> None:
        self.account.set_packs(packs)
        self._set_buy_actions(packs)

    def _auth_failed(self, message: str, wrong_password: bool) -> None:
        self.sign_in.failed(message, wrong_password)

    def _reset_code_sent(self, email: str, sent: ResetCodeSent) -> None:
        bundled = self.controller.backend.bundled
        minutes = sent.expires_in_seconds // 60 if sent.expires_in_seconds else None
        self.sign_in.reset_form.code_sent(email, bundled.outbox if bundled is not None else None, minutes)

    def _password_changed(self, _email: str) -> None:
        """Signed in with a new password: say so, and what it did (the account page shows it until dismissed by
        the next news)."""
        self.account.show_notice(PASSWORD_CHANGED_NOTICE)
        self.statusBar().showMessage(PASSWORD_CHANGED_NOTICE, 15_000)

    def _reset_failed(self, message: str, code: str) -> None:
        self.sign_in.reset_form.failed(message, code)

    def _balance_changed(self, balance: int) -> None:
        self.account.set_balance(balance)

    def _reserved_changed(self, reserved: int) -> None:
        self.account.set_reserved(reserved)

    def _grants_changed(self, summary: GrantSummary | None) -> None:
        self.account.set_grants(summary)  # (through a method: naming the page's would build it before the first paint)

    def _history_changed(self, rows: list[Transaction], more: bool) -> None:
        self.account.set_history(rows, more)

    def _update_buying(self) -> None:
        c = self.controller
        enabled = c.purchases.can_buy
        why = "" if enabled else ("The server is not answering." if not c.backend.online else
                                  "Stripe is not answering the server just now; buying comes back by itself."
                                  if not c.backend.health.payments_available else "Sign in first.")
        if self._account is not None:  # (else it is told when it is built)
            self._account.set_buying_enabled(enabled, why)
        for action in self.buy_actions:
            action.setEnabled(enabled)

    def _signed_in(self, email: str) -> None:
        tokens = self.controller.session.tokens
        self.account.set_email(email, "" if tokens.persistent else tokens.where)
        self.account.set_balance(self.controller.figures.balance)
        self.account.show_notice("")
        self.pages.setCurrentWidget(self.account)
        if self._sign_in is not None:
            self._sign_in.show_sign_in()  # a reset done: signing out later comes back to the sign-in form
        self.refresh_action.setEnabled(True)
        self.sign_out_action.setEnabled(True)
        self.billing_action.setEnabled(True)
        for purchase, panel in list(self.panels.items()):
            if purchase not in self.controller.purchases.items:  # another account's, stopped
                self._remove_panel(purchase)
            else:
                panel.show()
        self._update_buying()
        self._focus_first_action()

    def _focus_first_action(self) -> None:
        """After sign-in the keyboard starts at the first Buy button (or a purchase's first action)."""
        for panel in self.account.panels:
            if panel.check_button.isEnabled():
                panel.check_button.setFocus()
                return
        if self.account.cards:
            self.account.cards[0].button.setFocus()

    def _signed_out(self, reason: str) -> None:
        self.pages.setCurrentWidget(self.sign_in)
        self.refresh_action.setEnabled(False)
        self.sign_out_action.setEnabled(False)
        self.billing_action.setEnabled(False)
        if self.billing_dialog is not None:
            self.billing_dialog.close()
        self.account.set_balance(None)
        self.account.set_history([], False)
        self._update_buying()
        self.sign_in.reset(reason, self.controller.session.last_email or "")

    # -- buying -----------------------------------------------------------------------------------------------

    def buy(self, pack: Pack, *, save_card: bool = False) -> PurchaseController | None:
        purchase = self.controller.purchases.buy(pack, save_card=save_card)
        if purchase is None:
            self.statusBar().showMessage("Buying is not possible right now: the server is not answering.", 10_000)
        return purchase

    def _purchase_added(self, purchase: PurchaseController) -> None:
        from desktop.qt.purchase_panel import PurchasePanel

        panel = PurchasePanel(purchase)
        panel.dismissed.connect(self._dismiss)
        self.panels[purchase] = panel
        self.account.add_panel(panel)
        purchase.callbackReceived.connect(self.bring_to_front)
        purchase.finished.connect(self._purchase_finished)

    def _purchase_finished(self, purchase: PurchaseController) -> None:
        flow = purchase.flow
        if flow.state is FlowState.PAID:
            self.bring_to_front()  # its panel tells, once: no status bar line, notification or unread alert too
        elif purchase.resumed and not any(t.event == "cancel" for t in flow.history):
            self.statusBar().showMessage(f"An earlier purchase ended: {purchase.message}", 20_000)

    def _dismiss(self, purchase: PurchaseController) -> None:
        self._remove_panel(purchase)
        self.controller.purchases.dismiss(purchase)
        self._focus_first_action()

    def _remove_panel(self, purchase: PurchaseController) -> None:
        panel = self.panels.pop(purchase, None)
        if panel is not None:
            self.account.remove_panel(panel)

    def _payment_landed(self, message: str) -> None:
        self._payment_notice = message
        self.account.show_notice(message)
        self.statusBar().showMessage(message, 30_000)
        self.bring_to_front()

    def _topup_undone(self, message: str) -> None:
        """A top-up undone: a "payment went through" still on the account page is no longer true; it says what
        happened instead. (An auto top-up makes none: its own notification tells it, but a payment's notice may
        still be up.)"""
        if self._account is not None and self._payment_notice is not None \
                and self._account.notice.isVisible() and self._account.notice.text() == self._payment_notice:
            if self.statusBar().currentMessage() == self._payment_notice:
                self.statusBar().showMessage(message, 30_000)
            self._payment_notice = None
            self._account.show_notice(message)

    def _tick_panels(self) -> None:
        now = datetime.now(UTC)
        for panel in self.panels.values():
            panel.tick(now)

    def bring_to_front(self) -> None:
        from PySide6.QtCore import Qt

        self.setWindowState((self.windowState() & ~Qt.WindowState.WindowMinimized) | Qt.WindowState.WindowActive)
        self.show()
        self.raise_()
        self.activateWindow()

    def show_packs(self) -> None:
        """"Buy credits" from a refusal: this window with its packs in view, the first one focused."""
        self.bring_to_front()
        self.account.ensureWidgetVisible(self.account.packs_box)
        if self.account.cards:
            self.account.cards[0].button.setFocus()
        self.statusBar().showMessage("Choose a pack to buy; Use credits (Ctrl+U) opens again as you left it.", 15_000)

    # -- help -------------------------------------------------------------------------------------------------

    def show_billing_details(self) -> BillingDetailsDialog:
        """Buy → Billing details…: read again from the backend each time it opens."""
        from desktop.qt.billing_dialog import BillingDetailsDialog

        if self.billing_dialog is None:
            self.billing_dialog = BillingDetailsDialog(self.controller, self)
        elif not self.billing_dialog.isVisible():
            self.billing_dialog.load()
        self.billing_dialog.show()
        self.billing_dialog.raise_()
        self.billing_dialog.activateWindow()
        return self.billing_dialog

    def show_diagnostics(self) -> DiagnosticsDialog:
        from desktop.qt.diagnostics_dialog import DiagnosticsDialog

        if self.diagnostics is None:
            self.diagnostics = DiagnosticsDialog(self.controller, self)
        else:
            self.diagnostics.refresh()
        self.diagnostics.show()
        self.diagnostics.raise_()
        return self.diagnostics

    def show_report_problem(self) -> ReportProblemDialog:
        """Help → Report a problem…: one dialog, kept (hidden) when closed, so that the words typed stay."""
        from desktop.qt.report_problem_dialog import ReportProblemDialog

        if self.report_problem is None:
            self.report_problem = ReportProblemDialog(self.controller, self)
        else:
            self.report_problem.refresh()
        self.report_problem.show()
        self.report_problem.raise_()
        return self.report_problem

    def show_documentation(self) -> str | None:
        """Help → Documentation: the app maker's documentation in the browser (opened on a worker: it may wait),
        its address returned; where they configured none, the app's own user guide in a window (None)."""
        url = self.controller.help.documentation_url()
        if url is not None:
            self._open_link(url, "the documentation")
            return url
        if self.help_window is None:
            from desktop.qt.help_window import HelpWindow

            self.help_window = HelpWindow(self.controller, self)
            self.help_window.linkRequested.connect(lambda link: self._open_link(link, "the link"))
        self.help_window.show()
        self.help_window.raise_()
        self.help_window.activateWindow()
        return None

    def show_support_contact(self) -> QMessageBox:
        """Help → Contact support…: the contact the app maker configured, with a button that opens it."""
        import html

        from PySide6.QtCore import Qt
        from PySide6.QtWidgets import QMessageBox

        help_settings = self.controller.help
        contact, link = help_settings.support_contact, help_settings.support_link
        if contact:
            text = (f"<p>Write to support at <b>{html.escape(contact)}</b>.</p><p>To send them what the app knows "
                    "of the problem, use Help → Report a problem… instead.</p>")
        else:
            text = ("<p>The maker of this app has not given a support contact.</p><p>Help → Report a problem… sends "
                    "your words and a diagnostics report to the server you use.</p>")
        box = QMessageBox(QMessageBox.Icon.NoIcon, "Contact support", text, QMessageBox.StandardButton.Close, self)
        box.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        if link is not None:
            open_button = box.addButton("&Open", QMessageBox.ButtonRole.ActionRole)  # opens it, and closes the box
            open_button.clicked.connect(lambda: self._open_link(link, "the support contact"))
        box.open()
        self.contact_box = box
        return box

    def _open_link(self, url: str, what: str) -> None:
        opener = self.controller.purchases.opener

        def opened(ok: Any) -> None:
            if not ok:
                log.warning("the browser did not open %s", what)
                self.statusBar().showMessage(f"The browser did not open {what}: {url}", 15_000)

        self.controller.workers.run(lambda: opener(url, what), opened, self.controller.workers.report)

    def offer_update(self, offer: Offer) -> QMessageBox:
        """What is new in a newer version, and whether to install it now (it runs from the next start; a purchase
        in flight is left to end first)."""
        import html

        from PySide6.QtWidgets import QMessageBox

        notes = html.escape(offer.notes or "No notes were given for this version.", quote=False).replace("\n", "<br>")
        size = (f" ({offer.size / 1_000_000:.0f} MB)" if offer.size >= 1_000_000 else
                f" ({max(1, offer.size // 1000)} kB)" if offer.size else "")
        box = QMessageBox(QMessageBox.Icon.Information, "Update available",
                          f"<b>Creditdesk {html.escape(offer.version)}</b> is available{size}; you have "
                          f"{html.escape(self.controller.updates.running)}.<p><b>What is new</b></p><p>{notes}</p>"
                          "<p>Install it now? It runs from the next start, and the version you have stays "
                          "installed (Help → Revert to previous version).</p>",
                          QMessageBox.StandardButton.NoButton, self)
        install = box.addButton("&Install", QMessageBox.ButtonRole.AcceptRole)
        box.addButton("&Not now", QMessageBox.ButtonRole.RejectRole)
        box.setDefaultButton(install)
        box.finished.connect(lambda _: self.controller.updates.answer(offer, box.clickedButton() is install))
        screen_fit.keep_on_screen(box)
        box.open()
        self.update_box = box
        return box

    def _update_said(self, message: str) -> None:
        self.statusBar().showMessage(message, 30_000)

    def _update_installed(self, version: str) -> None:
        self.statusBar().showMessage(f"Version {version} runs the next time you start the app.", 60_000)

    def _revert_changed(self, back: str | None) -> None:
        """Greyed out when there is nothing to go back to, saying why (its tooltip, and the status bar as the menu
        item is hovered)."""
        self.revert_action.setEnabled(back is not None)
        self.revert_action.setText(f"Re&vert to previous version ({back})…" if back else
                                   "Re&vert to previous version…")
        updates = self.controller.updates_made  # (None as the menus are built, before the first paint)
        tip = f"Go back to version {back} from the next start." if back else \
            (updates.revert_why if updates is not None else "") or NO_PREVIOUS_VERSION
        if tip == NO_PREVIOUS_VERSION:  # as the menus are built: no need to load html
            rich = f"<p>{tip}</p>"
        else:
            import html

            rich = f"<p>{html.escape(tip)}</p>"
        self.revert_action.setToolTip(rich)  # rich text, which Qt wraps (plain text is one line: 1,036 pixels of
        self.revert_action.setStatusTip(tip)  # a 1366 x 768 screen)

    def revert_to_previous(self) -> QMessageBox | None:
        """Help → Revert to previous version: asked once, then the previous version runs from the next start."""
        import html

        from PySide6.QtWidgets import QMessageBox

        back = self.controller.updates.revert_to
        if back is None:
            self.statusBar().showMessage(self.controller.updates.revert_why or NO_PREVIOUS_VERSION, 15_000)
            return None
        box = QMessageBox(QMessageBox.Icon.Question, "Revert to previous version",
                          f"Go back to version {html.escape(back)} from the next start? Your purchases, sign-in "
                          "and settings stay as they are.", QMessageBox.StandardButton.NoButton, self)
        revert = box.addButton("&Revert", QMessageBox.ButtonRole.AcceptRole)
        box.addButton(QMessageBox.StandardButton.Cancel)
        def answered(_: int) -> None:
            if box.clickedButton() is revert:
                self.controller.updates.revert()

        box.finished.connect(answered)
        screen_fit.keep_on_screen(box)
        box.open()
        self.update_box = box
        return box

    def _about(self) -> QMessageBox:
        """Help → About (window-modal: a question's worth of waiting)."""
        from PySide6.QtWidgets import QMessageBox

        box = QMessageBox(QMessageBox.Icon.NoIcon, "About Creditdesk",
                          f"<b>Creditdesk {app_version()}</b><p>Buy prepaid credits and keep track of them.</p>",
                          QMessageBox.StandardButton.Close, self)
        box.setIconPixmap(app_icon().pixmap(64, 64))
        screen_fit.keep_on_screen(box)
        box.open()
        self.about_box = box
        return box

    def closeEvent(self, event: QCloseEvent) -> None:
        # Purchases in flight stay on disk and are picked up at the next start (the controller's shutdown stops
        # their checks and closes their listeners).
        self.controller.save_geometry(bytes(self.saveGeometry().toBase64().data()).decode())
        self.after_paint.cancel()
        if self._spend_ui is not None:
            self._spend_ui.close()
        if self.report_problem is not None:
            self.report_problem.close()  # its words are kept as a draft (on the disk worker, which shutdown waits for)
        super().closeEvent(event)
