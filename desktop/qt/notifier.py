"""Desktop notifications: in the system tray where the platform has one, in the window otherwise.

Where there is no system tray (some Linux desktops, a headless session) the same notice appears as a small
panel in the bottom right corner of the main window, just above the status bar, for a few seconds (longer for a
notice that offers something to do, such as a top-up's Undo; never while the pointer is over it); nothing else
changes. Notices that come while one shows wait their turn (one that offers something to do first), and the one
showing then gives way after a moment: two alerts at once are both seen. There it covers no balance (at the top
of the page), at most three fifths of the window's width, also at the window's smallest. Clicking either opens
the alert inbox.
"""

from __future__ import annotations

from collections import deque

from PySide6.QtCore import QEvent, QObject, Qt, QTimer, Signal
from PySide6.QtGui import QEnterEvent, QHideEvent, QIcon, QMouseEvent
from PySide6.QtWidgets import QFrame, QLabel, QMainWindow, QSystemTrayIcon, QToolButton, QVBoxLayout, QWidget

from desktop.core.alert_inbox import Notice

TOAST_MS = 8_000
ACTION_TOAST_MS = 30_000  # a notice that leads somewhere to act (a top-up's Undo): time to read it and click
LINGER_MS = 3_000  # after the pointer leaves the notice: at least this long before it goes
MAX_WIDTH, MIN_WIDTH, MARGIN = 380, 200, 12


class Toast(QFrame):
    """The in-window notification: title, message, a close button; click it to open the inbox."""

    clicked = Signal()

    def __init__(self, parent: QWidget) -> None:
        super().__init__(parent)
        self.setObjectName("alertToast")
        self.setAccessibleName("Notification")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setAutoFillBackground(True)
        # Opaque: a style sheet with a border paints no background of its own (the page showed through the words).
        self.setStyleSheet("#alertToast { background-color: palette(window); border: 1px solid palette(mid); "
                           "border-radius: 6px; }")
        self.setCursor(Qt.CursorShape.PointingHandCursor)
        self.title = QLabel()
        font = self.title.font()
        font.setBold(True)
        self.title.setFont(font)
        self.message = QLabel()
        self.message.setWordWrap(True)
        close = QToolButton(self)
        close.setText("\u00d7")  # a multiplication sign: the usual close mark
        close.setAccessibleName("Close the notification")
        close.setAutoRaise(True)
        close.clicked.connect(self._next)
        self._close = close
        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 8, 28, 10)
        layout.addWidget(self.title)
        layout.addWidget(self.message)
        self.timer = QTimer(self)  # when it goes (the tests fire it rather than wait)
        self.timer.setSingleShot(True)
        self.timer.timeout.connect(self._expire)
        self.hovered = False
        self._left_ms = 0  # what was left of the time when the pointer came over it
        self.waiting: deque[tuple[Notice, int]] = deque()  # notices that came while one showed, in turn
        self._shown_ms = 0  # the time the notice showing was given
        self.hide()
        parent.installEventFilter(self)

    def show_notice(self, notice: Notice, msecs: int = TOAST_MS) -> None:
        """Show ``notice`` for ``msecs``; while another shows, it waits its turn (first, if it offers something to
        do: a longer time says so), and the one showing goes after a moment more rather than its whole time (unless it
        offers something to do)."""
        if self.isVisible():
            if msecs > TOAST_MS:
                self.waiting.appendleft((notice, msecs))
            else:
                self.waiting.append((notice, msecs))
            if self._shown_ms <= TOAST_MS:  # (one that offers something to do keeps its time)
                self._left_ms = min(self._left_ms, LINGER_MS)
                if self.timer.isActive():
                    self.timer.start(min(self.timer.remainingTime(), LINGER_MS))
            return
        self.title.setText(notice.title)
        self.message.setText(notice.message)
        self._place()
        self.show()
        self.raise_()
        self._left_ms = self._shown_ms = msecs
        if not self.hovered:  # (while the pointer is over it, it stays; the time starts when the pointer leaves)
            self.timer.start(msecs)

    def _expire(self) -> None:
        if not self.hovered:
            self._next()

    def _next(self) -> None:
        """This notice goes; the next one waiting, if any, comes."""
        self.hide()
        if self.waiting:
            self.show_notice(*self.waiting.popleft())

    def enterEvent(self, event: QEnterEvent) -> None:
        """Being read: it stays while the pointer is over it."""
        self.hovered = True
        if self.timer.isActive():
            self._left_ms = self.timer.remainingTime()
            self.timer.stop()
        super().enterEvent(event)

    def leaveEvent(self, event: QEvent) -> None:
        """Read: what was left of its time, and at least a moment more, then it goes."""
        self.hovered = False
        if self.isVisible():
            self.timer.start(max(self._left_ms, LINGER_MS))
        super().leaveEvent(event)

    def hideEvent(self, event: QHideEvent) -> None:
        self.timer.stop()
        super().hideEvent(event)

    def _place(self) -> None:
        """Bottom right, above the status bar: the balance and the menus stay in view."""
        parent = self.parentWidget()
        assert parent is not None
        width = min(MAX_WIDTH, max(MIN_WIDTH, parent.width() * 3 // 5), parent.width() - 2 * MARGIN)
        self.setFixedWidth(width)
        # As tall as its words at this width: adjustSize() took the wrapped message's height at the label's own
        # preferred width, and the spare height went to the title (a gap of a line under it in a top-up's notice).
        height = self.heightForWidth(width)
        self.resize(width, height if height > 0 else self.sizeHint().height())
        top, bottom = MARGIN, parent.height()
        if isinstance(parent, QMainWindow):
            if parent.menuBar().isVisible():
                top += parent.menuBar().height()
            if parent.statusBar().isVisible():
                bottom = parent.statusBar().y()
        self.move(parent.width() - width - MARGIN, max(top, bottom - self.height() - MARGIN))
        # Sized by hand: a child outside any layout keeps Qt's 100 x 30 default, which put the close mark past the edge.
        self._close.resize(self._close.sizeHint())
        self._close.move(width - self._close.width() - 4, 4)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self.parentWidget() and event.type() == QEvent.Type.Resize and self.isVisible():
            self._place()
        return False

    def mousePressEvent(self, event: QMouseEvent) -> None:
        self.waiting.clear()  # the inbox it opens has them all
        self.hide()
        self.clicked.emit()
        event.accept()


class Notifier(QObject):
    """Shows notices in the tray if there is one, else as a :class:`Toast` in ``window``."""

    clicked = Signal()

    def __init__(self, window: QMainWindow, icon: QIcon, *, use_tray: bool | None = None) -> None:
        super().__init__(window)
        self.tray: QSystemTrayIcon | None = None
        if QSystemTrayIcon.isSystemTrayAvailable() if use_tray is None else use_tray:
            self.tray = QSystemTrayIcon(icon, self)
            self.tray.setToolTip("Creditdesk")
            self.tray.messageClicked.connect(self.clicked.emit)
            self.tray.activated.connect(lambda _reason: self.clicked.emit())
            self.tray.show()
        self.toast = Toast(window)
        self.toast.clicked.connect(self.clicked.emit)
        self.shown: list[Notice] = []  # every notice shown this session, for the tests and diagnostics

    @property
    def where(self) -> str:
        return "system tray" if self.tray is not None else "window"

    def show(self, notice: Notice, *, actionable: bool = False) -> None:
        """``actionable``: the notice leads to something to do (a top-up's Undo): shown longer."""
        self.shown.append(notice)
        msecs = ACTION_TOAST_MS if actionable else TOAST_MS
        if self.tray is not None and self.tray.supportsMessages():
            self.tray.showMessage(notice.title, notice.message, QSystemTrayIcon.MessageIcon.Information, msecs)
        else:
            self.toast.show_notice(notice, msecs)

    def close(self) -> None:
        if self.tray is not None:
            self.tray.hide()
