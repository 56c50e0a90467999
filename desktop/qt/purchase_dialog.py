"""The dialog shown while a purchase waits for the browser."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from desktop.core.purchase import FlowState
from desktop.qt.purchase_controller import PurchaseController


class PurchaseDialog(QDialog):
    def __init__(self, purchase: PurchaseController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.purchase = purchase
        self.setWindowTitle(f"Buying the {purchase.pack_name} pack" if purchase.pack_name else "Buying credits")
        self.setMinimumWidth(460)
        self.message = QLabel()
        self.message.setObjectName("purchaseMessage")
        self.message.setWordWrap(True)
        self.message.setAccessibleName("Purchase status")
        self.link = QLabel()
        self.link.setWordWrap(True)
        self.link.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.link.setAccessibleName("Checkout link")
        self.progress = QProgressBar()
        self.progress.setRange(0, 0)  # busy
        self.progress.setTextVisible(False)
        self.progress.setAccessibleName("Waiting for the payment")

        self.reopen_button = QPushButton("&Open checkout again")
        self.check_button = QPushButton("Check &payment now")
        self.cancel_button = QPushButton("&Stop waiting")
        self.close_button = QPushButton("&Close")
        buttons = QDialogButtonBox()
        buttons.addButton(self.reopen_button, QDialogButtonBox.ButtonRole.ActionRole)
        buttons.addButton(self.check_button, QDialogButtonBox.ButtonRole.ActionRole)
        buttons.addButton(self.cancel_button, QDialogButtonBox.ButtonRole.RejectRole)
        buttons.addButton(self.close_button, QDialogButtonBox.ButtonRole.AcceptRole)
        self.reopen_button.clicked.connect(purchase.open_checkout)
        self.check_button.clicked.connect(purchase.check_now)
        self.cancel_button.clicked.connect(purchase.give_up)
        self.close_button.clicked.connect(self.accept)

        layout = QVBoxLayout(self)
        layout.addWidget(self.message)
        layout.addWidget(self.progress)
        layout.addWidget(self.link)
        layout.addWidget(buttons)
        purchase.changed.connect(self.update_view)
        self.update_view()

    def update_view(self) -> None:
        flow = self.purchase.flow
        self.message.setText(self.purchase.message)
        ended = flow.is_terminal
        waiting = flow.state in (FlowState.WAITING, FlowState.VERIFYING)
        self.progress.setVisible(not ended)
        self.reopen_button.setVisible(not ended)
        self.reopen_button.setEnabled(waiting and bool(flow.checkout_url))
        self.check_button.setVisible(not ended)
        self.check_button.setEnabled(flow.state is FlowState.WAITING)
        self.cancel_button.setVisible(not ended)
        self.close_button.setVisible(ended)
        show_link = waiting and self.purchase.browser_opened is False and bool(flow.checkout_url)
        self.link.setText(flow.checkout_url or "" if show_link else "")
        self.link.setVisible(show_link)
        if ended:
            self.close_button.setDefault(True)
            self.close_button.setFocus()
        self.adjustSize()  # the message wraps to more or fewer lines as it changes

    def reject(self) -> None:
        """Escape or the window's close button: stop waiting (the purchase is still remembered)."""
        if not self.purchase.flow.is_terminal:
            self.purchase.give_up()
        super().reject()
