"""Help in the app: Documentation and Contact support as the app maker configures them, and Report a problem…,
which shows what it will send, sends it to the real backend off the GUI thread, and never loses the user's words
(desktop/qt/report_problem_dialog.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtWidgets import QLabel, QPushButton

from desktop.qt.main_window import MainWindow
from desktop.qt.report_problem_dialog import ReportProblemDialog
from tests.desktop.qt.conftest import PASSWORD, sign_up
from tests.helpers.api import Api
from tests.helpers.backend import BackendProcess

WORDS = "I paid for the Pro pack at 3 PM.\nMy balance did not change."


def opened(qtbot: Any, window: MainWindow) -> ReportProblemDialog:
    dialog = window.show_report_problem()
    qtbot.waitUntil(lambda: dialog.report is not None and dialog.send_button.isEnabled() is False, timeout=20_000)
    return dialog


def test_the_dialog_shows_the_privacy_note_first_then_exactly_what_is_sent(
    qtbot: Any, make_window: Any, stub_backend: BackendProcess,
) -> None:
    window: MainWindow = make_window(stub_backend.url)
    email = sign_up(qtbot, window)
    dialog = opened(qtbot, window)
    qtbot.waitUntil(lambda: dialog.focusWidget() is dialog.words)  # what the user types goes to their words
    first = dialog.layout().itemAt(0).widget()
    assert isinstance(first, QLabel) and first.objectName() == "privacyNote"
    assert "What will be sent" in first.text() and "passwords, sign-in tokens and keys never appear" in first.text()
    # First the report as Help → Diagnostics writes it (readable, money as the app writes it), then, a box ticked,
    # exactly what is sent: its JSON.
    readable = dialog.report_view.toPlainText()
    assert dialog.report_view.isReadOnly() and readable.startswith("Creditdesk diagnostics, generated ")
    assert "\nPurchases (newest first)\n" in readable and not dialog.exact.isChecked()
    assert "sent as JSON" in dialog.exact.toolTip() and "JSON" in dialog.exact.text()
    dialog.exact.setChecked(True)
    shown = dialog.report_view.toPlainText()
    assert json.loads(shown) == dialog.report
    token = window.controller.backend.api.token  # type: ignore[union-attr]
    for text in (readable, shown):
        assert token and token not in text and email not in text and email[0] + "***@example.com" in text
    dialog.exact.setChecked(False)
    assert dialog.report_view.toPlainText() == readable
    assert not dialog.send_button.isEnabled()  # nothing to send without the user's words
    dialog.words.setPlainText("   ")
    assert not dialog.send_button.isEnabled()
    dialog.words.setPlainText(WORDS)
    assert dialog.send_button.isEnabled()


def test_send_reaches_the_backend_and_support_sees_it(
    qtbot: Any, make_window: Any, stub_backend: BackendProcess, tmp_path: Path,
) -> None:
    window: MainWindow = make_window(stub_backend.url)
    email = sign_up(qtbot, window)
    dialog = opened(qtbot, window)
    dialog.words.setPlainText(WORDS)
    dialog.send_button.click()
    assert dialog.progress.isVisibleTo(dialog) and dialog.words.isReadOnly() and not dialog.send_button.isEnabled()
    qtbot.waitUntil(lambda: dialog.sent is not None, timeout=20_000)
    assert dialog.sent is not None
    assert dialog.sent.report_id in dialog.status.text() and dialog.status.text().startswith("Sent at ")
    assert not dialog.progress.isVisibleTo(dialog) and dialog.words.toPlainText() == ""
    assert dialog.cancel_button.text() == "Close"  # sent: nothing left to cancel
    dialog.words.setPlainText("One more thing.")
    assert dialog.cancel_button.text() == "Cancel"
    dialog.words.clear()
    listed = json.loads(stub_backend.admin("user", email, "--json").stdout)["supportReports"]
    assert [(r["id"], r["firstLine"]) for r in listed] == [(dialog.sent.report_id, "I paid for the Pro pack at 3 PM.")]
    (row,) = stub_backend.query("SELECT message, report FROM support_reports WHERE id = ?", dialog.sent.report_id)
    assert row["message"] == WORDS
    assert json.loads(row["report"])["account"]["email"] == dialog.report["account"]["email"]  # type: ignore[index]
    dialog.close()
    window.controller.workers.disk.wait_for_done(5_000)
    assert not window.controller.paths.support_draft_file.exists()  # sent: no draft is kept
    assert list(window.controller.paths.support_reports_dir.glob("*")) == []


def test_a_refused_send_saves_the_words_and_the_report_and_says_where(
    qtbot: Any, make_window: Any, stub_backend: BackendProcess,
) -> None:
    window: MainWindow = make_window(stub_backend.url)
    email = sign_up(qtbot, window)
    api = Api(stub_backend.url)
    api.token = api.post("/api/auth/login", json={"email": email, "password": PASSWORD}).json()["token"]
    for n in range(5):  # the hour's reports, from another sign-in of the same user
        assert api.post("/api/support/reports", json={
            "message": f"Problem {n}", "report": {"report_version": 2, "generated_at": "now"}}).status_code == 201
    dialog = opened(qtbot, window)
    dialog.words.setPlainText(WORDS)
    dialog.send_button.click()
    qtbot.waitUntil(lambda: dialog.saved_to is not None, timeout=20_000)
    assert dialog.saved_to is not None and dialog.saved_to.parent == window.controller.paths.support_reports_dir
    status = dialog.status.text()
    assert status.startswith("Not sent: Too many attempts") and str(dialog.saved_to) in status
    saved = json.loads(dialog.saved_to.read_text(encoding="utf-8"))
    assert saved["message"] == WORDS and saved["report"] == dialog.report and "Too many" in saved["notSentBecause"]
    assert dialog.words.toPlainText() == WORDS and dialog.sent is None  # still there to send later
    assert dialog.send_button.isEnabled()


@pytest.mark.subprocess
def test_with_the_server_down_the_words_are_saved_and_survive_closing_and_a_new_run(
    qtbot: Any, make_window: Any, backend_factory: Any, tmp_path: Path,
) -> None:
    backend = backend_factory()
    window: MainWindow = make_window(backend.url)
    sign_up(qtbot, window)
    dialog = opened(qtbot, window)
    dialog.words.setPlainText(WORDS)
    dialog.close()  # closed before sending: the words are a draft
    again = window.show_report_problem()
    assert again is dialog and again.words.toPlainText() == WORDS
    qtbot.waitUntil(lambda: dialog.report is not None, timeout=20_000)
    backend.stop()
    dialog.send_button.click()
    qtbot.waitUntil(lambda: dialog.saved_to is not None, timeout=30_000)
    assert "is not answering" in dialog.status.text() and str(dialog.saved_to) in dialog.status.text()
    assert json.loads(dialog.saved_to.read_text(encoding="utf-8"))["message"] == WORDS
    dialog.words.appendPlainText("And one more thing.")
    window.close()  # the app quits with the dialog open
    window.controller.shutdown()
    draft = WORDS + "\nAnd one more thing."
    assert window.controller.paths.support_draft_file.read_text(encoding="utf-8") == draft
    later: MainWindow = make_window(backend.url)  # the next run (the server still down), same data folder
    dialog = later.show_report_problem()
    qtbot.waitUntil(lambda: dialog.words.toPlainText() == draft, timeout=10_000)


def test_cancel_while_sending_stops_waiting_and_keeps_the_words(
    qtbot: Any, make_window: Any, stub_backend: BackendProcess,
) -> None:
    window: MainWindow = make_window(stub_backend.url)
    sign_up(qtbot, window)
    dialog = opened(qtbot, window)
    dialog.words.setPlainText(WORDS)
    dialog.send_button.click()
    dialog.cancel_button.click()
    assert dialog.sending is None and not dialog.progress.isVisibleTo(dialog) and dialog.isVisible()
    assert "Stopped waiting" in dialog.status.text() and dialog.words.toPlainText() == WORDS
    window.controller.workers.wait_for_done(10_000)
    qtbot.wait(50)
    assert dialog.sent is None  # the answer that came later is dropped
    dialog.cancel_button.click()
    assert not dialog.isVisible()


def test_documentation_and_contact_are_the_app_makers(
    qtbot: Any, make_window: Any, stub_backend: BackendProcess, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CREDITDESK_DOCS_URL", "https://docs.example.com/creditdesk")
    monkeypatch.setenv("CREDITDESK_SUPPORT_CONTACT", "help@example.com")
    opened_urls: list[str] = []
    window: MainWindow = make_window(stub_backend.url, lambda url, what: opened_urls.append(url) or True)
    assert window.show_documentation() == "https://docs.example.com/creditdesk"
    assert window.help_window is None  # the configured documentation, in the browser
    qtbot.waitUntil(lambda: opened_urls == ["https://docs.example.com/creditdesk"], timeout=10_000)
    box = window.show_support_contact()
    assert "help@example.com" in box.text()
    (open_button,) = [b for b in box.findChildren(QPushButton) if b.text() == "&Open"]
    open_button.click()
    qtbot.waitUntil(lambda: opened_urls[-1:] == ["mailto:help@example.com"], timeout=10_000)


def test_without_configuration_help_still_answers(
    qtbot: Any, make_window: Any, stub_backend: BackendProcess, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("CREDITDESK_DOCS_URL", raising=False)
    monkeypatch.delenv("CREDITDESK_SUPPORT_CONTACT", raising=False)
    opened_urls: list[str] = []
    window: MainWindow = make_window(stub_backend.url, lambda url, what: opened_urls.append(url) or True)
    assert window.show_documentation() is None  # the app's own user guide, in a window: nothing handed to the desktop
    guide = window.help_window
    assert guide is not None and guide.isVisible()
    qtbot.waitUntil(lambda: guide.loaded, timeout=10_000)
    text = guide.browser.toPlainText()
    for heading in ("Buying credits", "Receipts", "Billing details", "Using credits", "Alerts", "Spend controls",
                    "Forgot your password?", "Reporting a problem"):
        assert heading in text
    assert "# " not in text and "**" not in text  # Markdown shown as text, not as its marks
    assert "15 minutes" in text
    assert window.show_documentation() is None and window.help_window is guide  # one window, brought back
    box = window.show_support_contact()
    assert "has not given a support contact" in box.text()
    assert [b for b in box.findChildren(QPushButton) if b.text() == "&Open"] == []


def test_signed_out_the_report_is_saved_rather_than_lost(
    qtbot: Any, make_window: Any, stub_backend: BackendProcess,
) -> None:
    window: MainWindow = make_window(stub_backend.url)
    qtbot.waitUntil(lambda: window.pages.currentWidget() is window.sign_in, timeout=20_000)
    dialog = opened(qtbot, window)
    dialog.words.setPlainText(WORDS)
    dialog.send_button.click()
    qtbot.waitUntil(lambda: dialog.saved_to is not None, timeout=10_000)
    assert dialog.status.text().startswith("Not sent: Sign in first")
    assert json.loads(dialog.saved_to.read_text(encoding="utf-8"))["message"] == WORDS  # type: ignore[union-attr]
