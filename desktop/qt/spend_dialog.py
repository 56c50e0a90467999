""""Use credits…": spends credits as a host application's feature would, through the same controls.

It stands in for the features of a host application, so that the spend controls can be seen and tried end to
end. A refusal says which control blocked the spend and offers its fix: buy credits, change the spend
controls, or confirm the spend (the same idempotency key goes with the confirmation, so it is spent once).
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from desktop.core.models import ApiError, SpendResult, new_idempotency_key
from desktop.core.spending import Fix, Refusal, refusal_for
from desktop.qt import formatting, screen_fit
from desktop.qt.spend_controller import SpendController
from desktop.qt.workers import describe

MAX_SPEND = 1_000_000_000


class SpendDialog(QDialog):
    buyRequested = Signal()
    controlsRequested = Signal()
    answered = Signal()  # a spend sent was answered: spent or refused

    def __init__(self, spending: SpendController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.spending = spending
        self.setWindowTitle("Use credits")
        self.setObjectName("spendDialog")
        self._key: str | None = None
        self._sent: tuple[int, str, str] | None = None  # what the key was made for
        self.refusal: Refusal | None = None
        self._error: BaseException | None = None
        self.sending = False

        intro = QLabel("Spend credits the way a feature of your application would. Your spend controls apply.")
        intro.setWordWrap(True)
        self.balance = QLabel()
        self.balance.setObjectName("spendBalance")
        self.balance.setAccessibleName("Credit balance")
        figures = spending.app.figures
        self._show_balance(figures.balance)
        figures.balanceChanged.connect(self._show_balance)
        self.amount = QSpinBox()
        self.amount.setRange(1, MAX_SPEND)
        self.amount.setValue(10)
        self.amount.setGroupSeparatorShown(True)
        self.amount.setSuffix(" credits")
        self.amount.setAccessibleName("Credits to spend")
        self.description = QLineEdit()
        self.description_required = False  # the backend said so once (CREDITDESK_REQUIRE_DESCRIPTION)
        self.description.setPlaceholderText("What the credits are for, e.g. Export a report")
        self.description.setMaxLength(500)
        self.description.setAccessibleName("Description")
        self.feature = QLineEdit()
        self.feature.setPlaceholderText("optional, e.g. export")
        self.feature.setMaxLength(100)
        self.feature.setAccessibleName("Feature")
        form = QFormLayout()
        form.addRow("Balance:", self.balance)
        form.addRow("&Amount:", self.amount)
        form.addRow("&Description:", self.description)
        form.addRow("&Feature:", self.feature)

        self.status = QLabel()
        self.status.setObjectName("spendStatus")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.status.setAccessibleName("Result")
        self.refusal_box = QFrame()
        self.refusal_box.setObjectName("refusal")
        self.refusal_box.setFrameShape(QFrame.Shape.StyledPanel)
        self.refusal_title = QLabel()
        font = self.refusal_title.font()
        font.setBold(True)
        self.refusal_title.setFont(font)
        self.refusal_text = QLabel()
        self.refusal_text.setWordWrap(True)
        self.fix_button = QPushButton()
        self.fix_button.clicked.connect(self._fix)
        box = QVBoxLayout(self.refusal_box)
        box.addWidget(self.refusal_title)
        box.addWidget(self.refusal_text)
        row = QHBoxLayout()
        row.addStretch()
        row.addWidget(self.fix_button)
        box.addLayout(row)
        self.refusal_box.hide()

        self.buttons = QDialogButtonBox()
        self.spend_button = self.buttons.addButton("&Spend", QDialogButtonBox.ButtonRole.AcceptRole)
        self.spend_button.setDefault(True)
        self.close_button = self.buttons.addButton(QDialogButtonBox.StandardButton.Close)
        self.close_button.setText("Close")  # the theme's may be "&Close", the fixes' "&Confirm" (Esc closes)
        self.spend_button.clicked.connect(lambda: self.submit())
        self.close_button.clicked.connect(self.close)
        for field in (self.amount, self.description, self.feature):
            signal = field.valueChanged if isinstance(field, QSpinBox) else field.textChanged
            signal.connect(self._edited)

        spending.controlsChanged.connect(self._on_controls_changed)

        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addLayout(form)
        layout.addWidget(self.refusal_box)
        layout.addWidget(self.status)
        layout.addWidget(self.buttons)
        self.setMinimumWidth(440)
        screen_fit.keep_on_screen(self)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        """Enter in a field spends; on a button, presses that button. (QDialog's own rule would press the
        first button made, the refusal's fix, whatever had the focus.)"""
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and not isinstance(self.focusWidget(), QPushButton):
            if self.spend_button.isEnabled():
                self.spend_button.click()
            return
        super().keyPressEvent(event)

    def start_over(self) -> None:
        """Opened again after it was closed: a new spend, not the last one again (Enter or Alt+S would repeat
        it). The amount stays, selected, so that typing replaces it."""
        if self.spend_button.isEnabled():  # not while a spend is under way
            self.description.clear()
            self.feature.clear()
            self.status.clear()
            self.refusal = None
            self.refusal_box.hide()
        self.amount.setFocus()
        self.amount.selectAll()

    # -- sending ------------------------------------------------------------------------------------------------

    def _request(self) -> tuple[int, str, str]:
        return self.amount.value(), self.description.text().strip(), self.feature.text().strip()

    def _show_balance(self, balance: int | None) -> None:
        self.balance.setText("—" if balance is None else f"{formatting.number(balance)} credits")

    def submit(self, token: str | None = None) -> None:
        """Send the spend; the same request keeps its idempotency key, so sending it again never spends twice."""
        request = self._request()
        if self.description_required and not request[1]:
            self._ask_for_description()
            return
        if self._key is None or self._sent != request:
            self._key, self._sent = new_idempotency_key(), request
        amount, description, feature = request
        self._busy(True, "Confirming…" if token else "Spending…")
        self.sending = True
        self.spending.spend(amount, self._key, description, feature or None, token, self._spent, self._failed)

    def _spent(self, result: SpendResult) -> None:
        amount = self._sent[0] if self._sent else 0
        self._key = None  # the next spend is a new one
        self._busy(False, f"Spent {formatting.number(amount)} credits. Your balance is "
                          f"{formatting.number(result.balance)} credits.")
        self.refusal = None
        self.refusal_box.hide()
        self.sending = False
        self.answered.emit()

    @property
    def refused_cap(self) -> str | None:
        """The period ("day", "week", "month") of the cap whose refusal the dialog shows; None when it shows
        none (a cap's alert about it is then the user's only news of it)."""
        refusal, error = self.refusal, self._error
        if not self.isVisible() or refusal is None or refusal.fix is not Fix.RAISE_CAP:
            return None
        if not isinstance(error, ApiError):
            return None
        return str((error.details or {}).get("period", ""))

    def _ask_for_description(self) -> None:
        self.status.setText("Say what these credits are for: this service asks every spend for a description.")
        self.description.setFocus()

    def _failed(self, error: BaseException) -> None:
        if isinstance(error, ApiError) and error.code == "description_required":
            self.description_required = True  # from now on an empty one is refused here, before it is sent
            self.sending = False
            self._busy(False, "")
            self._ask_for_description()
            self.answered.emit()
            return
        controls = self.spending.controls
        refusal = refusal_for(error, controls.time_zone if controls else None, formatting.local_datetime,
                              confirm_above=controls.confirm_above if controls else None)
        self.sending = False
        if refusal is None:
            self._busy(False, describe(error))
            self.answered.emit()
            return
        self._busy(False, "")
        self._error = error
        if refusal.fix is Fix.RAISE_CAP:
            self.spending.load_controls()  # the reset time in the user's zone as it is now; and what is used
        self.refusal = refusal
        self.refusal_title.setText(refusal.title)
        self.refusal_text.setText(refusal.message)
        label = {Fix.BUY: "&Buy credits…", Fix.RAISE_CAP: "Change spend &controls…",
                 Fix.CONFIRM: f"&Confirm and spend {formatting.number(self._sent[0] if self._sent else 0)}"}
        self.fix_button.setVisible(refusal.fix in label)
        self.fix_button.setText(label.get(refusal.fix, ""))
        self.fix_button.setAccessibleName(label.get(refusal.fix, "").replace("&", ""))
        self.refusal_box.show()
        self.adjustSize()
        screen_fit.fit(self)  # (grown by the refusal: still on the screen)
        if refusal.fix in label:
            self.fix_button.setFocus()
        self.answered.emit()

    def _on_controls_changed(self, _controls: object) -> None:
        self._controls_changed()

    def _controls_changed(self) -> None:
        """The user's time zone may have changed since the refusal was written: write it again."""
        if self.refusal is not None and self.refusal.fix is Fix.RAISE_CAP and self._error is not None:
            controls = self.spending.controls
            refusal = refusal_for(self._error, controls.time_zone if controls else None, formatting.local_datetime,
                                  confirm_above=controls.confirm_above if controls else None)
            if refusal is not None:
                self.refusal = refusal
                self.refusal_text.setText(refusal.message)

    def _fix(self) -> None:
        refusal = self.refusal
        if refusal is None:
            return
        if refusal.fix is Fix.CONFIRM and refusal.confirmation is not None:
            self.refusal_box.hide()
            self.submit(refusal.confirmation.token)
        elif refusal.fix is Fix.BUY:
            # Out of the way of the packs it sends the user to (it sits above the main window): Ctrl+U brings it
            # back as it was.
            self.close()
            self.buyRequested.emit()
        elif refusal.fix is Fix.RAISE_CAP:
            self.controlsRequested.emit()

    def _edited(self) -> None:
        if self.refusal is not None and self.refusal.fix is Fix.CONFIRM:
            self.refusal = None  # a confirmation is for the spend as it was
            self.refusal_box.hide()

    def _busy(self, busy: bool, message: str) -> None:
        self.spend_button.setEnabled(not busy)
        self.status.setText(message)
