"""A purchase in flight, as a panel in the main window (never a modal dialog: everything else works meanwhile).

It shows the pack and its price, the time left before the checkout expires, what the app last learned about it
(and when), and actions: open the checkout again, copy its link, check now (always answered) and cancel the
purchase. When it ends it says how, until dismissed.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from desktop.core.purchase import FlowState
from desktop.qt import formatting
from desktop.qt.purchase_controller import PurchaseController

OUTCOME_COLOURS = {FlowState.PAID: "#15803d", FlowState.FAILED: "#b42318"}


def describe_time_left(left: timedelta) -> str:
    """``23 h 59 min``, ``12 min``, ``less than a minute``."""
    minutes = int(left.total_seconds() // 60)
    if minutes <= 0:
        return "less than a minute"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if hours else f"{minutes} min"


class PurchasePanel(QFrame):
    dismissed = Signal(object)  # the PurchaseController

    def __init__(self, purchase: PurchaseController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.purchase = purchase
        self.answer_text = ""
        self.setObjectName("purchasePanel")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setAccessibleName("Purchase in flight")
        self.title = QLabel()
        font = self.title.font()
        font.setBold(True)
        self.title.setFont(font)
        self.time_left = QLabel()
        self.time_left.setObjectName("timeLeft")
        self.time_left.setAccessibleName("Time left to pay")
        self.message = QLabel()
        self.message.setObjectName("purchaseMessage")
        self.message.setWordWrap(True)
        self.message.setAccessibleName("Purchase status")
        self.learned = QLabel()
        self.learned.setObjectName("lastLearned")
        self.learned.setWordWrap(True)
        self.learned.setAccessibleName("What Creditdesk last learned about this purchase")
        self.link = QLabel()
        self.link.setWordWrap(True)
        self.link.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse
                                          | Qt.TextInteractionFlag.TextSelectableByKeyboard)
        self.link.setAccessibleName("Checkout link")

        # No Alt+letter keys: with several purchases in flight every panel would claim the same ones. Tab reaches
        # them, in the order they are shown.
        self.reopen_button = QPushButton("Open checkout again")
        self.copy_button = QPushButton("Copy link")
        self.check_button = QPushButton("Check now")
        self.cancel_button = QPushButton("Cancel purchase")
        self.dismiss_button = QPushButton("Dismiss")
        for button, name in ((self.reopen_button, "Open the checkout page again in the browser"),
                             (self.copy_button, "Copy the checkout link"),
                             (self.check_button, "Check the payment now"),
                             (self.cancel_button, "Cancel this purchase"),
                             (self.dismiss_button, "Dismiss this purchase")):
            button.setAccessibleName(name)
        self.reopen_button.clicked.connect(purchase.open_checkout)
        self.copy_button.clicked.connect(self.copy_link)
        self.check_button.clicked.connect(self.check_now)
        self.cancel_button.clicked.connect(purchase.cancel)
        self.dismiss_button.clicked.connect(lambda: self.dismissed.emit(self.purchase))

        header = QHBoxLayout()
        header.addWidget(self.title, stretch=1)
        header.addWidget(self.time_left)
        buttons = QHBoxLayout()
        for button in (self.reopen_button, self.copy_button, self.check_button, self.cancel_button):
            buttons.addWidget(button)
        buttons.addStretch()
        buttons.addWidget(self.dismiss_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 8, 12, 8)
        layout.setSpacing(4)
        layout.addLayout(header)
        layout.addWidget(self.message)
        layout.addWidget(self.learned)
        layout.addWidget(self.link)
        layout.addLayout(buttons)

        purchase.changed.connect(self.update_view)
        purchase.answered.connect(self.show_answer)
        self.update_view()

    def copy_link(self) -> None:
        url = self.purchase.flow.checkout_url
        if url:
            QGuiApplication.clipboard().setText(url)
            self.show_answer("The checkout link is on the clipboard.")

    def check_now(self) -> None:
        self.show_answer("Checking…")
        self.purchase.check_now()

    def buttons(self) -> list[QPushButton]:
        """Its buttons in the order they are shown."""
        return [self.reopen_button, self.copy_button, self.check_button, self.cancel_button, self.dismiss_button]

    def show_answer(self, text: str) -> None:
        self.answer_text = text
        self.update_view()

    def update_view(self, now: datetime | None = None) -> None:
        purchase, flow = self.purchase, self.purchase.flow
        # What was paid once the backend said (with its tax, less its discount); until then the pack's price.
        if purchase.paid is not None:
            price = f", paid {formatting.money(purchase.paid.amount, purchase.paid.currency)}"
        elif purchase.amount is not None and purchase.currency:
            price = f" for {formatting.money(purchase.amount, purchase.currency)}"
            price += f" {purchase.tax_words}" if purchase.tax_words else ""  # the card's words, as at checkout
        else:
            price = ""
        name = f"{purchase.pack_name} pack" if purchase.pack_name else "Credits"
        self.title.setText(f"{name}: {formatting.number(purchase.credits)} credits{price}")
        ended = flow.is_terminal
        in_flight = flow.state in (FlowState.WAITING, FlowState.VERIFYING, FlowState.CANCELLING, FlowState.PAUSED)
        self.message.setText(purchase.message)
        colour = OUTCOME_COLOURS.get(flow.state, "")
        self.message.setStyleSheet(f"color: {colour};" if colour else "")
        if in_flight and flow.session_id:
            self.time_left.setText(f"Expires in {describe_time_left(purchase.time_left(now))}")
            self.time_left.setToolTip(f"The checkout can be paid until {formatting.when(purchase.expires_at)}.")
        else:
            self.time_left.setText("")
        learned = ""
        if purchase.last_learned is not None:
            when, what = purchase.last_learned
            learned = f"Last checked {formatting.clock(when)}: {what}."
        if self.answer_text and not ended:
            learned = self.answer_text  # the same news as the last check's, said as the answer to "Check now"
        self.learned.setText(learned)
        self.learned.setVisible(bool(learned) and not ended)  # once it ended, its message says all there is
        has_link = bool(flow.checkout_url) and in_flight
        self.reopen_button.setVisible(not ended)
        self.reopen_button.setEnabled(has_link and flow.state is not FlowState.CANCELLING)
        self.copy_button.setVisible(not ended)
        self.copy_button.setEnabled(has_link)
        self.check_button.setVisible(not ended)
        self.check_button.setEnabled(in_flight or flow.state is FlowState.STARTING)
        self.cancel_button.setVisible(not ended)
        self.cancel_button.setEnabled(flow.can_cancel)
        self.dismiss_button.setVisible(ended)
        show_link = has_link and purchase.browser_opened is False
        self.link.setText(flow.checkout_url or "" if show_link else "")
        self.link.setVisible(show_link)
        title = f"Buying the {purchase.pack_name} pack" if purchase.pack_name else "Buying credits"
        self.setAccessibleDescription(f"{title}. {purchase.message}")

    def tick(self, now: datetime | None = None) -> None:
        """Every half minute: the time left; an answer to "Check now" is no longer "just now"."""
        self.answer_text = ""
        if not self.purchase.flow.is_terminal:
            self.update_view(now or datetime.now(UTC))
