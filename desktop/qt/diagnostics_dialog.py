"""Help → Diagnostics: the support report, with Copy and Save."""

from __future__ import annotations

from pathlib import Path
from typing import Any

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

from desktop.core.diagnostics import report_json
from desktop.qt.controller import AppController, build_diagnostics, describe


class DiagnosticsDialog(QDialog):
    def __init__(self, controller: AppController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.controller = controller
        self.report_text = ""
        self.setWindowTitle("Creditdesk diagnostics")
        self.resize(760, 560)
        intro = QLabel("This report helps support find what is wrong. It holds no passwords, tokens or keys; "
                       "your email is partly hidden.")
        intro.setWordWrap(True)
        self.text = QPlainTextEdit()
        self.text.setReadOnly(True)
        self.text.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.text.setAccessibleName("Diagnostics report")
        self.status = QLabel()
        self.refresh_button = QPushButton("&Refresh")
        self.copy_button = QPushButton("&Copy report")
        self.save_button = QPushButton("&Save report…")
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        for button in (self.refresh_button, self.copy_button, self.save_button):
            buttons.addButton(button, QDialogButtonBox.ButtonRole.ActionRole)
        buttons.rejected.connect(self.reject)
        self.refresh_button.clicked.connect(self.refresh)
        self.copy_button.clicked.connect(self.copy)
        self.save_button.clicked.connect(self.save)
        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addWidget(self.text, stretch=1)
        layout.addWidget(self.status)
        layout.addWidget(buttons)
        self.refresh()

    def refresh(self) -> None:
        self._set_ready(False)
        self.status.setText("Collecting…")
        self.controller.run(build_diagnostics(self.controller), self._show, self._failed)

    def _show(self, report: dict[str, Any]) -> None:
        self.report_text = report_json(report)
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
        QGuiApplication.clipboard().setText(self.report_text)
        self.status.setText("Copied to the clipboard.")

    def save(self, path: str | None = None) -> bool:
        if path is None:
            path, _ = QFileDialog.getSaveFileName(self, "Save diagnostics report",
                                                  str(Path.home() / "creditdesk-diagnostics.json"),
                                                  "JSON files (*.json)")
        if not path:
            return False
        try:
            Path(path).write_text(self.report_text + "\n", encoding="utf-8")
        except OSError as exc:
            self.status.setText(f"Could not save the report: {exc.strerror}.")
            return False
        self.status.setText(f"Saved to {path}.")
        return True
