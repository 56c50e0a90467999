"""The sign-in / create-account page, with its forgot-password form (desktop/qt/password_reset.py)."""

from __future__ import annotations

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

from desktop.qt.password_reset import PasswordResetForm


class SignInPage(QWidget):
    submitted = Signal(str, str, bool)  # email, password, create account

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        title = QLabel("Sign in to Creditdesk")
        title.setObjectName("pageTitle")
        font = title.font()
        font.setPointSizeF(font.pointSizeF() * 1.6)
        font.setBold(True)
        title.setFont(font)
        subtitle = QLabel("Use your Creditdesk account, or create one with any email and a password of "
                          "8 characters or more.")
        subtitle.setWordWrap(True)

        self.email = QLineEdit()
        self.email.setPlaceholderText("you@example.com")
        self.email.setAccessibleName("Email")
        self.email.setInputMethodHints(Qt.InputMethodHint.ImhEmailCharactersOnly)
        self.password = QLineEdit()
        self.password.setEchoMode(QLineEdit.EchoMode.Password)
        self.password.setAccessibleName("Password")
        form = QFormLayout()
        form.addRow("&Email:", self.email)
        form.addRow("&Password:", self.password)

        self.sign_in_button = QPushButton("&Sign in")
        self.sign_in_button.setDefault(True)
        self.sign_in_button.setAccessibleName("Sign in")
        self.create_button = QPushButton("Create &account")  # Alt+C is the Credits menu
        self.create_button.setAccessibleName("Create account")
        buttons = QHBoxLayout()
        buttons.addStretch()
        buttons.addWidget(self.create_button)
        buttons.addWidget(self.sign_in_button)
        self.forgot_button = QPushButton("Forgot pass&word?")
        self.forgot_button.setFlat(True)
        self.forgot_button.setAccessibleName("Forgot password")
        self.forgot_button.setCursor(Qt.CursorShape.PointingHandCursor)
        forgot_row = QHBoxLayout()
        forgot_row.addStretch()
        forgot_row.addWidget(self.forgot_button)

        self.message = QLabel()
        self.message.setObjectName("signInMessage")
        self.message.setWordWrap(True)
        self.message.setAccessibleName("Sign-in message")
        self.message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        # Signing in, or (Forgot password?) choosing a new password: one shown at a time.
        self.sign_in_form = QWidget()
        sign_in_layout = QVBoxLayout(self.sign_in_form)
        sign_in_layout.setContentsMargins(0, 0, 0, 0)
        sign_in_layout.addWidget(subtitle)
        sign_in_layout.addSpacing(12)
        sign_in_layout.addLayout(form)
        sign_in_layout.addLayout(buttons)
        sign_in_layout.addLayout(forgot_row)
        sign_in_layout.addWidget(self.message)
        self.reset_form = PasswordResetForm()
        self.reset_form.hide()

        box = QWidget()
        box.setMaximumWidth(420)
        inner = QVBoxLayout(box)
        inner.addWidget(title)
        inner.addWidget(self.sign_in_form)
        inner.addWidget(self.reset_form)
        outer = QVBoxLayout(self)
        outer.addStretch()
        row = QHBoxLayout()
        row.addStretch()
        row.addWidget(box)
        row.addStretch()
        outer.addLayout(row)
        outer.addStretch(2)

        self.sign_in_button.clicked.connect(lambda: self._submit(create=False))
        self.create_button.clicked.connect(lambda: self._submit(create=True))
        self.password.returnPressed.connect(lambda: self._submit(create=False))
        self.email.returnPressed.connect(self.password.setFocus)
        self.forgot_button.clicked.connect(self.show_reset)
        self.reset_form.cancelled.connect(self.show_sign_in)

    def show_reset(self) -> None:
        """Forgot password: the reset form, with the email typed so far."""
        self.sign_in_form.hide()
        self.reset_form.show()
        self.reset_form.ask_for_code(self.email.text().strip())

    def show_sign_in(self) -> None:
        self.reset_form.hide()
        self.sign_in_form.show()
        if self.reset_form.sent_to and not self.email.text().strip():
            self.email.setText(self.reset_form.sent_to)
        (self.password if self.email.text() else self.email).setFocus()

    def _submit(self, *, create: bool) -> None:
        email, password = self.email.text().strip(), self.password.text()
        if not email:
            self.show_message("Enter your email address.", error=True)
            self.email.setFocus()
            return
        if not _looks_like_an_email(email):
            self.show_message(f"“{email[:60]}” is not an email address: it needs a name, an @ and a domain, "
                              "like name@example.com.", error=True)
            self.email.setFocus()
            return
        if create and len(password) < 8:
            self.show_message("Choose a password of at least 8 characters.", error=True)
            self.password.setFocus()
            return
        if not password:
            self.show_message("Enter your password.", error=True)
            self.password.setFocus()
            return
        self.set_busy(True)
        self.show_message("Creating your account…" if create else "Signing in…")
        self.submitted.emit(email, password, create)

    def set_busy(self, busy: bool) -> None:
        for widget in (self.sign_in_button, self.create_button, self.email, self.password, self.forgot_button):
            widget.setEnabled(not busy)

    def show_message(self, text: str, *, error: bool = False) -> None:
        self.message.setText(text)
        self.message.setStyleSheet("color: palette(highlight);" if not error else "color: #b42318;")

    def failed(self, message: str, wrong_password: bool) -> None:
        """Signing in did not work: say why, and keep what was typed unless the password was wrong."""
        self.set_busy(False)
        if wrong_password:
            # Enter signs in: a new user who pressed it has no account yet (the server does not say which).
            message = (f"{message} Forgot your password? Choose Forgot password? to set a new one. New here? Choose "
                       "Create account to make one with this email.")
        self.show_message(message, error=True)
        if wrong_password:
            self.password.clear()
            self.password.setFocus()

    def reset(self, message: str = "", email: str = "") -> None:
        if self.reset_form.isVisibleTo(self):
            # Choosing a new password meanwhile (the backend came back, say): stay there.
            self.reset_form.set_busy(False)
            if message:
                self.reset_form.show_message(message, error=True)
            return
        self.set_busy(False)
        self.password.clear()
        if email:
            self.email.setText(email)
        self.show_message(message, error=bool(message))
        (self.password if self.email.text() else self.email).setFocus()


def _looks_like_an_email(text: str) -> bool:
    """A name, one @ and a domain with a dot, no spaces: what the backend takes (it checks it fully)."""
    name, at, domain = text.rpartition("@")
    return bool(at and name and "." in domain.strip(".") and not any(char.isspace() for char in text))
