"""Help → Report a problem…: the user reads what will be sent, writes what went wrong, and sends it to support
(``POST /api/support/reports``), or saves it.

Privacy first: the note at the top says what the report holds and what is kept out of it; below it, the report,
read-only: as Help → Diagnostics writes it, or (a box to tick) exactly as Send sends it, its JSON. The report is
built on a worker (as Help → Diagnostics builds it), the words are sent on a worker with a busy bar and can be
cancelled, and every file is written on the disk worker: the GUI thread never waits.

The user's words are never lost: they stay in the box when the dialog closes (and in a draft file in the app's
data folder, for the next run) until they are sent; a send that fails (the server down, too many reports, a
server error) saves the words and the report in the data folder by itself and says where.
"""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Any

from PySide6.QtCore import QSize, Qt, QTimer
from PySide6.QtGui import QFontDatabase, QHideEvent, QShowEvent
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QLabel,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from desktop.core.models import ApiClientError, SentSupportReport
from desktop.qt import formatting, screen_fit
from desktop.qt.after_paint import AfterFirstPaint
from desktop.qt.controller import AppController, build_diagnostics
from desktop.qt.save_file import ask_where_to_save
from desktop.qt.tasks import Task
from desktop.qt.workers import describe

# What the backend takes (backend/support_reports.py).
MAX_MESSAGE_CHARS = 5_000

PRIVACY_NOTE = (
    "<b>What will be sent.</b> Your words below, and this diagnostics report: the app's, Python's, Qt's and "
    "your system's versions; the server's address and whether it answers; your balance, recent ledger and "
    "purchases with their ids; the app's last errors, its folders and the end of its log. "
    "<b>What is kept out:</b> passwords, sign-in tokens and keys never appear in it, and emails are partly hidden "
    "(j***@example.com), yours too; the server removes any it finds again. Nothing is sent until you press Send."
)


class ReportProblemDialog(QDialog):
    def __init__(self, controller: AppController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.controller = controller
        self.report: dict[str, Any] | None = None
        self.sending: Task | None = None
        self.sent: SentSupportReport | None = None
        self.saved_to: Path | None = None
        self.file_dialog: QFileDialog | None = None
        self.setWindowTitle("Report a problem")
        privacy = QLabel(PRIVACY_NOTE)
        privacy.setObjectName("privacyNote")
        privacy.setWordWrap(True)
        self.report_view = QPlainTextEdit()
        self.report_view.setReadOnly(True)
        self.report_view.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.report_view.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.report_view.setAccessibleName("The diagnostics report that will be sent")
        self.report_view.setPlaceholderText("Collecting the report…")
        self.report_texts: tuple[str, str] = ("", "")  # readable, and the JSON that is sent
        self.exact = QCheckBox("Show e&xactly what is sent (JSON)")
        self.exact.setToolTip("The report is sent as JSON: the same facts as the readable report, nothing more.")
        self.exact.toggled.connect(self._show_view)
        words_label = QLabel("&What went wrong? What did you expect?")
        self.words = QPlainTextEdit()
        self.words.setAccessibleName("Your words")
        self.words.setPlaceholderText("For example: I paid for the Pro pack at 3 PM and my balance did not change.")
        self.words.setTabChangesFocus(True)
        words_label.setBuddy(self.words)
        self.progress = QProgressBar()
        self.progress.setRange(0, 0)  # busy: a send has no steps to count
        self.progress.setTextVisible(False)
        self.progress.setAccessibleName("Sending")
        self.progress.hide()
        self.status = QLabel()
        self.status.setObjectName("reportStatus")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)  # the path, the id
        self.send_button = QPushButton("&Send")
        self.send_button.setDefault(True)
        self.save_button = QPushButton("Sa&ve…")
        self.save_button.setToolTip("Saves your words and the report in a file, to send to support another way.")
        self.cancel_button = QPushButton("Cancel")  # Esc; while sending, stops waiting for the server
        buttons = QDialogButtonBox()
        buttons.addButton(self.send_button, QDialogButtonBox.ButtonRole.AcceptRole)
        buttons.addButton(self.save_button, QDialogButtonBox.ButtonRole.ActionRole)
        buttons.addButton(self.cancel_button, QDialogButtonBox.ButtonRole.RejectRole)
        self.send_button.clicked.connect(self.send)
        self.save_button.clicked.connect(self.choose_file)
        self.cancel_button.clicked.connect(self.cancel)
        self.words.textChanged.connect(self._update_buttons)
        layout = QVBoxLayout(self)
        layout.addWidget(privacy)
        layout.addWidget(self.report_view, stretch=3)
        layout.addWidget(self.exact)
        layout.addWidget(words_label)
        layout.addWidget(self.words, stretch=1)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addWidget(buttons)
        screen_fit.keep_on_screen(self, QSize(760, 620))  # the report and the words scroll in their boxes
        self._update_buttons()
        self.status.setText("Collecting the report…")
        after_paint = AfterFirstPaint(self)
        after_paint.add(self._load_draft)
        after_paint.add(self._collect)

    # -- the report and the draft --------------------------------------------------------------------------

    def refresh(self) -> None:
        """Collect the report again (the dialog opened anew): what is sent is the state of now."""
        if self.sending is not None:
            return
        self.report = None
        self.report_texts = ("", "")
        self.report_view.clear()
        self._update_buttons()
        QTimer.singleShot(0, self, self._collect)

    def _collect(self) -> None:
        build = build_diagnostics(self.controller)

        def built() -> tuple[dict[str, Any], str, str]:  # its texts too, off the GUI thread
            from desktop.core.diagnostics import render_text, report_json

            report = build()
            return report, render_text(report, formatting.money), report_json(report)

        self.controller.workers.run(built, self._show_report, self._report_failed)

    def _show_report(self, built: tuple[dict[str, Any], str, str]) -> None:
        self.report, readable, sent = built
        self.report_texts = (readable, sent)
        self._show_view()
        if self.sending is None and self.sent is None and self.saved_to is None:
            self.status.setText("This is everything that will be sent. Say what went wrong, then Send.")
        self._update_buttons()

    def _show_view(self) -> None:
        """The readable report, or the JSON exactly as Send sends it."""
        readable, sent = self.report_texts
        self.report_view.setPlainText(sent if self.exact.isChecked() else readable)

    def _report_failed(self, error: BaseException) -> None:
        self.status.setText(f"The report could not be built: {describe(error)} Your words are kept.")

    def _load_draft(self) -> None:
        from desktop.core.problem_reports import load_draft

        path = self.controller.paths.support_draft_file

        def loaded(text: Any) -> None:
            if text and not self.words.toPlainText():
                self.words.setPlainText(str(text))

        self.controller.workers.disk.run(lambda: load_draft(path), loaded)

    def _keep_draft(self) -> None:
        from desktop.core.problem_reports import save_draft

        path, text = self.controller.paths.support_draft_file, self.words.toPlainText()
        self.controller.workers.write(lambda: save_draft(path, text))

    # -- sending -------------------------------------------------------------------------------------------

    @property
    def message(self) -> str:
        return self.words.toPlainText().strip()

    def _update_buttons(self) -> None:
        ready = self.report is not None and self.sending is None
        self.send_button.setEnabled(ready and bool(self.message) and len(self.message) <= MAX_MESSAGE_CHARS)
        self.save_button.setEnabled(ready)
        self.words.setReadOnly(self.sending is not None)
        # Sent, and nothing new typed: there is nothing left to cancel.
        self.cancel_button.setText("Close" if self.sent is not None and not self.message else "Cancel")

    def send(self) -> None:
        if self.report is None or self.sending is not None or not self.message:
            return
        if len(self.message) > MAX_MESSAGE_CHARS:
            self.status.setText(f"Please keep it under {MAX_MESSAGE_CHARS:,} characters.")
            return
        message, report = self.message, self.report
        api = self.controller.backend.api
        if api is None or not self.controller.session.signed_in:
            self._not_sent(message, report, "Sign in first: reports are sent from your account.")
            return
        self.sent = self.saved_to = None
        self.status.setText("Sending…")
        self.progress.show()
        self.sending = self.controller.workers.run(
            lambda: api.send_support_report(message, report), self._sent,
            lambda error: self._not_sent(message, report, describe(error), error))
        self._update_buttons()

    def cancel(self) -> None:
        """While sending: stop waiting (the words stay); else close the dialog, keeping the words."""
        if self.sending is None:
            self.reject()
            return
        self.sending.cancel()
        self._done_sending()
        self.status.setText("Stopped waiting for the server; it may still have received the report. Your words "
                            "are kept: Send again, or Save… them.")

    def _done_sending(self) -> None:
        self.sending = None
        self.progress.hide()
        self._update_buttons()

    def _sent(self, sent: SentSupportReport) -> None:
        self._done_sending()
        self.sent = sent
        self.words.clear()
        self._update_buttons()
        self._keep_draft()  # (an empty draft: removed)
        self.status.setText(f"Sent at {formatting.timestamp(sent.received_at)}. Support can find it as "
                            f"{sent.report_id}; quote that if you write to them.")

    def _not_sent(self, message: str, report: dict[str, Any], reason: str,
                  error: BaseException | None = None) -> None:
        """Keep the words and the report in the data folder, by themselves, and say where."""
        from desktop.core.problem_reports import save_unsent

        self._done_sending()
        if error is not None and not isinstance(error, ApiClientError):
            reason = "something went wrong in the app"
        folder = self.controller.paths.support_reports_dir
        self.status.setText(f"Not sent: {reason} Saving your words and the report…")

        def saved(path: Any) -> None:
            self.saved_to = Path(path)
            self.status.setText(f"Not sent: {reason} Your words and the report are saved in {path}: send that file "
                                "to support, or press Send to try again later.")

        def not_saved(failure: BaseException) -> None:
            why = failure.strerror if isinstance(failure, OSError) and failure.strerror else str(failure)
            self.status.setText(f"Not sent: {reason} They could not be saved in {folder} either ({why}); your "
                                "words are still here: Save… them elsewhere.")

        self.controller.workers.disk.run(lambda: save_unsent(folder, message, report, reason), saved, not_saved)

    # -- saving by hand ------------------------------------------------------------------------------------

    def choose_file(self) -> QFileDialog:
        """Ask where to save (window-modal; the answer arrives through ``fileSelected``)."""
        self.file_dialog = ask_where_to_save(self, "Save the report", "creditdesk-report", "json",
                                             "JSON files (*.json)", self.save)
        return self.file_dialog

    def save(self, path: str) -> None:
        """Write the words and the report to ``path`` on the disk worker."""
        from desktop.core._files import atomic_write_text
        from desktop.core.problem_reports import report_file_text

        if not path or self.report is None:
            return
        target, content = Path(path), report_file_text(self.words.toPlainText(), self.report)

        def write() -> None:
            if not target.parent.is_dir():
                raise FileNotFoundError(errno.ENOENT, "No such folder", str(target.parent))
            atomic_write_text(target, content)

        def done(_: Any) -> None:
            self.status.setText(f"Saved to {target}.")

        def failed(error: BaseException) -> None:
            reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
            self.status.setText(f"Could not save to {target}: {reason}.")

        self.controller.workers.disk.run(write, done, failed)

    # -- closing -------------------------------------------------------------------------------------------

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        self.words.setFocus()  # typing goes to the words (the read-only report would only scroll with the keys)

    def hideEvent(self, event: QHideEvent) -> None:
        self._keep_draft()  # closed, however: the words wait for the next time
        super().hideEvent(event)

