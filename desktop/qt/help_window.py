"""Help → Documentation when the app's maker has configured none: a short user guide inside the app.

The guide is ``resources/help.md``, shipped with the app, read on the disk worker (the GUI thread never waits on
the disk) and shown as Markdown. Its links open in the browser through the window's opener.
"""

from __future__ import annotations

from PySide6.QtCore import QSize, QUrl, Signal
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QTextBrowser, QVBoxLayout, QWidget

import resources
from desktop.qt import screen_fit
from desktop.qt.controller import AppController

GUIDE = "help.md"
PREFERRED_SIZE = QSize(640, 600)


def read_guide() -> str:
    return resources.path(GUIDE).read_text(encoding="utf-8")


class HelpWindow(QDialog):
    linkRequested = Signal(str)  # an address in the guide to open in the browser

    def __init__(self, app: AppController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Creditdesk help")
        self.setObjectName("helpWindow")
        self.browser = QTextBrowser()
        self.browser.setObjectName("helpText")
        self.browser.setAccessibleName("User guide")
        self.browser.setOpenLinks(False)  # the opener runs on a worker; a link within the guide scrolls to it
        self.browser.anchorClicked.connect(self._link)
        self.browser.setPlainText("Loading…")
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.close)
        layout = QVBoxLayout(self)
        layout.addWidget(self.browser, 1)
        layout.addWidget(buttons)
        screen_fit.keep_on_screen(self, PREFERRED_SIZE)
        self.loaded = False
        app.workers.disk.run(read_guide, self._loaded, self._failed)

    def _loaded(self, text: object) -> None:
        self.browser.setMarkdown(str(text))
        self.loaded = True

    def _failed(self, error: BaseException) -> None:
        self.browser.setPlainText(f"The user guide could not be read: {error}")

    def _link(self, url: QUrl) -> None:
        if url.scheme() in ("http", "https", "mailto"):
            self.linkRequested.emit(url.toString())
        elif url.hasFragment():
            self.browser.scrollToAnchor(url.fragment())
