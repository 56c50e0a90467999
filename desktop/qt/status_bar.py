"""The main window's status bar, readable at any width: nothing in it is cut in the middle of a word.

Qt draws a status message up to the first permanent widget and cuts it there, mid-letter; and a permanent label
keeps its whole width. Here a message takes the bar's width (the widgets named ``quiet_while_message`` step aside
while it shows) and ends at a word with "…" where even that is too narrow; :class:`ElidedLabel` does the same
for a permanent label (the backend's status), its whole text in its tooltip.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QRect, QSize
from PySide6.QtWidgets import QLabel, QStatusBar, QWidget

if TYPE_CHECKING:  # the rest is loaded when a text is cut or a message painted, never for the window's first paint
    from PySide6.QtGui import QFontMetrics, QPaintEvent  # (Python's QStyle alone takes 13 ms to make: its enums)

ELLIPSIS = "…"


def elide_at_word(text: str, metrics: QFontMetrics, width: int) -> str:
    """``text`` if it fits in ``width`` pixels; else its first words that fit, then "…" (a single word too long
    for the width is cut where it must be, still marked with "…")."""
    if metrics.horizontalAdvance(text) <= width:
        return text
    words = text.split(" ")
    for count in range(len(words) - 1, 0, -1):
        shown = " ".join(words[:count]).rstrip(" ·,;:(-\u2013\u2014") + ELLIPSIS
        if metrics.horizontalAdvance(shown) <= width:
            return shown
    from PySide6.QtCore import Qt  # when first needed: Qt's namespace takes 28 ms to make (desktop/qt/tasks.py)

    return metrics.elidedText(text, Qt.TextElideMode.ElideRight, width)


class ElidedLabel(QLabel):
    """A one-line label that may be narrower than its text: it then shows its first words and "…", and its whole
    text as its tooltip. ``text()`` is always the whole text."""

    def minimumSizeHint(self) -> QSize:
        return QSize(self.fontMetrics().horizontalAdvance("Backend…"), super().minimumSizeHint().height())

    def shown_text(self) -> str:
        return elide_at_word(self.text(), self.fontMetrics(), self.contentsRect().width())

    def setText(self, text: str) -> None:
        super().setText(text)
        self.setToolTip(text)

    def paintEvent(self, event: QPaintEvent) -> None:
        shown = self.shown_text()
        if shown == self.text():
            super().paintEvent(event)
            return
        from PySide6.QtGui import QPainter, QPalette

        painter = QPainter(self)
        self.style().drawItemText(painter, self.contentsRect(), int(self.alignment()), self.palette(),
                                  self.isEnabled(), shown, QPalette.ColorRole.WindowText)


class StatusBar(QStatusBar):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.quiet_while_message: list[QWidget] = []
        self.messageChanged.connect(self._message_changed)

    def _message_changed(self, message: str) -> None:
        for widget in self.quiet_while_message:
            widget.setVisible(not message)
        self.setToolTip(message)
        self.update()

    def message_rect(self) -> QRect:
        """Where a message is written: from the left to the first widget shown on the right."""
        from PySide6.QtWidgets import QSizeGrip

        right = self.width() - 12
        for child in self.children():
            if isinstance(child, QWidget) and child.isVisible() and not isinstance(child, QSizeGrip):
                right = min(right, child.x() - 2)
        return QRect(6, 0, max(0, right - 6), self.height())

    def shown_message(self) -> str:
        """The message as it is written now: whole, or its first words and "…"."""
        return elide_at_word(self.currentMessage(), self.fontMetrics(), self.message_rect().width())

    def paintEvent(self, event: QPaintEvent) -> None:
        if not self.currentMessage():
            super().paintEvent(event)
            return
        # As QStatusBar paints, but the message ends at a word instead of where the first permanent widget begins.
        from PySide6.QtCore import Qt
        from PySide6.QtGui import QPainter
        from PySide6.QtWidgets import QStyle, QStyleOption

        painter = QPainter(self)
        option = QStyleOption()
        option.initFrom(self)
        self.style().drawPrimitive(QStyle.PrimitiveElement.PE_PanelStatusBar, option, painter, self)
        painter.setPen(self.palette().windowText().color())
        painter.drawText(self.message_rect(), int(Qt.AlignmentFlag.AlignLeading | Qt.AlignmentFlag.AlignVCenter
                                                  | Qt.TextFlag.TextSingleLine), self.shown_message())
