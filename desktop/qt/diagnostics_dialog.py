"""Help → Diagnostics: the support report, readable, with Copy (JSON, for support's tools) and Save.

A window of its own (not modal): the app works on while it is open. The report and its readable text are built
on a worker, and "Save report…" writes on the disk worker: the readable report, or the JSON where the file name
ends in .json.

Opening it keeps the GUI thread's turns short (bench/gui_stall.py): the dialog is built and shown in one
event-loop turn, paints in the next, and only then loads the report's module (``desktop.core.diagnostics``) and
starts collecting; the main window has loaded the fixed-width font after its own first paint
(``MainWindow.warm_fixed_font``), which Qt would otherwise load in C++ at ``setFont``.
"""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Any

from PySide6.QtCore import QSize, QTimer
from PySide6.QtGui import QFontDatabase, QGuiApplication
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from desktop.core._files import atomic_write_text
from desktop.qt import formatting, screen_fit
from desktop.qt.after_paint import AfterFirstPaint
from desktop.qt.controller import AppController, build_diagnostics
from desktop.qt.save_file import ask_where_to_save
from desktop.qt.workers import describe

TEXT_FILTER = "Text files (*.txt)"
JSON_FILTER = "JSON files (*.json)"


class DiagnosticsDialog(QDialog):
    def __init__(self, controller: AppController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.controller = controller
        self.report: dict[str, Any] | None = None
        self.report_text = ""
        self.file_dialog: QFileDialog | None = None
        self.setWindowTitle("Creditdesk diagnostics")
        screen_fit.keep_on_screen(self, QSize(820, 600))
        intro = QLabel("This report helps support find what is wrong, such as a payment whose credits do not "
                       "show. It holds no passwords, tokens or keys; your email is partly hidden.")
        intro.setWordWrap(True)
        self.text = QPlainTextEdit()
        self.text.setReadOnly(True)
        self.text.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.text.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.text.setAccessibleName("Diagnostics report")
        self.status = QLabel()
        self.status.setObjectName("diagnosticsStatus")
        self.status.setWordWrap(True)
        self.refresh_button = QPushButton("&Refresh")
        self.copy_button = QPushButton("&Copy report")
        self.copy_button.setToolTip("Copies the report as JSON, for support's tools.")
        self.save_button = QPushButton("&Save report…")
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.button(QDialogButtonBox.StandardButton.Close).setText("Close")  # the same on every theme
        for button in (self.refresh_button, self.copy_button, self.save_button):
            buttons.addButton(button, QDialogButtonBox.ButtonRole.ActionRole)
        buttons.rejected.connect(self.reject)
        self.refresh_button.clicked.connect(self.refresh)
        self.copy_button.clicked.connect(self.copy)
        self.save_button.clicked.connect(self.choose_file)
        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addWidget(self.text, stretch=1)
        layout.addWidget(self.status)
        layout.addWidget(buttons)
        self._set_ready(False)
        self.status.setText("Collecting…")
        AfterFirstPaint(self).add(self._collect)

    def refresh(self) -> None:
        self._set_ready(False)
        self.status.setText("Collecting…")
        QTimer.singleShot(0, self, self._collect)  # in a turn of its own

    def _collect(self) -> None:
        build = build_diagnostics(self.controller)  # (which loads desktop.core.diagnostics)

        def built() -> tuple[dict[str, Any], str]:  # the readable text too, off the GUI thread
            from desktop.core.diagnostics import render_text

            report = build()
            return report, render_text(report, formatting.money)  # money as the app writes it

        self.controller.workers.run(built, self._show, self._failed)

    def _show(self, built: tuple[dict[str, Any], str]) -> None:
        self.report, self.report_text = built
        self.text.setPlainText(self.report_text)
        self.status.setText("Ready.")
        self._set_ready(True)

    def _failed(self, error: BaseException) -> None:
        self.status.setText(f"The report could not be built: {describe(error)}")
        self.refresh_button.setEnabled(True)

    def _set_ready(self, ready: bool) -> None:
        for button in (self.refresh_button, self.copy_button, self.save_button):
            button.setEnabled(ready)

    def copy(self) -> None:
        from desktop.core.diagnostics import report_json

        if self.report is not None:
            QGuiApplication.clipboard().setText(report_json(self.report))
            self.status.setText("Copied to the clipboard (as JSON).")

    def choose_file(self) -> QFileDialog:
        """Ask where to save (a window-modal question; the answer arrives through ``fileSelected``)."""
        self.file_dialog = ask_where_to_save(self, "Save diagnostics report", "creditdesk-diagnostics", "txt",
                                             f"{TEXT_FILTER};;{JSON_FILTER}", self.save)
        return self.file_dialog

    def save(self, path: str) -> None:
        """Write the report to ``path`` on the disk worker; the status line says how it went."""
        from desktop.core.diagnostics import report_json

        if not path or self.report is None:
            return
        target = Path(path)
        content = report_json(self.report) + "\n" if target.suffix.lower() == ".json" else self.report_text
        self.status.setText(f"Saving to {target}…")

        def done(_: Any) -> None:
            self.status.setText(f"Saved to {target}.")

        def failed(error: BaseException) -> None:
            reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
            self.status.setText(f"Could not save the report to {target}: {reason}.")

        def write() -> None:
            if not target.parent.is_dir():  # a folder that is not there is an error, not something to create
                raise FileNotFoundError(errno.ENOENT, "No such folder", str(target.parent))
            atomic_write_text(target, content)  # never a half-written report where the user looks

        self.controller.workers.disk.run(write, done, failed)
