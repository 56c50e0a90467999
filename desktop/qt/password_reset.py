"""Forgot password, on the sign-in page: the email, then the mailed code with a new password (twice).

Two steps in one form: :meth:`PasswordResetForm.ask_for_code` (the email) and, once the server has answered,
:meth:`code_sent` (the code and the new password). The form only collects and checks what is typed; the
account session sends it, on a worker.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

MINIMUM_PASSWORD = 8  # the server's rule for every password (register's)


class PasswordResetForm(QWidget):
    codeRequested = Signal(str)  # the email
    resetRequested = Signal(str, str, str)  # the email, the code, the new password
    cancelled = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.sent_to = ""  # the email the last code was asked for
        title = QLabel("Choose a new password")
        font = title.font()
        font.setPointSizeF(font.pointSizeF() * 1.3)
        font.setBold(True)
        title.setFont(font)
        self.explanation = QLabel()
        self.explanation.setWordWrap(True)
        self.explanation.setObjectName("resetExplanation")
        self.explanation.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        # Step 1: the email. (Alt+letters: none of the menus' F, B, C, H.)
        self.email = QLineEdit()
        self.email.setPlaceholderText("you@example.com")
        self.email.setAccessibleName("Email for the reset code")
        self.email.setInputMethodHints(Qt.InputMethodHint.ImhEmailCharactersOnly)
        self.email_row = QWidget()
        email_form = QFormLayout(self.email_row)
        email_form.setContentsMargins(0, 0, 0, 0)
        email_form.addRow("&Email:", self.email)
        self.send_button = QPushButton("&Send code")
        self.send_button.setAccessibleName("Send code")

        # Step 2: the code and the new password, twice.
        self.code = QLineEdit()
        self.code.setPlaceholderText("1234 5678")
        self.code.setAccessibleName("Code from the email")
        self.code.setInputMethodHints(Qt.InputMethodHint.ImhDigitsOnly)
        self.code.setMaxLength(32)
        self.new_password = QLineEdit()
        self.new_password.setEchoMode(QLineEdit.EchoMode.Password)
        self.new_password.setAccessibleName("New password")
        self.repeat_password = QLineEdit()
        self.repeat_password.setEchoMode(QLineEdit.EchoMode.Password)
        self.repeat_password.setAccessibleName("New password again")
        self.code_rows = QWidget()
        code_form = QFormLayout(self.code_rows)
        code_form.setContentsMargins(0, 0, 0, 0)
        code_form.addRow("Co&de:", self.code)
        code_form.addRow("&New password:", self.new_password)
        code_form.addRow("&Repeat password:", self.repeat_password)
        self.set_button = QPushButton("Set new pass&word")
        self.set_button.setAccessibleName("Set new password")
        self.resend_button = QPushButton("Send another c&ode")
        self.resend_button.setAccessibleName("Send another code")

        self.back_button = QPushButton("Back to sign &in")
        self.back_button.setAccessibleName("Back to sign in")
        buttons = QHBoxLayout()
        buttons.addWidget(self.back_button)
        buttons.addStretch()
        buttons.addWidget(self.resend_button)
        buttons.addWidget(self.send_button)
        buttons.addWidget(self.set_button)

        self.message = QLabel()
        self.message.setObjectName("resetMessage")
        self.message.setWordWrap(True)
        self.message.setAccessibleName("Password reset message")
        self.message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(title)
        layout.addWidget(self.explanation)
        layout.addWidget(self.email_row)
        layout.addWidget(self.code_rows)
        layout.addLayout(buttons)
        layout.addWidget(self.message)

        self.send_button.clicked.connect(self._send)
        self.email.returnPressed.connect(self._send)
        self.resend_button.clicked.connect(self._resend)
        self.set_button.clicked.connect(self._set)
        self.code.returnPressed.connect(self.new_password.setFocus)
        self.new_password.returnPressed.connect(self.repeat_password.setFocus)
        self.repeat_password.returnPressed.connect(self._set)
        self.back_button.clicked.connect(self.cancelled.emit)
        self.ask_for_code("")

    # -- the steps ---------------------------------------------------------------------------------------------

    def ask_for_code(self, email: str) -> None:
        """Step 1, with ``email`` filled in."""
        self.email.setText(email)
        self.explanation.setText("Enter the email of your account: we send a code to it to choose a new password.")
        for widget in (self.code_rows, self.set_button, self.resend_button):
            widget.hide()
        for widget in (self.email_row, self.send_button):
            widget.show()
        self.send_button.setDefault(True)
        self.set_busy(False)
        self.show_message("")
        self.email.setFocus()

    def code_sent(self, email: str, outbox: Path | None = None, minutes: int | None = None) -> None:
        """Step 2: the server took the request (it does not say whether the account exists). ``outbox``: the folder
        where this app's own server puts its mail, having no mail server; ``minutes``: how long the code works, as
        the server said (the mail says the same)."""
        self.sent_to = email
        how_long = f"{minutes} minute{'s' if minutes != 1 else ''}" if minutes else "a few minutes"
        where = (f" This app's own server sends no email: the message is a file in {outbox}, which a mail program "
                 "opens." if outbox is not None else "")
        self.explanation.setText(f"If an account exists for {email}, we sent a code to it. Enter it with your new "
                                 f"password: only the newest code works, once, for {how_long}. The new password "
                                 f"signs you out everywhere else.{where}")
        for widget in (self.email_row, self.send_button):
            widget.hide()
        for widget in (self.code_rows, self.set_button, self.resend_button):
            widget.show()
        self.set_button.setDefault(True)
        self.code.clear()
        self.new_password.clear()
        self.repeat_password.clear()
        self.set_busy(False)
        self.show_message("")
        self.code.setFocus()

    def failed(self, message: str, code: str) -> None:
        """The server refused: say why, and put the cursor where the fix goes."""
        self.set_busy(False)
        self.show_message(message, error=True)
        if code == "invalid_code":
            self.code.selectAll()
            self.code.setFocus()
        elif code == "invalid_fields" and self.code_rows.isVisible():
            self.new_password.setFocus()

    # -- checks before sending ------------------------------------------------------------------------------

    def _send(self) -> None:
        email = self.email.text().strip()
        if "@" not in email or email.startswith("@") or email.endswith("@"):
            self.show_message("Enter the email address of your account, like name@example.com.", error=True)
            self.email.setFocus()
            return
        self.set_busy(True)
        self.show_message("Sending the code…")
        self.codeRequested.emit(email)

    def _set(self) -> None:
        code = "".join(char for char in self.code.text() if not char.isspace() and char != "-")
        password = self.new_password.text()
        if not code:
            self.show_message("Enter the code from the email.", error=True)
            self.code.setFocus()
            return
        if len(password) < MINIMUM_PASSWORD:
            self.show_message(f"Choose a password of at least {MINIMUM_PASSWORD} characters.", error=True)
            self.new_password.setFocus()
            return
        if password != self.repeat_password.text():
            self.show_message("The two passwords differ; type the new password twice.", error=True)
            self.repeat_password.clear()
            self.repeat_password.setFocus()
            return
        self.set_busy(True)
        self.show_message("Setting your new password…")
        self.resetRequested.emit(self.sent_to, code, password)

    def _resend(self) -> None:
        self.set_busy(True)
        self.show_message("Sending a new code…")
        self.codeRequested.emit(self.sent_to)

    def set_busy(self, busy: bool) -> None:
        for widget in (self.email, self.send_button, self.code, self.new_password, self.repeat_password,
                       self.set_button, self.resend_button):
            widget.setEnabled(not busy)

    def show_message(self, text: str, *, error: bool = False) -> None:
        self.message.setText(text)
        self.message.setStyleSheet("color: palette(highlight);" if not error else "color: #b42318;")
