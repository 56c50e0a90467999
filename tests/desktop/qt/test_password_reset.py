"""Forgot password in the app, against the real backend with its mail in the outbox folder: the email, the code
from the mail with a new password twice, and signed in, every other sign-in ended; a wrong code and a limit
reached say so. No Alt+letter clashes at either step."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from desktop.qt.main_window import MainWindow
from tests.conftest import SHARED_ENV
from tests.desktop.qt.test_windows import clashes
from tests.helpers.api import Api
from tests.helpers.backend import BackendProcess
from tests.helpers.outbox import latest_code, messages

NEW_PASSWORD = "a new password, longer"


def open_reset(qtbot: Any, window: MainWindow, email: str) -> None:
    qtbot.waitUntil(lambda: window.pages.currentWidget() is window.sign_in, timeout=20_000)
    page = window.sign_in
    page.email.setText(email)
    page.forgot_button.click()
    assert page.reset_form.isVisible() and not page.sign_in_form.isVisible()
    assert page.reset_form.email.text() == email


def test_a_forgotten_password_is_reset_with_the_mailed_code(qtbot: Any, make_window: Any,
                                                            stub_backend: BackendProcess) -> None:
    api = Api(stub_backend.url).register()
    email = api.user["email"]
    outbox = stub_backend.db_path.parent / "outbox"
    window: MainWindow = make_window(stub_backend.url)
    open_reset(qtbot, window, email)
    form = window.sign_in.reset_form
    assert clashes(window) == {}
    form.send_button.click()
    qtbot.waitUntil(lambda: form.code.isVisible(), timeout=10_000)
    assert form.explanation.text().startswith(f"If an account exists for {email}, we sent a code to it.")
    assert "sends no email" not in form.explanation.text()  # a backend given by URL: its mail is its own
    assert "only the newest code works, once, for 15 minutes." in form.explanation.text()  # as the mail says
    assert clashes(window) == {}
    code = latest_code(outbox, email)

    # Typed twice, differently: said at once, nothing sent.
    form.code.setText(code)
    form.new_password.setText(NEW_PASSWORD)
    form.repeat_password.setText(NEW_PASSWORD + "!")
    form.set_button.click()
    assert form.message.text() == "The two passwords differ; type the new password twice."
    # A wrong code: the server's answer, and the code selected to type again.
    form.code.setText(f"{(int(code) + 1) % 10 ** 8:08d}")
    form.repeat_password.setText(NEW_PASSWORD)
    form.set_button.click()
    qtbot.waitUntil(lambda: "wrong, expired or already used" in form.message.text(), timeout=10_000)
    assert form.set_button.isEnabled() and form.code.hasSelectedText()

    form.code.setText(f"{code[:4]} {code[4:]}")
    form.set_button.click()
    qtbot.waitUntil(lambda: window.pages.currentWidget() is window.account, timeout=10_000)
    assert window.controller.session.email == email
    notice = "Your password was changed; other sign-ins were ended."
    assert window.account.notice.isVisible() and window.account.notice.text() == notice
    assert window.status_bar.currentMessage() == notice
    assert api.get("/api/credits/balance").status_code == 401  # the earlier sign-in has ended
    login = Api(stub_backend.url).post("/api/auth/login", json={"email": email, "password": NEW_PASSWORD})
    assert login.status_code == 200

    # Signed out, the page is the sign-in form again, not the reset's.
    window.controller.session.sign_out()
    qtbot.waitUntil(lambda: window.pages.currentWidget() is window.sign_in, timeout=10_000)
    assert window.sign_in.sign_in_form.isVisible() and not form.isVisible()


@pytest.mark.subprocess
def test_a_limit_reached_says_when_to_try_again(qtbot: Any, make_window: Any, tmp_path: Path) -> None:
    env = {**SHARED_ENV, "CREDITDESK_RESET_LIMIT_PER_EMAIL": "1/hour"}
    (tmp_path / "backend").mkdir()
    with BackendProcess(tmp_path / "backend", env) as backend:
        email = Api(backend.url).register().user["email"]
        window: MainWindow = make_window(backend.url)
        open_reset(qtbot, window, email)
        form = window.sign_in.reset_form
        form.send_button.click()
        qtbot.waitUntil(lambda: form.resend_button.isVisible(), timeout=10_000)
        form.resend_button.click()
        qtbot.waitUntil(lambda: form.message.text().startswith("Too many attempts. Please try again in"),
                        timeout=10_000)
        assert form.resend_button.isEnabled()
        # The mail goes out after the answer (so its timing tells nothing): wait for it, then only the one.
        outbox = backend.db_path.parent / "outbox"
        qtbot.waitUntil(lambda: len(messages(outbox, email)) >= 1, timeout=10_000)
        assert len(messages(outbox, email)) == 1
        form.back_button.click()
        assert window.sign_in.sign_in_form.isVisible() and window.sign_in.email.text() == email


def test_with_the_app_s_own_server_the_form_says_where_the_mail_is(qtbot: Any, tmp_path: Path) -> None:
    from desktop.qt.password_reset import PasswordResetForm

    form = PasswordResetForm()
    qtbot.addWidget(form)
    form.code_sent("ada@example.com", tmp_path / "outbox")
    assert form.explanation.text().endswith(
        f"This app's own server sends no email: the message is a file in {tmp_path / 'outbox'}, which a mail "
        "program opens.")
